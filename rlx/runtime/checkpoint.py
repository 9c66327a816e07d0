"""Checkpointing with orbax: everything a resume needs, in two items per step.

- ``state``: device pytrees — the ``TrainState`` (params, optimizer state, step, RNG, value
  network) and, when the run keeps one, the frozen reference parameters.
- ``host``: JSON — data-iterator cursor, filter state, KL-controller state, run phase and any
  other host-side state (numpy scalars and arrays are encoded losslessly).

Checkpoints are written asynchronously by orbax (every process takes part on multi-host runs);
``keep`` limits how many are kept.

Integrity (docs/checkpoints.md): once orbax has committed a step, process 0 writes
``<step>/checksums.json`` (a blake2b hash and the size of every file of the step; temp file +
rename, written last). :meth:`Checkpointer.latest_step`, :meth:`~Checkpointer.restore` and
:meth:`~Checkpointer.restore_host` only use a step that verifies: one whose manifest is missing
or whose files do not match is skipped (one line names it and why) in favour of the newest
verified step. Steps written before manifests existed (older than the directory's
``rlx_checksums.json`` marker, or in a directory without one) are accepted with a warning.
Rotation (``keep``) counts verified steps only, so it never deletes the newest verified
checkpoint in favour of unverified ones. When a resumed run saves a step that is still on disk
(an unusable one it skipped), that step and any later one are moved to ``discarded/`` first.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from rlx.config import ConfigError
from rlx.models.lora import fill_frozen, has_adapters, trainable_only

_ARRAY = "__ndarray__"
MANIFEST = "checksums.json"  # inside each step directory
DISCARDED = "discarded"  # where unusable steps that a resumed run writes again are moved
MARKER = "rlx_checksums.json"  # in the checkpoint directory: the first step written with one


class CorruptCheckpointError(RuntimeError):
  """A checkpoint step that does not verify against its manifest."""


class CheckpointMismatchError(ConfigError):
  """A checkpoint that does not fit the model / state this config builds (another config wrote
  it): a configuration error, reported in one line by the command line."""


def _disk_full(e: BaseException) -> bool:
  """Whether ``e`` (or an exception it was raised from) is "no space left on device": an
  ``OSError`` with errno ENOSPC, or orbax / tensorstore's ``ValueError`` naming it."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
      return True
    text = str(e)
    if "No space left on device" in text or "os_error_code='28'" in text:
      return True
    e = e.__cause__ or e.__context__
  return False


def _hash_file(path: str) -> str:
  h = hashlib.blake2b(digest_size=32)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      h.update(chunk)
  return h.hexdigest()


def _step_files(step_dir: str) -> list[str]:
  out = []
  for root, _, files in os.walk(step_dir):
    for name in files:
      rel = os.path.relpath(os.path.join(root, name), step_dir)
      if rel != MANIFEST and not rel.startswith(MANIFEST + ".tmp"):
        out.append(rel)
  return sorted(out)


def _write_json_atomic(path: str, obj: Any) -> None:
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=0, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_manifest(step_dir: str) -> None:
  """``<step_dir>/checksums.json``: blake2b and size of every file of the step (written last)."""
  files = {rel: {"blake2b": _hash_file(os.path.join(step_dir, rel)),
                 "size": os.path.getsize(os.path.join(step_dir, rel))}
           for rel in _step_files(step_dir)}
  _write_json_atomic(os.path.join(step_dir, MANIFEST), {"version": 1, "files": files})


def verify_step(step_dir: str) -> str | None:
  """None if ``step_dir`` matches its manifest, else why not (the manifest must exist)."""
  try:
    with open(os.path.join(step_dir, MANIFEST)) as f:
      files = json.load(f)["files"]
  except FileNotFoundError:
    return "no checksum manifest (incomplete write)"
  except (ValueError, KeyError, TypeError) as e:
    return f"unreadable checksum manifest ({e})"
  for rel, want in sorted(files.items()):
    path = os.path.join(step_dir, rel)
    if not os.path.isfile(path):
      return f"missing file {rel}"
    size = os.path.getsize(path)
    if size != want["size"]:
      return f"{rel} is {size} bytes, manifest says {want['size']} (truncated?)"
    if _hash_file(path) != want["blake2b"]:
      return f"{rel} does not match its checksum (corrupted)"
  return None


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


