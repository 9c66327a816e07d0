"""Every shipped algorithm config learns out of the box (issue 18).

Each RL config runs as shipped but for a documented short schedule (:data:`SHORT`: fewer RL
steps, held-out accuracy only before and after, on fewer problems): the shared SFT warm start
(trained once, cached under a directory every test worker shares), then its own algorithm; the
held-out accuracy must rise. The README's "Run an experiment" command is one of the cases. The
shipped schedules themselves (300 RL steps) are measured in docs/benchmarks.md.
"""

import os

import pytest

from rlx import config as rlx_config
from rlx.runtime.run import train
from tests.test_configs import load

# The short schedule: 100 RL steps of the shipped 300; accuracy before and after only.
SHORT = {"num_steps": 100, "eval.every_steps": 0, "eval.num_examples": 256,
         "checkpoint.every_steps": 100}
RL_CONFIGS = ["grpo", "dr_grpo", "dapo", "gspo", "cispo", "rloo", "reinforce_pp",
              "reinforce_pp_baseline", "remax", "ppo"]
README_EXAMPLE = ("dapo", {"algo.eps_high": 0.28})  # README: --config.algo.eps_high=0.28
# Bounded staleness 1 (each batch sampled by the policy one update behind) still learns.
STALE = ("grpo", {"algo.max_staleness": 1})


def override(cfg, overrides):
  for key, value in overrides.items():
    *sections, field = key.split(".")
    node = cfg
    for s in sections:
      node = getattr(node, s)
    setattr(node, field, value)
  return cfg


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
  """One warm-start cache for the pytest-xdist workers of this session only (their base temps
  share a parent; the run id keeps another session's entries out)."""
  run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
  if run_id is None:
    return str(tmp_path_factory.mktemp("rlx_warm_start_cache"))
  path = tmp_path_factory.getbasetemp().parent / f"rlx_warm_start_cache_{run_id}"
  path.mkdir(exist_ok=True)
  return str(path)


# SFT from random weights (300 of its 1000 updates), rejection sampling (100 of its 300 rounds,
# from its own cached warm start) and iterative DPO learn too.
# iterative_dpo runs as shipped (6 rounds of 10 DPO updates).
OTHERS = [("sft", {"num_steps": 300}), ("rejection_sft", {}),
          ("iterative_dpo", {"num_steps": 60, "eval.num_examples": 256})]


@pytest.mark.slow
@pytest.mark.parametrize("name,extra",
                         [(n, {}) for n in RL_CONFIGS] + [README_EXAMPLE, STALE] + OTHERS,
                         ids=RL_CONFIGS + ["readme_dapo", "grpo_max_staleness_1", "sft",
                                           "rejection_sft", "iterative_dpo"])
def test_config_raises_held_out_accuracy(name, extra, shared_cache, tmp_path):
  cfg = override(load(name), {**SHORT, **extra, "warm_start.cache_dir": shared_cache,
                              "logging.stdout": False})
  run = rlx_config.validate(cfg)
  assert run.warm_start.sft_steps > 0 or name == "sft"  # shipped with a warm start
  out = train(run, str(tmp_path / name))
  first, last = out["evals"][0], out["evals"][-1]
  # pass@1 (4 samples of each of 256 problems) is the low-noise measure: it must rise by 3
  # points; greedy accuracy (one completion a problem, ±2.6 points of noise) must not fall more.
  assert last["eval/pass@1"] - first["eval/pass@1"] >= 0.03, (name, first, last)
  assert last["eval/greedy_accuracy"] >= first["eval/greedy_accuracy"] - 0.03, (name, first, last)
  assert os.listdir(shared_cache)
