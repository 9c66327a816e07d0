"""Preference runs from config files: DPO learns separable pairs, precomputed reference log-probs
give the on-the-fly trajectory, SIGTERM → resume equals an uninterrupted run (offline and
iterative DPO), a reward model learns the pairs and PPO raises its score; on an 8-device mesh
iterative DPO samples with the sampling layout (``python -m tests.runtime.test_preference_runs``
runs that check in its own process)."""

import contextlib
import json
import os
import signal

import jax
import numpy as np
import pytest

from rlx.runtime.scorer import load_reward_model
from rlx import data as rlx_data
from rlx.algorithms import rm
from rlx.runtime import restore_params
from rlx.runtime.metrics import MetricsWriter, read_metrics
from rlx.runtime.run import build, train
from tests.algorithms.test_dpo import compilation_cache, jax_cache_dir  # noqa: F401 (fixtures)
from tests.scale.helpers import results, run_module
from tests.test_configs import load

# The synthetic pairs of configs/dpo.py, one-step expressions, a short run (same shapes in every
# test of this module, so the persistent compilation cache serves the repeated runs).
DPO = {"num_steps": 6, "data.difficulty": (1,), "data.train_size": 512, "data.eval_size": 128,
       "data.max_seq_len": 40, "eval.every_steps": 40, "eval.num_examples": 32,
       "logging.stdout": False, "logging.tensorboard": False, "checkpoint.every_steps": 1000,
       "optim.warmup_steps": 0}


def config(name, overrides):
  cfg = load(name)
  for field, value in overrides.items():
    node = cfg
    *path, leaf = field.split(".")
    for part in path:
      node = node[part]
    node[leaf] = value
  return cfg


def params_of(name, overrides, workdir, tmp_path, step=None):
  like = build(config(name, overrides), str(tmp_path / "scratch")).init_params
  return restore_params(os.path.join(workdir, "checkpoints"), like, step=step)


