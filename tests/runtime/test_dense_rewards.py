"""Dense rewards end to end: a reward's ``token_scores`` are the only learning signal (scalar
score 0), and PPO learns the token-level preference they express (+1 per occurrence of a
target token, here any digit). Before the one-runtime refactor PPO was handed zeros for token rewards and this
run could not learn."""

import numpy as np
import pytest

from rlx import config as rlx_config
from rlx.rewards import RewardOutput, register_reward
from rlx.runtime.metrics import read_metrics
from rlx.runtime.run import train

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
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, algo)
  cfg.num_steps = steps
  cfg.model.d_model = 32
  cfg.model.n_layers = 1
  cfg.algo.batch_size = 16
  if cfg.algo.group_size > 1:
    cfg.algo.group_size = 4
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
  cfg.logging.stdout = False
  return cfg


def target_counts(workdir):
  """Mean number of target tokens per completion, per RL step (``reward/token_sum``)."""
  return [r["reward/token_sum"] for r in read_metrics(str(workdir / "metrics.jsonl"))
          if "reward/token_sum" in r]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "reinforce_pp"])
def test_token_scores_alone_teach_a_token_preference(tmp_path, algo):
  steps = 40
  train(dense_config(algo, steps), str(tmp_path))
  counts = target_counts(tmp_path)
  assert len(counts) == steps
  first, last = np.mean(counts[:8]), np.mean(counts[-8:])
  # From a random tiny policy digits are ~10/512 of the tokens (~0.2 per completion); the
  # dense reward alone must make them several times more frequent.
  assert last > 3 * first + 0.5, (algo, first, last, counts)
