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
