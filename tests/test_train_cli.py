"""The CLI: overrides, SIGTERM → checkpoint → clean exit, resume equals an uninterrupted run;
configuration errors are one line and exit status 2; ``rlx.export`` writes only ``--out``."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rlx import cli as rlx_cli
from rlx import config as rlx_config
from rlx.runtime import restore_params
from rlx.runtime.checkpoint import Checkpointer, CheckpointMismatchError
from rlx.runtime.phase import run_fields
from rlx.runtime.metrics import read_metrics
from rlx.runtime.run import build, train
from tests.test_configs import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = {"sft": 80, "grpo": 12}
COMMON = {"checkpoint.every_steps": 1000, "model.d_model": 32, "model.n_layers": 1,
          "logging.stdout": False}
SMALL = {
    "sft": {"algo.batch_size": 8, "algo.micro_batch_size": 4, "eval.num_examples": 8,
            "eval.num_samples": 2},
    # RL: 2 prompts × 4 samples, short completions, held-out eval on 8 problems at start and end.
    # The untrained model never solves the task, so the reward is the seeded Bernoulli(0.5)
    # "random" reward: nonzero advantages, real updates, reproducible per step.
    # No SFT warm start (configs/grpo.py has a cached one): the RL phase only.
    "grpo": {"algo.batch_size": 8, "algo.group_size": 4, "sampling.max_new_tokens": 16,
             "eval.num_examples": 8, "eval.num_samples": 2, "rewards.name": "random",
             "warm_start.sft_steps": 0},
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
  saved_to = interrupted / "checkpoints" / str(ckpts[-1])
  assert (f"rlx: SIGTERM: checkpointed step {ckpts[-1]} to {saved_to}; run the same command "
          f"again to resume") in out.splitlines(), out[-3000:]

  # Restart with the same command: resumes from step k and finishes.
  done = subprocess.run(cli(interrupted, name, steps=steps), cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=180)
  assert done.returncode == 0, done.stderr[-3000:]
  resumed_line = f"rlx: resuming from step {ckpts[-1]}, checkpoint {saved_to} (phase "
  assert any(line.startswith(resumed_line) for line in done.stderr.splitlines()), done.stderr
  logged = [r["step"] for r in read_metrics(interrupted / "metrics.jsonl")]
  assert logged[-1] == steps and ckpts[-1] + 1 in logged

  reference = train(small_config(name, steps), str(tmp_path / "uninterrupted"))
  like = build(small_config(name), str(tmp_path / "scratch")).init_params
  resumed = restore_params(str(interrupted / "checkpoints"), like, step=steps)
  for a, b in zip(jax.tree.leaves(reference["params"]), jax.tree.leaves(resumed)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Configuration errors: one line on stderr, exit status 2, no traceback (rlx.cli).


def run_cli(argv, module="rlx.train"):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def assert_one_line(out, line):
  """Exit status 2 and ``line`` as the whole of stderr: no traceback, nothing else."""
  assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
  assert out.stderr == line + "\n", out.stderr[-3000:]


def flags_of(workdir, name="sft", *extra):
  return cli(workdir, name, *extra)[3:]  # without python -m rlx.train


@pytest.mark.parametrize("extra,line", [
    (["--config.algo.betaa=0.1"], "rlx: config.algo.betaa: unknown field; did you mean beta?"),
    (["--config.algoo.beta=0.1"], "rlx: config.algoo: unknown field; did you mean algo?"),
    (["--config.num_steps.x=1"], "rlx: config.num_steps: is a field, not a section (no "
                                 "config.num_steps.x)"),
    (["--config.num_steps=abc"], "rlx: config.num_steps='abc': expected an integer (the config "
                                 "file has {cfg.num_steps})"),
    (["--config.logging.stdout=maybe"], "rlx: config.logging.stdout='maybe': expected true or "
                                        "false (the config file has {cfg.logging.stdout})"),
    (["--config.optim.name=adamx"], "rlx: config.optim.name='adamx': unknown value; allowed "
                                    "values: 'adamw', 'adam', 'sgd'"),
    (["unexpected"], "rlx: unexpected arguments: unexpected"),
])
def test_bad_override_is_one_line(tmp_path, extra, line):
  line = line.format(cfg=load("sft"))  # the value in configs/sft.py, whatever it is today
  assert_one_line(run_cli(flags_of(tmp_path / "run", "sft", *extra)), line)
  assert not os.path.exists(tmp_path / "run")


def test_bad_value_fails_before_compilation(tmp_path):
  out = run_cli(flags_of(tmp_path, "sft", "--config.optim.learning_rate=-0.1"))
  assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr[-3000:]
  assert out.stderr.startswith("rlx: config.optim.learning_rate=-0.1: must be > 0")
  assert not os.path.exists(tmp_path / "checkpoints")


def test_verbosity_adds_the_traceback(tmp_path):
  out = run_cli(flags_of(tmp_path, "sft", "--config.algo.betaa=0.1", "--verbosity=1"))
  assert out.returncode == 2 and "Traceback" in out.stderr
  assert out.stderr.splitlines()[-1] == "rlx: config.algo.betaa: unknown field; did you mean beta?"


def test_missing_config_file_is_one_line(tmp_path):
  missing = str(tmp_path / "nope.py")
  assert_one_line(run_cli(["--config", missing, "--workdir", str(tmp_path / "run")]),
                  f"rlx: --config={missing}: no such file")
  assert_one_line(run_cli(["--config", os.path.join(ROOT, "configs", "sft.py")]),
                  "rlx: --workdir is required")


def test_workdir_that_is_a_file_is_one_line(tmp_path):
  path = tmp_path / "file"
  path.write_text("")
  assert_one_line(run_cli(flags_of(path)), f"rlx: --workdir={path}: is a file, not a directory")
  assert_one_line(run_cli(flags_of(path / "run")),
                  f"rlx: --workdir={path / 'run'}: is below a file ({path}), not a directory")


def _checkpoint_of(workdir, cfg, phase="sft"):
  """A checkpoint step as ``cfg``'s run would record it (host item only matters here)."""
  ckpt = Checkpointer(str(workdir / "checkpoints"))
  ckpt.save(1, {"train": {"w": np.zeros(2, np.float32)}},
            {"phase": phase, "phase_step": 1, "evals": [],
             "config": run_fields(rlx_config.validate(cfg))})
  ckpt.close()
  return workdir / "checkpoints"


