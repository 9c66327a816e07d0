"""LoRA on 8 simulated CPU devices (this file's ``main`` in its own process, as ``mesh_checks.py``
for ``test_mesh.py``): with a rank-4 LoRA model, over a float and an NF4-quantised base, the
GRPO update (``make_grpo_update(..., layout=)``) and the SFT update with FSDP (and FSDP×TP)
equal the single-device updates (1e-5); ``lora.attach`` on the mesh gives the single-device
parameters; the frozen base stays bit-identical, laid out on the mesh, and shared (the very same
arrays, never donated) between the state before and after an update; the adapters and their
Adam moments are sharded by the kernels' logical axes.

The model, batches and optimizer are ``mesh_checks``' (Adam ε = 1e-3, see its docstring).
"""

import json
import sys

import pytest

from tests.scale.helpers import results, run_module

UPDATES = 2  # B starts at 0: A's gradient is 0 at the first update, so A moves at the second


@pytest.fixture(scope="module")
def checks():
  return results(run_module("tests.scale.test_lora_mesh", devices=8, timeout=600))


CASES = ["grpo/lora/fsdp", "grpo/lora/fsdp_tp", "grpo/nf4/fsdp", "sft/lora/fsdp", "sft/nf4/fsdp"]


@pytest.mark.parametrize("case", CASES)
def test_sharded_lora_update_equals_single_device(checks, case):
  r = checks[case]
  assert r["attach_diff"] == 0.0, r  # lora.attach(mesh=...) places the same values
  assert r["param_diff"] < 1e-5, r
  assert r["adapter_moved"] > 1e-4 and r["lora_a_moved"] > 1e-4, r  # both A and B trained
  assert r["loss_diff"] < 1e-5, r
  assert r["base_diff"] == 0.0 and r["base_same_arrays"] and not r["base_deleted"], r
  assert r["base_sharded"] and r["adapters_sharded"], r
  # Adam's moments exist for the adapters only and are sharded with them.
  assert r["opt_leaves"] == 2 * r["adapter_leaves"] + 1, r
  assert r["lora_a_spec"].startswith("P('fsdp'"), r


def test_nf4_base_stays_codes(checks):
  for case in ("grpo/nf4/fsdp", "sft/nf4/fsdp"):
    assert checks[case]["code_dtypes"] == ["uint8"], checks[case]
  assert checks["grpo/lora/fsdp"]["code_dtypes"] == ["float32"]


# ---------------------------------------------------------------------------------------------
# The checks (own process, 8 devices).


