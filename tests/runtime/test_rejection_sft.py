"""Rejection-sampling SFT (rlx/runtime/phases/rejection_sft.py) end to end on a tiny model: only
the kept (verified, distinct) samples carry loss, on their completion tokens; host metrics are
logged; SIGTERM → resume equals an uninterrupted run; validation; the phase stays one short file.
"""

import ast
import os
import pathlib

import jax
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx.algorithms.trajectory import Trajectory
from rlx.runtime import rollouts
from rlx.runtime.metrics import read_metrics
from rlx.runtime.phases import rejection_sft as rs
from rlx.runtime.run import build, phase_plan, train
from tests.algorithms.test_dpo import compilation_cache, jax_cache_dir  # noqa: F401 (fixtures)
from tests.runtime.test_preference_runs import sigterm_when

PHASE_FILE = pathlib.Path(rs.__file__)


def tiny_config(num_steps=4, accept=1.0, **overrides):
  """8 prompts × 4 samples per round, 8-token completions; ``rewards.name="random"`` with
  ``p=accept`` (0: reject every sample, 1: accept every sample). Every run of this module has
  the same shapes and schedule, so the persistent compilation cache serves the repeated runs."""
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "rejection_sft")
  cfg.num_steps = num_steps
  cfg.model.d_model, cfg.model.n_layers = 32, 1
  cfg.algo.batch_size, cfg.algo.group_size, cfg.algo.micro_batch_size = 8, 4, 4
  cfg.sampling.max_new_tokens = 8
  cfg.rewards.name = "random"
  cfg.rewards.kwargs = {"p": accept}
  cfg.optim.learning_rate, cfg.optim.warmup_steps = 1e-3, 0
  cfg.eval.num_examples, cfg.eval.num_samples, cfg.eval.every_steps = 4, 2, 0
  cfg.checkpoint.every_steps = 1000
  cfg.logging.stdout, cfg.logging.tensorboard = False, False
  for dotted, value in overrides.items():
    section, field = dotted.split("__")
    setattr(getattr(cfg, section), field, value)
  return cfg


def phase_records(workdir):
  return [r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
          if r.get("phase") == "rejection_sft"]


