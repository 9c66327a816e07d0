"""Shared helpers of the benchmark scripts: timing, the matmul peak, recording to docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp

BENCHMARKS_MD = os.path.join(os.path.dirname(__file__), "..", "docs", "benchmarks.md")


def time_call(fn, *args, reps: int, warmup: int = 1) -> float:
  """Median seconds of ``fn(*args)`` over ``reps`` calls after ``warmup`` calls (block_until_ready)."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
  """Measured float32 FLOP/s of an n×n @ n×n matmul under jax.jit."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  return 2 * n**3 / time_call(jax.jit(jnp.matmul), a, b, reps=reps)


def git_commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def machine() -> str:
  return f"{platform.machine()} {os.cpu_count()} cores, {jax.devices()[0].device_kind}"


def today() -> str:
  return datetime.date.today().isoformat()


def stamp() -> str:
  """The leading cells of a recorded row: ``| date | commit | machine ``."""
  return f"| {today()} | {git_commit()} | {machine()} "


def append_rows(section: str, header: str, rows: list[str], path: str = BENCHMARKS_MD) -> None:
  """Append table ``rows`` under ``section`` of docs/benchmarks.md (created with ``header``)."""
  lines = open(path).read().splitlines() if os.path.exists(path) else ["# Benchmarks", ""]
  if section not in lines:
    lines += ["", section, "", *header.splitlines()]
  i = lines.index(section) + 1
  while i < len(lines) and not lines[i].startswith("|"):
    i += 1
  while i < len(lines) and lines[i].startswith("|"):
    i += 1
  lines[i:i] = rows
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