def assert_trees_close(a, b, tol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@contextlib.contextmanager
def sigterm_when(monkeypatch, predicate):
  """Send this process a real SIGTERM, once, right after the run writes a metrics record for
  which ``predicate(step, record)`` holds; the run's PreemptionGuard turns it into
  checkpoint-and-return at the next step boundary."""
  sent = []
  write = MetricsWriter._write

  def _write(self, step, metrics, host_metrics, force=False):
    write(self, step, metrics, host_metrics, force)
    if not sent and predicate(step, {**metrics, **host_metrics}):
      sent.append(step)
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(MetricsWriter, "_write", _write)
  previous = signal.signal(signal.SIGTERM, lambda *_: None)  # never kill pytest itself
  try:
    yield sent
  finally:
    signal.signal(signal.SIGTERM, previous)


def checkpoint_steps(workdir):
  return sorted(int(p) for p in os.listdir(os.path.join(workdir, "checkpoints")) if p.isdigit())


def test_reference_modes_and_resume_give_one_trajectory(tmp_path, monkeypatch):
  """Precomputed (cached .npz) and on-the-fly reference log-probs train identically (1e-6);
  stopping the precomputed run with SIGTERM and rerunning it lands on the same parameters."""
  cache = str(tmp_path / "cache")
  pre = {**DPO, "pref.reference": "precompute", "pref.cache_dir": cache,
         "algo.micro_batch_size": 8}
  online = {**pre, "pref.reference": "online"}
  a = train(config("dpo", pre), str(tmp_path / "pre"))
  cached = sorted(os.listdir(cache))
  assert [f.split("-")[0] for f in cached] == ["eval", "train"]
  with np.load(os.path.join(cache, cached[1])) as z:
    assert z["a"].shape == (512,) and np.all(z["a"] < 0) and np.any(z["a"] != z["b"])
  b = train(config("dpo", online), str(tmp_path / "online"))
  assert_trees_close(a["params"], b["params"])
  losses = lambda w: [r["loss"] for r in read_metrics(os.path.join(w, "metrics.jsonl"))
                      if "loss" in r]
  np.testing.assert_allclose(losses(tmp_path / "pre"), losses(tmp_path / "online"), rtol=1e-6)
  assert len(losses(tmp_path / "pre")) == 6

  # SIGTERM after step 3, then the same call again: resumes with the cached reference.
  with sigterm_when(monkeypatch, lambda step, r: step == 3 and "loss" in r):
    stopped = train(config("dpo", pre), str(tmp_path / "resumed"))
  assert stopped["preempted"] and 3 <= checkpoint_steps(tmp_path / "resumed")[-1] < 6
  done = train(config("dpo", pre), str(tmp_path / "resumed"))
  assert not done["preempted"] and done["resumed_from"] is not None
  assert sorted(os.listdir(cache)) == cached  # reused, not recomputed
  assert_trees_close(a["params"], done["params"])
  evals = [r for r in read_metrics(tmp_path / "pre" / "metrics.jsonl")
           if "eval/rewards/accuracy" in r]
  assert [r["step"] for r in evals] == [0, 6]
  assert evals[0]["eval/rewards/margin"] == 0.0  # policy = reference at the start


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ipo", "simpo", "kto"])
def test_offline_preference_configs_raise_held_out_preference_accuracy(tmp_path, name):
  """configs/ipo.py, simpo.py and kto.py as shipped but 120 of their 400 updates: the held-out
  preference accuracy (the implicit reward ranks the chosen completion first) rises; KTO, whose
  examples are unpaired, has no accuracy: its implicit reward of the desirable completions
  moves above that of the undesirable ones."""
  out = train(config(name, {**DPO, "num_steps": 120, "eval.num_examples": 128}),
              str(tmp_path / name))
  if name == "kto":
    gap = [e["eval/rewards/chosen"] - e["eval/rewards/rejected"] for e in out["evals"]]
    print("kto held-out reward gap:", gap)
    assert gap[0] == 0 < gap[-1], gap
    return
  accuracy = [e["eval/rewards/accuracy"] for e in out["evals"]]
  assert accuracy[-1] > 0.8 and accuracy[-1] > accuracy[0] + 0.2, accuracy


@pytest.mark.slow
def test_dpo_raises_held_out_preference_accuracy(tmp_path):
  """configs/dpo.py, shortened: held-out preference accuracy (Δ > 0) > 90% and the held-out
  chosen-minus-rejected reward margin grows (with pref.eval_generation, held-out prompts are
  sampled and verified too)."""
  out = train(config("dpo", {**DPO, "num_steps": 120, "eval.num_examples": 128,
                             "pref.eval_generation": True, "eval.num_samples": 2}),
              str(tmp_path / "dpo"))
  evals = out["evals"]
  accuracy = [e["eval/rewards/accuracy"] for e in evals]
  margin = [e["eval/rewards/margin"] for e in evals]
  assert [e["step"] for e in evals] == [0, 40, 80, 120]
  assert accuracy[-1] > 0.9, accuracy
  assert margin[0] == 0 < margin[1] < margin[-1], margin
  assert 0 <= evals[-1]["eval/greedy_accuracy"] <= 1 and "eval/pass@2" in evals[-1]
  assert os.path.exists(out["preference_plot"])


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["kto", "simpo"])
def test_jsonl_runs_reference_free_and_unpaired(tmp_path, loss):
  """A JSONL source of pairs (SimPO, no reference) or of labelled completions (KTO) trains."""
  from rlx.data import SyntheticPreferenceSource
  src = SyntheticPreferenceSource("calculation", size=48, seed=0, difficulty=1)
  path = tmp_path / "data.jsonl"
  with open(path, "w") as f:
    for p in src:
      if loss == "kto":
        f.write(json.dumps({"prompt": p.prompt, "completion": p.chosen, "label": True}) + "\n")
        f.write(json.dumps({"prompt": p.prompt, "completion": p.rejected, "label": 0}) + "\n")
      else:
        f.write(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected})
                + "\n")
  out = train(config(loss, {**DPO, "num_steps": 3, "data.source": "jsonl",
                            "data.path": str(path),
                            "data.eval_size": 16, "algo.batch_size": 16}), str(tmp_path / "run"))
  last = out["evals"][-1]
  assert all(np.isfinite(v) for k, v in last.items() if k != "step")
  if loss == "kto":
    assert os.listdir(tmp_path / "run" / "reference")  # example and mismatched rows cached
    assert "eval/kl" not in last and np.isfinite(last["eval/rewards/chosen"])
  else:
    assert not os.path.exists(tmp_path / "run" / "reference")  # reference-free


