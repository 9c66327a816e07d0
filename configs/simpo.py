"""SimPO (Meng et al., 2024), reference-free, on the synthetic pairs of configs/dpo.py.

Run: python -m rlx.train --config configs/simpo.py --workdir /tmp/rlx_simpo
No reference model: the implicit reward is the length-normalised log-prob β·ℓ/|y|.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_preference_defaults(cfg, "simpo")  # −log σ(β(ℓ_c/|y_c| − ℓ_r/|y_r|) − γ)
  cfg.optim.learning_rate = 1e-3  # without a reference anchoring it, 3e-3 is unstable
  cfg.pref.beta = 2.0  # SimPO's β (paper default)
  cfg.pref.gamma = 0.5  # target reward margin γ
  return cfg
