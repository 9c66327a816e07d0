"""Multi-host runs: ``jax.distributed`` start-up and the few cross-host host-side operations.

rlx uses JAX's multi-controller runtime: every process (one per host) runs the same program; a
``jax.Array`` spans the devices of all processes; compiled functions are collective. The
helpers here are what the host side needs on top of that:

- :func:`initialize`: ``jax.distributed.initialize`` from the config's ``mesh`` section or the
  environment (automatic on Cloud TPU pod slices, SLURM and Open MPI). Call it before anything
  touches a device.
- :func:`is_main`: process 0 writes logs, plots and summaries (orbax writes checkpoints from
  every process).
- :func:`local_rows` / :func:`gather_rows`: rows of a batch held by this host, and host values
  from every host concatenated in process order: a host scores the samples its devices produced
  and the rewards are gathered for group statistics (:func:`gather_rewards`).
- :func:`to_host`: any array (local, replicated or spanning hosts) → numpy on every host.
- :func:`agree_any`: a flag that is true on any host is true on all (e.g. a SIGTERM seen by one
  host stops every host at the same step instead of leaving the others waiting in a collective).
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger("rlx")

# Environment variables that mean "this process is one of several" for `distributed="auto"`.
_CLUSTER_ENV = ("JAX_COORDINATOR_ADDRESS", "MEGASCALE_COORDINATOR_ADDRESS")


def _cluster_env() -> bool:
  if any(os.environ.get(k) for k in _CLUSTER_ENV):
    return True
  if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):  # a multi-host Cloud TPU slice
    return True
  for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    if int(os.environ.get(k, "1") or 1) > 1:
      return True
  return False


def initialize(section=None) -> bool:
  """Start ``jax.distributed`` as the config's ``mesh`` section says; True if it runs.

  ``distributed="off"`` never starts it; ``"on"`` always does; ``"auto"`` does when
  ``coordinator_address`` is set or the environment is a multi-process cluster (Cloud TPU pod
  slice, SLURM, Open MPI, ``JAX_COORDINATOR_ADDRESS``). Empty fields (``""``, ``0``, ``-1``) are
  left to JAX's cluster auto-detection. CPU processes exchange data through ``cpu_collectives``
  (gloo by default). Calling it again is a no-op.
  """
  if jax.distributed.is_initialized():
    return True
  mode = getattr(section, "distributed", "auto")
  address = getattr(section, "coordinator_address", "") or None
  if mode == "off" or (mode == "auto" and address is None and not _cluster_env()):
    return False
  jax.config.update("jax_cpu_collectives_implementation",
                    getattr(section, "cpu_collectives", "gloo"))
  num = getattr(section, "num_processes", 0) or None
  pid = getattr(section, "process_id", -1)
  jax.distributed.initialize(coordinator_address=address, num_processes=num,
                             process_id=None if pid is None or pid < 0 else pid)
  log.info("jax.distributed: process %d of %d, %d local / %d global devices",
           jax.process_index(), jax.process_count(), jax.local_device_count(),
           jax.device_count())
  return True


def is_main() -> bool:
  """True on process 0 (the one that writes logs, plots and summaries)."""
  return jax.process_index() == 0


def to_host(tree):
  """Every array of ``tree`` as numpy on every host (a collective when an array spans hosts)."""

  def one(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
      return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(one, tree)


def local_rows(x: jax.Array) -> np.ndarray:
  """The rows (leading dim) of a global array that live on this process's devices, in order.

  For a batch whose rows are split over ``data × fsdp``, these are the rows this host fed in
  (see ``jax.make_array_from_process_local_data``). Replicated rows are returned once.
  """
  if x.is_fully_addressable or x.ndim == 0:
    return np.asarray(x)
  pieces: dict[int, np.ndarray] = {}
  for shard in x.addressable_shards:
    start = shard.index[0].start or 0
    pieces.setdefault(start, np.asarray(shard.data))
  return np.concatenate([pieces[k] for k in sorted(pieces)], axis=0)


def gather_rows(x) -> np.ndarray:
  """Host arrays ``[b, ...]`` of every process, concatenated in process order → ``[P·b, ...]``
  on every host (every process passes the same shape)."""
  x = np.asarray(x)
  if jax.process_count() == 1:
    return x
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def gather_rewards(local_rewards, local_group_ids=None, group_size: int | None = None):
  """Rewards scored on each host → the global ``[B]`` vector on every host, for group
  statistics. With ``local_group_ids`` (per-host group numbers ``0..g-1``), also returns the
  global group ids, offset so that groups of different hosts never merge."""
  rewards = gather_rows(np.asarray(local_rewards, np.float32))
  if local_group_ids is None:
    return rewards
  gids = np.asarray(local_group_ids, np.int32)
  n_groups = int(gids.max()) + 1 if group_size is None else len(gids) // group_size
  offset = jax.process_index() * n_groups
  return rewards, gather_rows(np.where(gids >= 0, gids + offset, gids).astype(np.int32))


def agree_any(flag: bool) -> bool:
  """True on every host if ``flag`` is true on any host (a collective on multi-host runs: call
  it at the same point of the program on every host)."""
  if jax.process_count() == 1:
    return bool(flag)
  flags = multihost_utils.process_allgather(np.asarray([bool(flag)], np.int32), tiled=True)
  return bool(np.any(flags))


def sync(name: str) -> None:
  """Barrier across hosts (no-op on one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
