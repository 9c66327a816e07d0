"""The quickstart: SFT warm start of a tiny model on 1,024 demonstrations, then GRPO with a
verifier on the whole synthetic calculation task.

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
  # The setting RL with verifiable rewards is for: worked solutions exist for 1,024 problems
  # only, while every problem's answer can be checked. SFT alone on the 1,024 demonstrations
  # reaches 63-70% greedy held-out accuracy in 2,400 steps (68-73% in 5,000: it memorises them);
  # this warm start then GRPO on fresh problems reach 74-77% (docs/benchmarks.md, "Quickstart
  # vs SFT alone").
  cfg.warm_start.num_examples = 1024  # the demonstrations: worked solutions of 1,024 problems
  cfg.warm_start.sft_steps = 1200  # SFT updates before GRPO (≈60% greedy: near SFT's plateau,
  #                                  the warm start of the best final accuracy of those tried)
  cfg.warm_start.learning_rate = 1e-3  # SFT step size for the tiny model
  cfg.warm_start.batch_size = 32  # demonstrations per SFT update
  # Trained once, then loaded by every later run with the same model, task and warm start:
  # $XDG_CACHE_HOME/rlx/warm_start, or set "" to always train it.
  cfg.warm_start.cache_dir = rlx_config.warm_start_cache_dir()
  cfg.num_steps = 1200  # GRPO steps after the warm start, on problems of the whole task
  cfg.algo.batch_size = 64  # 8 prompts × 8 samples per step
  cfg.algo.group_size = 8  # G
  cfg.algo.beta = 0.0  # no KL term: the tiny model starts from its own SFT checkpoint
  cfg.algo.kl_placement = "none"  # no reference model is kept
  cfg.optim.learning_rate = 1e-4  # GRPO step size (3e-4 lowers accuracy; 2e-4 is noisier)
  cfg.sampling.temperature = 1.0  # sample at the model's own distribution
  cfg.sampling.max_new_tokens = 32  # worked solutions take at most 27 tokens
  cfg.eval.every_steps = 200  # held-out accuracy every 200 GRPO steps
  cfg.eval.num_examples = 256  # held-out prompts (±3 points of sampling noise)
  return cfg
