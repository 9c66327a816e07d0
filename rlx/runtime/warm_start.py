"""A warm start built once and reused: the SFT phase's final parameters, cached by what made them.

``warm_start.cache_dir`` set: before an RL / preference run starts its SFT warm start, the cache
is looked up under ``cache_dir/<key>``; on a hit the run loads those parameters and starts its
main phase at once (the global step still counts the warm start's ``sft_steps``); on a miss the
warm start runs in the workdir as usual and its final checkpoint is copied into the cache.

``key`` is a hash of everything that determines the warm start's parameters: the model, data,
mesh and LoRA sections, the env section of an episode run (its demonstrations are episodes), the
warm start's own fields, the optimizer settings but its (RL) learning rate, the seed,
``checkpoint.init_from``, the size and modification time of every file under the local paths
the run reads (weights, data, tokenizer, ``init_from``), and a hash of rlx's source files. Every
shipped per-algorithm config shares one key, so the first of them trains the warm start and the
others load it.

An entry is written to a temporary directory and renamed into place, so a reader never sees a
half-written one; each step directory carries its checksums (``rlx.runtime.checkpoint``) and a
damaged entry is rebuilt. The cache is used by single-process runs only: on several hosts it
would need a shared filesystem all of them agree on, so multi-host runs train their warm start.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile

import jax

import rlx
from rlx import config as rlx_config
from rlx.runtime.checkpoint import MARKER, StepVerifier, restore_params

log = logging.getLogger("rlx")

FORMAT = 1  # bump when the warm start's computation changes in a way the key cannot see


def cache_entry(run: rlx_config.RunConfig) -> str | None:
  """``cache_dir/<key>`` of the run's warm start, or None when no cache applies (no cache_dir,
  no warm start, ``algo.name="sft"`` whose SFT is the run itself, or several processes)."""
  w = run.warm_start
  if (not w.cache_dir or w.sft_steps <= 0 or run.algo.name is rlx_config.Algorithm.SFT
      or jax.process_count() > 1):
    return None
  parts = (FORMAT, _code_hash(), run.seed, run.model, run.data, run.mesh, run.lora,
           dataclasses.replace(w, cache_dir=""),
           dataclasses.replace(run.optim, learning_rate=0.0), run.checkpoint.init_from,
           run.env if run.env.enabled else None,  # episode demonstrations and their prompts
           [_fingerprint(p) for p in (run.model.path, run.data.path, run.data.eval_path,
                                      run.data.tokenizer, run.checkpoint.init_from)])
  key = hashlib.sha256(repr(parts).encode()).hexdigest()[:20]
  return os.path.join(os.path.expanduser(w.cache_dir), f"sft{w.sft_steps}-{key}")


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
  """A hash of rlx's own source files: a change to the code that trains the warm start (or to
  anything else in rlx) makes a new cache entry."""
  root = os.path.dirname(os.path.abspath(rlx.__file__))
  h = hashlib.sha256(rlx.__version__.encode())
  for d, _, files in sorted(os.walk(root)):  # every directory, in a fixed order
    for name in sorted(f for f in files if f.endswith(".py")):
      path = os.path.join(d, name)
      h.update(os.path.relpath(path, root).encode())
      with open(path, "rb") as f:
        h.update(f.read())
  return h.hexdigest()


def _fingerprint(path: str) -> list:
  """What a local input looks like: every file under ``path`` with its size and modification
  time (edited weights, data or tokenizer files make a new entry); [] for "" or a non-path."""
  if not path or not os.path.exists(path):
    return []
  files = [path] if os.path.isfile(path) else sorted(
      os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)
  return [(os.path.relpath(f, path), os.path.getsize(f), os.path.getmtime(f)) for f in files]


def load(entry: str, like_params):
  """The cached warm-start parameters onto ``like_params``' structure and shardings, or None
  when the entry is missing or fails its checksums (it is then rebuilt)."""
  if not os.path.isdir(entry):
    return None
  step = StepVerifier(entry).latest_step()  # verified against its checksums
  if step is None:
    log.warning("warm start cache %s is damaged; training the warm start again", entry)
    shutil.rmtree(entry, ignore_errors=True)
    return None
  try:
    params = restore_params(entry, like_params, step=step)
  except Exception as e:  # pylint: disable=broad-except  # e.g. written by another rlx layout
    log.warning("warm start cache %s does not restore (%s); training the warm start again",
                entry, e)
    shutil.rmtree(entry, ignore_errors=True)
    return None
  if jax.process_index() == 0:
    print(f"rlx: warm start ({step} SFT steps) loaded from the cache {entry}", file=sys.stderr,
          flush=True)
  return params


def store(entry: str, checkpoint_dir: str, step: int) -> None:
  """Copy step ``step`` of ``checkpoint_dir`` (the warm start's final checkpoint, written and
  verified) into the cache as ``entry``; an entry another run wrote first is kept."""
  if os.path.isdir(entry):
    return
  parent = os.path.dirname(entry)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
  try:
    shutil.copytree(os.path.join(checkpoint_dir, str(step)), os.path.join(tmp, str(step)))
    with open(os.path.join(tmp, MARKER), "w") as f:  # the step must verify when read
      json.dump({"first_step": step}, f)
    os.rename(tmp, entry)
  except OSError as e:  # a full disk or a concurrent writer: the run goes on without the cache
    shutil.rmtree(tmp, ignore_errors=True)
    if not os.path.isdir(entry):
      log.warning("could not cache the warm start in %s: %s", entry, e)
