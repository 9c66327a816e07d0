"""GRPO update: full fine-tuning vs LoRA vs int8-base LoRA vs NF4-base LoRA, same model and batch.

    python benchmarks/lora.py [--record] [--reps 3] [--shapes 0 1 2]

About 12 minutes on the shared 2-core machine under load (the 32×256 shape is half of it;
``--shapes 0 2`` skips it).

For each shape (model, rows × (prompt + completion) tokens) and each variant, the GRPO update of
``benchmarks/grpo_step.py`` (β = 0.04 with k3 KL in the loss, token-mean, one epoch of one
minibatch, no micro-batching, Adam) is compiled ahead of time and run on a synthetic batch:

- **full**: every parameter trains (float32 parameters and Adam state);
- **LoRA**: rank 16, alpha 16, on every projection (q, k, v, o, gate, up, down); the float32
  base is frozen and passed into the update without being donated (``learner.Update``);
- **LoRA int8** / **LoRA nf4**: the same adapters over a base whose projection kernels are
  stored as int8 codes (per output channel scales) / NF4 codes (two per byte, a float32 scale per
  64 inputs) and dequantised inside each matmul (``rlx.models.quant``).

Reported per row: trained parameters; parameter bytes (the whole tree: base, quantised codes and
scales, adapters); checkpoint bytes (what ``rlx.runtime.checkpoint`` writes of the train state:
trained parameters + Adam state; a LoRA checkpoint has no base); the compiled update's peak
memory from ``memory_analysis()`` (arguments + outputs − aliased + temporaries) and its
temporaries; the median step time over ``--reps`` steps after a warm-up step, each step fed the
state the previous one returned (the trainable part is donated). The variants of a shape are
timed in rounds, one step of each per round, so that load from other processes on a shared
machine falls on all of them alike.

The models are those of ``benchmarks/forward.py``: 12.6M parameters (vocab 8192, d 384, 6
layers, tied embeddings) and 100M (vocab 32000, d 768, 12 layers, tied embeddings).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from forward import CONFIGS  # noqa: E402  (llama-10m = the 12.6M reference model, llama-100m)

import rlx.models as M  # noqa: E402
from rlx import config as rlx_config  # noqa: E402
from rlx.algorithms import grpo, learner  # noqa: E402
from rlx.models import lora  # noqa: E402
from rlx.optim import init_train_state, make_optimizer  # noqa: E402

SHAPES = [  # (model, rows, prompt tokens, completion tokens)
    ("llama-10m", 8, 64, 64),
    ("llama-10m", 32, 128, 128),
    ("llama-100m", 8, 64, 64),
]
RANK, ALPHA, GROUP = 16, 16.0, 64
VARIANTS = (("full", None), ("LoRA", ""), ("LoRA int8", "int8"), ("LoRA nf4", "nf4"))
MB = 2**20


def run_config(rows: int, new: int):
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.algo.batch_size, cfg.algo.group_size = rows, min(rows, 8)
  cfg.algo.beta, cfg.algo.kl_placement, cfg.algo.kl_estimator = 0.04, "loss", "k3"
  cfg.sampling.max_new_tokens = new
  return rlx_config.validate(cfg, check_paths=False)


def make_batch(config, rows: int, prompt: int, new: int) -> grpo.TrainBatch:
  rng = np.random.default_rng(0)
  s = prompt + new
  tokens = rng.integers(3, config.vocab_size, (rows, s)).astype(np.int32)
  logp = np.full((rows, new), -np.log(config.vocab_size), np.float32)
  adv = rng.standard_normal((rows, 1)).astype(np.float32) * np.ones((1, new), np.float32)
  return grpo.TrainBatch.create(tokens=tokens, attention_mask=np.ones((rows, s), np.float32),
                                loss_mask=np.ones((rows, new), np.float32), old_logprobs=logp,
                                advantages=adv, ref_logprobs=logp)


def nbytes(tree) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def build_variant(base_config, base_params, quantize, run, batch) -> dict:
  """Compile one variant's update and read its memory; ``quantize`` None = full fine-tuning."""
  if quantize is None:
    config, params = base_config, jax.tree.map(jnp.copy, base_params)  # donated by the update
    graphdef = M.abstract(config)[0]
  else:
    config = base_config.replace(lora=M.LoRASpec(rank=RANK, alpha=ALPHA, quantize=quantize,
                                                 group_size=GROUP))
    graphdef, params = lora.attach(config, base_params, seed=0)
  opt = make_optimizer(run.optim, 1000)
  state = init_train_state(opt, params, 0)
  update = grpo.make_grpo_update(graphdef, config, opt, grpo.GRPOSpec.from_config(run.algo))
  hp = grpo.hyper_from_config(run.algo, run.optim.learning_rate, 1.0)
  t0 = time.perf_counter()
  compiled = update.lower(state, batch, hp).compile()
  compile_s = time.perf_counter() - t0
  ma = compiled.memory_analysis()
  step = learner.Update(compiled)  # the compiled executable, same donation
  state, metrics = step(state, batch, hp)  # warm-up
  jax.block_until_ready(metrics)
  return {"trained": lora.trainable_count(params), "param_bytes": nbytes(params),
          "checkpoint": nbytes(lora.trainable_only(state)),
          "peak": (ma.argument_size_in_bytes + ma.output_size_in_bytes
                   - ma.alias_size_in_bytes + ma.temp_size_in_bytes),
          "temp": ma.temp_size_in_bytes, "compile_s": compile_s, "times": [],
          "_run": (step, state, hp)}


