"""Registry and composition."""

import numpy as np
import pytest

from rlx.rewards import (BatchReward, Component, CompositeReward, SafeReward, compose, get_reward,
                         list_rewards, register_reward, reward_metrics)
from rlx.rewards.testing import make_batch

EXPECTED_NAMES = {
    "math_answer", "exact_match", "multiple_choice", "format", "code", "thinkprune",
    "dapo_overlong", "overlong_filter", "self_certainty", "borda_vote", "majority_vote",
    "semantic_entropy", "co_reward", "rlpr", "laser", "self_aligned", "answer_confidence",
    "episodic_memory", "reward_model", "llm_judge", "random", "inverted", "format_only",
    "incorrect_label"}


def test_registry_names():
  assert EXPECTED_NAMES <= set(list_rewards())


def test_unknown_name_lists_known():
  with pytest.raises(KeyError) as e:
    get_reward("math_anwser")
  assert "math_answer" in str(e.value) and "semantic_entropy" in str(e.value)


def test_register_twice_raises():
  register_reward("_test_once", lambda: None, overwrite=True)
  with pytest.raises(ValueError):
    register_reward("_test_once", lambda: None)


def test_get_reward_is_contained():
  assert isinstance(get_reward("math_answer"), SafeReward)
  assert not isinstance(get_reward("math_answer", safe=False), SafeReward)


def test_weighted_sum_and_posterior_gating():
  comps = ["<think>a</think><answer>\\boxed{4}</answer>", "<think>a</think><answer>5</answer>",
           "\\boxed{4}", "nothing"]
  batch = make_batch(["q"] * 4, comps, answers=["4"] * 4)
  comp = compose([{"name": "math_answer", "weight": 1.0},
                  {"name": "format", "key": "fmt", "weight": 0.5, "gate": "math_answer"},
                  {"name": "format", "key": "fmt_ungated", "weight": 0.25}])
  out = comp(batch)
  # math [1,0,1,0]; format [1,1,0,0]; gated format counts only where math > 0
  np.testing.assert_allclose(out.scores, [1 + 0.5 + 0.25, 0.25, 1, 0])
  assert out.extras["reward/fmt/gate_open"].tolist() == [1, 0, 1, 0]
  m = reward_metrics(out)
  assert m["reward/math_answer/score"] == 0.5 and m["reward/fmt/failures"] == 0
  assert m["reward/mean"] == pytest.approx(np.mean([1.75, 0.25, 1, 0]))


def test_gate_on_unknown_component_raises():
  with pytest.raises(ValueError):
    compose([{"name": "format", "gate": "nope"}])


def test_token_scores_masks_and_state():
  b = make_batch(["q"] * 2, ["ab", "cde"], finish_reasons=["stop", "length"])

  def dense(batch, scorer):
    from rlx.rewards import RewardOutput
    return RewardOutput(np.ones(2), token_scores=batch.completion_mask * 1.0)

  comp = CompositeReward([Component("dense", BatchReward(dense, "dense"), 2.0),
                          Component("filt", get_reward("overlong_filter"), 1.0),
                          Component("mem", get_reward("episodic_memory", min_entries=1), 0.0)])
  out = comp(b)
  np.testing.assert_array_equal(out.token_scores, 2.0 * b.completion_mask)
  assert out.sample_mask.tolist() == [1, 0]
  state = comp.state_dict()
  assert set(state) == {"mem"} and len(state["mem"]["correct"]) == 2
  comp.load_state_dict(state)
