"""Fault tolerance: a run killed with SIGKILL at seeded-random moments (one of them while a
checkpoint is being written) and resumed with the same command ends exactly like an uninterrupted
run (parameters, data order, every step logged once with the same values); a checkpoint save on
a full disk fails with a clear error and leaves the previous checkpoint restorable."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlx.runtime import restore_params
from rlx.runtime.checkpoint import MANIFEST, Checkpointer
from rlx.runtime.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 12
OVERRIDES = {
    "num_steps": STEPS, "checkpoint.every_steps": 2, "checkpoint.keep": 2,
    "model.d_model": 32, "model.n_layers": 1, "logging.stdout": False,
    "algo.batch_size": 8, "algo.group_size": 4, "sampling.max_new_tokens": 16,
    "eval.num_examples": 8, "eval.num_samples": 2, "rewards.name": "random",
    "warm_start.sft_steps": 0,  # configs/grpo.py ships a cached 400-step warm start: RL only here
}


def _cli(workdir):
  return [sys.executable, "-m", "rlx.train", "--config", os.path.join(ROOT, "configs", "grpo.py"),
          "--workdir", str(workdir), *[f"--config.{k}={v}" for k, v in OVERRIDES.items()]]


def _env(tmp_path):
  # A shared compilation cache makes each restart cheaper; it does not change what is computed.
  return dict(os.environ, JAX_PLATFORMS="cpu",
              JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"))


def _last_step(metrics):
  try:
    records = read_metrics(metrics) if os.path.exists(metrics) else []
  except ValueError:  # a line being written
    return -1
  return max((r["step"] for r in records), default=-1)


def _verified(ckpt_dir):
  """The newest step with a manifest (0: none)."""
  names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
  return max([0] + [int(n) for n in names
                    if n.isdigit() and os.path.exists(os.path.join(ckpt_dir, n, MANIFEST))])


def _half_written_step(ckpt_dir, done):
  """A checkpoint being written: orbax's temp directory, or a step without its manifest yet."""
  try:
    names = os.listdir(ckpt_dir)
  except FileNotFoundError:
    return None
  for n in names:
    if "tmp" in n and n.split(".")[0].isdigit() and int(n.split(".")[0]) > done:
      return n
    if n.isdigit() and int(n) > done and not os.path.exists(os.path.join(ckpt_dir, n, MANIFEST)):
      return n
  return None


def _run_until(cmd, env, kill_when, timeout=120):
  """Start ``cmd``; SIGKILL it as soon as ``kill_when()`` is true. Returns (killed, what)."""
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  start = time.time()
  try:
    while proc.poll() is None and time.time() - start < timeout:
      what = kill_when()
      if what:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True, what
    err = proc.communicate(timeout=timeout)[1]
    assert proc.returncode == 0, err[-3000:]
    return False, None
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def _records(workdir):
  """{(step, kind): record without time_s and compile/* (what this process spent, not what
  the run computed)}; asserts no (step, kind) appears twice."""
  out = {}
  for r in read_metrics(os.path.join(workdir, "metrics.jsonl")):
    kind = "eval" if any(k.startswith("eval/") for k in r) else "train"
    key = (r["step"], kind)
    assert key not in out, f"step {r['step']} ({kind}) logged twice"
    out[key] = {k: v for k, v in r.items() if k != "time_s" and not k.startswith("compile/")}
  return out


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
  env = _env(tmp_path)
  reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
  # The uninterrupted run first: it also fills the compilation cache the restarts use.
  done = subprocess.run(_cli(reference_dir), cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=180)
  assert done.returncode == 0, done.stderr[-3000:]
  rng = random.Random(0)
  metrics, ckpt_dir = killed_dir / "metrics.jsonl", killed_dir / "checkpoints"
  kills = []
  # Kills 1 and 3: once metrics.jsonl shows a seeded-random number of steps past where this
  # attempt started; kill 2: the moment a checkpoint is seen half-written.
  for attempt, mode in enumerate(["steps", "checkpoint", "steps"]):
    before = _last_step(metrics)
    done = _verified(ckpt_dir)
    if mode == "steps":
      # (possibly before the first checkpoint: the rerun then starts the phase afresh and must
      # not log its opening evaluation twice)
      target = max(before, 0) + rng.randint(1, 3)
      cond = lambda t=target: _last_step(metrics) >= t and f"step {_last_step(metrics)}"
    else:
      cond = lambda d=done: (lambda n: n and f"half-written checkpoint {n}")(
          _half_written_step(ckpt_dir, d))
    t0 = time.time()
    killed, what = _run_until(_cli(killed_dir), env, cond)
    assert killed, f"attempt {attempt} finished before it could be killed ({mode})"
    kills.append((what, round(time.time() - t0, 1)))
  print("kills:", kills)
  killed, _ = _run_until(_cli(killed_dir), env, lambda: False)  # the final resume finishes
  assert not killed

  # Every step logged exactly once, with the uninterrupted run's values.
  got, want = _records(killed_dir), _records(reference_dir)
  assert sorted(got) == sorted(want)
  assert [s for s, kind in sorted(got) if kind == "train"] == list(range(1, STEPS + 1))
  for key in sorted(want):
    assert got[key].keys() == want[key].keys(), key
    for k, v in want[key].items():
      if isinstance(v, float):
        np.testing.assert_allclose(got[key][k], v, rtol=1e-6, atol=1e-6, err_msg=f"{key} {k}")
      else:
        assert got[key][k] == v, (key, k)

  # Same data order (the RL phase's data cursor) and the same final parameters.
  hosts = [Checkpointer(str(d / "checkpoints")).restore_host(STEPS)
           for d in (killed_dir, reference_dir)]
  assert json.dumps(hosts[0]["data"], default=str) == json.dumps(hosts[1]["data"], default=str)
  manager = ocp.CheckpointManager(
      str(reference_dir / "checkpoints"), item_names=("state", "host"),
      item_handlers={"state": ocp.PyTreeCheckpointHandler(), "host": ocp.JsonCheckpointHandler()})
  meta = manager.item_metadata(STEPS)["state"]["train"]["params"]
  manager.close()
  like = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), meta)
  a, b = (restore_params(str(d / "checkpoints"), like, step=STEPS)
          for d in (killed_dir, reference_dir))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-6)


