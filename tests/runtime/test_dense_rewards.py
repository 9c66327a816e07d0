"""Dense rewards end to end: a reward's ``token_scores`` are the only learning signal (scalar
score 0), and PPO learns the token-level preference they express (+1 per occurrence of a
target token, here any digit). Before the one-runtime refactor PPO was handed zeros for token rewards and this
run could not learn."""

import jax
import numpy as np
import pytest

from rlx.rewards import RewardOutput, register_reward
from rlx.runtime.metrics import read_metrics
from rlx.runtime import rollouts
from rlx.runtime.run import build, train
from tests.runtime.test_loop import tiny_rl_config

from rlx.data import load_task_tokenizer

TARGETS = np.array([load_task_tokenizer().encode(d)[0] for d in "0123456789"])  # digit tokens


class TargetTokenBonus:
  """+1 on every completion token that is a digit; scalar score 0."""

  name = "target_token_bonus"

  def __call__(self, batch, scorer=None):
    ids, mask = np.asarray(batch.completion_ids), np.asarray(batch.completion_mask)
    token_scores = (np.isin(ids, TARGETS) * mask).astype(np.float32)
    return RewardOutput(np.zeros(len(ids), np.float32), token_scores)


register_reward("target_token_bonus", TargetTokenBonus, overwrite=True)


def dense_config(algo, steps):
  cfg = tiny_rl_config(algo, num_steps=steps)
  cfg.algo.batch_size = 16
  cfg.algo.micro_batch_size = 0
  cfg.algo.max_refills = 0
  cfg.sampling.max_new_tokens = 12
  cfg.sampling.stop_at_eos = False
  cfg.rewards.name = "target_token_bonus"
  cfg.eval.reward = "task"
  cfg.eval.num_examples = 2
  cfg.eval.num_samples = 1
  cfg.eval.every_steps = 0
  cfg.checkpoint.every_steps = 1000
  cfg.optim.learning_rate = 3e-3
  return cfg


def digits_per_completion(setup, params) -> float:
  """Mean number of digit tokens in sampled completions of 16 training prompts (4 each)."""
  examples = [setup.train_source[i] for i in range(16)]
  data = rollouts.sample_groups(setup, params, examples, jax.random.PRNGKey(7), n=4)
  hits = np.isin(data["completion_tokens"], TARGETS) * data["completion_mask"]
  return float(hits.sum(axis=1).mean())


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "reinforce_pp"])
def test_token_scores_alone_teach_a_token_preference(tmp_path, algo):
  cfg = dense_config(algo, steps=40)
  summary = train(cfg, str(tmp_path / "run"))
  setup = build(cfg, str(tmp_path / "probe"))  # the same initial policy (same seed)
  before = digits_per_completion(setup, setup.init_params)
  after = digits_per_completion(setup, summary["params"])
  setup.checkpointer.close()
  # From a random tiny policy digits are ~10/512 of the tokens (~0.2 per completion); the dense
  # reward alone must make them several times more frequent.
  assert after > 3 * before + 0.5, (algo, before, after)
  logged = [r["reward/token_sum"] for r in read_metrics(str(tmp_path / "run" / "metrics.jsonl"))
            if "reward/token_sum" in r]
  assert len(logged) == 40 and np.mean(logged[-8:]) > np.mean(logged[:8])