class StepVerifier:
  """Which steps of a checkpoint directory may be used (no orbax manager needed)."""

  def __init__(self, directory: str):
    self.directory = os.path.abspath(directory)
    self._verdict: dict[int, str | None] = {}  # step -> None (verified / legacy) or why not

  def _step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _first_manifest_step(self) -> int | None:
    try:
      with open(os.path.join(self.directory, MARKER)) as f:
        return int(json.load(f)["first_step"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
      return None

  def _disk_steps(self) -> list[int]:
    if not os.path.isdir(self.directory):
      return []
    return sorted(int(n) for n in os.listdir(self.directory)
                  if n.isdigit() and os.path.isdir(self._step_dir(int(n))))

  def check(self, step: int) -> str | None:
    """None if ``step`` may be used (verified, or a legacy step without manifest), else why not.
    Cached: each step is hashed at most once per process."""
    if step not in self._verdict:
      step_dir = self._step_dir(step)
      if not os.path.isdir(step_dir):
        why = "step directory missing"
      elif os.path.exists(os.path.join(step_dir, MANIFEST)):
        why = verify_step(step_dir)
      else:
        first = self._first_manifest_step()
        if first is None or step < first:  # written before checksums existed
          print(f"rlx: checkpoint step {step} has no checksum manifest (written before "
                f"checksums); using it unverified", file=sys.stderr, flush=True)
          why = None
        else:
          why = "no checksum manifest (incomplete write)"
      if why is not None:
        print(f"rlx: skipping checkpoint step {step} in {self.directory}: {why}",
              file=sys.stderr, flush=True)
      self._verdict[step] = why
    return self._verdict[step]

  def steps(self) -> list[int]:
    """Every step directory on disk, oldest first (verified or not)."""
    return self._disk_steps()

  def latest_step(self) -> int | None:
    """The newest step that verifies (corrupt or incomplete ones are skipped, one line each)."""
    for step in reversed(self._disk_steps()):
      if self.check(step) is None:
        return step
    return None

  def usable(self, step: int | None) -> int:
    """``step`` if it verifies (else :class:`CorruptCheckpointError`); None: the latest that
    does (else ``FileNotFoundError``)."""
    if step is None:
      step = self.latest_step()
      if step is None:
        raise FileNotFoundError(f"no usable checkpoint in {self.directory}")
      return step
    why = self.check(step)
    if why is not None:
      raise CorruptCheckpointError(f"checkpoint step {step} in {self.directory}: {why}")
    return step


class Checkpointer(StepVerifier):
  """An orbax ``CheckpointManager`` over ``directory`` with ``state`` and ``host`` items, with a
  checksum manifest per step and rotation over verified steps (see the module docstring)."""

  def __init__(self, directory: str, *, keep: int = 3):
    super().__init__(directory)
    self.keep = keep
    # Rotation is ours (over verified steps), not orbax's max_to_keep.
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=("state", "host"),
        options=ocp.CheckpointManagerOptions(max_to_keep=None, create=True))
    self._primary = jax.process_index() == 0
    self._pending: list[int] = []  # saved steps whose manifest is not written yet

  def _disk_full_error(self, steps: list[int], e: BaseException) -> OSError:
    """The clear error for a save that ran out of disk space. The half-written ``steps`` (orbax
    temp directories, a committed step without its manifest) are removed to free the space;
    they would never be restored anyway (no manifest)."""
    for step in steps:
      self._verdict.pop(step, None)
      if not self._primary or not os.path.isdir(self.directory):
        continue
      for name in os.listdir(self.directory):
        path = os.path.join(self.directory, name)
        if name.startswith(f"{step}.orbax-checkpoint-tmp") or (
            name == str(step) and not os.path.exists(os.path.join(path, MANIFEST))):
          shutil.rmtree(path, ignore_errors=True)
    try:
      last = self.latest_step()
    except OSError:
      last = None
    return OSError(
        errno.ENOSPC,
        f"disk full (no space left on device) while saving checkpoint step "
        f"{', '.join(map(str, steps)) or '?'} to {self.directory}; the partial step was removed "
        f"and the last complete checkpoint is "
        f"{'none' if last is None else f'step {last}'}. Free disk space and rerun to resume "
        f"({type(e).__name__}: {e})")

  def _wait_orbax(self) -> None:
    """orbax's ``wait_until_finished``; a full disk becomes a clear ``OSError(ENOSPC)``."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      if not _disk_full(e):
        raise
      pending, self._pending = self._pending, []
      raise self._disk_full_error(pending, e) from e

  def _finish_pending(self) -> None:
    """After orbax committed the pending steps: write their manifests, then rotate."""
    pending, self._pending = self._pending, []
    if not self._primary:
      return
    for step in pending:
      if os.path.isdir(self._step_dir(step)):
        try:
          write_manifest(self._step_dir(step))
        except OSError as e:
          if not _disk_full(e):
            raise
          for name in os.listdir(self._step_dir(step)):  # the manifest's temp file
            if name.startswith(MANIFEST + ".tmp"):
              os.remove(os.path.join(self._step_dir(step), name))
          raise self._disk_full_error([step], e) from e
        self._verdict[step] = None  # just hashed
    if pending:
      self._rotate()

  def _rotate(self) -> None:
    """Keep the newest ``keep`` verified steps; delete every step older than the oldest of them
    (steps newer than it, verified or not, stay). Nothing is deleted with fewer than ``keep``
    verified steps, so the newest verified checkpoint always survives."""
    steps = self._disk_steps()
    good = [s for s in steps
            if os.path.exists(os.path.join(self._step_dir(s), MANIFEST)) and self.check(s) is None]
    if not self.keep or len(good) <= self.keep:
      return
    oldest_kept = good[-self.keep]
    removed = False
    for s in steps:
      if s < oldest_kept:
        shutil.rmtree(self._step_dir(s), ignore_errors=True)
        self._verdict.pop(s, None)
        removed = True
    if removed:
      self.manager.reload()

  def poll(self) -> None:
    """Cheap, every step: once the asynchronous save has committed, write its manifest (so a
    kill long after a save does not leave the newest checkpoint unverified). Single process
    only: a multi-process run writes manifests at the next save / wait / close, which every
    process calls together."""
    if (self._pending and jax.process_count() == 1
        and not self.manager.is_saving_in_progress()):
      self._wait_orbax()
      self._finish_pending()

  # --- the orbax interface -------------------------------------------------------------------
  def _discard_from(self, step: int) -> None:
    """Move the on-disk steps >= ``step`` (unusable ones the run is redoing after resuming from
    an older verified step) to ``discarded/`` so orbax writes the step afresh; kept, not
    deleted, for inspection."""
    later = [s for s in self._disk_steps() if s >= step]
    if self._primary and later:
      stamp = time.strftime("%Y%m%d-%H%M%S")
      os.makedirs(os.path.join(self.directory, DISCARDED), exist_ok=True)
      for s in later:
        os.replace(self._step_dir(s), os.path.join(self.directory, DISCARDED, f"{s}-{stamp}"))
        self._verdict.pop(s, None)
        print(f"rlx: moved checkpoint step {s} to {DISCARDED}/{s}-{stamp} (superseded)",
              file=sys.stderr, flush=True)
    if jax.process_count() > 1:
      ocp.multihost.sync_global_processes("rlx_checkpoint_discard")
    if later or jax.process_count() > 1:
      self.manager.reload()

  def save(self, step: int, state: Any, host: dict, *, force: bool = False) -> bool:
    self._wait_orbax()  # orbax waits for the previous save anyway
    self._finish_pending()
    self._discard_from(int(step))
    try:
      if self._primary and self._first_manifest_step() is None:
        os.makedirs(self.directory, exist_ok=True)
        _write_json_atomic(os.path.join(self.directory, MARKER),
                           {"version": 1, "first_step": int(step)})
      saved = self.manager.save(int(step), args=ocp.args.Composite(
          state=ocp.args.StandardSave(_stored(state)), host=ocp.args.JsonSave(to_json(host))),
          force=force)
    except Exception as e:
      if not _disk_full(e):
        raise
      raise self._disk_full_error([int(step)], e) from e
    if saved:
      self._pending.append(int(step))
      self._verdict.pop(int(step), None)
    return saved

  def restore(self, step: int | None, like: Any) -> tuple[Any, dict]:
    """Restore ``(state, host)`` at ``step`` (the latest verified if None); ``like`` gives the
    state's structure, shapes, dtypes and shardings (concrete arrays or ``ShapeDtypeStruct``s).
    An explicit ``step`` that does not verify raises :class:`CorruptCheckpointError`."""
    step = self.usable(step)
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_abstract(_stored(like))), host=ocp.args.JsonRestore()))
    except Exception as e:  # a state of another shape or structure: say which leaf
      why = _state_mismatch(self.directory, step, _stored(like))
      if why is None:
        raise
      raise CheckpointMismatchError(
          f"checkpoint step {step} in {self.directory} does not fit the state this config "
          f"builds ({why}); resume with the config that wrote it or use a new workdir") from e
    return _filled(out.state, like), from_json(out.host)

  def restore_host(self, step: int | None = None) -> dict:
    """Only the host item (to learn the run's phase before building the state to restore)."""
    step = self.usable(step)
    out = self.manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore()))
    return from_json(out.host)

  def wait(self) -> None:
    self._wait_orbax()
    self._finish_pending()

  def close(self) -> None:
    self.wait()
    self.manager.close()


