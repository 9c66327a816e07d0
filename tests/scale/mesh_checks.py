"""Sharded-vs-single-device checks on 8 simulated CPU devices; run by ``test_mesh.py`` in its own
process (``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before jax is imported).

Prints one JSON line ``RESULTS {...}`` with the measured differences; the test asserts on them.

Optimizer: Adam with ε = 1e-3. With the default ε = 1e-8, Adam's first steps are ≈ lr·sign(g),
so coordinates whose gradient is ~1e-9 (rows of the LM head no target touches, up to rounding)
move by ±lr depending on the summation order of the reduction: any reordering, sharded or not,
changes them. A larger ε keeps the update a smooth function of the gradient, so the comparison
measures the sharded program, not Adam's amplification of rounding.
"""

import json
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as rlx_config
from rlx import core, models
from rlx.algorithms import grpo
from rlx.runtime import mesh as mesh_lib
from rlx.runtime.checkpoint import Checkpointer
from rlx.optim import create_train_state, make_optimizer
from rlx.sampling import Buckets, SamplingParams, sample

CONFIG = models.ModelConfig(vocab_size=128, d_model=32, n_layers=1, n_heads=4, n_kv_heads=4,
                            head_dim=8, d_ff=64, init_std=0.3)
B, P, T = 8, 4, 6
MESHES = {  # name: ((data, fsdp, tensor), rules)
    "fsdp": ((1, 8, 1), "fsdp"),
    "tp": ((2, 1, 4), "tp"),
    "fsdp_tp": ((1, 2, 4), "fsdp_tp"),
}


def batches(n):
  """``n`` fixed TrainBatches of host arrays (left/right padding, two groups of 4)."""
  out = []
  for i in range(n):
    rng = np.random.default_rng(i)
    tokens = rng.integers(1, CONFIG.vocab_size, (B, P + T)).astype(np.int32)
    attn = np.ones((B, P + T), np.float32)
    attn[0, :2] = 0
    attn[3, P + 3:] = 0
    loss_mask = attn[:, P:]
    logp = (rng.standard_normal((B, T)) - 3).astype(np.float32)
    old = logp + 0.1 * rng.standard_normal((B, T)).astype(np.float32)
    adv, _ = core.grpo_advantages(rng.integers(0, 2, B).astype(np.float32), np.arange(B) // 4,
                                  loss_mask)
    b = grpo.TrainBatch.create(tokens, attn, loss_mask, old, np.asarray(adv), ref_logprobs=logp)
    out.append(jax.tree.map(np.asarray, b))
  return out


