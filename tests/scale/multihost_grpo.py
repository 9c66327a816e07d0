"""Three GRPO steps (sample → per-host rewards → gather → prepare → update) on a 2×2 FSDP×TP
mesh of 4 CPU devices, as one process or as several ``jax.distributed`` processes on localhost.

    python -m tests.scale.multihost_grpo --workdir DIR [--process_id I --num_processes N --port P]
        [--restore_from DIR]

Each process loads its own block of the prompts, the sampler runs on the global batch, each
host scores the rows its devices hold (``rlx.runtime.distributed.local_rows``) and the rewards
are gathered for the group statistics (``gather_rewards``). The train state is checkpointed by
every process; process 0 writes the final parameters to ``DIR/params.npz``. After the steps,
process 1 (if any) receives a SIGTERM: every process must agree to stop
(``PreemptionGuard.stop_requested``). ``--restore_from`` (one process) restores that run's
checkpoint into an unsharded one-device state and reports its difference to this run's params.
"""

import argparse
import json
import os
import signal

import jax

parser = argparse.ArgumentParser()
parser.add_argument("--workdir", required=True)
parser.add_argument("--process_id", type=int, default=0)
parser.add_argument("--num_processes", type=int, default=1)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--restore_from", default="")
args = parser.parse_args()

from rlx import config as rlx_config  # noqa: E402
from rlx.runtime import distributed  # noqa: E402

if args.num_processes > 1:
  section = rlx_config.MeshSection(distributed="on", coordinator_address=f"localhost:{args.port}",
                                   num_processes=args.num_processes,
                                   process_id=args.process_id)
  jax.config.update("jax_num_cpu_devices", 4 // args.num_processes)
  assert distributed.initialize(section)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from rlx import models  # noqa: E402
from rlx.algorithms import grpo  # noqa: E402
from rlx.algorithms.trajectory import Trajectory  # noqa: E402
from rlx.runtime import mesh as mesh_lib  # noqa: E402
from rlx.runtime.checkpoint import Checkpointer, restore_params  # noqa: E402
from rlx.runtime.preemption import PreemptionGuard  # noqa: E402
from rlx.optim import create_train_state, make_optimizer  # noqa: E402
from rlx.sampling import Buckets, SamplingParams, sample  # noqa: E402

CONFIG = models.ModelConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2,
                            head_dim=8, d_ff=64, init_std=0.3)
PROMPTS, GROUP, PROMPT_LEN, NEW, STEPS = 4, 2, 4, 4, 3


def prompts_of_step(step: int) -> np.ndarray:
  """The global prompt batch ``[PROMPTS, PROMPT_LEN]`` of a step (a pure function of it)."""
  return np.random.default_rng(100 + step).integers(1, CONFIG.vocab_size,
                                                    (PROMPTS, PROMPT_LEN)).astype(np.int32)


def reward(completions: np.ndarray) -> np.ndarray:
  """A cheap host reward of token ids ``[R, N]`` → ``[R]``: the fraction of even tokens."""
  return (completions % 2 == 0).mean(axis=1).astype(np.float32)


def trajectory(r, rewards: np.ndarray) -> Trajectory:
  """The sampler's rollout (global device arrays, rows over data × fsdp) and the gathered
  rewards (the global ``[R]`` host array) as the preparation's typed input. The arrays stay on
  the devices: on several processes none of them is fully addressable from one host."""
  return Trajectory.from_device_rollout(r, rewards)