def _stored(items):
  """What a checkpoint stores of ``{name: tree}`` items: a LoRA model's trees without their
  frozen base (``rlx.models.lora.trainable_only``); the base comes back from the run's model
  (``model.path`` / the seed) on restore."""
  if isinstance(items, dict):
    return {k: trainable_only(v) for k, v in items.items()}
  return trainable_only(items)


def _filled(restored, like):
  if isinstance(like, dict):
    return {k: fill_frozen(restored[k], v) for k, v in like.items()}
  return fill_frozen(restored, like)


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


def _reader(directory: str) -> ocp.CheckpointManager:
  """An orbax manager that reads an rlx checkpoint directory's ``state`` and ``host`` items."""
  return ocp.CheckpointManager(
      os.path.abspath(directory), item_names=("state", "host"),
      item_handlers={"state": ocp.PyTreeCheckpointHandler(), "host": ocp.JsonCheckpointHandler()})


def _state_mismatch(directory: str, step: int, like: Any) -> str | None:
  """The first leaf where the ``state`` item of ``directory``'s ``step`` and ``like`` differ in
  path or shape, described; None if they agree (or the metadata cannot be read)."""
  manager = _reader(directory)
  try:
    saved = manager.item_metadata(step)["state"]
  except Exception:  # pylint: disable=broad-except
    return None
  finally:
    manager.close()

  def shapes(tree):
    return {"/".join(k for k in _path_key(p) if k != "value"): tuple(getattr(x, "shape", ()))
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}

  there, here = shapes(saved), shapes(like)
  for key in sorted(set(there) | set(here)):
    if key not in there:
      return f"{key} is not in the checkpoint"
    if key not in here:
      return f"the checkpoint has {key}, this config does not"
    if there[key] != here[key]:
      return f"{key} is {there[key]} there, {here[key]} here"
  return None