def max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main():
  assert jax.device_count() == 8, jax.devices()
  cfg = rlx_config.default_config()
  cfg.optim.eps = 1e-3  # see the module docstring
  opt = make_optimizer(rlx_config.validate(cfg).optim, 100)
  spec = grpo.GRPOSpec(kl_in_loss=True, micro_batch_size=4)
  hp = grpo.Hyper.create(lr=1e-2, beta=0.04)
  graphdef, params0 = models.init_params(CONFIG, seed=0)
  data = batches(4)
  results = {}

  def fresh_params():
    return jax.tree.map(jnp.copy, params0)

  # Single device: four updates; the reference for everything below.
  upd = grpo.make_grpo_update(graphdef, CONFIG, opt, spec)
  state = create_train_state(opt, fresh_params(), 0)
  single_states, single_losses = [], []
  for b in data:
    state, m = upd(state, b, hp)
    single_states.append(jax.device_get(state.params))
    single_losses.append(float(m["loss/total"]))
  results["single_losses"] = single_losses
  total_param_bytes = sum(x.nbytes for x in jax.tree.leaves(params0))
  total_opt_bytes = sum(x.nbytes for x in jax.tree.leaves(state.opt_state))

  # One update on each mesh from the same initial state; per-device memory.
  layouts = {}
  for name, (shape, rules) in MESHES.items():
    layout = layouts[name] = mesh_lib.Layout.create(mesh_lib.make_mesh(*shape), rules)
    upd_m = grpo.make_grpo_update(graphdef, CONFIG, opt, spec, layout=layout)
    st = create_train_state(opt, fresh_params(), 0, layout=layout)
    param_bytes = max(mesh_lib.bytes_per_device(st.params).values())
    opt_bytes = max(mesh_lib.bytes_per_device(st.opt_state).values())
    st, m = upd_m(st, data[0], hp)
    results[name] = {
        "param_diff": max_diff(st.params, single_states[0]),
        "loss_diff": abs(float(m["loss/total"]) - single_losses[0]),
        "param_shrink": total_param_bytes / param_bytes,
        "opt_shrink": total_opt_bytes / opt_bytes,
        "planned_param_bytes": mesh_lib.planned_bytes_per_device(
            params0, layout.tree_shardings(params0)),
        "param_bytes": param_bytes,
        "kernel_spec": str(st.params["layers"][0]["mlp"]["up_proj"]["kernel"].get_value()
                           .sharding.spec),
        "out_param_sharded": not st.params["embedding"].get_value().sharding.is_fully_replicated,
    }
    if name == "fsdp":
      # Two more updates, then save on the 8-way FSDP mesh ...
      st, _ = upd_m(st, data[1], hp)
      results["fsdp"]["before_save_diff"] = max_diff(st.params, single_states[1])
      workdir = tempfile.mkdtemp()
      ckpt = Checkpointer(workdir)
      ckpt.save(2, {"train": st}, {"note": "fsdp"})
      ckpt.wait()

  # ... restore onto the 2×4 FSDP×TP mesh and continue: losses of the unsharded continuation.
  layout = layouts["fsdp_tp"]
  like = create_train_state(opt, fresh_params(), 0, layout=layout)
  restored, host = Checkpointer(workdir).restore(2, {"train": layout.abstract(like)})
  st = restored["train"]
  results["restore"] = {
      "restored_spec": str(st.params["layers"][0]["mlp"]["up_proj"]["kernel"].get_value()
                           .sharding.spec),
      "restored_diff": max_diff(st.params, single_states[1]),
      "step": int(st.step), "host": host["note"]}
  upd_m = grpo.make_grpo_update(graphdef, CONFIG, opt, spec, layout=layout)
  losses = []
  for b in data[2:]:
    st, m = upd_m(st, b, hp)
    losses.append(float(m["loss/total"]))
  results["restore"]["loss_diff"] = max(abs(a - b) for a, b in zip(losses, single_losses[2:]))
  results["restore"]["param_diff"] = max_diff(st.params, single_states[3])

  # Sampler: parameters sharded FSDP×TP, rows over data × fsdp → the tokens of one device.
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, CONFIG.vocab_size, size=(4, 6)).astype(np.int32)
  mask = np.ones_like(tokens)
  mask[0, :3] = 0
  buckets = Buckets(prompt_lengths=(8,), batch_sizes=(8,), new_tokens=(8,))
  sp = SamplingParams(temperature=0.9, top_k=10, max_new_tokens=8, n=2)
  one = sample(graphdef, params0, tokens, mask, sp, jax.random.key(5), buckets=buckets)
  sharded_params = layout.put_tree(fresh_params())
  many = sample(graphdef, sharded_params, tokens, mask, sp, jax.random.key(5), buckets=buckets,
                mesh=layout.mesh)
  results["sampler"] = {
      "tokens_equal": bool(np.array_equal(one.completion_tokens, many.completion_tokens)),
      "logprob_diff": max_diff(one.logprobs, many.logprobs),
      "devices": len(many.completion_tokens.sharding.device_set),
      "params_sharded": not sharded_params["embedding"].get_value().sharding.is_fully_replicated,
  }
  print("RESULTS " + json.dumps(results), flush=True)


if __name__ == "__main__":
  sys.exit(main())
