"""The RL loop end to end on a tiny model: every GRPO-family preset runs 2 steps with finite
metrics; a run resumes in the RL phase."""

import math
import os

import pytest

from rlx import config as rlx_config
from rlx.runtime.metrics import read_metrics
from rlx.runtime.run import train

RL_ALGOS = ["grpo", "dr_grpo", "dapo", "gspo", "cispo", "rloo", "reinforce_pp",
            "reinforce_pp_baseline", "remax", "ppo"]


def tiny_rl_config(algo, num_steps=2):
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, algo)
  cfg.num_steps = num_steps
  cfg.model.d_model = 32
  cfg.model.n_layers = 1
  cfg.algo.batch_size = 8
  if cfg.algo.group_size > 1:
    cfg.algo.group_size = 4
  cfg.algo.micro_batch_size = 4
  cfg.algo.max_refills = 1
  cfg.sampling.max_new_tokens = 16
  cfg.eval.num_examples = 4
  cfg.eval.num_samples = 2
  cfg.logging.stdout = False
  return cfg


def check_finite(records):
  for r in records:
    for k, v in r.items():
      if isinstance(v, float):
        assert math.isfinite(v), (k, v)


def run_algo(algo, tmp_path):
  out = train(tiny_rl_config(algo), str(tmp_path / algo))
  records = read_metrics(os.path.join(tmp_path, algo, "metrics.jsonl"))
  check_finite(records)
  steps = [r for r in records if r.get("phase") == "rl"]
  assert [r["step"] for r in steps] == [1, 2]
  if algo != "dapo":  # DAPO's dynamic sampling may drop every group of an untrained model
    assert all("loss/total" in r for r in steps)
  assert len(out["evals"]) == 2 and "eval/greedy_accuracy" in out["evals"][0]
  return steps


def test_compile_stats_count_new_programs():
  import jax
  import jax.numpy as jnp
  from rlx.runtime.metrics import compile_stats
  before = compile_stats()
  jax.jit(lambda x: jnp.sin(x) * 3.25 + before["programs"])(jnp.ones(7)).block_until_ready()
  after = compile_stats()
  assert after["programs"] >= before["programs"] + 1 and after["seconds"] > before["seconds"]


def test_grpo_loop_two_steps(tmp_path):
  steps = run_algo("grpo", tmp_path)
  assert "kl" in steps[0] and "reward/correct" in steps[0]
  # Compilation is counted (in a test process other tests may have compiled these programs
  # already, so the first step's count can be small): nothing compiles again in the second step.
  assert steps[0]["compile/programs"] >= 0 and steps[0]["compile/seconds"] >= 0
  assert steps[1]["compile/programs"] == steps[0]["compile/programs"]
  # π_old is the sampler's (float32 model, algo.old_logprobs="auto"): no recomputed-vs-sampler gap
  assert "sampler_trainer_logp_diff" not in steps[0]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_reference_dtype_keeps_its_own_copy(dtype, tmp_path):
  # float32 is the parameters' dtype: the reference must still not share the policy's buffers,
  # which the first update donates.
  cfg = tiny_rl_config("grpo")
  cfg.mesh.reference_dtype = dtype
  train(cfg, str(tmp_path))
  steps = [r for r in read_metrics(os.path.join(tmp_path, "metrics.jsonl"))
           if r.get("phase") == "rl"]
  assert [r["step"] for r in steps] == [1, 2]
  assert all(math.isfinite(r["kl"]) for r in steps)


@pytest.mark.slow
@pytest.mark.parametrize("algo", [a for a in RL_ALGOS if a != "grpo"])
def test_every_rl_algorithm_runs_two_steps(algo, tmp_path):
  steps = run_algo(algo, tmp_path)  # asserts finite metrics, two RL steps and two evaluations
  assert len(steps) == 2


def test_rl_run_resumes_in_rl_phase(tmp_path):
  cfg = tiny_rl_config("grpo", num_steps=3)
  cfg.checkpoint.every_steps = 2
  full = train(cfg, str(tmp_path / "full"))
  # Same run, stopped after 2 steps (the checkpoint), then continued to 3.
  cfg2 = tiny_rl_config("grpo", num_steps=2)
  train(cfg2, str(tmp_path / "split"))
  resumed = train(cfg, str(tmp_path / "split"))
  assert resumed["resumed_from"] == 2
  import jax
  import numpy as np
  for a, b in zip(jax.tree.leaves(full["params"]), jax.tree.leaves(resumed["params"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_staged_curriculum_from_the_config_advances_in_the_rl_phase(tmp_path):
  """``data.curriculum_stages`` turns the staged curriculum on: the RL phase draws prompts from
  the current stage, records each step's pass rate, and logs ``curriculum/stage``."""
  cfg = tiny_rl_config("grpo", num_steps=3)
  cfg.data.curriculum_stages = (1, (2, 3))
  cfg.data.curriculum_steps_per_stage = 1
  cfg.checkpoint.every_steps = 2
  train(cfg, str(tmp_path))
  records = read_metrics(str(tmp_path / "metrics.jsonl"))
  stages = [r["curriculum/stage"] for r in records if "curriculum/stage" in r]
  assert stages == [0, 1, 1]


def _staleness_config(num_steps, staleness):
  cfg = tiny_rl_config("grpo", num_steps=num_steps)
  cfg.algo.max_staleness = staleness
  cfg.optim.learning_rate = 1e-2  # the policy moves visibly between two steps (an untrained
  cfg.algo.entropy_coef = 0.1  # model's rewards are all 0: the entropy bonus has a gradient)
  cfg.checkpoint.every_steps = 3
  return cfg


def test_bounded_staleness(tmp_path):
  """max_staleness=1: batches drawn ahead are sampled by the previous step's policy (their ratio
  to the updated policy is off 1 at the first minibatch; a synchronous batch's is 1 to float32
  rounding); 0 is the synchronous loop, record for record; a checkpoint never has a batch drawn
  ahead, so a run stopped at one and resumed ends where an uninterrupted run does. (0 runs the
  synchronous loop's own code: nothing is drawn ahead.)"""
  import jax
  import numpy as np
  logs = {}
  for name, staleness in (("zero", 0), ("one", 1)):
    out = train(_staleness_config(5, staleness), str(tmp_path / name))
    logs[name] = ([{k: v for k, v in r.items() if not k.startswith(("time_s", "compile/"))}
                   for r in read_metrics(os.path.join(tmp_path, name, "metrics.jsonl"))], out)
  steps = [r for r in logs["one"][0] if r.get("phase") == "rl"]
  sync_steps = [r for r in logs["zero"][0] if r.get("phase") == "rl"]
  assert steps[0] == sync_steps[0]  # nothing is drawn ahead of the first step
  off = [abs(r["ratio_max"] - 1) + abs(r["ratio_min"] - 1) for r in steps]
  # Drawn ahead (stale) at 1-based steps 2, 3 and 5; step 4 follows the checkpoint at 3.
  assert off[0] < 1e-4 and off[3] < 1e-4, off
  assert min(off[1], off[2], off[4]) > 1e-3, off
  # Stopped at the checkpoint (step 3) and resumed: the same parameters as without the stop.
  train(_staleness_config(3, 1), str(tmp_path / "split"))
  resumed = train(_staleness_config(5, 1), str(tmp_path / "split"))
  assert resumed["resumed_from"] == 3
  for a, b in zip(jax.tree.leaves(logs["one"][1]["params"]), jax.tree.leaves(resumed["params"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
