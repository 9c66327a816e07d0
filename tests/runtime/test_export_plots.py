"""End of a run: learning-curve PNGs are written; the policy exports as an HF checkpoint."""

import os

import jax
import numpy as np

from rlx import models
from rlx.runtime.run import export, train
from tests.test_train_cli import small_config


def test_run_writes_plots_and_exports_an_hf_checkpoint(tmp_path):
  cfg = small_config("sft")
  cfg.num_steps = 6
  summary = train(cfg, str(tmp_path / "run"))
  png = tmp_path / "run" / "plots" / "learning_curves.png"
  assert summary["plots"] == str(png) and png.stat().st_size > 5_000

  out = export(small_config("sft"), str(tmp_path / "run"), str(tmp_path / "hf"))
  assert os.path.exists(os.path.join(out, "config.json"))
  config, params = models.load_hf(out)
  assert config.d_model == 32 and config.n_layers == 1
  trained = jax.tree.leaves(summary["params"])
  exported = jax.tree.leaves(params)
  assert len(trained) == len(exported)
  for a, b in zip(trained, exported):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The trained params differ from a fresh init: the export is of the checkpoint, not the init.
  _, init = models.init_params(config, seed=0)
  assert any(not np.array_equal(np.asarray(a), np.asarray(b))
             for a, b in zip(jax.tree.leaves(init), exported))


def _read_scalars(event_dir):
  """Scalars of TensorBoard event files (TFRecord framing: u64 length, u32 crc, data, u32 crc)."""
  import glob
  import struct

  from tensorboardX.proto import event_pb2

  out = {}
  for path in glob.glob(os.path.join(event_dir, "events.out.tfevents.*")):
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def test_run_writes_tensorboard_event_files(tmp_path):
  cfg = small_config("sft")
  cfg.num_steps = 5
  cfg.logging.tensorboard = True
  train(cfg, str(tmp_path))
  scalars = _read_scalars(tmp_path / "tensorboard")
  assert [s for s, _ in scalars["loss"]] == [1, 2, 3, 4, 5]
  assert all(np.isfinite(v) for _, v in scalars["loss"])