# --- reward model → PPO ---------------------------------------------------------------------

# 250 updates: at 150 the held-out accuracy still moved ±4 points with the summation order
# (0.93 / 0.89 on two builds); at 250 both reach 0.99.
RM = {"num_steps": 250, "warm_start.sft_steps": 150, "optim.warmup_steps": 0,
      "data.difficulty": (1,), "data.train_size": 512, "data.eval_size": 128,
      "data.max_seq_len": 40,
      "eval.every_steps": 50, "eval.num_examples": 128, "logging.stdout": False,
      "logging.tensorboard": False, "checkpoint.every_steps": 1000}


@pytest.fixture(scope="module")
def rm_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("rm"))
  return workdir, train(config("rm", RM), workdir)


@pytest.mark.slow
def test_reward_model_reaches_held_out_pair_accuracy(rm_run):
  workdir, out = rm_run
  accuracy = [e["eval/rewards/accuracy"] for e in out["evals"]]
  assert accuracy[-1] > 0.9, accuracy
  scorer = load_reward_model(workdir)  # what rewards.kwargs.checkpoint loads
  assert scorer.params is not None


@pytest.mark.slow
def test_ppo_with_the_reward_model_raises_its_score(rm_run, tmp_path):
  """configs/ppo_rm.py, shortened: PPO from the SFT policy of the reward-model run (its warm
  start) with the reward model as the reward raises the reward model's mean score of the
  policy's samples (last 10 steps vs first 10)."""
  from rlx.runtime.checkpoint import Checkpointer
  workdir, _ = rm_run
  ppo = {"num_steps": 30, "rewards.kwargs.checkpoint": os.path.join(workdir, "checkpoints"),
         "algo.batch_size": 32, "sampling.max_new_tokens": 16, "data.difficulty": (1,),
         "optim.learning_rate": 1e-3, "optim.warmup_steps": 0, "eval.num_examples": 4,
         "eval.num_samples": 1, "logging.stdout": False, "logging.tensorboard": False,
         "checkpoint.every_steps": 1000}
  like = build(config("ppo_rm", ppo), str(tmp_path / "scratch")).init_params
  sft = restore_params(os.path.join(workdir, "checkpoints"), like, step=RM["warm_start.sft_steps"])
  init = Checkpointer(str(tmp_path / "sft"))
  init.save(0, {"train": {"params": sft}}, {"phase": "sft"})
  init.close()
  train(config("ppo_rm", {**ppo, "checkpoint.init_from": str(tmp_path / "sft")}),
        str(tmp_path / "ppo"))
  rewards = [r["reward/mean"] for r in read_metrics(tmp_path / "ppo" / "metrics.jsonl")
             if "reward/mean" in r]
  assert len(rewards) == 30
  assert np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 0.25, rewards


# --- iterative DPO ----------------------------------------------------------------------------

ITERATIVE = {"warm_start.sft_steps": 0, "model.d_model": 32, "model.n_layers": 1,
             "num_steps": 9, "pref.rounds": 3, "pref.round_prompts": 8, "algo.group_size": 4,
             "algo.batch_size": 4, "sampling.max_new_tokens": 12, "eval.num_examples": 0,
             "rewards.name": "self_certainty", "pref.pair_rule": "anchored",
             "optim.learning_rate": 3e-3, "checkpoint.every_steps": 2, "logging.stdout": False,
             "logging.tensorboard": False}


