"""Damaged checkpoints are never trusted: checksum manifests (flipped bytes, truncated files,
missing manifest → the previous verified step, one line naming the skipped one), legacy steps
without a manifest, rotation over verified steps, the non-finite loss guard, and metrics without
duplicate steps after a resume."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from rlx.runtime.checkpoint import MANIFEST, MARKER, Checkpointer, CorruptCheckpointError


def _save_steps(directory, steps, keep=3):
  ckpt = Checkpointer(directory, keep=keep)
  for s in steps:
    ckpt.save(s, {"train": {"w": jnp.full((64,), float(s))}}, {"phase": "rl", "phase_step": s})
  ckpt.close()


def _restore(directory):
  ckpt = Checkpointer(directory)
  items, host = ckpt.restore(None, {"train": {"w": jnp.zeros((64,))}})
  ckpt.close()
  return float(np.asarray(items["train"]["w"])[0]), host


def _largest_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs if f != MANIFEST]
  return max(files, key=os.path.getsize)


def _skip_lines(err):
  return [l for l in err.splitlines() if "skipping checkpoint" in l]


def test_manifest_written_for_every_step(tmp_path):
  _save_steps(str(tmp_path), [1, 2])
  for s in (1, 2):
    manifest = json.load(open(tmp_path / str(s) / MANIFEST))
    assert manifest["files"] and all(len(v["blake2b"]) == 64 for v in manifest["files"].values())
  assert _restore(str(tmp_path))[0] == 2.0


def test_flipped_bytes_in_latest_falls_back_to_previous(tmp_path, capsys):
  _save_steps(str(tmp_path), [1, 2])
  path = _largest_file(tmp_path / "2")
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0xFF  # same size, different content
  open(path, "wb").write(bytes(data))
  capsys.readouterr()
  value, host = _restore(str(tmp_path))
  assert value == 1.0 and host["phase_step"] == 1
  lines = _skip_lines(capsys.readouterr().err)
  assert len(lines) == 1 and "step 2" in lines[0] and "checksum" in lines[0]
  with pytest.raises(CorruptCheckpointError, match="step 2"):  # an explicit bad step raises
    Checkpointer(str(tmp_path)).restore_host(2)


def test_truncated_latest_falls_back_to_previous(tmp_path, capsys):
  _save_steps(str(tmp_path), [1, 2])
  path = _largest_file(tmp_path / "2")
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  capsys.readouterr()
  assert _restore(str(tmp_path))[0] == 1.0
  lines = _skip_lines(capsys.readouterr().err)
  assert len(lines) == 1 and "step 2" in lines[0] and "truncated" in lines[0]


def test_missing_metadata_or_manifest_is_not_used(tmp_path, capsys):
  _save_steps(str(tmp_path), [1, 2, 3])
  os.remove(tmp_path / "3" / "_CHECKPOINT_METADATA")  # missing metadata
  os.remove(tmp_path / "2" / MANIFEST)  # committed by orbax, killed before the manifest
  capsys.readouterr()
  assert Checkpointer(str(tmp_path)).latest_step() == 1
  lines = _skip_lines(capsys.readouterr().err)
  assert len(lines) == 2 and "missing file _CHECKPOINT_METADATA" in lines[0]
  assert "no checksum manifest" in lines[1]


def test_legacy_checkpoints_without_manifest_are_accepted_with_a_warning(tmp_path, capsys):
  _save_steps(str(tmp_path), [1, 2])
  os.remove(tmp_path / MARKER)  # as written before checksums existed
  for s in (1, 2):
    os.remove(tmp_path / str(s) / MANIFEST)
  capsys.readouterr()
  assert _restore(str(tmp_path))[0] == 2.0
  err = capsys.readouterr().err
  assert "written before checksums" in err and not _skip_lines(err)


def test_rotation_keeps_the_newest_verified_step(tmp_path, monkeypatch):
  _save_steps(str(tmp_path), [1, 2, 3, 4], keep=2)
  assert sorted(int(p) for p in os.listdir(tmp_path) if p.isdigit()) == [3, 4]
  # Steps 5 and 6 never get their manifest (killed / failing writes): saving them must not
  # delete 3 or 4, the newest verified checkpoints.
  from rlx.runtime import checkpoint
  monkeypatch.setattr(checkpoint, "write_manifest", lambda step_dir: None)
  _save_steps(str(tmp_path), [5, 6], keep=2)
  assert sorted(int(p) for p in os.listdir(tmp_path) if p.isdigit()) == [3, 4, 5, 6]
  assert _restore(str(tmp_path))[0] == 4.0
  monkeypatch.undo()
  _save_steps(str(tmp_path), [7, 8], keep=2)  # verified again: older steps rotate out
  assert sorted(int(p) for p in os.listdir(tmp_path) if p.isdigit()) == [7, 8]


# --- the non-finite guard and metrics after a resume (tiny RL runs) ---------------------------

from rlx.runtime.metrics import MetricsWriter, read_metrics  # noqa: E402
from rlx.runtime.phase import NonFiniteLossError  # noqa: E402
from rlx.runtime.phases import RLPhase  # noqa: E402
from rlx.runtime.run import train  # noqa: E402

from .test_loop import tiny_rl_config  # noqa: E402


def _ckpt_steps(workdir):
  return sorted(int(p) for p in os.listdir(os.path.join(workdir, "checkpoints")) if p.isdigit())


@pytest.mark.parametrize("bad_step", [3, 4])  # 4 is a checkpoint step itself
def test_nonfinite_loss_stops_without_checkpointing_it(tmp_path, monkeypatch, bad_step):
  original = RLPhase.step

  def step(self, i):
    metrics, host = original(self, i)
    if self.step_offset + i + 1 == bad_step:
      metrics = {**metrics, "loss/total": jnp.float32(float("nan"))}
    return metrics, host

  monkeypatch.setattr(RLPhase, "step", step)
  cfg = tiny_rl_config("grpo", num_steps=6)
  cfg.checkpoint.every_steps = 2
  cfg.checkpoint.keep = 1
  with pytest.raises(NonFiniteLossError, match=rf"loss/total=nan at step {bad_step}\b.*step 2"):
    train(cfg, str(tmp_path))
  assert _ckpt_steps(tmp_path) == [2]  # the last good checkpoint survives rotation
  assert Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 2


def test_on_nonfinite_only_allows_stop():
  from rlx import config as rlx_config
  cfg = tiny_rl_config("grpo")
  assert rlx_config.validate(cfg).checkpoint.on_nonfinite == "stop"
  cfg.checkpoint.on_nonfinite = "rollback"
  with pytest.raises(rlx_config.ConfigError, match="on_nonfinite"):
    rlx_config.validate(cfg)


def test_metrics_writer_truncates_after_the_resume_step(tmp_path):
  w = MetricsWriter(str(tmp_path), stdout=False)
  for s in range(1, 10):
    w.push(s, {"loss": np.float32(s)})
  w.flush()
  w = MetricsWriter(str(tmp_path), stdout=False)  # resumed from the checkpoint at step 6
  assert w.truncate_after(6) == 3
  for s in range(7, 10):
    w.push(s, {"loss": np.float32(s)})
  w.flush()
  assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, 10))


def test_a_phase_starting_afresh_drops_its_earlier_opening_evaluation(tmp_path):
  """A run killed after a phase's opening evaluation but before its first checkpoint restarts
  the phase: the evaluation at the phase's first step is written once, the previous phase's
  training record at that step is kept."""
  w = MetricsWriter(str(tmp_path), stdout=False)
  w.push(4, {"loss": np.float32(1.0)}, {"phase": "sft"})  # the warm start's last step
  w.write_now(4, {"eval/greedy_accuracy": 0.25})  # the RL phase's opening evaluation
  w.push(5, {"loss/total": np.float32(0.5)}, {"phase": "rl"})  # killed after this
  w.flush()
  w = MetricsWriter(str(tmp_path), stdout=False)
  assert w.truncate_after(4, evals_at_step=False) == 2
  w.write_now(4, {"eval/greedy_accuracy": 0.25})
  records = read_metrics(tmp_path / "metrics.jsonl")
  assert [(r["step"], "phase" in r) for r in records] == [(4, True), (4, False)]


def test_resume_after_damaged_checkpoints_logs_each_step_once(tmp_path, capsys):
  cfg = tiny_rl_config("grpo", num_steps=5)
  cfg.checkpoint.every_steps = 2
  workdir = str(tmp_path)
  train(cfg, workdir)
  assert _ckpt_steps(workdir) == [2, 4, 5]
  # Step 5 never finished (no manifest), step 4 is corrupt: the run resumes from step 2.
  os.remove(os.path.join(workdir, "checkpoints", "5", MANIFEST))
  path = _largest_file(os.path.join(workdir, "checkpoints", "4"))
  data = bytearray(open(path, "rb").read())
  data[0] ^= 0x01
  open(path, "wb").write(bytes(data))
  capsys.readouterr()
  out = train(cfg, workdir)
  assert out["resumed_from"] == 2
  assert len(_skip_lines(capsys.readouterr().err)) == 2
  records = read_metrics(os.path.join(workdir, "metrics.jsonl"))
  steps = [r["step"] for r in records if r.get("phase") == "rl"]
  assert steps == [1, 2, 3, 4, 5]
  assert _ckpt_steps(workdir) == [2, 4, 5] and Checkpointer(
      os.path.join(workdir, "checkpoints")).latest_step() == 5
