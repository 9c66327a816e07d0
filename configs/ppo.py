"""ppo on the synthetic calculation task with a tiny model, from an SFT warm start (laptop CPU).

Run: python -m rlx.train --config configs/ppo.py --workdir /tmp/rlx_ppo
The algorithm's estimator × policy loss × KL × aggregation come from
rlx.config.ALGORITHM_PRESETS["ppo"]; override any of them with --config.algo.FIELD=VALUE.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  # A 400-step SFT warm start shared by every RL config (cached: the first to run trains it),
  # then 300 RL steps of 8 prompts × 8 samples at 1e-4, held-out accuracy every 50 (rlx.config).
  rlx_config.synthetic_rl_defaults(cfg, "ppo")
  return cfg
