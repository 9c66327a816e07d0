"""KTO (Ethayarajh et al., 2024) on unpaired examples: the synthetic pairs of configs/dpo.py split
into desirable (chosen) and undesirable (rejected) completions.

Run: python -m rlx.train --config configs/kto.py --workdir /tmp/rlx_kto
A JSONL of prompt/completion/label records: --config.data.source=jsonl --config.data.path=F
(docs/preference.md).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  # desirable w_d(1 − σ(β(r − z_ref))), undesirable w_u(1 − σ(β(z_ref − r)))
  rlx_config.synthetic_preference_defaults(cfg, "kto")
  cfg.optim.learning_rate = 1e-3  # 3e-3 saturates the sigmoids (the updates stall)
  cfg.pref.beta = 0.5  # β
  cfg.pref.kto_desirable_weight = 1.0  # w_d
  cfg.pref.kto_undesirable_weight = 1.0  # w_u
  cfg.algo.batch_size = 32  # examples per update (16 pairs' worth)
  return cfg
