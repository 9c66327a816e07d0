"""Token log-probs from hidden states: direct ``[B,T,V]`` logits vs the vocabulary-chunked path.

    python benchmarks/logprobs.py [--record]

For V = 32k (and 128k) reports the compiled temporary memory (``memory_analysis``) and the time of
the forward and forward+backward passes of ``rlx.core.logprobs_from_hidden`` against
``log_softmax(h @ W)``. The chunked path must use far less memory; its time is the price.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from rlx import core  # noqa: E402

CASES = [(4, 256, 512, 32_768, 4096), (2, 256, 512, 131_072, 8192)]  # B, T, D, V, chunk


def fns(chunk):
  def direct(h, w, y):
    return core.logprobs_from_logits(h @ w, y, 1.0, with_entropy=True)

  def chunked(h, w, y):
    return core.logprobs_from_hidden(h, w, y, 1.0, chunk_size=chunk, with_entropy=True)

  def grad(fn):
    return lambda h, w, y: jax.grad(lambda h, w: jnp.sum(fn(h, w, y).logprobs), argnums=(0, 1))(h, w)

  return {"direct": direct, "chunked": chunked, "direct fwd+bwd": grad(direct),
          "chunked fwd+bwd": grad(chunked)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--record", action="store_true")
  parser.add_argument("--reps", type=int, default=3)
  args = parser.parse_args()
  rows = []
  print("| B x T | D | V | path | temp MB | ms |\n|---|---|---|---|---|---|")
  for b, t, d, v, chunk in CASES:
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(d, v)) * 0.05, jnp.float32)
    y = jnp.asarray(rng.integers(0, v, size=(b, t)), jnp.int32)
    for name, fn in fns(chunk).items():
      compiled = jax.jit(fn).lower(h, w, y).compile()
      mb = compiled.memory_analysis().temp_size_in_bytes / 2**20
      ms = common.time_call(compiled, h, w, y, reps=args.reps) * 1e3
      print(f"| {b}x{t} | {d} | {v} | {name} | {mb:.1f} | {ms:.1f} |")
      rows.append(f"{common.stamp()}| {b}x{t} | {d} | "
                  f"{v} | {name} | {mb:.1f} | {ms:.1f} |")
  if args.record:
    common.append_rows("## Chunked log-probs (benchmarks/logprobs.py)",
                       "| date | commit | machine | B x T | D | V | path | temp MB | ms |\n"
                       "|---|---|---|---|---|---|---|---|---|", rows)


if __name__ == "__main__":
  main()
