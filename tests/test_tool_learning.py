"""A tool-use run learns to call the tool (issue 19): configs/tool_calculator.py as shipped but for
a shorter RL schedule (:data:`SHORT`), on CPU in a few minutes. From the SFT warm start (a
quarter of the demonstrations call the calculator) GRPO on episodes of the tool environment must
raise the tool-call rate (training and held-out) and the held-out accuracy by margins far
outside the spread of seeds 0-2 (docs/envs.md, "A tool-use run"); with an RL learning rate of
1e-12 nothing rises and the test fails (checked by hand)."""

import json
import os

import numpy as np
import pytest

from rlx import config as rlx_config
from rlx.runtime.run import train
from tests.test_config_learning import override
from tests.test_configs import load

# 40 GRPO steps of the shipped 100 (the tool-call rate is near 1 by then), held-out episodes
# at steps 0, 20 and 40; the warm start is trained in the test's own directory.
SHORT = {"num_steps": 40, "eval.every_steps": 20, "checkpoint.every_steps": 40,
         "warm_start.cache_dir": "", "logging.stdout": False}


def train_metrics(workdir: str, key: str) -> np.ndarray:
  """``key`` of every RL step in ``metrics.jsonl``, in step order."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return np.array([r[key] for r in sorted(records, key=lambda r: r["step"]) if key in r])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # ast.parse of miswritten calculator input
def test_tool_run_learns_to_call_the_calculator(tmp_path):
  run = rlx_config.validate(override(load("tool_calculator"), SHORT))
  out = train(run, str(tmp_path))
  first, last = out["evals"][0], out["evals"][-1]
  assert (first["step"], last["step"]) == (0, 40)
  # Measured at step 40 (seeds 0, 1, 2; docs/envs.md): held-out tool-call rate 0.26-0.30 ->
  # 0.98 (rises 0.68-0.72), greedy accuracy 0.00-0.02 -> 0.83-1.00 (0.83-0.98), pass@1
  # 0.18-0.27 -> 0.73-0.86 (0.55-0.60); training tool-call rate, first 5 steps 0.21-0.37, steps
  # 36-40 0.96-0.97 (0.59-0.75). Margins: about half the smallest rise. RL learning rate 1e-12:
  # every held-out rise is 0.0.
  rise = {k: last[k] - first[k] for k in
          ("eval/env/tool_use_rate", "eval/greedy_accuracy", "eval/pass@1")}
  assert rise["eval/env/tool_use_rate"] >= 0.35, (first, last)
  assert rise["eval/greedy_accuracy"] >= 0.5, (first, last)
  assert rise["eval/pass@1"] >= 0.3, (first, last)
  # The training episodes: tool-call rate of the last 5 steps over that of the first 5.
  rate = train_metrics(str(tmp_path), "env/tool_use_rate")
  assert len(rate) == 40
  assert rate[-5:].mean() - rate[:5].mean() >= 0.35, rate
