"""cispo on the synthetic calculation task with a tiny model (laptop CPU).

Run: python -m rlx.train --config configs/cispo.py --workdir /tmp/rlx_cispo
The algorithm's estimator × policy loss × KL × aggregation come from
rlx.config.ALGORITHM_PRESETS["cispo"]; override any of them with --config.algo.FIELD=VALUE.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "cispo")
  cfg.num_steps = 100  # RL steps
  return cfg
