"""GRPO update throughput on 1 device vs 8 simulated CPU devices (FSDP, FSDP×TP).

    python benchmarks/scale.py [--record] [--steps 3]

The sampling benchmark's 12.6M-parameter model (vocab 8192, d 384, 6 layers), 32 sequences of
64 prompt + 64 completion tokens, micro-batches of 8, β = 0.04 (KL in the loss), Adam: the update
of ``benchmarks/grpo_step.py``. Each mesh runs in its own process (the device count is fixed
when jax starts), with ``--xla_force_host_platform_device_count``; the update is compiled with
explicit shardings (``rlx.runtime.mesh.Layout``) and timed with ``block_until_ready`` after a
warm-up step.

Simulated devices share the host's cores: 8 of them on a 2-core machine are 8 programs
time-slicing 2 cores, with the collectives of a sharded program on top, so the expected result
is overhead (tokens/s below the 1-device figure), not speed-up. The number answers "what does
sharding cost where it cannot help"; real speed-ups need real devices.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESHES = [  # (devices, data, fsdp, tensor, rules)
    (1, 1, 1, 1, "fsdp_tp"),
    (8, 1, 8, 1, "fsdp"),
    (8, 1, 2, 4, "fsdp_tp"),
]
BATCH, PROMPT, NEW, MICRO = 32, 64, 64, 8


def child(devices: int, data: int, fsdp: int, tensor: int, rules: str, steps: int) -> dict:
  import jax
  import numpy as np

  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  from sampling import CONFIG  # the 12.6M reference model

  import rlx.models as M
  from rlx import config as rlx_config
  from rlx import core
  from rlx.algorithms import grpo
  from rlx.runtime import mesh as mesh_lib
  from rlx.optim import create_train_state, make_optimizer

  assert jax.device_count() == devices, jax.devices()
  layout = None
  if devices > 1:
    layout = mesh_lib.Layout.create(mesh_lib.make_mesh(data, fsdp, tensor), rules)
  place = {} if layout is None else {"mesh": layout.mesh, "rules": layout.rules}
  graphdef, params = M.init_params(CONFIG, seed=0, **place)
  run = rlx_config.validate(rlx_config.default_config())
  opt = make_optimizer(run.optim, 1000)
  state = create_train_state(opt, params, 0, layout=layout)
  spec = grpo.GRPOSpec(kl_in_loss=True, micro_batch_size=MICRO)
  update = grpo.make_grpo_update(graphdef, CONFIG, opt, spec, layout=layout)
  rng = np.random.default_rng(0)
  t = NEW
  tokens = rng.integers(3, CONFIG.vocab_size, (BATCH, PROMPT + t)).astype(np.int32)
  mask = np.ones((BATCH, t), np.float32)
  logp = (-rng.random((BATCH, t)) * 5).astype(np.float32)
  adv, _ = core.grpo_advantages(rng.random(BATCH).astype(np.float32), np.arange(BATCH) // 8, mask)
  batch = grpo.TrainBatch.create(tokens, np.ones_like(tokens, np.float32), mask, logp,
                                 np.asarray(adv), ref_logprobs=logp - 0.01)
  batch = jax.tree.map(np.asarray, batch)
  if layout is not None:
    batch = layout.put(batch, layout.shardings_for(batch))  # rows over data × fsdp
  hp = grpo.Hyper.create(lr=1e-5, beta=0.04)
  t0 = time.perf_counter()
  state, metrics = update(state, batch, hp)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = update(state, batch, hp)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  med = float(np.median(times))
  return {"devices": devices, "mesh": f"{data}x{fsdp}x{tensor}", "rules": rules,
          "first_call_s": compile_s, "update_s": med,
          "tokens_per_s": BATCH * (PROMPT + t) / med, "params": M.count_params(CONFIG)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--record", action="store_true")
  parser.add_argument("--child", default="")
  args = parser.parse_args()
  if args.child:
    print("RESULT " + json.dumps(child(*json.loads(args.child), steps=args.steps)), flush=True)
    return
  rows = []
  for devices, data, fsdp, tensor, rules in MESHES:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, __file__, "--steps", str(args.steps), "--child",
         json.dumps([devices, data, fsdp, tensor, rules])],
        env=env, capture_output=True, text=True, timeout=1800)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not line:
      raise SystemExit(proc.stdout[-2000:] + proc.stderr[-4000:])
    rows.append(json.loads(line[0][len("RESULT "):]))
  base = rows[0]["tokens_per_s"]
  print(f"GRPO update, {rows[0]['params'] / 1e6:.1f}M params, {BATCH} sequences x "
        f"{PROMPT}+{NEW} tokens, micro-batch {MICRO}; simulated CPU devices share the host cores")
  print("| devices | mesh (data x fsdp x tensor) | rules | first call s | update s | tokens/s | "
        "vs 1 device |\n|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['devices']} | {r['mesh']} | {r['rules']} | {r['first_call_s']:.1f} | "
          f"{r['update_s']:.3f} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f}x |")
  if args.record:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common
    common.append_rows(
        "## Sharded update on simulated devices (benchmarks/scale.py)",
        "| date | commit | machine | devices | mesh (data x fsdp x tensor) | rules | update s | "
        "tokens/s | vs 1 device |\n|---|---|---|---|---|---|---|---|---|",
        [f"| {common.today()} | {common.git_commit()} | {os.uname().machine} {os.cpu_count()} "
         f"cores, cpu | {r['devices']} | {r['mesh']} | {r['rules']} | {r['update_s']:.3f} | "
         f"{r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f}x |" for r in rows])


if __name__ == "__main__":
  main()
