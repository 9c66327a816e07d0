"""LoRA (``lora.rank > 0``) in every phase, end to end on a tiny model: SFT, GRPO (with its SFT
warm start), PPO (the value model gets adapters of its own and an ``Adapter`` head), DPO, reward
model, iterative DPO and rejection-sampling SFT, and GRPO over an NF4 / int8 quantised base.

For every run (2 steps): each phase leaves the frozen base (every non-``Adapter`` leaf,
quantised codes and scales included) bit-identical while its adapters move; every checkpoint
stores adapters only (no base leaf in the orbax metadata, fewer elements in all than one copy of
the base). SFT and GRPO: a run of 2 steps, then the same config with ``num_steps=4`` in the same
workdir (it resumes) ends on the parameters of an uninterrupted 4-step run.

Every run of this module has the same model and batch shapes (and a constant learning-rate
schedule, so the compiled updates do not depend on ``num_steps``): the persistent compilation
cache serves the repeated compilations.
"""

import ast
import json
import math
import os

import jax
import numpy as np
import pytest

from rlx.models import lora
from rlx.runtime import restore_params, rollouts
from rlx.runtime import run as run_lib
from rlx.runtime.run import train
from tests.algorithms.test_dpo import compilation_cache, jax_cache_dir  # noqa: F401 (fixtures)
from tests.test_configs import load

# The model of every run: synthetic_defaults' widths (d_model 32 after the override, head_dim 16,
# d_ff 128), one layer; rank-4 adapters on every projection.
COMMON = {"model.d_model": 32, "model.n_layers": 1, "lora.rank": 4,
          "optim.schedule": "constant", "optim.warmup_steps": 0, "optim.learning_rate": 1e-2,
          "checkpoint.every_steps": 1000, "logging.stdout": False, "logging.tensorboard": False,
          "eval.num_examples": 0}
SFT_WARM = {"warm_start.batch_size": 8, "warm_start.learning_rate": 1e-2}
# The RL configs ship a cached 400-step warm start: none here (grpo sets a 2-step one, uncached).
RL = {"algo.batch_size": 8, "sampling.max_new_tokens": 8, "rewards.name": "random",
      "warm_start.sft_steps": 0, "warm_start.cache_dir": ""}
PAIRS = {"algo.batch_size": 8, "data.train_size": 64, "data.eval_size": 8,
         "data.difficulty": (1,), "warm_start.sft_steps": 0}
RUNS = {
    "sft": {"algo.batch_size": 8, "algo.micro_batch_size": 4},
    "grpo": {**RL, **SFT_WARM, "algo.group_size": 4, "warm_start.sft_steps": 2},
    # PPO samples one completion per prompt; the value model's adapters train alongside.
    "ppo": {**RL, "algo.group_size": 1},
    "dpo": {**PAIRS, "pref.reference": "online"},
    "rm": PAIRS,
    # One round of 4 prompts × 4 samples scored by self-certainty (no verifier needed).
    "iterative_dpo": {**RL, "warm_start.sft_steps": 0, "pref.rounds": 1, "pref.round_prompts": 4,
                      "algo.group_size": 4, "algo.batch_size": 4,
                      "rewards.name": "self_certainty", "pref.pair_rule": "anchored"},
    # Every sample accepted (random reward with p=1): the SFT rows are the samples.
    "rejection_sft": {**RL, "warm_start.sft_steps": 0, "algo.group_size": 4,
                      "rewards.kwargs": {"p": 1.0}},
}
ADAPTER_KEYS = ("lora_a", "lora_b", "value_head", "score_head")  # where Adapter leaves live
PARAM_GROUPS = ("params", "value_params", "ref", "mu", "nu")  # parameter-shaped subtrees


def config(name, **overrides):
  cfg = load(name)
  for field, value in {**COMMON, **RUNS[name], **overrides}.items():
    node = cfg
    *path, leaf = field.split(".")
    for part in path:
      node = node[part]
    node[leaf] = value
  return cfg


def host_leaves(tree) -> dict:
  """``{path: numpy copy}`` of the non-None leaves of a parameter (partition) tree."""
  if tree is None:
    return {}
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): np.array(jax.device_get(x)) for p, x in flat}


def split_host(params) -> tuple[dict, dict]:
  """``(adapters, frozen base)`` of ``params`` as host copies keyed by path."""
  trainable, frozen = lora.partition(params)
  assert frozen is not None, "no Adapter leaf: the run did not attach LoRA"
  return host_leaves(trainable), host_leaves(frozen)