@pytest.fixture
def small_disk(tmp_path):
  """A 1 MiB tmpfs (needs root; skipped where ``mount`` is not allowed), unmounted after."""
  mnt = tmp_path / "disk"
  mnt.mkdir()
  res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
  if res.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
  try:
    yield mnt
  finally:
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _small(value):
  return {"train": {"w": jnp.full((64,), float(value))}}


def _check_full_disk_error(info, directory):
  message = str(info.value)
  assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC, repr(info.value)
  assert "disk full" in message and directory in message and "step 2" in message, message
  assert "last complete checkpoint is step 1" in message, message


def _check_previous_restores(directory):
  fresh = Checkpointer(directory)
  assert fresh.latest_step() == 1
  assert not [n for n in os.listdir(directory) if n.startswith("2")]  # nothing half-written
  items, host = fresh.restore(None, _small(0))
  assert float(np.asarray(items["train"]["w"])[0]) == 1.0 and host["phase_step"] == 1


@pytest.mark.slow
def test_full_disk_during_orbax_write(small_disk):
  """A real full disk: orbax's array write fails with ENOSPC (a 4 MiB incompressible array on a
  1 MiB tmpfs)."""
  directory = str(small_disk / "checkpoints")
  ckpt = Checkpointer(directory, keep=2)
  ckpt.save(1, _small(1), {"phase": "rl", "phase_step": 1})
  ckpt.wait()
  big = {"train": {"w": jax.random.normal(jax.random.PRNGKey(0), (1 << 20,))}}
  with pytest.raises(OSError) as info:
    ckpt.save(2, big, {"phase": "rl", "phase_step": 2})
    ckpt.wait()
  _check_full_disk_error(info, directory)
  _check_previous_restores(directory)


@pytest.mark.slow
def test_full_disk_during_manifest_write(tmp_path, monkeypatch):
  """orbax committed the step but its checksum manifest cannot be written (ENOSPC)."""
  import rlx.runtime.checkpoint as checkpoint

  directory = str(tmp_path / "checkpoints")
  ckpt = Checkpointer(directory, keep=2)
  ckpt.save(1, _small(1), {"phase": "rl", "phase_step": 1})
  ckpt.wait()

  def full(step_dir):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(step_dir, MANIFEST))

  monkeypatch.setattr(checkpoint, "write_manifest", full)
  with pytest.raises(OSError) as info:
    ckpt.save(2, _small(2), {"phase": "rl", "phase_step": 2})
    ckpt.wait()
  monkeypatch.undo()
  _check_full_disk_error(info, directory)
  _check_previous_restores(directory)