@pytest.mark.slow
def test_iterative_dpo_three_rounds_and_resume_after_sigterm(tmp_path, monkeypatch):
  """configs/iterative_dpo.py, shortened (self-certainty scores the samples, rejection anchored
  to the initial model): 3 rounds run end to end with per-round pair statistics logged and
  plotted; SIGTERM mid-round 2 then a rerun gives the uninterrupted run's parameters."""
  full = train(config("iterative_dpo", ITERATIVE), str(tmp_path / "full"))
  records = read_metrics(tmp_path / "full" / "metrics.jsonl")
  rounds = [r for r in records if "round/index" in r]
  assert [(r["round/index"], r["step"]) for r in rounds] == [(0, 0), (1, 3), (2, 6)]
  for r in rounds:
    assert r["round/pairs"] > 0 and r["round/reward_gap"] > 0
    assert r["round/chosen_reward"] - r["round/rejected_reward"] == pytest.approx(
        r["round/reward_gap"], abs=1e-5)
  assert sorted(os.listdir(tmp_path / "full" / "rounds")) == [
      "round_000.npz", "round_001.npz", "round_002.npz"]
  assert os.path.exists(full["preference_plot"])
  assert [r["step"] for r in records if "loss" in r] == list(range(1, 10))

  work = str(tmp_path / "interrupted")
  with sigterm_when(monkeypatch, lambda step, r: r.get("round/index") == 1):
    stopped = train(config("iterative_dpo", ITERATIVE), work)
  assert stopped["preempted"] and checkpoint_steps(work)[-1] == 4  # after round 1's first update
  done = train(config("iterative_dpo", ITERATIVE), work)
  assert not done["preempted"] and done["resumed_from"] == 4
  assert_trees_close(full["params"], done["params"])


def test_iterative_dpo_evaluates_after_rounds_and_every_n_updates(tmp_path, monkeypatch):
  from rlx.runtime import rollouts
  monkeypatch.setattr(rollouts, "evaluate", lambda *a, **k: {"eval/greedy_accuracy": 0.0})
  train(config("iterative_dpo", {**ITERATIVE, "eval.num_examples": 4, "eval.every_steps": 2,
                                 "checkpoint.every_steps": 1000}), str(tmp_path / "run"))
  records = read_metrics(tmp_path / "run" / "metrics.jsonl")
  # Before round 0, every 2 updates, and after each round of 3 updates (steps 3, 6, 9).
  assert [r["step"] for r in records if "eval/greedy_accuracy" in r] == [0, 2, 3, 4, 6, 8, 9]


# One round, one update, on 8 simulated CPU devices: training FSDP over 8, sampling replicated.
MESH_ITERATIVE = {**ITERATIVE, "num_steps": 1, "pref.rounds": 1, "algo.group_size": 2,
                  "algo.batch_size": 8, "sampling.max_new_tokens": 4, "rewards.name": "task",
                  "eval.num_examples": 8, "eval.num_samples": 1, "checkpoint.every_steps": 1000,
                  "mesh.fsdp": -1, "mesh.rules": "fsdp", "mesh.sampling_rules": "replicated"}


def sampling_layout_check(workdir: str) -> dict:
  """Run MESH_ITERATIVE with ``rollouts.sample_groups`` recording, per call, whether every
  parameter it is given lies in the sampling layout, and whether any lies otherwise in the
  training layout (so that the check can tell them apart)."""
  from rlx.runtime import rollouts
  calls = []
  sample_groups = rollouts.sample_groups

  def recording(setup, params, examples, key, **kw):
    lay = setup.layout
    same = lambda x, s: x.sharding.is_equivalent_to(s, x.ndim)
    leaves = jax.tree.leaves(params)
    calls.append({
        "rows": len(examples) * kw.get("n", 1),
        "sampling": all(same(x, s) for x, s in zip(
            leaves, jax.tree.leaves(lay.sampling_shardings(params)), strict=True)),
        "differs_from_train": any(not same(x, s) for x, s in zip(
            leaves, jax.tree.leaves(lay.tree_shardings(params)), strict=True))})
    return sample_groups(setup, params, examples, key, **kw)

  rollouts.sample_groups = recording
  out = train(config("iterative_dpo", MESH_ITERATIVE), workdir)
  return {"devices": jax.device_count(), "calls": calls, "preempted": out["preempted"],
          "params_finite": all(bool(np.all(np.isfinite(np.asarray(x))))
                               for x in jax.tree.leaves(out["params"]))}