def trees_close(a, b, tol=1e-6):
  return all(np.allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.fixture
def no_eval(monkeypatch):
  monkeypatch.setattr(rollouts, "evaluate", lambda *a, **k: {"eval/greedy_accuracy": 0.0})


# --- the keep rule and the SFT batch (host numpy) -----------------------------------------------

def toy_trajectory(completions, group_ids):
  c = np.asarray(completions, np.int32)
  rollout = {"prompt_tokens": np.tile([[0, 5, 6]], (len(c), 1)),
             "prompt_mask": np.tile([[0, 1, 1]], (len(c), 1)), "completion_tokens": c,
             "completion_mask": (c > 0).astype(np.float32),
             "logprobs": np.zeros(c.shape, np.float32),
             "finish_reason": np.zeros(len(c), np.int32),
             "group_ids": np.asarray(group_ids, np.int32)}
  return Trajectory.from_rollout(rollout, np.zeros(len(c)))


def test_keep_rule_verified_and_distinct_within_a_prompt():
  traj = toy_trajectory([[7, 8, 0], [7, 8, 0], [7, 9, 0], [7, 8, 0], [7, 8, 0], [4, 0, 0]],
                        [0, 0, 0, 1, 1, 1])
  scored = rollouts.Scored(scores=np.array([1, 1, 1, 1, 0.5, 1], np.float32),
                           sample_mask=np.array([1, 1, 1, 1, 1, 0], np.float32),
                           token_scores=None, metrics={}, raw=None)
  keep = rs.keep_verified(traj, scored)
  # Row 1 repeats row 0 (same prompt); row 3 repeats it for another prompt (kept); row 4 scores
  # < 1; row 5 is masked out by the reward.
  assert keep.tolist() == [True, False, True, True, False, False]

  batch = rs.sft_rows(traj, keep, batch_size=4)
  tokens, mask, loss = (np.asarray(x) for x in (batch.tokens, batch.mask, batch.loss_mask))
  assert tokens.shape == (4, 3 + 3)
  np.testing.assert_array_equal(tokens[:3, 3:], [[7, 8, 0], [7, 9, 0], [7, 8, 0]])  # kept first
  np.testing.assert_array_equal(tokens[:, :3], np.tile([0, 5, 6], (4, 1)))  # the prompts
  np.testing.assert_array_equal(mask[0], [0, 1, 1, 1, 1, 0])
  np.testing.assert_array_equal(loss[:3], np.tile([0, 0, 0, 1, 1, 0], (3, 1)))  # completions
  assert loss[3].sum() == 0  # a padding row


# --- runs -----------------------------------------------------------------------------------------

def test_kept_samples_carry_the_loss_and_metrics_are_logged(tmp_path, monkeypatch):
  """Accept-all: each step's SFT loss is the mean NLL of the kept completion tokens under the
  sampling policy (prompt then completion, loss on the completion only: the sampler's own
  log-probs at temperature 1), the parameters change, the metrics are logged."""
  calls = []
  score_groups = rollouts.score_groups
  monkeypatch.setattr(rollouts, "score_groups",
                      lambda *a, **k: calls.append(score_groups(*a, **k)) or calls[-1])
  out = train(tiny_config(accept=1.0), str(tmp_path / "accept"))
  records = phase_records(tmp_path / "accept")
  assert [r["step"] for r in records] == [1, 2, 3, 4] and len(calls) == 4
  for r, (traj, scored, _) in zip(records, calls):
    keep = rs.keep_verified(traj, scored)
    lm = traj.loss_mask * keep[:, None]
    assert r["rs/kept"] == keep.sum() > 0 and r["rs/kept_fraction"] == keep.sum() / 8
    assert r["reward/correct"] == 1.0 and r["tokens"] == lm.sum()
    np.testing.assert_allclose(r["loss"], -(traj.sampler_logprobs * lm).sum() / lm.sum(),
                               rtol=1e-4)
    assert "rs/solved_prompts" in r and isinstance(r["sample/text"], str)
  assert len(out["evals"]) == 2 and "eval/greedy_accuracy" in out["evals"][0]
  initial = build(tiny_config(), str(tmp_path / "scratch")).init_params
  assert not trees_close(initial, out["params"])


def test_nothing_kept_leaves_the_parameters(tmp_path, no_eval):
  out = train(tiny_config(accept=0.0), str(tmp_path / "reject"))
  for r in phase_records(tmp_path / "reject"):
    assert r["rs/kept"] == 0 and r["rs/kept_fraction"] == 0.0 and r["reward/correct"] == 0.0
    assert r["tokens"] == 0 and r["loss"] == 0.0
  initial = build(tiny_config(), str(tmp_path / "scratch")).init_params
  assert trees_close(initial, out["params"], tol=0)


def sigterm_after(monkeypatch, phase, step):
  """A real SIGTERM to this process once the run logs ``phase``'s record of global ``step``."""
  return sigterm_when(monkeypatch, lambda s, record: s == step and record.get("phase") == phase)


def test_resume_after_sigterm_equals_uninterrupted(tmp_path, monkeypatch, no_eval):
  """4 rounds, half the samples accepted at random: stopped by SIGTERM after round 1 and rerun,
  the run ends on the uninterrupted one's parameters, having kept the same samples (same
  prompts, sampler keys, optimizer state)."""
  cfg = lambda: tiny_config(accept=0.5)
  full = train(cfg(), str(tmp_path / "full"))
  work = str(tmp_path / "interrupted")
  with sigterm_after(monkeypatch, "rejection_sft", 1) as sent:
    stopped = train(cfg(), work)
  assert sent and stopped["preempted"]
  ckpts = sorted(int(p) for p in os.listdir(os.path.join(work, "checkpoints")) if p.isdigit())
  assert 1 <= ckpts[-1] < 4, ckpts  # stopped mid-run
  done = train(cfg(), work)
  assert not done["preempted"] and done["resumed_from"] == ckpts[-1]
  assert trees_close(full["params"], done["params"])
  kept = lambda w: {r["step"]: r["rs/kept"] for r in phase_records(w)}
  assert kept(work) == kept(tmp_path / "full") and len(kept(work)) == 4
  assert 0 < sum(kept(work).values()) < 4 * 8


# --- config and plan ------------------------------------------------------------------------------

def test_validation_and_phase_plan(tmp_path):
  run = rlx_config.validate(tiny_config(warm_start__sft_steps=2, algo__group_size=1))
  assert run.is_rl and run.algo.name is rlx_config.Algorithm.REJECTION_SFT
  assert run.algo.num_prompts == 8  # group_size 1 (STaR: one sample per prompt) is fine
  setup = build(run, str(tmp_path))
  plan = phase_plan(setup)
  setup.checkpointer.close()
  assert [(name, steps) for name, steps, _ in plan] == [("sft", 2), ("rejection_sft", 4)]
  for overrides, message in [
      (dict(algo__filter="dynamic_sampling"), r"config\.algo\.filter='dynamic_sampling'"),
      (dict(algo__kl_placement="loss", algo__beta=0.04), r"config\.algo\.kl_placement='loss'"),
      (dict(algo__epochs=2), r"config\.algo\.epochs=2"),
      (dict(algo__minibatches=2), r"config\.algo\.minibatches=2"),
      (dict(algo__laser_alpha=0.1), r"config\.algo\.laser_alpha=0\.1"),
      (dict(algo__group_size=3), r"config\.algo\.group_size=3: must divide")]:
    with pytest.raises(rlx_config.ConfigError, match=message):
      rlx_config.validate(tiny_config(**overrides))


def test_the_phase_is_one_short_file():
  source = PHASE_FILE.read_text()
  assert len(source.splitlines()) < 120
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      assert node.end_lineno - node.lineno < 40, node.name
