"""A gymnasium-style text environment plays as an rlx environment, in run_episodes and by config."""

import random

import jax
import numpy as np

from rlx import models
from rlx.data import Example, load_task_tokenizer
from rlx.envs import GymTextEnv, make_env
from rlx.runtime.episodes import run_episodes
from rlx.sampling import Buckets, SamplingParams


class HotCold:
  """Guess a digit 0-9 (gymnasium API over strings): 'hot' / 'cold' hints, reward 1 on a hit;
  truncated after 3 guesses."""

  closed = 0

  def reset(self, seed=None, options=None):
    self.target, self.guesses = random.Random(seed).randrange(10), 0
    return "guess a digit", {}

  def step(self, action):
    self.guesses += 1
    digits = [int(c) for c in action if c.isdigit()]
    hit = bool(digits) and digits[0] == self.target
    hint = "hot" if digits and abs(digits[0] - self.target) <= 2 else "cold"
    return hint, float(hit), hit, self.guesses >= 3 and not hit, {"guesses": 1}

  def close(self):
    HotCold.closed += 1


def make_hot_cold():
  return HotCold()


def test_gym_env_adapter_steps_and_ends():
  env = GymTextEnv(HotCold, observation_format="<obs>{obs}</obs>")
  first = env.reset(Example(prompt="Play.", info={"seed": 3}))
  assert first == "Play.\nguess a digit"
  target = env.env.target
  r = env.step(str((target + 5) % 10))
  assert r.observation == "<obs>cold</obs>" and not r.done and r.info == {"guesses": 1}
  r = env.step(str(target))
  assert r.done and r.reward == 1.0 and r.observation == ""
  env.close()
  assert HotCold.closed >= 1


def test_gym_env_by_name_in_run_episodes():
  tok = load_task_tokenizer()
  config = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                              head_dim=16, d_ff=64)
  graphdef, params = models.init_params(config, seed=0)
  envs = [make_env("gym", factory="tests.envs.test_gym:make_hot_cold") for _ in range(2)]
  out = run_episodes(graphdef, params, tok, envs, [Example(prompt="Play.")] * 2,
                     SamplingParams(max_new_tokens=4), jax.random.key(0), max_turns=5,
                     max_obs_tokens=8, buckets=Buckets(batch_sizes=(2,), new_tokens=(8,)))
  # every episode ends by the environment (a hit or truncation after 3 guesses), never max_turns
  assert all(f == "done" for f in out["episode_finish"]) and (out["turns"] <= 3).all()
  np.testing.assert_array_equal(out["finish_reason"], [0, 0])  # STOP: the environment ended it
  assert set(np.unique(out["rewards"])) <= {0.0, 1.0}
