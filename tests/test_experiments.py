"""experiments/: the sweep runner on a toy study, and every study spec and paper-scale config."""

import json
import os
import shutil

import jax
import pytest

from experiments import runner
from rlx import config as rlx_config
from rlx import models


def toy_base():
  """A tiny warm-started GRPO run: 3 SFT steps, 2 RL steps of 2 prompts × 2 samples."""
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.d_model = 32
  cfg.model.d_ff = 64
  cfg.model.n_layers = 1
  cfg.model.head_dim = 8
  cfg.data.difficulty = (1,)
  cfg.data.max_seq_len = 40
  cfg.warm_start.sft_steps = 3
  cfg.warm_start.batch_size = 4
  cfg.num_steps = 2
  cfg.algo.batch_size = 4
  cfg.algo.group_size = 2
  cfg.algo.kl_placement = "none"
  cfg.algo.beta = 0.0
  cfg.sampling.max_new_tokens = 8
  cfg.eval.every_steps = 0  # at the start and the end
  cfg.eval.num_examples = 4
  cfg.eval.num_samples = 2
  cfg.checkpoint.every_steps = 2
  cfg.logging.stdout = False
  return cfg


TOY = runner.Study(
    name="toy", title="Toy study", question="Does the runner work?", base=toy_base,
    variants=[runner.Variant("a", {}),
              # a second round (0 RL steps: an evaluation from the first round's checkpoint)
              runner.Variant("b", {"algo.aggregation": "token-mean"},
                             stages=[{"num_steps": 0, "sampling.max_new_tokens": 6}])],
    seeds=(0, 1),
    metrics=[runner.Metric("eval/pass@1", "pass@1 after", "final"),
             runner.Metric("eval/pass@1", "Δ pass@1", "delta"),
             runner.Metric("reward/mean", "reward", "mean"),
             runner.Metric("samples/drawn", "samples", "final", ".0f")],
    curves=[runner.Curve("reward/mean", "reward"), runner.Curve("eval/pass@1", "pass@1")],
    samples_axis=True)


def test_runner_on_a_toy_study(tmp_path, monkeypatch):
  monkeypatch.setenv("RLX_EXPERIMENTS_JAX_CACHE", str(tmp_path / "jax_cache"))
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  logs = []
  res = runner.run_study(TOY, root=root, out_dir=out, log=logs.append)
  assert not res.missing and [r["seeds"] for r in res.table] == [2, 2]
  # One shared SFT warm start per seed: 2 SFT runs + 4 first rounds + 2 second rounds.
  starts = [m for m in logs if m.startswith("start")]
  assert len(starts) == 8 and sum("sft/" in m for m in starts) == 2
  for f in ("results.csv", "results.md", "runs.csv", "README.md", "plots/curves_vs_step.png",
            "plots/curves_vs_samples.png"):
    assert os.path.getsize(os.path.join(out, f)) > 0, f
  readme = open(os.path.join(out, "README.md")).read()
  assert "python -m experiments.run toy" in readme and "| a | 2 |" in readme
  assert "Commit:" in readme and "cores" in readme
  table = open(os.path.join(out, "results.md")).read()
  # samples drawn: 2 steps × 2 groups × 2 samples; the 0-step round adds none.
  assert all(r["samples"] == 8 for r in res.per_run)
  # Rerun: every run is skipped and the table is identical.
  logs.clear()
  runner.run_study(TOY, root=root, out_dir=out, log=logs.append)
  assert not [m for m in logs if m.startswith("start")]
  assert "8 of 8 runs already finished" in logs[0]
  assert open(os.path.join(out, "results.md")).read() == table
  # A fresh rerun of one run (its directory deleted) reproduces its numbers, and a run without
  # summary.json (as if killed after its last checkpoint) resumes from its rlx checkpoint.
  nodes, _ = runner.plan(TOY, os.path.abspath(root))
  fresh = next(n for n in nodes.values() if n.label == "b/seed1/round0")
  resumed = next(n for n in nodes.values() if n.label == "a/seed0")
  shutil.rmtree(fresh.workdir)
  os.remove(os.path.join(resumed.workdir, runner.SUMMARY))
  logs.clear()
  runner.run_study(TOY, root=root, out_dir=out, log=logs.append)
  assert len([m for m in logs if m.startswith("start")]) == 2
  assert json.load(open(os.path.join(resumed.workdir, runner.SUMMARY)))["resumed_from"] == 2
  assert open(os.path.join(out, "results.md")).read() == table


@pytest.mark.parametrize("name", runner.study_names())
def test_study_spec_loads_and_configs_validate(name, tmp_path):
  study = runner.load_study(name)
  assert len(study.seeds) >= 3 and study.variants and study.metrics and study.curves
  assert study.paper and study.paper_base is not None
  for scale in ("small", "paper"):
    nodes, chains = runner.plan(study, str(tmp_path), scale=scale)
    assert len(chains) == len(study.variants) * len(study.seeds)
    for n in nodes.values():
      run = rlx_config.validate(n.cfg, check_paths=False)
      if scale == "small":
        assert run.data.source == "task" and run.model.model_config().d_model <= 64
  # The README a study ships was written by the runner (results or "not yet run").
  readme = os.path.join(runner.EXPERIMENTS_DIR, name, "README.md")
  assert os.path.exists(readme) and f"python -m experiments.run {name}" in open(readme).read()


@pytest.mark.parametrize("name", runner.study_names())
def test_paper_scale_configs_build_with_eval_shape(name, tmp_path):
  study = runner.load_study(name)
  nodes, _ = runner.plan(study, str(tmp_path), scale="paper", seeds=[0])
  seen = set()
  for n in nodes.values():
    run = rlx_config.validate(n.cfg, check_paths=False)
    mc = run.model.model_config()
    if mc in seen:
      continue
    seen.add(mc)
    _, params = models.abstract(mc)  # jax.eval_shape: no memory
    count = sum(x.size for x in jax.tree.leaves(params))
    assert count > 1e9, (name, count)
    assert run.model.path.startswith("/path/to/") and run.data.source == "jsonl"
