"""Format, exact match, multiple choice, length shaping, spurious and model-based rewards."""

import numpy as np
import pytest

from rlx.rewards import (DapoOverlong, FormatOnlyReward, IncorrectLabelReward, InvertedReward,
                         RandomReward, RewardModelReward, ThinkPruneCap,
                         dapo_overlong_penalty, extract_choice, get_reward, math_answer,
                         overlong_filter_mask, parse_judge_score)
from rlx.rewards.testing import make_batch


def test_format_regex():
  comps = ["<think>hm</think> <answer>4</answer>", "<answer>4</answer>", "<think>x</think>"]
  batch = make_batch(["q"] * 3, comps)
  assert get_reward("format")(batch).scores.tolist() == [1, 0, 0]
  assert get_reward("format", mismatch=-1.0)(batch).scores.tolist() == [1, -1, -1]
  assert get_reward("format", pattern=r"<answer>\d+</answer>")(batch).scores.tolist() == [1, 1, 0]


def test_exact_match():
  batch = make_batch(["q"] * 3, ["<answer> Paris. </answer>", "paris", "Lyon"],
                     answers=["paris", ["Paris", "PARIS"], "Paris"])
  assert get_reward("exact_match")(batch).scores.tolist() == [1, 1, 0]


@pytest.mark.parametrize("text,letter", [
    ("The answer is (B).", "B"), ("\\boxed{C}", "C"), ("Answer: d", "D"), ("I pick (A)", "A"),
    ("A. is wrong, so B.", "B"), ("no idea", None)])
def test_extract_choice(text, letter):
  assert extract_choice(text) == letter


def test_multiple_choice():
  comps = ["answer is (B)", "it is Paris", "\\boxed{A}"]
  meta = [{"answer": "B"}, {"answer": 1, "choices": ["Lyon", "Paris"]}, {"answer": "(B)"}]
  assert get_reward("multiple_choice")(make_batch(["q"] * 3, comps, metadata=meta)).scores.tolist() == [1, 1, 0]


def test_thinkprune_and_dapo():
  batch = make_batch(["q"] * 3, ["\\boxed{1}", "\\boxed{1}", "\\boxed{2}"], answers=["1"] * 3,
                     finish_reasons=["stop", "length", "stop"])
  out = ThinkPruneCap(math_answer())(batch)
  assert out.scores.tolist() == [1, 0, 0]
  assert get_reward("thinkprune", inner={"name": "math_answer"})(batch).scores.tolist() == [1, 0, 0]
  # L_max 20, buffer 5: L_exp = 15
  np.testing.assert_allclose(dapo_overlong_penalty([10, 15, 17, 20, 25], 20, 5),
                             [0, 0, -0.4, -1, -1], atol=1e-6)
  assert overlong_filter_mask(["stop", "length"]).tolist() == [1, 0]
  long = make_batch(["q"] * 2, ["x" * 10, "x" * 18], finish_reasons=["stop", "length"])
  out = DapoOverlong(20, 5, filter_truncated=True)(long)
  np.testing.assert_allclose(out.scores, [0, -0.6], atol=1e-6)
  assert out.sample_mask.tolist() == [1, 0]


def test_random_reward_is_seeded_by_step():
  b = make_batch(["q"] * 2000, ["x"] * 2000, step=7)
  r = RandomReward(p=0.3, seed=1)
  a1, a2 = r(b).scores, r(b).scores
  np.testing.assert_array_equal(a1, a2)
  assert abs(a1.mean() - 0.3) < 0.05
  b8 = make_batch(["q"] * 2000, ["x"] * 2000, step=8)
  assert (r(b8).scores != a1).any()


def test_inverted_format_only_incorrect_label():
  batch = make_batch(["q"] * 4, ["\\boxed{5}", "\\boxed{6}", "six", "\\boxed{x}"],
                     answers=["5", "5", "5", "abc"])
  assert InvertedReward(math_answer())(batch).scores.tolist() == [0, 1, 1, 1]
  assert get_reward("inverted", inner="math_answer", mode="negate")(batch).scores.tolist() == [-1, 0, 0, 0]
  assert FormatOnlyReward()(batch).scores.tolist() == [1, 1, 0, 1]
  out = IncorrectLabelReward()(batch)
  assert out.scores.tolist() == [0, 1, 0, 0]
  assert out.extras["no_label"].tolist() == [0, 0, 0, 1]
  given = make_batch(["q"], ["\\boxed{7}"], metadata=[{"answer": "5", "incorrect_answer": "7"}])
  assert IncorrectLabelReward()(given).scores.tolist() == [1]


def test_reward_model_and_judge():
  batch = make_batch(["q"] * 4, ["a", "bb", "ccc", "dddd"], answers=["x"] * 4)
  rm = RewardModelReward(lambda p, ids, m: m.sum(-1) * 1.0)
  assert rm(batch).scores.tolist() == [1, 2, 3, 4]
  assert abs(RewardModelReward(lambda p, ids, m: m.sum(-1) * 1.0, normalize=True)(batch).scores.mean()) < 1e-6
  replies = ["Score: 8", "I refuse", "Rating: 11", "7/10"]
  seen = []

  def generate(prompts):
    seen.extend(prompts)
    return replies

  out = get_reward("llm_judge", generate=generate)(batch)
  np.testing.assert_allclose(out.scores, [0.8, 0, 0, 0.7])
  assert out.extras["failures"].tolist() == [0, 1, 1, 0]
  assert "Reference answer: x" in seen[0] and "Response: a" in seen[0]
  assert parse_judge_score("score = 3.5") == 0.35
  bad = get_reward("llm_judge", generate=lambda p: ["Score: 1"])(batch)  # wrong count: contained
  assert bad.scores.tolist() == [0, 0, 0, 0] and bad.extras["failures"].sum() == 4