def main():
  import jax
  import jax.numpy as jnp
  import numpy as np

  from rlx import config as rlx_config
  from rlx import models
  from rlx.algorithms import grpo, sft
  from rlx.models import lora
  from rlx.optim import create_train_state, make_optimizer
  from rlx.runtime import mesh as mesh_lib
  from tests.scale.mesh_checks import B, CONFIG, MESHES, P, T, batches, max_diff

  assert jax.device_count() == 8, jax.devices()
  cfg = rlx_config.default_config()
  cfg.optim.eps = 1e-3  # see mesh_checks' docstring
  opt = make_optimizer(rlx_config.validate(cfg).optim, 100)
  _, base = models.init_params(CONFIG, seed=0)
  grpo_data = batches(UPDATES)

  def sft_batches(n):
    out = []
    for i in range(n):
      rng = np.random.default_rng(100 + i)
      tokens = rng.integers(1, CONFIG.vocab_size, (B, P + T)).astype(np.int32)
      mask = np.ones((B, P + T), np.int32)
      mask[1, :2] = 0
      mask[5, P + 2:] = 0
      loss = mask.copy()
      loss[:, :P] = 0
      out.append(sft.sft_batch(tokens, mask, loss))
    return out

  sft_data = sft_batches(UPDATES)

  def updater(kind, graphdef, config, layout=None):
    if kind == "grpo":
      spec = grpo.GRPOSpec(kl_in_loss=True, micro_batch_size=4)
      hp = grpo.Hyper.create(lr=1e-2, beta=0.04)
      return grpo.make_grpo_update(graphdef, config, opt, spec, layout=layout), hp, grpo_data, \
          "loss/total"
    upd = sft.make_sft_update(graphdef, config, opt, micro_batch_size=4, layout=layout)
    return upd, sft.SFTHyper(lr=jnp.float32(1e-2)), sft_data, "loss"

  def train(kind, config, params, layout=None):
    """``UPDATES`` updates → (params per update (host), losses, first-update facts)."""
    graphdef, _ = models.abstract(config)
    upd, hp, data, loss_key = updater(kind, graphdef, config, layout)
    state = create_train_state(opt, params, 0, layout=layout)
    facts = {"adapter_leaves": len(jax.tree.leaves(lora.trainable_only(state.params))),
             "opt_leaves": len(jax.tree.leaves(state.opt_state))}
    out, losses = [], []
    for i, b in enumerate(data):
      before = lora.partition(state.params)[1]
      state, m = upd(state, b, hp)
      after = lora.partition(state.params)[1]
      if i == 0:
        pairs = list(zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True))
        facts["base_same_arrays"] = all(x is y for x, y in pairs)
        facts["base_deleted"] = any(x.is_deleted() for x, _ in pairs)
      out.append(jax.device_get(state.params))
      losses.append(float(m[loss_key]))
    facts["state"] = state
    return out, losses, facts

  def spec_of(params, *path):
    node = params
    for k in path:
      node = node[k]
    return str(node.get_value().sharding.spec)

  attached = {}

  def attach(config, variant, mesh_name=None, layout=None):
    """The LoRA parameters (one ``lora.attach`` per variant and mesh), with fresh adapter
    buffers on every call (updates donate them) and the one base (never donated)."""
    if (variant, mesh_name) not in attached:
      place = {} if layout is None else {"mesh": layout.mesh, "rules": layout.rules}
      attached[variant, mesh_name] = lora.attach(config, base, 0, **place)[1]
    return lora.frozen_view(attached[variant, mesh_name])

  results = {}
  single = {}
  for case in CASES:
    kind, variant, mesh_name = case.split("/")
    quantize = "" if variant == "lora" else variant
    config = CONFIG.replace(lora=models.LoRASpec(rank=4, alpha=8.0, quantize=quantize,
                                                 group_size=8))
    shape, rules = MESHES[mesh_name]
    layout = mesh_lib.Layout.create(mesh_lib.make_mesh(*shape), rules)
    params_1 = attach(config, variant)
    params_1_host = jax.device_get(params_1)
    params_m = attach(config, variant, mesh_name, layout)
    attach_diff = max_diff(params_m, params_1)
    key = (kind, variant)
    if key not in single:
      single[key] = train(kind, config, params_1)
    ref_params, ref_losses, _ = single[key]
    init_adapters = jax.device_get(lora.trainable_only(params_m))
    init_base = jax.device_get(lora.partition(params_m)[1])
    got, losses, facts = train(kind, config, params_m, layout)
    state = facts.pop("state")
    trained, frozen = lora.partition(state.params)
    layer = ("layers", 0, "attn", "q_proj")
    results[case] = {
        "attach_diff": attach_diff,
        "param_diff": max(max_diff(a, b) for a, b in zip(got, ref_params)),
        "loss_diff": max(abs(a - b) for a, b in zip(losses, ref_losses)),
        "adapter_moved": max_diff(lora.trainable_only(got[-1]), init_adapters),
        "lora_a_moved": max(max_diff(n.lora_a.get_value(), m.lora_a.get_value())
                            for (_, n), (_, m) in zip(nnx_iter(config, got[-1]),
                                                      nnx_iter(config, params_1_host))),
        "base_diff": max_diff(jax.device_get(frozen), init_base),
        "base_sharded": not state.params["embedding"].get_value().sharding.is_fully_replicated
        and not state.params["layers"][0]["mlp"]["up_proj"]["kernel"].get_value()
        .sharding.is_fully_replicated,
        # Leaves with an "embed" (→ fsdp) axis: A of q/k/v/gate/up, B of o/down, their moments.
        "adapters_sharded": sum(not x.sharding.is_fully_replicated
                                for x in jax.tree.leaves(trained)) >= 7
        and sum(not x.sharding.is_fully_replicated
                for x in jax.tree.leaves(state.opt_state)) >= 14,
        "lora_a_spec": spec_of(state.params, *layer, "lora_a"),
        "code_dtypes": sorted({str(n.kernel.get_value().dtype)
                               for _, n in nnx_iter(config, state.params)}),
        **facts,
    }
  print("RESULTS " + json.dumps(results), flush=True)


def nnx_iter(config, params):
  """``(path, Projection)`` of the model ``params`` describe."""
  from flax import nnx

  from rlx import models
  from rlx.models.layers import Projection
  graphdef, _ = models.abstract(config)
  model = nnx.merge(graphdef, params)
  return [(p, n) for p, n in nnx.iter_graph(model) if isinstance(n, Projection)]


if __name__ == "__main__":
  sys.exit(main())
