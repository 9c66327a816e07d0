"""Logical axis names → mesh axes.

Parameters carry logical names in their `out_sharding` metadata (see `rlx.models.layers.param`).
A rule table maps each name to a mesh axis (or a tuple of mesh axes, or None = replicated). A
dimension stays replicated when its rule names an axis the mesh lacks, an axis already used by
another dimension of the same array, or an axis whose size does not divide the dimension.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Sequence

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MeshAxes = str | tuple[str, ...] | None
Rules = Sequence[tuple[str, MeshAxes]]

# The mesh axes and the logical-axis rule tables by name (config ``mesh.rules`` /
# ``mesh.sampling_rules``); ``rlx.runtime.mesh`` builds meshes and layouts from them.
AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # the axes a batch's rows are split over

_BATCH = (("batch", BATCH_AXES),)
_FSDP = (("embed", "fsdp"),)
_TP = (("vocab", "tensor"), ("heads", "tensor"), ("kv_heads", "tensor"), ("mlp", "tensor"),
       ("act_heads", "tensor"), ("act_kv_heads", "tensor"), ("act_mlp", "tensor"))
_NONE = (("head_dim", None), ("layers", None), ("seq", None), ("act_embed", None))

# Rule tables by name (config ``mesh.rules`` / ``mesh.sampling_rules``).
RULES: dict[str, Rules] = {
    "fsdp": _BATCH + _FSDP + _NONE,
    "tp": _BATCH + _TP + _NONE,
    "fsdp_tp": _BATCH + _FSDP + _TP + _NONE,
    "replicated": _BATCH + _NONE,
}
SAMPLING_RULES = ("train",) + tuple(RULES)  # "train": the training table

# Default table for a ("data", "fsdp", "tensor") mesh: FSDP over the model width, tensor
# parallelism over heads, MLP width and vocabulary.
DEFAULT_RULES: Rules = (
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("head_dim", None),
    ("layers", None),
)


def logical_to_spec(axes: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                    rules: Rules = DEFAULT_RULES) -> PartitionSpec:
  """PartitionSpec for an array of `shape` whose dimensions have logical names `axes`."""
  table = dict(rules)
  used: set[str] = set()
  out = []
  for name, dim in zip(axes, shape):
    target = table.get(name) if name is not None else None
    names = () if target is None else ((target,) if isinstance(target, str) else tuple(target))
    names = tuple(n for n in names if n in mesh.shape and n not in used)
    size = math.prod(mesh.shape[n] for n in names)
    if not names or dim % size:
      out.append(None)
      continue
    used.update(names)
    out.append(names[0] if len(names) == 1 else names)
  return PartitionSpec(*out)


def param_shardings(params: nnx.State, mesh: Mesh, rules: Rules = DEFAULT_RULES):
  """A pytree like `params` (a `nnx.Param` state, concrete or abstract) of `NamedSharding`s."""

  def one(var):
    axes = var.get_metadata().get("out_sharding") or (None,) * len(var.shape)
    return var.replace(NamedSharding(mesh, logical_to_spec(axes, var.shape, mesh, rules)))

  return jax.tree.map(one, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


# ---------------------------------------------------------------------------------------------
# Trace-time layout: activation sharding constraints and the remat policy.
#
# Model code calls `constrain(x, logical_axes)` at the few places where the layout of an
# activation matters (layer inputs/outputs, attention heads, the MLP hidden layer). Outside a
# `scope` (the default: one device, tests, the sampler) it returns `x` unchanged, so the traced
# program is exactly the unconstrained one.

REMAT_POLICIES = {
    "none": None,  # keep every activation (fastest, most memory)
    "full": "nothing_saveable",  # recompute each decoder layer in the backward pass
    "dots": "dots_saveable",  # keep matmul outputs, recompute the elementwise ops
    "dots_no_batch": "dots_with_no_batch_dims_saveable",  # keep weight matmuls only
}


@dataclasses.dataclass(frozen=True)
class _Scope:
  mesh: Mesh | None
  rules: Rules
  remat: str


_SCOPE = contextvars.ContextVar("rlx_sharding_scope", default=_Scope(None, DEFAULT_RULES, "none"))


@contextlib.contextmanager
def scope(mesh: Mesh | None, rules: Rules = DEFAULT_RULES, remat: str = "none"):
  """While tracing inside this context, `constrain` lays activations out on `mesh` by `rules`
  and decoder layers are rematerialised by the policy `remat` (a key of `REMAT_POLICIES`)."""
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat={remat!r}: allowed values: {', '.join(REMAT_POLICIES)}")
  token = _SCOPE.set(_Scope(mesh, tuple(rules), remat))
  try:
    yield
  finally:
    _SCOPE.reset(token)


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
  """`x` with a sharding constraint from its logical `axes` (a no-op outside `scope`)."""
  s = _SCOPE.get()
  if s.mesh is None or s.mesh.size == 1:
    return x
  spec = logical_to_spec(axes, x.shape, s.mesh, s.rules)
  return jax.lax.with_sharding_constraint(x, NamedSharding(s.mesh, spec))


def remat_policy():
  """The `jax.checkpoint` policy of the active scope, or None (no rematerialisation)."""
  name = REMAT_POLICIES[_SCOPE.get().remat]
  return None if name is None else getattr(jax.checkpoint_policies, name)
