"""The device mesh, its logical-axis rule tables, and compiled steps with explicit shardings.

One mesh with axes ``("data", "fsdp", "tensor")`` (docs/architecture.md principle 5). Sizes come from the
config's ``mesh`` section, one of them may be ``-1`` ("the rest of the devices"). Parameters
carry logical axis names (``rlx.models.layers.param``); a *rule table* maps them, and the
activation names used by ``rlx.models.sharding.constrain``, onto mesh axes:

| logical name                    | ``fsdp``  | ``tp``   | ``fsdp_tp`` | ``replicated`` |
|---------------------------------|-----------|----------|-------------|----------------|
| ``batch`` (rows of a batch)     | data,fsdp | data,fsdp| data,fsdp   | data,fsdp      |
| ``embed`` (model width D)       | fsdp      | -        | fsdp        | -              |
| ``heads``/``kv_heads``/``mlp``/``vocab`` | - | tensor  | tensor      | -              |
| ``act_heads``/``act_kv_heads``/``act_mlp`` | - | tensor | tensor   | -              |

A dimension stays replicated when its axis is missing, already used by another dimension of the
array, or does not divide it (``rlx.models.sharding.logical_to_spec``). The ``data`` axis never
shards parameters: it is pure data parallelism (parameters replicated across ``data`` groups).

Sampling may use its own table (``mesh.sampling_rules``): ``train`` keeps the training layout (no
copy), ``tp`` drops FSDP (each decode step then needs no all-gather of the weights, at the cost
of a parameter copy replicated over ``data × fsdp``), ``replicated`` copies everything to every
device.

:class:`Layout` bundles mesh and rules and compiles step functions with explicit
``in_shardings``/``out_shardings`` and donation (:meth:`Layout.jit`); host (numpy) inputs are
placed as global arrays, which also works on multi-host runs where every process passes the same
global value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from rlx.models import sharding as msharding
from rlx.algorithms.trajectory import is_rows_field
from rlx.models.sharding import AXES, BATCH_AXES, RULES, SAMPLING_RULES, Rules  # noqa: F401



def resolve_shape(data: int, fsdp: int, tensor: int, num_devices: int) -> tuple[int, int, int]:
  """Mesh sizes with at most one ``-1`` filled in so that the product is ``num_devices``."""
  sizes = {"data": data, "fsdp": fsdp, "tensor": tensor}
  free = [k for k, v in sizes.items() if v == -1]
  if len(free) > 1:
    raise ValueError(f"mesh: at most one axis may be -1, got {sizes}")
  bad = [k for k, v in sizes.items() if v != -1 and v < 1]
  if bad:
    raise ValueError(f"mesh.{bad[0]}={sizes[bad[0]]}: sizes are >= 1, or -1 for the rest")
  fixed = math.prod(v for v in sizes.values() if v != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(f"mesh {sizes}: the fixed axes ({fixed} devices) do not divide the "
                       f"{num_devices} devices")
    sizes[free[0]] = num_devices // fixed
  if math.prod(sizes.values()) != num_devices:
    raise ValueError(f"mesh {sizes} has {math.prod(sizes.values())} devices but "
                     f"{num_devices} are available; set one axis to -1 or change the sizes")
  return sizes["data"], sizes["fsdp"], sizes["tensor"]


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1, devices=None) -> Mesh:
  """A ``("data", "fsdp", "tensor")`` mesh over ``devices`` (default: all devices, every process).

  ``jax.make_mesh`` orders the devices for the physical topology (ICI rings on TPU) and keeps
  each process's devices together along the leading axes, so the rows a host feeds stay on it.
  """
  devices = jax.devices() if devices is None else list(devices)
  shape = resolve_shape(data, fsdp, tensor, len(devices))
  auto = (AxisType.Auto,) * len(AXES)  # shardings are propagated by the compiler (GSPMD)
  try:
    return jax.make_mesh(shape, AXES, axis_types=auto, devices=devices)
  except (ValueError, NotImplementedError, AssertionError):
    return Mesh(np.asarray(devices).reshape(shape), AXES, axis_types=auto)


def layout_from_config(section, devices=None) -> "Layout | None":
  """The run's :class:`Layout` from the config's ``mesh`` section, or None on a single device
  (one device runs the plain, unsharded programs: exactly the code path of a laptop run)."""
  mesh = make_mesh(section.data, section.fsdp, section.tensor, devices)
  if mesh.size == 1:
    return None
  return Layout.create(mesh, section.rules, section.sampling_rules, section.remat)


def _variable_axes(var) -> tuple:
  axes = var.get_metadata().get("out_sharding")
  return tuple(axes) if axes else (None,) * len(var.shape)


@dataclasses.dataclass(frozen=True)
class Layout:
  """A mesh plus the rule tables of training and sampling, and the remat policy.

  Shapes: every "batch" array has its rows (leading dim) split over ``data × fsdp``; every
  parameter-like leaf (an ``nnx.Variable`` carrying logical axes: parameters, Adam moments) is
  laid out by its logical axes; every other leaf (step, RNG, scalars) is replicated.
  """

  mesh: Mesh
  rules: Rules = RULES["fsdp_tp"]
  sampling_rules: Rules | None = None  # None: the training table
  remat: str = "none"

  @classmethod
  def create(cls, mesh: Mesh, rules: str = "fsdp_tp", sampling_rules: str = "train",
             remat: str = "none") -> "Layout":
    return cls(mesh=mesh, rules=RULES[rules],
               sampling_rules=None if sampling_rules == "train" else RULES[sampling_rules],
               remat=remat)

  @property
  def size(self) -> int:
    return self.mesh.size

  @property
  def batch_divisor(self) -> int:
    """Rows of a batch must be a multiple of this to be split over ``data × fsdp``."""
    return math.prod(self.mesh.shape[a] for a in BATCH_AXES if a in self.mesh.shape)

  def scope(self):
    """Context for tracing model code: activation constraints and remat follow this layout."""
    return msharding.scope(self.mesh, self.rules, self.remat)

  # --- shardings ----------------------------------------------------------------------------
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def spec(self, axes: Sequence[str | None], shape: Sequence[int], rules: Rules | None = None):
    return msharding.logical_to_spec(axes, shape, self.mesh, rules or self.rules)

  def tree_shardings(self, tree, rules: Rules | None = None):
    """Shardings for a pytree of parameters / optimizer state / train state (concrete or
    abstract): ``nnx.Variable`` leaves by their logical axes, every other leaf replicated."""
    rules = rules or self.rules

    def one(x):
      if isinstance(x, nnx.Variable):
        return x.replace(NamedSharding(self.mesh, self.spec(_variable_axes(x), x.shape, rules)))
      return self.replicated()

    return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))

  def batch_shardings(self, tree):
    """Shardings for a pytree of ``[B, ...]`` arrays: rows over ``data × fsdp``."""

    def one(x):
      shape = np.shape(x)
      if not shape:
        return self.replicated()
      return NamedSharding(self.mesh, self.spec(("batch",) + (None,) * (len(shape) - 1), shape))

    return jax.tree.map(one, tree)

  def sampling_shardings(self, params):
    return self.tree_shardings(params, self.sampling_rules or self.rules)

  def shardings_for(self, tree):
    """Shardings declared by the types in ``tree``: a struct field declared a rows field
    (``rlx.algorithms.trajectory.rows``) is split by rows over ``data × fsdp``; parameter-like
    leaves (``nnx.Variable``) follow their logical axes; everything else is replicated."""
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type) and hasattr(tree, "replace"):
      return tree.replace(**{
          f.name: (self.batch_shardings(getattr(tree, f.name)) if is_rows_field(f)
                   else self.shardings_for(getattr(tree, f.name)))
          for f in dataclasses.fields(tree) if f.init and f.metadata.get("pytree_node", True)})
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields"):
      return type(tree)(self.shardings_for(x) for x in tree)
    if type(tree) is dict:
      return {k: self.shardings_for(v) for k, v in tree.items()}
    return self.tree_shardings(tree)

  def shardings(self, kind: str, tree):
    if kind == "tree":
      return self.tree_shardings(tree)
    if kind == "batch":
      return self.batch_shardings(tree)
    if kind == "replicated":
      return jax.tree.map(lambda _: self.replicated(), tree)
    raise ValueError(f"unknown sharding kind {kind!r} (tree, batch, replicated)")

  # --- placing values -----------------------------------------------------------------------
  def put(self, tree, shardings):
    """Place ``tree`` (host values or jax arrays) in ``shardings`` (a matching pytree).

    Host values are taken to be the *global* value (the same on every process); a jax array that
    spans other processes is resharded on the devices; arrays already in place are returned as
    they are (no copy, so donation still works).
    """
    return jax.tree.map(_put, tree, shardings,
                        is_leaf=lambda x: x is None or isinstance(x, nnx.Variable))

  def abstract(self, tree, rules: Rules | None = None):
    """``tree`` as ``jax.ShapeDtypeStruct``s carrying this layout's shardings: a target for
    ``jax.jit(...).lower`` or for restoring a checkpoint onto this mesh."""
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)
    return self.put(shapes, self.tree_shardings(tree, rules))

  def put_tree(self, tree, rules: Rules | None = None):
    return self.put(tree, self.tree_shardings(tree, rules))

  def put_batch(self, tree):
    return self.put(tree, self.batch_shardings(tree))

  # --- compiled steps -----------------------------------------------------------------------
  def jit(self, fn: Callable, donate_argnums: int | Sequence[int] = ()) -> "ShardedFn":
    """``fn`` compiled with explicit shardings read off its arguments' and results' types
    (:meth:`shardings_for`: rows fields over ``data × fsdp``, parameters by their logical
    axes, the rest replicated). ``fn`` is traced under :meth:`scope`."""
    return ShardedFn(fn, self, donate_argnums)


def _put(x, sharding):
  if x is None:
    return None
  if isinstance(x, nnx.Variable):
    return x.replace(_put(x.get_value(), sharding.get_value()))
  if isinstance(x, jax.Array):
    if x.sharding == sharding or (x.sharding.is_equivalent_to(sharding, x.ndim)
                                  if hasattr(x.sharding, "is_equivalent_to") else False):
      return x
    if jax.process_count() == 1 or not x.is_fully_addressable:
      return jax.device_put(x, sharding)
    x = np.asarray(x)  # a process-local array on a multi-host run: its value is the global one
  if isinstance(x, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  x = np.asarray(x)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _dtype(x):
  dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
  return jax.dtypes.canonicalize_dtype(dtype)


class ShardedFn:
  """A ``jax.jit`` with ``in_shardings``/``out_shardings`` computed from the first call.

  One compiled function per argument structure (treedef, shapes, dtypes): the same cache key
  ``jax.jit`` uses, so hyper-parameter values never recompile.
  """

  def __init__(self, fn, layout: Layout, donate_argnums):
    self.fn = fn
    self.layout = layout
    self.donate_argnums = donate_argnums
    self._cache: dict[Any, tuple] = {}

  def _traced(self, *args):
    with self.layout.scope():
      return self.fn(*args)

  def _compiled(self, args):
    leaves, treedef = jax.tree.flatten(args)
    key = (treedef, tuple((np.shape(x), str(_dtype(x))) for x in leaves))
    hit = self._cache.get(key)
    if hit is None:
      lay = self.layout
      in_sh = tuple(lay.shardings_for(a) for a in args)
      abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), _dtype(x)), args)
      out_sh = lay.shardings_for(jax.eval_shape(self._traced, *abstract))
      jitted = jax.jit(self._traced, in_shardings=in_sh, out_shardings=out_sh,
                       donate_argnums=self.donate_argnums)
      hit = self._cache[key] = (jitted, in_sh)
    return hit

  def __call__(self, *args):
    jitted, in_sh = self._compiled(args)
    return jitted(*self.layout.put(args, in_sh))

  def lower(self, *args):
    """AOT lowering (``.compile().memory_analysis()``); ``args`` may be ``ShapeDtypeStruct``s."""
    jitted, in_sh = self._compiled(args)
    return jitted.lower(*self.layout.put(args, in_sh))


def bytes_per_device(tree) -> dict[Any, int]:
  """Bytes of ``tree``'s array shards held by each device (addressable devices only)."""
  out: dict[Any, int] = {}
  for x in jax.tree.leaves(tree):
    for shard in x.addressable_shards:
      out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
  return out


def planned_bytes_per_device(tree, shardings) -> int:
  """Largest per-device bytes of an abstract ``tree`` laid out in ``shardings`` (no memory)."""
  total: dict[int, int] = {}
  for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)):
    shard = s.shard_shape(x.shape)
    nbytes = math.prod(shard) * np.dtype(x.dtype).itemsize
    for d in s.device_set:
      total[d.id] = total.get(d.id, 0) + nbytes
  return max(total.values()) if total else 0
