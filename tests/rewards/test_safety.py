"""Containment: a bad reward never raises, and the rest of the batch is scored."""

import time

import numpy as np
import pytest

from rlx.rewards import (BatchReward, PerSampleReward, ProcessPool, RewardOutput, SafeReward,
                         WorkerTimeout, compose, register_reward, reward_metrics)
from rlx.rewards.testing import make_batch

B = 64


def _batch():
  return make_batch([f"q{i}" for i in range(B)], [str(i) for i in range(B)])


def _sleepy(completion, meta, prompt):
  if int(completion) % 8 == 0:
    time.sleep(5.0)
  return 1.0


def _raising(completion, meta, prompt):
  if int(completion) % 4 == 1:
    raise RuntimeError("boom")
  return 1.0


def _malformed(completion, meta, prompt):
  i = int(completion)
  if i % 16 == 2:
    return [1.0, 2.0]  # wrong shape
  if i % 16 == 3:
    return float("nan")
  if i % 16 == 4:
    return "1"
  return 1.0


def _spin(completion, meta, prompt):
  if int(completion) % 32 == 0:
    while True:
      pass
  return 1.0


def test_per_sample_sleep_past_timeout_thread():
  t = time.monotonic()
  out = PerSampleReward(_sleepy, "sleepy", timeout=0.5, max_workers=16)(_batch())
  assert time.monotonic() - t < 4.0
  bad = np.arange(B) % 8 == 0
  np.testing.assert_array_equal(out.scores, np.where(bad, 0.0, 1.0))
  assert out.extras["failures_timeout"].sum() == bad.sum() == out.failures.sum()


def test_per_sample_raise():
  out = SafeReward(PerSampleReward(_raising, "raising"))(_batch())
  bad = np.arange(B) % 4 == 1
  np.testing.assert_array_equal(out.scores, np.where(bad, 0.0, 1.0))
  assert out.extras["failures"].sum() == bad.sum()
  assert out.extras["failures_exception"].sum() == bad.sum()


def test_per_sample_malformed_values():
  out = PerSampleReward(_malformed, "malformed")(_batch())
  i = np.arange(B) % 16
  bad = (i == 2) | (i == 3) | (i == 4)
  np.testing.assert_array_equal(out.scores, np.where(bad, 0.0, 1.0))
  assert out.extras["failures_malformed"].sum() == ((i == 2) | (i == 4)).sum()
  assert out.extras["failures_nonfinite"].sum() == (i == 3).sum()


def test_process_executor_kills_spinning_samples():
  pool = ProcessPool(2)
  try:
    t = time.monotonic()
    from rlx.rewards.safety import run_per_sample
    args = [(str(i), {}, "") for i in range(B)]
    scores, failed, kinds, _ = run_per_sample(_spin, args, timeout=2.0, executor="process",
                                              max_workers=2, pool=pool)
    assert time.monotonic() - t < 60
    bad = np.arange(B) % 32 == 0
    np.testing.assert_array_equal(scores, np.where(bad, 0.0, 1.0))
    assert [k for k in kinds if k] == ["timeout"] * bad.sum()
  finally:
    pool.close()


def test_process_pool_timeout_and_error():
  pool = ProcessPool(1)
  try:
    with pytest.raises(WorkerTimeout):
      pool.run(time.sleep, (10,), timeout=0.3)
    assert pool.run(abs, (-3,), timeout=30) == 3  # a fresh worker replaced the killed one
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
      pool.run(divmod, (1, 0), timeout=30)
  finally:
    pool.close()


def test_batch_reward_sleeps_past_timeout():
  slow = BatchReward(lambda b, s: (time.sleep(3.0), np.ones(b.batch_size))[1], "slow")
  t = time.monotonic()
  out = SafeReward(slow, timeout=0.3)(_batch())
  assert time.monotonic() - t < 2.0
  assert out.scores.shape == (B,) and not out.scores.any()
  assert out.extras["failures_timeout"].sum() == B


def test_batch_reward_raises():
  def boom(b, s):
    raise ValueError("bad reward")
  out = SafeReward(BatchReward(boom, "boom"))(_batch())
  assert out.scores.shape == (B,) and out.extras["failures_exception"].sum() == B


@pytest.mark.parametrize("bad", [np.ones(B + 1), np.ones((B, 2)), "nope", None, np.ones(3)])
def test_batch_reward_wrong_shape(bad):
  out = SafeReward(BatchReward(lambda b, s: RewardOutput(scores=bad), "bad"))(_batch())
  assert out.scores.shape == (B,) and out.scores.dtype == np.float32 and not out.scores.any()
  assert out.extras["failures_malformed"].sum() == B


def test_batch_reward_nan_entries_only_affect_those_samples():
  def some_nan(b, s):
    x = np.ones(b.batch_size)
    x[[3, 10]] = np.nan
    x[5] = np.inf
    return x
  out = SafeReward(BatchReward(some_nan, "nan"))(_batch())
  assert out.scores.sum() == B - 3 and out.extras["failures_nonfinite"].sum() == 3


def test_wrong_token_scores_shape_dropped():
  def f(b, s):
    return RewardOutput(np.ones(b.batch_size), token_scores=np.ones((b.batch_size, 999)))
  out = SafeReward(BatchReward(f, "ts"))(_batch())
  assert out.token_scores is None and out.scores.sum() == B


def test_composite_with_three_bad_rewards_scores_batch():
  register_reward("_test_sleepy", lambda: PerSampleReward(_sleepy, "sleepy", timeout=0.5,
                                                          max_workers=16), overwrite=True)
  register_reward("_test_raising", lambda: PerSampleReward(_raising, "raising"), overwrite=True)
  register_reward("_test_shape", lambda: BatchReward(lambda b, s: np.ones(2), "shape"),
                  overwrite=True)
  comp = compose([{"name": "_test_sleepy"}, {"name": "_test_raising", "weight": 2.0},
                  {"name": "_test_shape", "weight": 5.0},
                  {"name": "format_only", "weight": 1.0}])
  out = comp(_batch())
  i = np.arange(B)
  expected = (i % 8 != 0) * 1.0 + (i % 4 != 1) * 2.0
  np.testing.assert_allclose(out.scores, expected)
  m = reward_metrics(out)
  assert m["reward/_test_sleepy/failures"] == 8
  assert m["reward/_test_raising/failures"] == 16
  assert m["reward/_test_shape/failures"] == B
  assert m["reward/format_only/failures"] == 0


def test_failures_are_logged_with_the_sample(caplog):
  with caplog.at_level("WARNING", logger="rlx.rewards"):
    PerSampleReward(_raising, "raising")(_batch())
  assert "reward raising failed on sample 1 (exception): boom; sample: '1'" in caplog.text
