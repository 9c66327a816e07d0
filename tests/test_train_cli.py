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
STEPS = {"sft": 80, "grpo": 12}
COMMON = {"checkpoint.every_steps": 1000, "model.d_model": 32, "model.n_layers": 1,
          "logging.stdout": False}
SMALL = {
    "sft": {"algo.batch_size": 8, "algo.micro_batch_size": 4},
    # RL: 2 prompts × 4 samples, short completions, held-out eval on 8 problems at start and end.
    # The untrained model never solves the task, so the reward is the seeded Bernoulli(0.5)
    # "random" reward: nonzero advantages, real updates, reproducible per step.
    "grpo": {"algo.batch_size": 8, "algo.group_size": 4, "sampling.max_new_tokens": 16,
             "eval.num_examples": 8, "eval.num_samples": 2, "rewards.name": "random"},
}


def overrides(name, steps=None):
  return {"num_steps": steps or STEPS[name], **COMMON, **SMALL[name]}


def small_config(name, steps=None):
  cfg = load(name)
  for field, value in overrides(name, steps).items():
    node = cfg
    *path, leaf = field.split(".")
    for part in path:
      node = node[part]
    node[leaf] = value
  return cfg


def cli(workdir, name="sft", *extra, steps=None):
  flags = [f"--config.{k}={v}" for k, v in overrides(name, steps).items()]
  return [sys.executable, "-m", "rlx.train", "--config", os.path.join(ROOT, "configs", f"{name}.py"),
          "--workdir", str(workdir), *flags, *extra]


def wait_for_step(path, step, proc, timeout=180):
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


# Compiled RL steps of the small config take milliseconds on an idle machine: 12 of them once
# finished before the signal landed. 40 leave room for it to arrive mid-run.
SIGTERM_STEPS = {"sft": STEPS["sft"], "grpo": 40}


@pytest.mark.parametrize("name,stop_at", [("sft", 10), ("grpo", 4)])
def test_sigterm_then_resume_equals_uninterrupted(tmp_path, name, stop_at):
  """Stop with SIGTERM at step k, rerun the same command: the final parameters equal those of an
  uninterrupted run (same data order, sampler keys, optimizer state). GRPO: the RL phase."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  steps = SIGTERM_STEPS[name]
  interrupted = tmp_path / "interrupted"
  proc = subprocess.Popen(cli(interrupted, name, steps=steps), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    assert wait_for_step(interrupted / "metrics.jsonl", stop_at, proc), proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, out[-3000:]
  ckpts = sorted(int(p) for p in os.listdir(interrupted / "checkpoints") if p.isdigit())
  assert ckpts and stop_at <= ckpts[-1] < steps, ckpts  # stopped mid-run, checkpointed at step k

  # Restart with the same command: resumes from step k and finishes.
  done = subprocess.run(cli(interrupted, name, steps=steps), cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=180)
  assert done.returncode == 0, done.stderr[-3000:]
  logged = [r["step"] for r in read_metrics(interrupted / "metrics.jsonl")]
  assert logged[-1] == steps and ckpts[-1] + 1 in logged

  reference = train(small_config(name, steps), str(tmp_path / "uninterrupted"))
  like = build(small_config(name), str(tmp_path / "scratch")).init_params
  resumed = restore_params(str(interrupted / "checkpoints"), like, step=steps)
  for a, b in zip(jax.tree.leaves(reference["params"]), jax.tree.leaves(resumed)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_override_of_unknown_field_fails(tmp_path):
  out = subprocess.run(cli(tmp_path, "sft", "--config.algo.betta=0.1"), cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
  assert out.returncode != 0 and "betta" in out.stderr


def test_bad_value_fails_before_compilation(tmp_path):
  out = subprocess.run(cli(tmp_path, "sft", "--config.optim.learning_rate=-0.1"), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
  assert out.returncode != 0
  assert "config.optim.learning_rate=-0.1: must be > 0" in out.stderr
  assert not os.path.exists(tmp_path / "checkpoints")
