"""Checkpointing with orbax: everything a resume needs, in two items per step.

- ``state``: device pytrees — the ``TrainState`` (params, optimizer state, step, RNG, value
  network) and, when the run keeps one, the frozen reference parameters.
- ``host``: JSON — data-iterator cursor, filter state, KL-controller state, run phase and any
  other host-side state (numpy scalars and arrays are encoded losslessly).

Checkpoints are written asynchronously by orbax (every process takes part on multi-host runs);
``keep`` limits how many are kept.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

_ARRAY = "__ndarray__"


def to_json(tree: Any) -> Any:
  """Host state → JSON-able (numpy arrays/scalars become tagged lists, dtype kept)."""
  if isinstance(tree, dict):
    return {str(k): to_json(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return [to_json(v) for v in tree]
  if isinstance(tree, (np.ndarray, np.generic, jax.Array)):
    a = np.asarray(tree)
    return {_ARRAY: a.tolist(), "dtype": str(a.dtype)}
  return tree


def from_json(tree: Any) -> Any:
  """Inverse of :func:`to_json`."""
  if isinstance(tree, dict):
    if _ARRAY in tree:
      return np.asarray(tree[_ARRAY], dtype=tree["dtype"])
    return {k: from_json(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return [from_json(v) for v in tree]
  return tree


def _default_sharding():
  """Where a leaf without a sharding of its own is restored: the first device of a single
  process, replicated over every device of a multi-process run."""
  if jax.process_count() == 1:
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("all",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _abstract(tree):
  """Restore target: shape, dtype and sharding of every leaf. A leaf's own sharding (a placed
  ``jax.Array``, or a ``ShapeDtypeStruct`` with one) decides the layout it is restored in, so a
  checkpoint written on one mesh (or by several processes) restores onto any other; leaves
  without one (host arrays) go to :func:`_default_sharding`."""

  def one(x):
    if isinstance(x, jax.ShapeDtypeStruct) and x.sharding is not None:
      return x
    if isinstance(x, jax.Array):
      return ocp.utils.to_shape_dtype_struct(x)
    return jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype if not hasattr(x, "dtype")
                                else x.dtype, sharding=_default_sharding())

  return jax.tree.map(one, tree)


class Checkpointer:
  """An orbax ``CheckpointManager`` over ``directory`` with ``state`` and ``host`` items."""

  def __init__(self, directory: str, *, keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=("state", "host"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, host: dict, *, force: bool = False) -> bool:
    return self.manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), host=ocp.args.JsonSave(to_json(host))), force=force)

  def restore(self, step: int | None, like: Any) -> tuple[Any, dict]:
    """Restore ``(state, host)`` at ``step`` (latest if None); ``like`` gives the state's
    structure, shapes, dtypes and shardings (concrete arrays or ``ShapeDtypeStruct``s)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(like)), host=ocp.args.JsonRestore()))
    return out.state, from_json(out.host)

  def restore_host(self, step: int | None = None) -> dict:
    """Only the host item (to learn the run's phase before building the state to restore)."""
    step = self.latest_step() if step is None else step
    out = self.manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore()))
    return from_json(out.host)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _path_key(path) -> tuple[str, ...]:
  out = []
  for p in path:
    for attr in ("key", "idx", "name"):
      if hasattr(p, attr):
        out.append(str(getattr(p, attr)))
        break
    else:
      out.append(str(p))
  return tuple(out)


def restore_params(directory: str, like_params: Any, *, step: int | None = None,
                   subtree: tuple[str, ...] = ("train", "params")) -> Any:
  """The policy parameters of an rlx checkpoint directory (``checkpoint.init_from``), matched by
  parameter path onto ``like_params``' structure; optimizer state and everything else is ignored.

  Only the parameter subtree is read (an orbax partial restore), each parameter straight into
  the sharding of its counterpart in ``like_params`` (any mesh, any number of processes: the
  checkpoint may come from another topology); unmatched leaves go to one device / replicated."""
  manager = ocp.CheckpointManager(
      os.path.abspath(directory), item_names=("state", "host"),
      item_handlers={"state": ocp.PyTreeCheckpointHandler(), "host": ocp.JsonCheckpointHandler()})
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {directory}")
  saved = manager.item_metadata(step)["state"]
  for k in subtree:
    saved = saved[k]
  like_sharding = {tuple(k for k in _path_key(p) if k != "value"): x.sharding
                   for p, x in jax.tree_util.tree_flatten_with_path(like_params)[0]
                   if isinstance(x, jax.Array)}

  def target(path, meta):
    key = tuple(k for k in _path_key(path) if k != "value")
    sharding = like_sharding.get(key, None) or _default_sharding()
    return jax.ShapeDtypeStruct(tuple(meta.shape), meta.dtype, sharding=sharding)

  item = jax.tree_util.tree_map_with_path(target, saved)
  for k in reversed(subtree):
    item = {k: item}
  restore_args = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(
      sharding=x.sharding, global_shape=x.shape, dtype=x.dtype), item)
  raw = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
      item, restore_args=restore_args, partial_restore=True)))
  manager.close()
  tree = raw.state
  for k in subtree:
    tree = tree[k]
  by_path = {_path_key(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  leaves, treedef = jax.tree_util.tree_flatten_with_path(like_params)
  out = []
  for path, like in leaves:
    key = _path_key(path)
    key = tuple(k for k in key if k != "value")
    match = by_path.get(key)
    if match is None:
      match = next((v for kk, v in by_path.items() if tuple(x for x in kk if x != "value") == key),
                   None)
    if match is None:
      raise KeyError(f"parameter {'/'.join(key)} not found in checkpoint {directory}")
    if tuple(np.shape(match)) != tuple(like.shape):
      raise ValueError(f"parameter {'/'.join(key)}: checkpoint shape {np.shape(match)} != "
                       f"model shape {like.shape}")
    out.append(match.astype(like.dtype) if match.dtype != like.dtype else match)
  return jax.tree_util.tree_unflatten(treedef, out)
