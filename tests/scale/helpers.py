"""Running a script of this folder in its own process with simulated CPU devices."""

import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def device_env(devices: int, **extra) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **extra)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def run_module(module: str, *args: str, devices: int = 8, timeout: int = 600, **env):
  """``python -m module args`` with ``devices`` simulated CPU devices → CompletedProcess."""
  return subprocess.run([sys.executable, "-m", module, *args], env=device_env(devices, **env),
                        cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def results(proc) -> dict:
  """The ``RESULTS {json}`` line a check script prints (fails with its output otherwise)."""
  for line in proc.stdout.splitlines():
    if line.startswith("RESULTS "):
      return json.loads(line[len("RESULTS "):])
  raise AssertionError(f"no RESULTS line (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n"
                       f"{proc.stderr[-6000:]}")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]
