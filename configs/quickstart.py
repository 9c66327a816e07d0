"""The quickstart: SFT warm start of a tiny model, then GRPO, on synthetic calculation.

Run: python -m rlx.train --config configs/quickstart.py --workdir /tmp/rlx_quickstart
Everything runs on a laptop CPU with no downloads (the task tokenizer ships with rlx).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.seed = 0  # the quickstart's seed (benchmarks repeat it over seeds 0, 1, 2)
  cfg.data.task = "calculation"  # nested integer expressions, worked step by step
  cfg.data.difficulty = (1, 2)  # one or two operations
  # A short warm start (16-22% greedy held-out accuracy over seeds 0-2): enough for the model to
  # write well-formed solutions, leaving the accuracy gain to RL (500 steps reach ≈43%, after
  # which GRPO at this model size plateaus near 57%: +12 to +20 points, see docs/benchmarks.md).
  cfg.warm_start.sft_steps = 400  # SFT updates before GRPO
  cfg.warm_start.learning_rate = 1e-3  # SFT step size for the tiny model
  cfg.warm_start.batch_size = 32  # demonstrations per SFT update
  cfg.num_steps = 2000  # GRPO steps after the warm start (about 4 min alone on 2 CPU cores)
  cfg.algo.batch_size = 64  # 8 prompts × 8 samples per step
  cfg.algo.group_size = 8  # G
  cfg.algo.beta = 0.0  # no KL term: the tiny model starts from its own SFT checkpoint
  cfg.algo.kl_placement = "none"  # no reference model is kept
  cfg.optim.learning_rate = 1e-4  # GRPO step size (3e-4 lowers accuracy; 2e-4 is noisier)
  cfg.sampling.temperature = 1.0  # sample at the model's own distribution
  cfg.sampling.max_new_tokens = 32  # worked solutions take at most 27 tokens
  cfg.eval.every_steps = 250  # held-out accuracy every 250 GRPO steps
  cfg.eval.num_examples = 256  # held-out prompts (±3 points of sampling noise)
  return cfg
