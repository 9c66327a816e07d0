"""Shared-prefix prefill vs a prefill per row, on GRPO-shaped sampling batches.

    python benchmarks/shared_prefix.py [--reps 3] [--record]

The reference model of benchmarks/sampling.py (12.6M Llama, vocab 8192); ``prompts × n`` rows,
prompt length P, N new tokens (no stop token: every row generates N), sampled at temperature 1.
Each shape is timed end to end (prefill + decode) with ``share_prefix=True`` (each prompt
prefilled once, its cache copied to its n rows) and ``False`` (every row prefills its copy of the
prompt), interleaved, after a warm-up; medians. The samples are the same either way
(tests/sampling/test_sampler.py); what changes is the prefill's work, P·prompts instead of
P·prompts·n tokens, so the gain grows with P/N and with n.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from sampling import CONFIG  # noqa: E402  (the 12.6M reference model)

import rlx.models as M  # noqa: E402
from rlx.sampling import Buckets, SamplingParams, sample  # noqa: E402

SHAPES = [(4, 8, 128, 128), (4, 8, 512, 128), (2, 16, 512, 64)]  # prompts, n, P, N


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--record", action="store_true")
  args = parser.parse_args()
  graphdef, params = M.init_params(CONFIG, seed=0)
  rows = []
  print("| prompts × n | P | N | per-row prefill s | shared prefix s | speed-up |\n"
        "|---|---|---|---|---|---|")
  for prompts, n, p, new in SHAPES:
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, CONFIG.vocab_size, (prompts, p)).astype(np.int32)
    sp = SamplingParams(temperature=1.0, max_new_tokens=new, n=n)
    buckets = Buckets(prompt_lengths=(p,), batch_sizes=(prompts * n,), new_tokens=(new,))

    def run(share):
      t0 = time.perf_counter()
      r = sample(graphdef, params, tokens, np.ones_like(tokens), sp, jax.random.key(0),
                 buckets=buckets, share_prefix=share)
      jax.block_until_ready(r.completion_tokens)
      return time.perf_counter() - t0, np.asarray(r.completion_tokens)

    (_, a), (_, b) = run(True), run(False)  # compile both
    assert np.array_equal(a, b), "shared-prefix samples differ from per-row ones"
    times = {True: [], False: []}
    for _ in range(args.reps):
      for share in (False, True):
        times[share].append(run(share)[0])
    off, on = float(np.median(times[False])), float(np.median(times[True]))
    line = f"| {prompts} × {n} | {p} | {new} | {off:.2f} | {on:.2f} | {off / on:.2f}x |"
    print(line, flush=True)
    rows.append(common.stamp() + line)
  if args.record:
    common.append_rows(
        "## Shared-prefix prefill (benchmarks/shared_prefix.py)",
        "| date | commit | machine | prompts × n | P | N | per-row prefill s | shared prefix s | "
        "speed-up |\n|---|---|---|---|---|---|---|---|---|",
        rows)


if __name__ == "__main__":
  main()
