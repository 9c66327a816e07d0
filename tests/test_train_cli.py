"""The CLI: overrides, SIGTERM → checkpoint → clean exit, resume equals an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rlx.runtime import restore_params
from rlx.runtime.metrics import read_metrics
from rlx.runtime.run import build, train
from tests.test_configs import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 80
OVERRIDES = [f"--config.num_steps={STEPS}", "--config.checkpoint.every_steps=1000",
             "--config.algo.batch_size=8", "--config.algo.micro_batch_size=4",
             "--config.model.d_model=32", "--config.model.n_layers=1",
             "--config.logging.stdout=False"]


def small_sft_config():
  cfg = load("sft")
  cfg.num_steps = STEPS
  cfg.checkpoint.every_steps = 1000
  cfg.algo.batch_size = 8
  cfg.algo.micro_batch_size = 4
  cfg.model.d_model = 32
  cfg.model.n_layers = 1
  cfg.logging.stdout = False
  return cfg


def cli(workdir, *extra):
  return [sys.executable, "-m", "rlx.train", "--config", os.path.join(ROOT, "configs", "sft.py"),
          "--workdir", str(workdir), *OVERRIDES, *extra]


def wait_for_step(path, step, proc, timeout=120):
  start = time.time()
  while time.time() - start < timeout:
    if proc.poll() is not None:
      return False
    if os.path.exists(path):
      records = read_metrics(path)
      if records and records[-1]["step"] >= step:
        return True
    time.sleep(0.05)
  return False


def test_sigterm_then_resume_equals_uninterrupted(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  interrupted = tmp_path / "interrupted"
  proc = subprocess.Popen(cli(interrupted), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    assert wait_for_step(interrupted / "metrics.jsonl", 10, proc), proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, out[-3000:]
  ckpts = sorted(int(p) for p in os.listdir(interrupted / "checkpoints") if p.isdigit())
  assert ckpts and 10 <= ckpts[-1] < STEPS, ckpts  # stopped mid-run, checkpointed at step k

  # Restart with the same command: resumes from step k and finishes.
  done = subprocess.run(cli(interrupted), cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 0, done.stderr[-3000:]
  steps = [r["step"] for r in read_metrics(interrupted / "metrics.jsonl")]
  assert steps[-1] == STEPS and ckpts[-1] + 1 in steps

  reference = train(small_sft_config(), str(tmp_path / "uninterrupted"))
  like = build(small_sft_config(), str(tmp_path / "scratch")).init_params
  resumed = restore_params(str(interrupted / "checkpoints"), like, step=STEPS)
  for a, b in zip(jax.tree.leaves(reference["params"]), jax.tree.leaves(resumed)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_override_of_unknown_field_fails(tmp_path):
  out = subprocess.run(cli(tmp_path, "--config.algo.betta=0.1"), cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
  assert out.returncode != 0 and "betta" in out.stderr


def test_bad_value_fails_before_compilation(tmp_path):
  out = subprocess.run(cli(tmp_path, "--config.optim.learning_rate=-0.1"), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
  assert out.returncode != 0
  assert "config.optim.learning_rate=-0.1: must be > 0" in out.stderr
  assert not os.path.exists(tmp_path / "checkpoints")
