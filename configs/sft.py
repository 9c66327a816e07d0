"""Supervised fine-tuning of a tiny model on worked solutions of the synthetic calculation task.

Run: python -m rlx.train --config configs/sft.py --workdir /tmp/rlx_sft
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "sft")
  cfg.num_steps = 1000  # optimizer updates (from random weights: 0% → about 75% greedy)
  cfg.algo.batch_size = 32  # demonstrations per update
  cfg.algo.micro_batch_size = 16  # gradient accumulation over 2 micro-batches (exact)
  cfg.optim.learning_rate = 1e-3  # a tiny model from scratch tolerates a large step
  cfg.optim.schedule = "cosine"  # warm-up, then cosine decay
  cfg.optim.warmup_steps = 10  # linear warm-up
  cfg.optim.end_lr_factor = 0.1  # final lr = 1e-4
  cfg.eval.every_steps = 100  # held-out accuracy (greedy, pass@k) every 100 updates
  cfg.eval.num_examples = 256  # held-out problems
  return cfg
