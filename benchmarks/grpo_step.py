"""One full GRPO step on CPU: sampling, old and reference log-probs, advantages, update.

    python benchmarks/grpo_step.py [--record]

The 12.6M-parameter reference model of the sampling benchmark (vocab 8192, d 384, 6 layers,
6 heads, 2 kv heads, tied embeddings); 4 prompts × 8 samples, 64 prompt tokens, 64 new tokens
(no stop token, so every row generates 64), β = 0.04 with k3 KL in the loss (a reference model
is kept), token-mean, one epoch of one minibatch: the configuration of ``configs/grpo.py`` with
those sizes. Rewards are a cheap host function of the tokens (the reward library is not what is
timed). Each phase is timed separately with ``block_until_ready`` after a warm-up step.

Both sources of π_old run in the same process (``algo.old_logprobs``): "recompute" (a trainer
forward pass before the update, as before) and "sampler" (the sampler's own float32 log-probs,
what ``"auto"`` picks here: no policy forward pass in the preparation).

FLOPs per phase (hardware FLOPs of what the code runs, ``rlx.models.flops_per_token``):
sampling = prefill of 32×64 tokens + 64 decode steps (attention over the cache slots filled);
log-probs = two forward passes (old and reference) over 32×128 tokens, one (reference) with π_old
from the sampler; update = forward + backward ≈ 3 forward passes over 32×128 tokens. Achieved
FLOP/s is compared with the float32 2048×2048 matmul peak measured in the same run.
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
from rlx import config as rlx_config  # noqa: E402
from rlx.algorithms import grpo  # noqa: E402
from rlx.algorithms.trajectory import Trajectory  # noqa: E402
from rlx.optim import init_train_state, make_optimizer  # noqa: E402
from rlx.sampling import Buckets, SamplingParams, sample  # noqa: E402

PROMPTS, GROUP, PROMPT_LEN, NEW = 4, 8, 64, 64
BATCH = PROMPTS * GROUP


def run_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.algo.batch_size, cfg.algo.group_size = BATCH, GROUP
  cfg.algo.beta, cfg.algo.kl_placement, cfg.algo.kl_estimator = 0.04, "loss", "k3"
  return rlx_config.validate(cfg, check_paths=False)


def phase_flops(forwards: int):
  f = M.flops_per_token
  sampling = BATCH * (PROMPT_LEN * f(CONFIG, PROMPT_LEN)
                      + sum(f(CONFIG, PROMPT_LEN + t + 1) for t in range(NEW)))
  forward = BATCH * (PROMPT_LEN + NEW) * f(CONFIG, PROMPT_LEN + NEW)
  return {"sampling": sampling, "old+ref log-probs": forwards * forward, "update": 3 * forward}


def trajectory(r, rewards: np.ndarray) -> Trajectory:
  """The rollout (device arrays, left where they are) and its host rewards, as the
  preparation's typed input."""
  return Trajectory.from_device_rollout(r, rewards)


def measure(run, old_logprobs: str, steps: int, peak: float):
  """Median seconds per phase of ``steps`` GRPO steps (after one compiling step)."""
  algo = run.algo
  graphdef, params = M.init_params(CONFIG, seed=0)
  ref_params = jax.tree.map(lambda x: x.copy(), params)
  opt = make_optimizer(run.optim, 1000)
  state = init_train_state(opt, params, 0)
  # algo.old_logprobs is "auto": the sampler's log-probs where they are exact (float32, no TIS)
  spec = grpo.PrepareSpec.from_config(algo, exact_sampler=old_logprobs == "sampler")
  assert spec.old_from_sampler == (old_logprobs == "sampler")
  prep = grpo.make_prepare(graphdef, CONFIG, spec)
  update = grpo.make_grpo_update(graphdef, CONFIG, opt, grpo.GRPOSpec.from_config(algo))
  prep_hp = grpo.PrepareHyper.create(beta=algo.beta, temperature=1.0)
  hp = grpo.hyper_from_config(algo, run.optim.learning_rate, 1.0)
  rng = np.random.default_rng(0)
  prompts = rng.integers(3, CONFIG.vocab_size, (PROMPTS, PROMPT_LEN)).astype(np.int32)
  sp = SamplingParams(temperature=1.0, max_new_tokens=NEW, n=GROUP)
  buckets = Buckets(prompt_lengths=(PROMPT_LEN,), batch_sizes=(BATCH,), new_tokens=(NEW,))

  def step(state, key):
    times = {}
    t0 = time.perf_counter()
    r = sample(graphdef, state.params, prompts, np.ones_like(prompts), sp, key, buckets=buckets)
    tokens = np.asarray(r.completion_tokens)  # the one planned device→host transfer
    times["sampling"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rewards = (tokens % 2 == 0).mean(axis=1).astype(np.float32)  # a cheap host reward
    batch, _ = prep(state.params, ref_params, trajectory(r, rewards), prep_hp)
    jax.block_until_ready(batch)
    times["old+ref log-probs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, metrics = update(state, batch, hp)
    jax.block_until_ready(metrics)
    times["update"] = time.perf_counter() - t0
    return state, times

  state, _ = step(state, jax.random.key(0))  # compile everything
  all_times = []
  for i in range(steps):
    state, times = step(state, jax.random.key(i + 1))
    all_times.append(times)
  return {k: float(np.median([t[k] for t in all_times])) for k in all_times[0]}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--record", action="store_true")
  args = parser.parse_args()
  run = run_config()
  peak = common.matmul_peak()
  results = {m: measure(run, m, args.steps, peak) for m in ("recompute", "sampler")}
  peak = max(peak, common.matmul_peak())
  print(f"GRPO step, {M.count_params(CONFIG) / 1e6:.1f}M params, {PROMPTS} prompts x {GROUP} "
        f"samples, {PROMPT_LEN}+{NEW} tokens, beta {run.algo.beta}; matmul peak "
        f"{peak / 1e9:.1f} GFLOP/s")
  rows = []
  for mode, med in results.items():
    flops = phase_flops(2 if mode == "recompute" else 1)
    total_s, total_f = sum(med.values()), sum(flops.values())
    print(f"\nπ_old: {mode}\n| phase | seconds | GFLOP | GFLOP/s | % of peak |\n"
          "|---|---|---|---|---|")
    for k in med:
      print(f"| {k} | {med[k]:.3f} | {flops[k] / 1e9:.1f} | {flops[k] / med[k] / 1e9:.1f} | "
            f"{100 * flops[k] / med[k] / peak:.0f}% |")
    print(f"| total | {total_s:.3f} | {total_f / 1e9:.1f} | {total_f / total_s / 1e9:.1f} | "
          f"{100 * total_f / total_s / peak:.0f}% |")
    rows.append(f"{common.stamp()}| {mode} | "
                f"{total_s:.2f} | {med['sampling']:.2f} | {med['old+ref log-probs']:.2f} | "
                f"{med['update']:.2f} | {total_f / 1e9:.0f} | {total_f / total_s / 1e9:.1f} | "
                f"{peak / 1e9:.1f} | {100 * total_f / total_s / peak:.0f}% |")
  r, s_ = (sum(results[m].values()) for m in ("recompute", "sampler"))
  print(f"\nstep time, π_old from the sampler / recomputed: {s_ / r:.2f}x")
  if args.record:
    common.append_rows(
        "## GRPO step by source of π_old (benchmarks/grpo_step.py)",
        "| date | commit | machine | π_old | step s | sampling s | log-probs s | update s | GFLOP | "
        "GFLOP/s | peak GFLOP/s | % of peak |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
        rows)


if __name__ == "__main__":
  main()