def checkpoint_host(directory: str, step: int | None = None) -> dict:
  """The host item of an rlx checkpoint directory (its latest verified step, or ``step``)."""
  manager = _reader(directory)
  try:
    step = StepVerifier(directory).usable(step)
    return from_json(manager.restore(step, args=ocp.args.Composite(
        host=ocp.args.JsonRestore())).host)
  finally:
    manager.close()


def restore_params(directory: str, like_params: Any, *, step: int | None = None,
                   subtree: tuple[str, ...] = ("train", "params")) -> Any:
  """The policy parameters of an rlx checkpoint directory (``checkpoint.init_from``), matched by
  parameter path onto ``like_params``' structure; optimizer state and everything else is ignored.

  Only the parameter subtree is read (an orbax partial restore), each parameter straight into
  the sharding of its counterpart in ``like_params`` (any mesh, any number of processes: the
  checkpoint may come from another topology); unmatched leaves go to one device / replicated.
  A LoRA model's adapters are read and its frozen base taken from ``like_params``."""
  if has_adapters(like_params):
    return fill_frozen(_restore_params(directory, trainable_only(like_params), step, subtree),
                       like_params)
  return _restore_params(directory, like_params, step, subtree)


def _restore_params(directory: str, like_params: Any, step: int | None,
                    subtree: tuple[str, ...]) -> Any:
  manager = _reader(directory)
  step = StepVerifier(directory).usable(step)  # verified (or legacy) steps only
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
      raise CheckpointMismatchError(
          f"checkpoint {directory} (step {step}) does not fit this config's model: parameter "
          f"{'/'.join(key)} is not in it")
    if tuple(np.shape(match)) != tuple(like.shape):
      raise CheckpointMismatchError(
          f"checkpoint {directory} (step {step}) does not fit this config's model: parameter "
          f"{'/'.join(key)} is {tuple(np.shape(match))} there, {tuple(like.shape)} here")
    out.append(match.astype(like.dtype) if match.dtype != like.dtype else match)
  return jax.tree_util.tree_unflatten(treedef, out)