def bench_shape(name: str, rows: int, prompt: int, new: int, reps: int) -> list[dict]:
  """Every variant of one shape; steps timed in rounds (one step of each variant per round),
  so that load from other processes on a shared machine falls on all variants alike."""
  config = CONFIGS[name]
  run = run_config(rows, new)
  batch = make_batch(config, rows, prompt, new)
  _, base_params = M.init_params(config, seed=0)
  out = []
  for variant, quantize in VARIANTS:
    r = build_variant(config, base_params, quantize, run, batch)
    r.update(model=name, params=M.count_params(config), rows=rows, tokens=prompt + new,
             variant=variant)
    out.append(r)
  for _ in range(reps):
    for r in out:
      step, state, hp = r["_run"]
      t0 = time.perf_counter()
      state, metrics = step(state, batch, hp)
      jax.block_until_ready(metrics)
      r["times"].append(time.perf_counter() - t0)
      r["_run"] = (step, state, hp)
  for r in out:
    r["step_s"] = statistics.median(r.pop("times"))
    del r["_run"]
    print(f"  {name} {rows}x{prompt + new} {r['variant']}: {r['step_s']:.3f} s/step, peak "
          f"{r['peak'] / MB:.1f} MB, compile {r['compile_s']:.1f} s", flush=True)
  return out


def row(r: dict, full: dict) -> str:
  return (f"| {r['model']} ({r['params'] / 1e6:.1f}M) | {r['rows']}x{r['tokens']} | "
          f"{r['variant']} | {r['trained'] / 1e6:.2f}M | {r['param_bytes'] / MB:.1f} | "
          f"{r['checkpoint'] / MB:.1f} | {r['peak'] / MB:.1f} | {r['temp'] / MB:.1f} | "
          f"{r['peak'] / full['peak']:.2f}x | {r['step_s']:.3f} | "
          f"{r['step_s'] / full['step_s']:.2f}x |")


HEADER = ("| model | rows x tokens | variant | trained params | param MB | checkpoint MB | "
          "peak MB | temp MB | peak vs full | step s | time vs full |")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--shapes", type=int, nargs="*", default=list(range(len(SHAPES))))
  parser.add_argument("--record", action="store_true")
  args = parser.parse_args()
  t0 = time.perf_counter()
  results = []
  for i in args.shapes:
    results.append(bench_shape(*SHAPES[i], reps=args.reps))
  print(f"\nGRPO update, LoRA rank {RANK} on every projection (NF4 group {GROUP}), float32 "
        f"parameters and compute, {common.machine()}; {time.perf_counter() - t0:.0f} s in all")
  print(HEADER + "\n" + "|---" * 11 + "|")
  lines = [row(r, rs[0]) for rs in results for r in rs]
  print("\n".join(lines))
  if args.record:
    stamp = common.stamp()
    common.append_rows(
        "## LoRA and quantised-base LoRA update (benchmarks/lora.py)",
        "| date | commit | machine " + HEADER + "\n" + "|---" * 14 + "|",
        [stamp + l for l in lines])


if __name__ == "__main__":
  main()