class PhaseRecorder:
  """Wraps ``run_phase``: host copies of each phase's parameters (policy, and PPO's value
  network) before and after it runs."""

  def __init__(self, monkeypatch):
    self.phases = []
    inner = run_lib.run_phase

    def recording(setup, phase, resume, **kw):
      if not self.phases and not hasattr(self, "init"):  # before any update donates adapters
        self.init = split_host(setup.init_params)
      entry = {"name": phase.name, "phase": phase, "setup": setup,
               "before": self.snapshot(phase.state)}
      out = inner(setup, phase, resume, **kw)
      entry["after"] = self.snapshot(phase.state)
      self.phases.append(entry)
      return out

    monkeypatch.setattr(run_lib, "run_phase", recording)

  @staticmethod
  def snapshot(state):
    out = {"params": split_host(state.params)}
    if state.value_params is not None:
      out["value_params"] = split_host(state.value_params)
    return out


def assert_base_frozen_adapters_moved(rec: PhaseRecorder):
  """Every phase: base leaves bit-identical (and equal to the run's initial base wherever the
  paths match), adapters changed. Returns the number of phases checked."""
  _, init_base = rec.init
  for entry in rec.phases:
    for group, (adapters0, base0) in entry["before"].items():
      adapters1, base1 = entry["after"][group]
      assert base0.keys() == base1.keys() and base0
      for k in base0:
        assert base1[k].dtype == base0[k].dtype, (entry["name"], group, k)
        np.testing.assert_array_equal(base1[k], base0[k], err_msg=f"{entry['name']} {group} {k}")
        if k in init_base:  # a reward / value model's backbone is the policy's base
          np.testing.assert_array_equal(base1[k], init_base[k], err_msg=f"{group} {k} vs init")
      moved = [k for k in adapters0 if not np.array_equal(adapters0[k], adapters1[k])]
      lora_b = [k for k in adapters0 if "lora_b" in k]
      assert lora_b and set(lora_b) <= set(moved), (entry["name"], group,
                                                   sorted(set(lora_b) - set(moved)))
  return len(rec.phases)


def stored_arrays(step_dir: str) -> dict[tuple[str, ...], int]:
  """``{path: number of elements}`` of the arrays an orbax step stores in its ``state`` item
  (the ``None`` leaves of a LoRA tree are recorded without data and left out)."""
  with open(os.path.join(step_dir, "state", "_METADATA")) as f:
    tree = json.load(f)["tree_metadata"]
  return {tuple(ast.literal_eval(k)): math.prod(v["value_metadata"].get("write_shape") or [1])
          for k, v in tree.items() if v["value_metadata"]["value_type"] != "None"}


def assert_checkpoints_hold_adapters_only(workdir: str, init_params):
  """Every checkpoint step: each parameter-shaped array it stores (params, value params,
  reference, Adam moments) is an adapter, and all it stores together has fewer elements than
  one copy of the frozen base (a full fine-tuning checkpoint holds at least three: parameters
  and Adam's two moments)."""
  directory = os.path.join(workdir, "checkpoints")
  steps = [n for n in os.listdir(directory) if n.isdigit()]
  assert steps
  base_elements = sum(x.size for x in jax.tree.leaves(lora.partition(init_params)[1]))
  for step in steps:
    arrays = stored_arrays(os.path.join(directory, step))
    base = [p for p in arrays if any(g in p for g in PARAM_GROUPS)
            and not any(a in p for a in ADAPTER_KEYS)]
    assert not base, f"step {step} stores base leaves: {base[:5]}"
    assert any("lora_a" in p for p in arrays) and not any("kernel_scale" in p for p in arrays)
    assert sum(arrays.values()) < base_elements, (step, sum(arrays.values()), base_elements)


def run_checked(name, tmp_path, monkeypatch, **overrides):
  """Train ``name`` with LoRA for 2 steps; check (a) and (b); returns (summary, recorder)."""
  rec = PhaseRecorder(monkeypatch)
  workdir = str(tmp_path / name)
  out = train(config(name, num_steps=2, **overrides), workdir)
  assert not out["preempted"]
  init_params = rec.phases[0]["setup"].init_params
  assert lora.has_adapters(init_params)
  assert assert_base_frozen_adapters_moved(rec) >= 1
  assert_checkpoints_hold_adapters_only(workdir, init_params)
  return out, rec


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
  # The learning-curve PNGs (matplotlib, ~2 s a run) are not what this module checks.
  monkeypatch.setattr(run_lib, "plot_learning_curves", lambda *a, **k: None)
  monkeypatch.setattr(run_lib.preference, "plot_preference", lambda *a, **k: None)


