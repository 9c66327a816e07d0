"""Synchronous vs bounded-staleness (``algo.max_staleness=1``) RL steps, with a slow host reward.

    python benchmarks/async_rl.py [--steps 20] [--delays 0,0.5] [--record]

configs/grpo.py (8 prompts × 8 samples, 64 new tokens, the tiny task model) for ``--steps`` RL
steps from its cached SFT warm start (trained first if absent), once per reward delay and
staleness. A delay of D seconds is added to every reward call on the host (``time.sleep``,
standing in for a code sandbox or a model-based judge: the CPU is free meanwhile, as it is while a
sandboxed program runs in its own process); 0 is the task verifier alone. Reported: median
wall-clock seconds per step (from the metrics' ``time_s``, steps after the second), and the
held-out greedy accuracy at the end (one seed: a sanity check, not a comparison).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import common  # noqa: E402
from experiments.common import load_config  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--delays", default="0,0.5")
  parser.add_argument("--record", action="store_true")
  args = parser.parse_args()
  from rlx.config import warm_start_cache_dir
  from rlx.runtime import rollouts
  from rlx.runtime.metrics import read_metrics
  from rlx.runtime.run import train

  delay = {"s": 0.0}
  call = rollouts.RewardFn.__call__

  def slow_call(self, *a, **k):
    time.sleep(delay["s"])
    return call(self, *a, **k)

  rollouts.RewardFn.__call__ = slow_call
  rows, root = [], tempfile.mkdtemp(prefix="rlx_async_")
  print("| reward delay s | max_staleness | s / step | greedy accuracy after |\n|---|---|---|---|")
  for d in [float(x) for x in args.delays.split(",")]:
    per = {}
    for staleness in (0, 1):
      cfg = load_config("grpo")
      cfg.num_steps = args.steps
      cfg.algo.max_staleness = staleness
      cfg.eval.every_steps, cfg.eval.num_examples = 0, 64
      cfg.checkpoint.every_steps = args.steps
      cfg.logging.stdout = False
      cfg.warm_start.cache_dir = warm_start_cache_dir()
      delay["s"] = d
      workdir = os.path.join(root, f"d{d}_s{staleness}")
      out = train(cfg, workdir)
      recs = [r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
              if r.get("phase") == "rl"]
      t = np.diff([r["time_s"] for r in recs])[2:]
      per[staleness] = float(np.median(t))
      acc = out["evals"][-1]["eval/greedy_accuracy"]
      line = f"| {d:g} | {staleness} | {per[staleness]:.3f} | {acc:.3f} |"
      print(line, flush=True)
      rows.append(common.stamp() + line)
    print(f"delay {d:g} s: max_staleness=1 step time / synchronous = {per[1] / per[0]:.2f}x")
  if args.record:
    common.append_rows(
        "## Bounded staleness vs synchronous RL steps (benchmarks/async_rl.py)",
        "| date | commit | machine | reward delay s | max_staleness | s / step | greedy accuracy "
        "after |\n|---|---|---|---|---|---|---|", rows)


if __name__ == "__main__":
  main()
