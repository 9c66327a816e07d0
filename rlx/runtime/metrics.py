"""Metrics writer: JSONL + stdout from process 0, fetched one step late.

``push(step, metrics)`` takes the *device* metrics of step N and writes step N−1's, whose values
are ready by then, so the host never waits for the device inside the loop (maxtext's pattern).
``flush()`` writes the last pending step. Each step's record also counts the XLA programs compiled
and the compile seconds so far (``compile/programs``, ``compile/seconds``). With ``total_steps`` set, stdout shows a progress line
(step, percent, elapsed, ETA and the key metrics) about every 1% of the run instead of every
record; the JSONL file always gets every record.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np


# Shown on the progress line when a record has them.
KEY_METRICS = ("loss", "loss/total", "reward/mean", "eval/greedy_accuracy", "eval/pass@1",
               "rollout/length", "kl/rollout", "entropy")


LOSS_KEYS = ("loss/total", "loss")  # what the non-finite guard checks (the first present)


def loss_scalar(metrics: dict):
  """``(key, value)`` of a step's loss in its (device) metrics, or None when it has none."""
  for key in LOSS_KEYS:
    if key in metrics:
      return key, metrics[key]
  return None


_COMPILE = {"programs": 0, "seconds": 0.0}
_COMPILE_LISTENING = []


def _on_compile_event(event: str, seconds: float, **_) -> None:
  if event.startswith("/jax/core/compile/"):  # tracing, lowering to MLIR, XLA compilation
    _COMPILE["seconds"] += seconds
    if event == "/jax/core/compile/backend_compile_duration":
      _COMPILE["programs"] += 1


def compile_stats() -> dict:
  """``{"programs", "seconds"}``: XLA programs compiled by this process (not counting hits of
  the persistent compilation cache) and seconds spent tracing, lowering and compiling, since the
  first call (``jax.monitoring`` events)."""
  if not _COMPILE_LISTENING:
    jax.monitoring.register_event_duration_secs_listener(_on_compile_event)
    _COMPILE_LISTENING.append(True)
  return dict(_COMPILE)


def _duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _to_python(x):
  x = np.asarray(x)
  return x.item() if x.ndim == 0 else x.tolist()


class MetricsWriter:

  def __init__(self, workdir: str | None, *, stdout: bool = True, every_steps: int = 1,
               filename: str = "metrics.jsonl", tensorboard: bool = False):
    self.enabled = jax.process_index() == 0
    self.stdout = stdout
    self.every_steps = max(int(every_steps), 1)
    self.path = os.path.join(workdir, filename) if workdir else None
    if self.enabled and self.path:
      os.makedirs(workdir, exist_ok=True)
    self._pending: tuple[int, dict, dict] | None = None
    self._start = time.time()
    self._compile0 = compile_stats()
    self.total_steps: int | None = None  # set by the run: enables the progress line
    self._first: tuple[int, float] | None = None  # (step, time) of the first record written
    self._tb = None
    if self.enabled and workdir and tensorboard:
      from tensorboardX import SummaryWriter  # event files without TensorFlow

      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

  def push(self, step: int, metrics: dict, host_metrics: dict | None = None) -> None:
    """Queue step ``step``'s device metrics; write the previously queued step. The record
    gets ``compile/programs`` and ``compile/seconds``: XLA programs compiled and seconds spent
    compiling since the writer started, up to this step (``compile_stats``)."""
    c = compile_stats()
    host = {**(host_metrics or {}), "compile/programs": c["programs"] - self._compile0["programs"],
            "compile/seconds": round(c["seconds"] - self._compile0["seconds"], 3)}
    previous, self._pending = self._pending, (int(step), metrics, host)
    if previous is not None:
      self._write(*previous)

  def flush(self) -> None:
    if self._pending is not None:
      self._write(*self._pending)
      self._pending = None
    if self._tb is not None:
      self._tb.flush()

  def truncate_after(self, step: int, *, evals_at_step: bool = True) -> int:
    """Drop the file's records with ``step`` > ``step`` (atomically: temp file + rename), so a
    run resumed from the checkpoint at ``step`` does not log the steps after it twice (they were
    written after that checkpoint by a run that was then killed). ``evals_at_step=False`` also
    drops evaluation records (no ``phase`` key) *at* ``step``: a phase that starts afresh there
    writes its opening evaluation again. Returns how many were dropped."""
    self.flush()
    if not self.enabled or not self.path or not os.path.exists(self.path):
      return 0
    with open(self.path) as f:
      lines = f.readlines()
    keep = []
    for line in lines:
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except ValueError:  # a line cut short by the kill
        continue
      record_step = record.get("step", 0)
      if record_step < step or (record_step == step and (evals_at_step or "phase" in record)):
        keep.append(line if line.endswith("\n") else line + "\n")
    dropped = len(lines) - len(keep)
    if dropped:
      tmp = f"{self.path}.tmp{os.getpid()}"
      with open(tmp, "w") as f:
        f.writelines(keep)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, self.path)
    return dropped

  def write_now(self, step: int, metrics: dict) -> None:
    """Write host-side metrics immediately (evaluations, run summaries)."""
    self._write(int(step), metrics, {}, force=True)

  def _write(self, step, metrics, host_metrics, force=False):
    if not self.enabled or (not force and step % self.every_steps):
      return
    record = {"step": step}
    record.update({k: _to_python(v) for k, v in jax.device_get(metrics).items()})
    record.update({k: _to_python(v) for k, v in host_metrics.items()})
    record["time_s"] = round(time.time() - self._start, 3)
    if self.path:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for k, v in record.items():
        if k != "step" and isinstance(v, (int, float)):
          self._tb.add_scalar(k, v, step)
        elif isinstance(v, str) and k.endswith("sample"):  # sample completions at each eval
          self._tb.add_text(k, v, step)
    if self._first is None:
      self._first = (step, time.time())
    if self.stdout:
      self._print(record, force)

  def _print(self, record: dict, force: bool) -> None:
    fmt = lambda k, v: f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
    step, total = record["step"], self.total_steps
    if not total:
      print(" ".join(fmt(k, v) for k, v in record.items() if isinstance(v, (int, float))),
            file=sys.stdout, flush=True)
      return
    if not force and step % max(total // 100, 1) and step != total:
      return
    first_step, first_time = self._first
    elapsed = time.time() - first_time
    done = max(step - first_step, 1)
    eta = elapsed / done * (total - step) if step > first_step else float("nan")
    shown = " ".join(fmt(k, record[k]) for k in KEY_METRICS
                     if isinstance(record.get(k), (int, float)))
    eta_text = _duration(eta) if eta == eta else "?"
    print(f"[{step:>{len(str(total))}}/{total} {100 * step // total:3d}%] "
          f"{_duration(time.time() - self._start)} elapsed, ETA {eta_text} | {shown}",
          file=sys.stdout, flush=True)


def read_metrics(path: str) -> list[dict]:
  """The records of a metrics JSONL file."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