@pytest.fixture
def no_eval(monkeypatch):
  # rejection_sft evaluates at the end even with eval.num_examples=0 (it has no such guard).
  monkeypatch.setattr(rollouts, "evaluate", lambda *a, **k: {"eval/greedy_accuracy": 0.0})


# --- (a) + (b): every phase ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dpo", "rm", "iterative_dpo", "rejection_sft"])
def test_lora_phase_trains_adapters_only(name, tmp_path, monkeypatch, no_eval):
  _, rec = run_checked(name, tmp_path, monkeypatch)
  assert len(rec.phases) == 1  # no warm start: the phase itself
  if name == "rm":  # the reward model: a LoRA backbone with an Adapter score head
    adapters, _ = rec.phases[-1]["after"]["params"]
    assert any("score_head" in k for k in adapters)


def test_lora_ppo_value_model_has_its_own_adapters(tmp_path, monkeypatch):
  _, rec = run_checked("ppo", tmp_path, monkeypatch)
  entry = rec.phases[-1]
  value_adapters, value_base = entry["after"]["value_params"]
  policy_adapters, policy_base = entry["after"]["params"]
  assert any("value_head" in k for k in value_adapters)
  assert any("lora_a" in k for k in value_adapters)
  # Own adapters (not the policy's arrays) that trained apart from the policy's.
  shared = [k for k in value_adapters if "lora_b" in k and k in policy_adapters]
  assert shared and any(not np.array_equal(value_adapters[k], policy_adapters[k]) for k in shared)
  # The value backbone's frozen base is the policy's.
  for k in value_base:
    if k in policy_base:
      np.testing.assert_array_equal(value_base[k], policy_base[k])


# --- resume: 2 steps, then num_steps=4 in the same workdir = 4 steps uninterrupted --------------

def assert_trees_close(a, b, tol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["sft", pytest.param("grpo", marks=pytest.mark.slow)])
def test_lora_resume_equals_uninterrupted(name, tmp_path, monkeypatch):
  """(a) and (b) on the first 2 steps; the resumed run's parameters (base from the seed, adapters
  and optimizer state from the checkpoint) end where 4 uninterrupted steps do. GRPO: the
  checkpoint after its warm start + 2 RL steps resumes in the RL phase."""
  run_checked(name, tmp_path, monkeypatch)
  workdir = str(tmp_path / name)
  resumed = train(config(name, num_steps=4), workdir)
  assert resumed["resumed_from"] == (4 if name == "grpo" else 2) and not resumed["preempted"]
  full = train(config(name, num_steps=4), str(tmp_path / "full"))
  assert_trees_close(full["params"], resumed["params"])
  _, base_full = split_host(full["params"])
  _, base_resumed = split_host(resumed["params"])
  for k in base_full:
    np.testing.assert_array_equal(base_full[k], base_resumed[k])
  assert_checkpoints_hold_adapters_only(workdir, full["params"])
  # restore_params (checkpoint.init_from, export): adapters read, base taken from ``like``.
  final = resumed["resumed_from"] + 2
  assert_trees_close(restore_params(os.path.join(workdir, "checkpoints"), full["params"],
                                    step=final), resumed["params"], tol=0)


# --- quantised base ----------------------------------------------------------------------------

@pytest.mark.parametrize("quantize", ["nf4", "int8"])
def test_lora_grpo_over_quantised_base(quantize, tmp_path, monkeypatch):
  """GRPO over int8 / NF4 codes (NF4 blocks of 16 split d_model 32, head_dim 16 and d_ff 128):
  codes and scales never change, the adapters train, checkpoints hold no codes or scales. (No
  warm start here: the SFT update over a quantised base is tests/scale/test_lora_mesh.py's.)"""
  _, rec = run_checked("grpo", tmp_path, monkeypatch, **{"lora.quantize": quantize,
                                                         "lora.group_size": 16,
                                                         "warm_start.sft_steps": 0})
  _, base = rec.phases[-1]["after"]["params"]
  kernels = {k: v for k, v in base.items() if "proj" in k and "kernel" in k}
  scales = [k for k in kernels if "kernel_scale" in k]
  codes = [k for k in kernels if "kernel_scale" not in k]
  assert len(scales) == len(codes) == 7, sorted(kernels)
  want = np.uint8 if quantize == "nf4" else np.int8
  assert all(kernels[k].dtype == want for k in codes), {k: kernels[k].dtype for k in codes}
  assert len(rec.phases) == 1