def main():
  p, n_proc = jax.process_index(), jax.process_count()
  assert jax.device_count() == 4, jax.devices()
  layout = mesh_lib.Layout.create(mesh_lib.make_mesh(1, 2, 2), "fsdp_tp")
  cfg = rlx_config.default_config()
  cfg.optim.eps = 1e-3  # see tests/scale/mesh_checks.py
  cfg.algo.batch_size, cfg.algo.group_size = PROMPTS * GROUP, GROUP
  run = rlx_config.validate(cfg)
  opt = make_optimizer(run.optim, 100)
  graphdef, params = models.init_params(CONFIG, seed=0, mesh=layout.mesh, rules=layout.rules)
  ref_params = jax.tree.map(jnp.copy, params)
  state = create_train_state(opt, params, 0, layout=layout)
  prep_spec = grpo.PrepareSpec(use_reference=True, kl_placement=rlx_config.KLPlacement.LOSS)
  prepare = grpo.make_prepare(graphdef, CONFIG, prep_spec, layout=layout)
  update = grpo.make_grpo_update(graphdef, CONFIG, opt, grpo.GRPOSpec(kl_in_loss=True),
                                 layout=layout)
  prep_hp = grpo.PrepareHyper.create(beta=0.04)
  hp = grpo.Hyper.create(lr=3e-2, beta=0.04)
  sp = SamplingParams(temperature=1.0, max_new_tokens=NEW, n=GROUP)
  buckets = Buckets(prompt_lengths=(PROMPT_LEN,), batch_sizes=(PROMPTS * GROUP,),
                    new_tokens=(NEW,))
  losses, local_row_counts = [], []
  for step in range(STEPS):
    k = PROMPTS // n_proc
    local = prompts_of_step(step)[p * k:(p + 1) * k]  # this host's block of the data
    prompts = distributed.gather_rows(local)  # the global batch, on every host
    r = sample(graphdef, state.params, prompts, np.ones_like(prompts), sp,
               jax.random.key(step), buckets=buckets, mesh=layout.mesh)
    mine = distributed.local_rows(r.completion_tokens)  # the samples this host's devices hold
    local_row_counts.append(len(mine))
    rewards = distributed.gather_rewards(reward(mine))  # scored here, gathered for group stats
    batch, _ = prepare(state.params, ref_params, trajectory(r, rewards), prep_hp)
    state, metrics = update(state, batch, hp)
    losses.append(float(metrics["loss/total"]))
  ckpt = Checkpointer(os.path.join(args.workdir, "checkpoints"))
  ckpt.save(STEPS, {"train": state}, {"processes": n_proc})
  ckpt.close()
  final = distributed.to_host(state.params)  # a collective: every process calls it
  guard = PreemptionGuard()
  with guard:
    if p == 1:
      os.kill(os.getpid(), signal.SIGTERM)  # one host is preempted ...
    stopped = guard.stop_requested()  # ... every host stops at the same step boundary
  out = {"process": p, "losses": losses, "local_rows": local_row_counts, "stopped": stopped,
         "signal": guard.signal_name}
  if p == 0:
    flat = {"/".join(map(str, k)): np.asarray(v) for k, v in
            jax.tree_util.tree_flatten_with_path(final)[0]}
    np.savez(os.path.join(args.workdir, "params.npz"), **flat)
  if args.restore_from:
    # A one-process, one-device run restores the other run's (sharded, multi-process) state.
    like = create_train_state(opt, jax.tree.map(np.asarray, final), 0)
    restored, host = Checkpointer(os.path.join(args.restore_from, "checkpoints")).restore(
        None, {"train": like})
    leaves = jax.tree.leaves(restored["train"].params)
    out["restored_devices"] = sorted({len(x.sharding.device_set) for x in leaves})
    out["restored_step"] = int(restored["train"].step)
    out["restored_from_processes"] = host["processes"]
    other = np.load(os.path.join(args.restore_from, "params.npz"))
    out["restored_vs_saved"] = max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(
        leaves, [other[k] for k in other.files]))
    # init_from / export read only the parameters, into the layout of `like` (here a 2×2 mesh).
    params_only = restore_params(os.path.join(args.restore_from, "checkpoints"), state.params)
    out["params_only_spec"] = str(params_only["layers"][0]["mlp"]["up_proj"]["kernel"]
                                  .get_value().sharding.spec)
    out["params_only_vs_saved"] = max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(
        jax.tree.leaves(params_only), [other[k] for k in other.files]))
  print("RESULTS " + json.dumps(out), flush=True)


if __name__ == "__main__":
  main()