def test_iterative_dpo_samples_with_the_sampling_layout():
  """On 8 simulated devices with ``mesh.rules="fsdp"`` and ``mesh.sampling_rules="replicated"``
  every sampler call of iterative DPO (the round's samples, the anchored initial policy's, the
  evaluation's greedy and sampled completions) gets the parameters in the sampling layout."""
  r = results(run_module("tests.runtime.test_preference_runs", devices=8, timeout=300))
  assert r["devices"] == 8 and not r["preempted"] and r["params_finite"], r
  # Eval before and after the round (greedy + sampled), the round's policy and anchor samples.
  assert len(r["calls"]) == 6, r
  assert all(c["sampling"] and c["differs_from_train"] for c in r["calls"]), r


def test_best_worst_pairs_rules():
  from rlx.runtime.preference import best_worst_pairs
  scores = np.array([[0.0, 1.0, 0.5], [1.0, 1.0, 1.0], [0.2, 0.9, 0.1]])
  valid = np.array([[True, True, True], [True, True, True], [True, False, True]])
  # Best vs worst among valid samples; a prompt whose samples tie gives no pair.
  assert best_worst_pairs(scores, valid) == [(0, 1, 0, 1.0, 0.0), (2, 0, 2, 0.2, 0.1)]
  assert best_worst_pairs(scores, valid, min_gap=0.5) == [(0, 1, 0, 1.0, 0.0)]
  # Anchored: the rejected sample is the worst of the initial policy's samples.
  anchor = np.array([[0.4, 0.3, 0.9], [0.0, 2.0, 2.0], [0.5, 0.5, 0.5]])
  assert best_worst_pairs(scores, valid, anchor_scores=anchor, anchor_valid=np.ones_like(valid)) \
      == [(0, 1, 1, 1.0, 0.3), (1, 0, 0, 1.0, 0.0)]


@pytest.mark.slow
def test_policy_judges_itself(tmp_path, monkeypatch):
  """``llm_judge`` in iterative rounds: the policy's greedy completions are the judgements, and
  the judge reads its whole prompt (template, question, completion), not the last
  ``data.max_prompt_len`` tokens."""
  from rlx.rewards import RewardInput, get_reward
  from rlx.runtime import rollouts
  from rlx.runtime.preference import PolicyJudge
  setup = build(config("iterative_dpo", {**ITERATIVE, "sampling.max_new_tokens": 4,
                                         "rewards.name": "llm_judge"}), str(tmp_path))
  seen = []
  sample_groups = rollouts.sample_groups
  monkeypatch.setattr(rollouts, "sample_groups", lambda *a, **k: seen.append(
      sample_groups(*a, **k)) or seen[-1])
  judge = PolicyJudge(setup).bind(setup.init_params)
  long = "Rate this answer to 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12, carefully."
  assert len(setup.tokenizer.encode(long)) > setup.run.data.max_prompt_len
  texts = judge.generate([long, "Rate that, please."])
  assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
  kept = seen[-1]["prompt_mask"][0].sum()
  assert kept == len(setup.tokenizer.encode(setup.formatter(rlx_data.Example(prompt=long)),
                                            add_bos=setup.formatter.add_bos))
  out = get_reward("llm_judge")(RewardInput(prompts=["q1", "q2"], completions=["a", "b"]), judge)
  assert out.scores.shape == (2,)  # an untrained judge's text rarely parses: scored 0, counted
  setup.checkpointer.close()


if __name__ == "__main__":  # the 8-device check, in its own process (XLA_FLAGS set before jax)
  import sys
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    print("RESULTS " + json.dumps(sampling_layout_check(tmp)), flush=True)
  sys.exit(0)
