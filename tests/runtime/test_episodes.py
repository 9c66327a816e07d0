"""Multi-turn episodes: a 3-turn trajectory's sampler log-probs equal teacher forcing of the whole
sequence with observation tokens excluded; environments and tools that fail end only their own
episode or turn, counted; budgets end episodes with their finish reason."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import core, models
from rlx.data import load_task_tokenizer
from rlx.envs import Environment, StepResult, ToolEnv, calculator
from rlx.runtime.episodes import run_episodes
from rlx.sampling import Buckets, SamplingParams

CFG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         head_dim=8, d_ff=64, init_std=0.3)
BUCKETS = Buckets(prompt_lengths=(16, 32), batch_sizes=(4,), new_tokens=(8,))
SP = SamplingParams(temperature=1.0, max_new_tokens=6)


@pytest.fixture(scope="module")
def setup():
  return models.init_params(CFG, seed=0), load_task_tokenizer()


class Scripted(Environment):
  """Turns 1 and 2 answer with an observation and reward 0.25; turn 3 ends with reward 1.
  ``fail_at``: the turn whose step raises."""

  def __init__(self, fail_at=None):
    self.fail_at, self.turn = fail_at, 0

  def reset(self, example):
    return example["prompt"]

  def step(self, action):
    self.turn += 1
    if self.turn == self.fail_at:
      raise RuntimeError("environment crashed")
    if self.turn == 3:
      return StepResult(reward=1.0, done=True)
    return StepResult(observation=f"<obs>{self.turn}{self.turn}</obs>", reward=0.25,
                      info={"tool_calls": 1})


def _teacher_forced_logprobs(graphdef, params, out):
  tokens = jnp.concatenate([out["prompt_tokens"], out["completion_tokens"]], axis=1)
  mask = jnp.concatenate([out["prompt_mask"].astype(jnp.float32), out["completion_mask"]], axis=1)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
  logits, _ = models.apply(graphdef, params, tokens, positions, mask)
  p = out["prompt_tokens"].shape[1]
  return core.logprobs_from_logits(logits[:, p - 1:-1], out["completion_tokens"], 1.0)


def test_three_turn_logprobs_equal_teacher_forcing_with_observations_masked(setup):
  (graphdef, params), tok = setup
  examples = [{"prompt": p} for p in ("Calculate 1 + 2.", "Solve x.", "Hi")]
  out = run_episodes(graphdef, params, tok, [Scripted() for _ in examples], examples, SP,
                     jax.random.key(0), max_turns=3, max_obs_tokens=16, buckets=BUCKETS)
  assert list(out["turns"]) == [3, 3, 3] and out["episode_finish"] == ["done"] * 3
  np.testing.assert_array_equal(out["rewards"], [1, 1, 1])
  np.testing.assert_array_equal(out["tool_calls"], [2, 2, 2])
  lm, cm = out["loss_mask"], out["completion_mask"]
  for i in range(3):
    n = int(cm[i].sum())
    toks = out["completion_tokens"][i, :n].tolist()
    obs = [np.asarray(tok.encode(f"<obs>{k}{k}</obs>")) for k in (1, 2)]
    # the two observations sit where the loss mask is 0, in order, and nowhere else
    runs = np.split(np.arange(n), np.where(np.diff(lm[i, :n]) != 0)[0] + 1)
    zero_runs = [r for r in runs if lm[i, r[0]] == 0]
    assert [toks[r[0]:r[-1] + 1] for r in zero_runs] == [o.tolist() for o in obs]
    assert out["obs_tokens"][i] == sum(map(len, obs))
    assert out["lengths"][i] == n - out["obs_tokens"][i]
    # dense rewards: 0.25 on the last token of actions 1 and 2
    ends = [r[0] - 1 for r in zero_runs]
    np.testing.assert_allclose(np.nonzero(out["token_rewards"][i])[0], ends)
    np.testing.assert_allclose(out["token_rewards"][i, ends], [0.25, 0.25])
  tf = np.asarray(_teacher_forced_logprobs(graphdef, params, out))
  np.testing.assert_allclose(out["logprobs"], tf * lm, atol=1e-5, rtol=1e-5)
  assert (out["logprobs"][lm == 0] == 0).all()


def test_an_action_cut_by_the_turn_budget_is_closed_before_its_observation(setup):
  (graphdef, params), tok = setup
  examples = [{"prompt": p} for p in ("a b", "Solve x.", "Hi", "c")]
  end = 7  # stands for a chat template's end-of-turn token
  out = run_episodes(graphdef, params, tok, [Scripted() for _ in examples], examples,
                     SamplingParams(temperature=1.0, max_new_tokens=3), jax.random.key(6),
                     max_turns=3, max_obs_tokens=16, end_of_turn=[end], buckets=BUCKETS)
  lm, cm = out["loss_mask"], out["completion_mask"]
  cut = stopped = 0
  for i in range(len(examples)):
    toks = out["completion_tokens"][i, :int(cm[i].sum())].tolist()
    for j in np.nonzero(np.diff(lm[i, :len(toks)]) < 0)[0]:  # the last token of an action
      obs = toks[j + 1:j + 1 + len(tok.encode("<obs>11</obs>")) + 1]
      if toks[j] == tok.eos_id:  # stopped: the observation follows as it is
        stopped += 1
        assert obs[0] != end
      else:  # cut off at 3 tokens: closed first, with loss mask 0
        cut += 1
        assert obs[0] == end and lm[i, j + 1] == 0
  assert cut and (stopped or cut >= 8)


def test_a_crashing_environment_ends_only_its_episode(setup):
  (graphdef, params), tok = setup
  envs = [Scripted(), Scripted(fail_at=2), Scripted()]
  examples = [{"prompt": "a b"}] * 3
  out = run_episodes(graphdef, params, tok, envs, examples, SP, jax.random.key(1), max_turns=3,
                     max_obs_tokens=16, buckets=BUCKETS)
  assert out["episode_finish"] == ["done", "env_error", "done"]
  np.testing.assert_array_equal(out["env_errors"], [0, 1, 0])
  assert out["env_error_messages"] == ["", "RuntimeError: environment crashed", ""]
  np.testing.assert_array_equal(out["turns"], [3, 2, 3])
  np.testing.assert_array_equal(out["finish_reason"] == 0, [True, False, True])


def test_budgets_end_episodes_with_their_reason(setup):
  (graphdef, params), tok = setup
  examples = [{"prompt": "a b"}] * 2
  out = run_episodes(graphdef, params, tok, [Scripted(), Scripted()], examples, SP,
                     jax.random.key(2), max_turns=2, max_obs_tokens=16, buckets=BUCKETS)
  assert out["episode_finish"] == ["max_turns"] * 2 and list(out["turns"]) == [2, 2]
  np.testing.assert_allclose(out["rewards"], [0.25, 0.25])  # the last turn's reward
  out = run_episodes(graphdef, params, tok, [Scripted(), Scripted()], examples, SP,
                     jax.random.key(2), max_turns=3, max_obs_tokens=16, max_episode_tokens=10,
                     buckets=BUCKETS)
  assert out["episode_finish"] == ["token_budget"] * 2 and list(out["turns"]) == [1, 1]
  assert out["obs_tokens"].sum() == 0


class ToolCaller(Environment):
  """Wraps a ToolEnv and makes every turn call ``tool`` (the tiny model cannot write calls)."""

  def __init__(self, tool):
    self.inner = ToolEnv(tools={"slow": lambda s: time.sleep(30) or "never",
                                "loud": lambda s: "x" * 100_000_000,
                                "bad": lambda s: 1 / 0,
                                "calc": calculator},
                         tool_timeout=0.5, max_obs_chars=20)
    self.tool = tool

  def reset(self, example):
    return self.inner.reset(example)

  def step(self, action):
    return self.inner.step(f"<tool>{self.tool}: 6*7</tool>")


def test_tools_that_hang_raise_or_flood_end_only_their_turn(setup):
  (graphdef, params), tok = setup
  tools = ["slow", "loud", "bad", "calc"]
  examples = [{"prompt": "q", "answer": "42"}] * 4
  t0 = time.monotonic()
  out = run_episodes(graphdef, params, tok, [ToolCaller(t) for t in tools], examples, SP,
                     jax.random.key(3), max_turns=2, max_obs_tokens=60,
                     buckets=Buckets(prompt_lengths=(16, 64), batch_sizes=(4,), new_tokens=(8,)))
  assert time.monotonic() - t0 < 20  # the hung tool cost its timeout, not 30 s
  np.testing.assert_array_equal(out["tool_calls"], [2, 2, 2, 2])
  np.testing.assert_array_equal(out["tool_errors"], [2, 0, 2, 0])
  assert out["episode_finish"] == ["max_turns"] * 4
  # one observation each (after turn 1; the episode ends after turn 2)
  obs = [tok.decode(out["completion_tokens"][i, :int(out["completion_mask"][i].sum())][
      out["loss_mask"][i, :int(out["completion_mask"][i].sum())] == 0].tolist()) for i in range(4)]
  # (messages cut at max_obs_chars=20 like any output)
  assert obs[0] == "<obs>error: slow ran past</obs>" and obs[1] == "<obs>" + "x" * 20 + "</obs>"
  assert obs[2] == "<obs>error: ZeroDivisionE</obs>" and obs[3] == "<obs>42</obs>"


def test_tool_env_scores_the_final_answer_and_parses_calls():
  env = ToolEnv(tools=("calculator",))
  assert env.reset({"prompt": "Calculate 6 * 7.", "answer": "42"}) == "Calculate 6 * 7."
  r = env.step("Let me compute. <tool>calculator: 6 * 7</tool>")
  assert r.observation == "<obs>42</obs>" and not r.done and r.info["tool_calls"] == 1
  r = env.step("<tool>nope: 1</tool>")
  assert r.info["tool_error"] == 1 and "unknown tool" in r.observation
  assert env.step("Answer: 42").reward == 1.0 and env.step("Answer: 41").reward == 0.0


class TwoTurns(Environment):
  """Answers the first turn with an observation; the second turn's reward is its action's
  share of digit characters (so rewards vary within a group)."""

  def reset(self, example):
    self.turn = 0
    return example.prompt

  def step(self, action):
    self.turn += 1
    if self.turn == 1:
      return StepResult(observation="<obs>7</obs>", reward=0.0, info={"tool_calls": 1})
    return StepResult(reward=sum(c.isdigit() for c in action) / max(1, len(action)), done=True)


def test_rl_run_trains_on_episodes(tmp_path):
  import math

  from rlx.envs import register_env
  from rlx.runtime.metrics import read_metrics
  from rlx.runtime.run import train
  from tests.runtime.test_loop import tiny_rl_config

  register_env("two_turns_test", TwoTurns, overwrite=True)
  cfg = tiny_rl_config("grpo")
  cfg.env.name = "two_turns_test"
  cfg.env.max_turns = 3
  cfg.env.max_obs_tokens = 16
  cfg.eval.every_steps = 0
  train(cfg, str(tmp_path))
  steps = [r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if r.get("phase") == "rl"]
  assert len(steps) == 2
  for r in steps:
    assert r["env/turns"] == 2 and r["env/finish/done"] == 1 and r["env/obs_tokens"] > 0
    assert r["env/tool_use_rate"] == 1 and math.isfinite(r["loss/total"])


def test_env_config_errors_name_the_field():
  from rlx import config as rlx_config
  from tests.runtime.test_loop import tiny_rl_config
  cfg = tiny_rl_config("grpo")
  cfg.env.name = "tools"
  cfg.env.tools = ("calculator", "browser")
  with pytest.raises(ValueError, match=r"env.tools='browser'.*calculator"):
    rlx_config.validate(cfg)
  cfg.env.tools = ("calculator",)
  cfg.env.max_turns = 0
  with pytest.raises(ValueError, match="env.max_turns"):
    rlx_config.validate(cfg)
  cfg = tiny_rl_config("remax")
  cfg.env.name = "tools"
  with pytest.raises(ValueError, match="env.name"):
    rlx_config.validate(cfg)


def test_python_tool_keeps_state_within_an_episode_and_contains_failures():
  from rlx.rewards.sandbox import SandboxConfig, sandbox_capabilities
  if not sandbox_capabilities("auto")["works"]:
    pytest.skip("no kernel isolation on this machine")
  env = ToolEnv(tools=("python",), sandbox_config=SandboxConfig(timeout=2.0))
  env.reset({"prompt": "q", "answer": "6"})
  r = env.step("<tool>python: x = 6\nprint(x * 7)</tool>")
  assert r.observation == "<obs>42\n</obs>" and r.info["tool_error"] == 0
  r = env.step("<tool>python: print(x + 1)</tool>")  # x from the first call; no re-print of 42
  assert r.observation == "<obs>7\n</obs>"
  r = env.step("<tool>python: 1/0</tool>")
  assert r.info["tool_error"] == 1 and "ZeroDivisionError" in r.observation
  r = env.step("<tool>python: print(x)</tool>")  # the failed cell is not replayed
  assert r.observation == "<obs>6\n</obs>"
  assert ToolEnv(tools=("python",)).tools["python"] is not env.tools["python"]  # per episode


def test_dr_grpo_norm_constant_defaults_to_the_episode_width():
  from rlx import config as rlx_config
  from tests.runtime.test_loop import tiny_rl_config
  cfg = tiny_rl_config("dr_grpo")
  cfg.env.name = "tools"
  cfg.env.max_turns, cfg.env.max_obs_tokens = 3, 10
  run = rlx_config.validate(cfg)
  assert run.algo.norm_constant == 3 * 16 + 2 * 10 == run.env.completion_width(16)
  cfg.algo.norm_constant = 7
  assert rlx_config.validate(cfg).algo.norm_constant == 7
