"""Online filters (docs/algorithms.md §11) on scripted streams of groups with known pass rates."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlx.data import BalancedDifficulty, DynamicSampling, GroupFilter, RefillExhaustedWarning
from rlx.data import ScoredGroups, StagedCurriculum, StdEMA, fill_batch, group_stats

G = 4


def _round(pass_counts, round_index):
  """Groups of G binary rewards; group j has pass_counts[j] ones. Rows are tagged in data."""
  rewards = np.concatenate([[1.0] * c + [0.0] * (G - c) for c in pass_counts])
  group_ids = np.repeat(np.arange(len(pass_counts)), G)
  data = {"round": np.full(len(rewards), round_index), "row": np.arange(len(rewards))}
  return ScoredGroups(rewards=rewards, group_ids=group_ids, data=data)


def _scripted(rounds):
  calls = []

  def sample(r):
    calls.append(r)
    return _round(rounds[r], r)

  return sample, calls


def test_group_stats_hand_case():
  rewards = np.array([1.0, 0.0, 1.0, 1.0, 0.5, 0.5, 9.0])
  gids = np.array([3, 3, 3, 7, 7, 7, -1])  # the -1 row is padding
  s = group_stats(rewards, gids)
  np.testing.assert_array_equal(s.group_ids, [3, 7])
  assert group_stats(rewards[::-1], gids[::-1]).group_ids.tolist() == [7, 3]  # first appearance
  np.testing.assert_array_equal(s.size, [3, 3])
  np.testing.assert_allclose(s.mean, [2 / 3, 2 / 3])
  np.testing.assert_allclose(s.std, [np.std([1, 0, 1]), np.std([1, .5, .5])])
  np.testing.assert_allclose(s.pass_rate, [2 / 3, 1 / 3])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0.0, 0.5, 1.0])), min_size=1,
                max_size=30))
def test_group_stats_matches_a_loop(rows):
  gids = np.array([g for g, _ in rows])
  rewards = np.array([r for _, r in rows])
  s = group_stats(rewards, gids)
  for k, g in enumerate(s.group_ids):
    r = rewards[gids == g]
    np.testing.assert_allclose([s.mean[k], s.std[k], s.pass_rate[k]],
                               [r.mean(), r.std(), (r >= 1.0).mean()], atol=1e-12)


def test_dynamic_sampling_keeps_exact_groups_and_refills_until_full():
  # Pass counts out of G=4: DAPO keeps a group iff 0 < count < 4.
  rounds = [[0, 4, 2, 1], [3, 0, 4, 4], [2, 2, 0, 1], [1, 1, 1, 1]]
  sample, calls = _scripted(rounds)
  f = DynamicSampling()
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    result, state = fill_batch(sample, f, f.init_state(), num_groups=4, max_refills=5)
  assert calls == [0, 1, 2]  # full after round 2; round 3 never sampled
  kept = [(0, 2), (0, 3), (1, 0), (2, 0)]  # (round, group); round 2's surplus truncated
  rows = [(r, g * G + i) for r, g in kept for i in range(G)]
  assert list(zip(result.data["round"], result.data["row"])) == rows
  np.testing.assert_array_equal(result.group_ids, np.repeat(np.arange(4), G))
  np.testing.assert_array_equal(
      result.rewards, np.concatenate([_round(rounds[r], r).rewards[g * G:(g + 1) * G]
                                      for r, g in kept]))
  assert (result.num_groups, result.refills, result.exhausted) == (4, 2, False)
  m = result.metrics
  scored_p = np.array(rounds[:3]).ravel() / G
  assert m["filter/kept_fraction"] == 6 / 12  # before truncation
  assert m["filter/mean_p"] == pytest.approx(scored_p.mean())
  assert m["filter/mean_p_var"] == pytest.approx((scored_p * (1 - scored_p)).mean())
  assert (m["filter/refills"], m["filter/exhausted"], m["filter/kept_groups"]) == (2, 0, 4)
  assert state == {}


@pytest.mark.parametrize("lo_closed,hi_closed,expected", [
    (True, True, [1, 2, 3]),     # 0.25 <= p <= 0.75
    (False, True, [2, 3]),       # 0.25 <  p <= 0.75
    (True, False, [1, 2]),       # 0.25 <= p <  0.75
    (False, False, [2]),         # 0.25 <  p <  0.75
])
def test_balanced_difficulty_band_bounds(lo_closed, hi_closed, expected):
  f = BalancedDifficulty(lo=0.25, hi=0.75, lo_closed=lo_closed, hi_closed=hi_closed)
  s = group_stats(_round([0, 1, 2, 3, 4], 0).rewards, _round([0, 1, 2, 3, 4], 0).group_ids)
  keep, _ = f.keep(s, f.init_state())
  assert np.flatnonzero(keep).tolist() == expected


def test_balanced_difficulty_refill_loop():
  rounds = [[0, 1, 4, 3], [4, 4, 2, 0], [0, 0, 0, 0]]
  sample, calls = _scripted(rounds)
  f = BalancedDifficulty(lo=0.25, hi=0.75)
  result, _ = fill_batch(sample, f, f.init_state(), num_groups=3, max_refills=3)
  assert calls == [0, 1]
  assert [(int(result.data["round"][i]), int(result.data["row"][i]) // G)
          for i in range(0, len(result.rewards), G)] == [(0, 1), (0, 3), (1, 2)]
  assert result.metrics["filter/mean_p_kept"] == pytest.approx(np.mean([0.25, 0.75, 0.5]))


def test_refill_limit_warns_and_returns_what_was_kept():
  rounds = [[0, 4, 1], [4, 4, 4], [0, 0, 0], [2, 2, 2]]
  sample, calls = _scripted(rounds)
  f = DynamicSampling()
  with pytest.warns(RefillExhaustedWarning, match="kept 1 of 3 groups after 2 refills"):
    result, _ = fill_batch(sample, f, f.init_state(), num_groups=3, max_refills=2)
  assert calls == [0, 1, 2]  # initial draw + max_refills refills, never more
  assert (result.num_groups, result.exhausted) == (1, True)
  assert result.metrics["filter/exhausted"] == 1.0 and result.metrics["filter/refills"] == 2
  assert result.rewards.tolist() == [1.0, 0.0, 0.0, 0.0]
  # max_refills=0: a single draw.
  sample, calls = _scripted(rounds)
  with pytest.warns(RefillExhaustedWarning):
    fill_batch(sample, f, f.init_state(), num_groups=3, max_refills=0)
  assert calls == [0]


def test_no_filter_and_no_data():
  def sample(r):
    return ScoredGroups(rewards=np.zeros(6), group_ids=np.repeat([5, 9, 2], 2))
  result, _ = fill_batch(sample, GroupFilter(), {}, num_groups=2, max_refills=0)
  assert result.data is None and result.group_ids.tolist() == [0, 0, 1, 1]


def _pairs(stds):
  """Groups of 2 rewards [0, 2·std]: population std exactly `std`."""
  rewards = np.concatenate([[0.0, 2 * s] for s in stds])
  return rewards, np.repeat(np.arange(len(stds)), 2)


def test_std_ema_hand_case_and_checkpointed_state():
  f = StdEMA(ratio=0.5, decay=0.5, warmup=1)
  state = f.init_state()
  keep, state = f.keep(group_stats(*_pairs([0.5, 0.5])), state)
  assert keep.all()  # warm-up
  assert float(state["ema"]) == pytest.approx(0.25) and int(state["count"]) == 1
  assert f.ema(state) == pytest.approx(0.5)  # bias-corrected
  saved = {k: np.asarray(v) for k, v in state.items()}
  keep, state = f.keep(group_stats(*_pairs([0.2, 0.3, 0.0])), state)
  assert keep.tolist() == [False, True, False]  # std >= 0.5 * 0.5
  assert f.ema(state) == pytest.approx((0.125 + 0.5 * (0.5 / 3)) / 0.75)
  # Restoring the saved state reproduces the decision and the update.
  keep2, state2 = f.keep(group_stats(*_pairs([0.2, 0.3, 0.0])), saved)
  assert keep2.tolist() == keep.tolist() and float(state2["ema"]) == float(state["ema"])


def test_std_ema_in_the_refill_loop_state_advances_per_round():
  f = StdEMA(ratio=0.5, decay=0.99, warmup=0)
  rounds = [[2, 2], [0, 2]]
  sample, calls = _scripted(rounds)
  result, state = fill_batch(sample, f, {"ema": np.float64(0.5 * 0.01),
                                         "count": np.int64(1)}, num_groups=2, max_refills=1)
  # EMA 0.5: round 0 keeps both (std 0.5 >= 0.25).
  assert calls == [0] and result.num_groups == 2 and int(state["count"]) == 2


def test_staged_curriculum():
  c = StagedCurriculum(stages=[1, 2, 3], promote_at=0.8, min_steps=2, decay=0.5)
  s = c.init_state()
  s = c.update(s, 0.9)
  assert c.current(s) == 1  # min_steps not reached
  s = c.update(s, 0.9)
  assert c.current(s) == 2
  for p, stage in [(0.5, 2), (0.9, 2), (0.9, 3)]:  # EMA 0.5, 0.7, 0.8
    s = c.update(s, p)
    assert c.current(s) == stage
  for _ in range(3):
    s = c.update(s, 1.0)
  assert c.current(s) == 3  # stays at the last stage
  by_step = StagedCurriculum(stages=["easy", "hard"], steps_per_stage=2)
  s = by_step.init_state()
  s = by_step.update(s, 0.0)
  assert by_step.current(s) == "easy"
  assert by_step.current(by_step.update(s, 0.0)) == "hard"
