"""Host-side reward shaping and evaluation pieces: ThinkPrune's length cap, maj@k voting."""

import numpy as np

from rlx import config as rlx_config
from rlx.data import TaskSource
from rlx.runtime.rollouts import RewardFn, answer_key, majority_correct
from rlx.sampling import LENGTH, STOP


def test_majority_vote_picks_the_most_frequent_answer():
  assert majority_correct(["3", "4", "4", None], np.array([1, 0, 0, 0])) is False
  assert majority_correct(["3", "4", "3", "4"], np.array([1, 0, 1, 0])) is True  # tie: first seen
  assert majority_correct([None, None], np.array([0, 0])) is False
  assert majority_correct([None, "7", None], np.array([0, 1, 0])) is True  # empty never wins


def test_answer_key_normalises_task_answers():
  run = rlx_config.validate(rlx_config.default_config())
  assert answer_key(run, "5+3=8\nAnswer:  8 .") == answer_key(run, "Answer: 8") == "8"
  assert answer_key(run, "no answer here") is None


def test_length_cap_scores_truncated_completions_and_evaluation_ignores_it():
  cfg = rlx_config.default_config()
  cfg.rewards.length_cap = True
  cfg.rewards.truncated_score = -0.5
  run = rlx_config.validate(cfg)
  src = TaskSource("calculation", size=4, seed=0, difficulty=1)
  examples = [src[i] for i in range(4)]
  texts = [f"Answer: {ex.answer}" for ex in examples[:3]] + ["Answer: nonsense"]
  rollout = {"finish_reason": np.array([STOP, LENGTH, STOP, LENGTH]),
             "lengths": np.array([3, 64, 3, 64])}
  fn = RewardFn(run)
  scored = fn(examples, texts, rollout, 0)
  np.testing.assert_array_equal(scored.raw, [1, 1, 1, 0])
  np.testing.assert_array_equal(scored.scores, [1, -0.5, 1, -0.5])
  assert scored.metrics["reward/length_capped"] == 0.5
  assert scored.token_scores is None  # the task verifier gives no dense rewards
  unshaped = fn(examples, texts, rollout, 0, shaped=False).scores
  np.testing.assert_array_equal(unshaped, [1, 1, 1, 0])
