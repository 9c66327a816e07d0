"""Metrics writer: JSONL + stdout from process 0, fetched one step late.

``push(step, metrics)`` takes the *device* metrics of step N and writes step N−1's, whose values
are ready by then, so the host never waits for the device inside the loop (maxtext's pattern).
``flush()`` writes the last pending step.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np


def _to_python(x):
  x = np.asarray(x)
  return x.item() if x.ndim == 0 else x.tolist()


class MetricsWriter:

  def __init__(self, workdir: str | None, *, stdout: bool = True, every_steps: int = 1,
               filename: str = "metrics.jsonl"):
    self.enabled = jax.process_index() == 0
    self.stdout = stdout
    self.every_steps = max(int(every_steps), 1)
    self.path = os.path.join(workdir, filename) if workdir else None
    if self.enabled and self.path:
      os.makedirs(workdir, exist_ok=True)
    self._pending: tuple[int, dict, dict] | None = None
    self._start = time.time()

  def push(self, step: int, metrics: dict, host_metrics: dict | None = None) -> None:
    """Queue step ``step``'s device metrics; write the previously queued step."""
    previous, self._pending = self._pending, (int(step), metrics, dict(host_metrics or {}))
    if previous is not None:
      self._write(*previous)

  def flush(self) -> None:
    if self._pending is not None:
      self._write(*self._pending)
      self._pending = None

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
    if self.stdout:
      shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in record.items() if isinstance(v, (int, float)))
      print(shown, file=sys.stdout, flush=True)


def read_metrics(path: str) -> list[dict]:
  """The records of a metrics JSONL file."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
