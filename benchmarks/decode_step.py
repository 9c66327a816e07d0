"""One decode step of the reference model, with and without XLA:CPU's YNNPACK dot fusions.

    python benchmarks/decode_step.py [--record]

The sampler compiles large decode programs on the CPU without YNNPACK dots
(``rlx.sampling.sampler._ynn_dots_off``: at least 64 rows over more than 512 cache slots);
this script measures the rule's grounds. For each (rows, cache slots): 32 decode steps of the
12.6M reference model (benchmarks/sampling.py; a ``[rows, 1]`` forward writing one cache slot,
plus the LM head) in one ``fori_loop``, compiled with the default XLA:CPU options and with
``xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE``; milliseconds a step, the
median of 3 calls after a warm-up, and what the rule picks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from sampling import CONFIG  # noqa: E402  (the 12.6M reference model)

import rlx.models as M  # noqa: E402
from rlx.sampling import sampler  # noqa: E402

SHAPES = [(32, 192), (128, 192), (32, 576), (56, 576), (64, 576), (128, 576), (64, 512),
          (128, 288), (32, 2112), (64, 2112)]
STEPS = 32


def step_ms(graphdef, params, rows: int, slots: int, options) -> float:
  def run(params, cache):
    model = nnx.merge(graphdef, params)

    def body(i, carry):
      cache, acc = carry
      tokens = jnp.full((rows, 1), 3, jnp.int32) + i
      h, cache = model.hidden_states(tokens, tokens * 0 + 64 + i, jnp.ones((rows, 1), bool), cache)
      return cache, acc + model.lm_head(h[:, 0]).sum()

    return jax.lax.fori_loop(0, STEPS, body, (cache, jnp.float32(0)))

  fn = jax.jit(run, donate_argnums=1, compiler_options=options)
  model = nnx.merge(graphdef, params)
  fresh = lambda: model.init_cache(rows, slots).replace(index=jnp.int32(64))  # noqa: E731
  jax.block_until_ready(fn(params, fresh()))
  times = []
  for _ in range(3):
    cache = fresh()
    jax.block_until_ready(cache)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(params, cache))
    times.append((time.perf_counter() - t0) / STEPS * 1e3)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--record", action="store_true")
  args = parser.parse_args()
  graphdef, params = M.init_params(CONFIG, seed=0)
  lines = []
  print("| rows | cache slots | YNNPACK dots ms/step | without ms/step | rule picks |\n"
        "|---|---|---|---|---|")
  for rows, slots in SHAPES:
    on = step_ms(graphdef, params, rows, slots, None)
    off = step_ms(graphdef, params, rows, slots, sampler._NO_YNN_DOTS)
    pick = "without" if sampler._ynn_dots_off(rows, slots) else "YNNPACK"
    line = f"| {rows} | {slots} | {on:.1f} | {off:.1f} | {pick} |"
    print(line, flush=True)
    lines.append(common.stamp() + line)
  if args.record:
    common.append_rows(
        "## XLA:CPU decode slow path (benchmarks/decode_step.py)",
        "| date | commit | machine | rows | cache slots | YNNPACK dots ms/step | without ms/step | "
        "rule picks |\n|---|---|---|---|---|---|---|---|", lines)


if __name__ == "__main__":
  main()