def test_checkpoint_from_another_config_is_one_line(tmp_path):
  other = small_config("sft")
  other.model.d_model = 48
  where = _checkpoint_of(tmp_path, other)
  assert_one_line(run_cli(flags_of(tmp_path)),
                  f"rlx: config.model.d_model=32: the checkpoints in {where} were written with "
                  f"model.d_model=48; resume with the config that wrote them or use a new workdir")
  assert sorted(os.listdir(where)) == ["1", "rlx_checksums.json"]  # nothing written


def test_checkpoint_of_another_phase_is_one_line(tmp_path):
  where = _checkpoint_of(tmp_path, small_config("sft"), phase="rl")
  assert_one_line(run_cli(flags_of(tmp_path)),
                  f"rlx: the checkpoints in {where} were written by another config (in phase "
                  f"'rl'; this config runs 'sft'); resume with the config that wrote them or use "
                  f"a new workdir")


def test_state_of_another_shape_is_a_config_error(tmp_path):
  """A checkpoint without the config record (older runs) that does not fit: the leaf that
  differs, as a configuration error (one line on the command line), not orbax's message."""
  ckpt = Checkpointer(str(tmp_path))
  ckpt.save(1, {"train": {"w": np.zeros((3, 4), np.float32)}}, {"phase": "sft"})
  ckpt.close()
  ckpt = Checkpointer(str(tmp_path))
  with pytest.raises(CheckpointMismatchError, match=r"train/w is \(3, 4\) there, \(3, 5\) here"):
    ckpt.restore(1, {"train": {"w": np.zeros((3, 5), np.float32)}})
  with pytest.raises(CheckpointMismatchError, match=r"train/v is not in the checkpoint"):
    ckpt.restore(1, {"train": {"w": np.zeros((3, 4), np.float32), "v": np.zeros(2, np.float32)}})
  ckpt.close()


def test_only_config_errors_are_one_line():
  assert rlx_cli.config_problem(rlx_config.ConfigError("config.x=1: bad")) == "config.x=1: bad"
  try:
    try:
      raise rlx_config.ConfigError("config.x=1: bad")
    except ValueError as e:
      raise ValueError("Error whilst parsing config file:\n\nTraceback ...") from e
  except ValueError as wrapped:
    assert rlx_cli.config_problem(wrapped) == "config.x=1: bad"
  assert rlx_cli.config_problem(RuntimeError("a bug")) is None  # keeps its traceback


def test_export_writes_only_out_and_is_quiet(tmp_path):
  cfg = small_config("sft", steps=2)
  workdir, out = tmp_path / "run", tmp_path / "hf"
  train(cfg, str(workdir))
  before = sorted(str(p) for p in workdir.rglob("*"))
  args = ["--workdir", str(workdir), "--out", str(out), *flags_of(workdir)[:2],
          *flags_of(workdir)[4:]]
  done = run_cli(args, "rlx.export")
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout == f"wrote {out}\n"
  assert done.stderr == "", done.stderr[-3000:]  # no orbax / absl INFO lines
  assert sorted(str(p) for p in workdir.rglob("*")) == before  # the workdir is only read
  assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]

  assert_one_line(run_cli(["--workdir", str(tmp_path / "none"), *args[2:]], "rlx.export"),
                  f"rlx: --workdir={tmp_path / 'none'}: no such directory")
  assert_one_line(run_cli([*args, "--step=7"], "rlx.export"),
                  f"rlx: --step=7: no usable checkpoint step 7 in {workdir / 'checkpoints'} "
                  f"(steps there: 2)")
