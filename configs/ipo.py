"""IPO (Azar et al., 2023) on the synthetic preference pairs of configs/dpo.py (laptop CPU).

Run: python -m rlx.train --config configs/ipo.py --workdir /tmp/rlx_ipo
Length-normalised IPO: --config.pref.length_normalize=True.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_preference_defaults(cfg, "ipo")  # squared loss pulling Δ towards 1/(2β)
  cfg.pref.beta = 0.5  # target log-ratio gap 1/(2β) = 1 nat
  cfg.pref.length_normalize = False  # True: c and j divided by the completion lengths
  return cfg
