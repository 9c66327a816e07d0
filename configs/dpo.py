"""DPO of a tiny model on synthetic preference pairs of the calculation task (laptop CPU).

Chosen: the task's worked solution; rejected: the same solution with a wrong final answer
(``pref.corruption="answer"``), so a pair is told apart by checking that the answer repeats the
last step's result. Reference log-probs are precomputed once and cached (WORKDIR/reference).

Run: python -m rlx.train --config configs/dpo.py --workdir /tmp/rlx_dpo
Other losses: --config.pref.loss=robust|ipo|hinge|simpo|orpo|kto (or configs/ipo.py, simpo.py,
kto.py); a JSONL of prompt/chosen/rejected records: --config.data.source=jsonl
--config.data.path=pairs.jsonl (docs/preference.md).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_preference_defaults(cfg, "dpo")  # sigmoid DPO
  cfg.algo.micro_batch_size = 0  # no gradient accumulation
  cfg.pref.beta = 1.0  # β: a large β for a randomly initialised reference
  cfg.pref.reference = "precompute"  # reference log-probs once, cached as .npz
  return cfg
