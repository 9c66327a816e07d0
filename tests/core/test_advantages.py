import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlx import core
from tests.core.helpers import B, T, arrays, group_ids, masks, poison

jit_grpo = jax.jit(core.grpo_advantages, static_argnames=("scale_by_std", "std_scope"))
jit_gae = jax.jit(core.gae_advantages, static_argnames=("whiten",))


def _np_gae(r, v, m, gamma, lam):
  """Float64 loop reference of docs/algorithms.md §2 gae (before whitening)."""
  b, t = r.shape
  adv = np.zeros((b, t))
  for i in range(b):
    next_v = next_a = 0.0
    for k in reversed(range(t)):
      if m[i, k]:
        delta = r[i, k] + gamma * next_v - v[i, k]
        adv[i, k] = delta + gamma * lam * next_a
        next_v, next_a = v[i, k], adv[i, k]
  return adv, (adv + v) * m


def _np_whiten(x, m):
  vals = x[m > 0]
  return (x - vals.mean()) / np.sqrt(vals.var(ddof=1) + 1e-8) * m


def test_gae_hand_computed_with_masked_gap():
  r = np.array([[0.0, 5.0, 1.0]], np.float32)
  v = np.array([[0.5, 9.0, 0.2]], np.float32)
  m = np.array([[1, 0, 1]], np.float32)
  # t=2: δ = 1 − 0.2 = 0.8, A = 0.8. t=1 is skipped. t=0: δ = 0.9·0.2 − 0.5 = −0.32, A = −0.32 + 0.72·0.8
  adv, ret = core.gae_advantages(r, v, m, 0.9, 0.8, whiten=False)
  np.testing.assert_allclose(adv, [[0.256, 0.0, 0.8]], atol=1e-6)
  np.testing.assert_allclose(ret, [[0.756, 0.0, 1.0]], atol=1e-6)


@given(arrays((B, T)), arrays((B, T)), masks(min_valid=2), st.floats(0.5, 1.0), st.floats(0.5, 1.0))
def test_gae_matches_loop_reference_and_ignores_masked_values(r, v, m, gamma, lam):
  adv, ret = jit_gae(poison(r, m), poison(v, m, np.inf), m, gamma, lam, whiten=False)
  ref_adv, ref_ret = _np_gae(r.astype(np.float64), v.astype(np.float64), m, gamma, lam)
  np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-4)
  adv_w, _ = jit_gae(poison(r, m), v, m, gamma, lam, whiten=True)
  np.testing.assert_allclose(adv_w, _np_whiten(ref_adv, m), rtol=1e-4, atol=1e-4)


def test_grpo_hand_computed():
  r = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 3.0], np.float32)
  g = np.array([0, 0, 0, 1, 1, 2])
  m = np.ones((6, 2), np.float32)
  adv, ret = core.grpo_advantages(r, g, m)
  std0 = np.sqrt(1.0 / 3.0)  # unbiased std of (1, 0, 0)
  expected = np.array([2 / 3 / (std0 + 1e-6), -1 / 3 / (std0 + 1e-6), -1 / 3 / (std0 + 1e-6),
                       0.0, 0.0, 0.0])  # equal rewards → 0; a group of one → 0
  np.testing.assert_allclose(adv[:, 0], expected, rtol=1e-6)
  np.testing.assert_array_equal(adv, ret)
  dr, _ = core.dr_grpo_advantages(r, g, m)
  np.testing.assert_allclose(dr[:, 1], [2 / 3, -1 / 3, -1 / 3, 0, 0, 0], atol=1e-6)
  batch, _ = core.grpo_advantages(r, g, m, std_scope=core.StdScope.BATCH)
  std_b = np.std(r.astype(np.float64), ddof=1)
  np.testing.assert_allclose(batch[:, 0], [2 / 3 / (std_b + 1e-6), -1 / 3 / (std_b + 1e-6),
                                           -1 / 3 / (std_b + 1e-6), 0, 0, 0], rtol=1e-6)


def test_group_of_equal_non_dyadic_rewards_gets_exactly_zero():
  # 0.7 is not exact in binary; a low-precision matmul for μ_g would make r − μ_g ≈ σ_g ≈ 1e-3
  # and the advantage ±0.87 on an accelerator. Elementwise float32 sums give exactly 0.
  r = np.array([0.7] * 4 + [0.3] * 4, np.float32)
  g = np.repeat([0, 1], 4)
  m = np.ones((8, 2), np.float32)
  for fn in (core.grpo_advantages, core.rloo_advantages, core.opo_advantages,
             core.grpo_passk_advantages):
    adv, _ = fn(r, g, m)
    np.testing.assert_array_equal(adv, 0.0)


@given(arrays((B,), 0.0, 1.0), group_ids(), masks())
def test_grpo_zero_group_mean_and_broadcast_over_mask(r, g, m):
  for scale in (True, False):
    full, _ = jit_grpo(r, g, np.ones_like(m), 1e-6, scale_by_std=scale)
    per_seq = np.asarray(full)[:, 0]
    for gid in np.unique(g):
      assert abs(per_seq[g == gid].mean()) < 1e-4
    adv, _ = jit_grpo(r, g, m, 1e-6, scale_by_std=scale)
    np.testing.assert_allclose(np.asarray(adv), per_seq[:, None] * m, atol=1e-6)


@given(arrays((B,), -2.0, 2.0), group_ids())
def test_rloo_is_reward_minus_mean_of_others(r, g):
  adv, _ = core.rloo_advantages(r, g, np.ones((B, 1)))
  for i in range(B):
    others = [r[j] for j in range(B) if g[j] == g[i] and j != i]
    expected = r[i] - np.mean(others) if others else 0.0
    np.testing.assert_allclose(adv[i, 0], expected, atol=1e-5)


def test_reinforce_pp_hand_computed():
  r = np.array([[1.0, 0.0, 2.0], [1.0, 7.0, 2.0]], np.float32)
  m = np.array([[1, 1, 1], [1, 0, 1]], np.float32)
  adv, ret = core.reinforce_pp_advantages(r, m, 0.5)
  # row 0: G = (1 + 0.5·(0 + 0.5·2), 0 + 0.5·2, 2) = (1.5, 1, 2); row 1 skips t=1: (1 + 0.5·2, 0, 2)
  np.testing.assert_allclose(ret, [[1.5, 1.0, 2.0], [2.0, 0.0, 2.0]], atol=1e-6)
  np.testing.assert_allclose(adv, _np_whiten(np.asarray(ret, np.float64), m), atol=1e-5)


def test_reinforce_pp_baseline_hand_computed():
  r = np.array([1.0, 0.0, 2.0, 2.0], np.float32)
  g = np.array([0, 0, 1, 1])
  m = np.array([[1, 1], [1, 0], [1, 1], [0, 0]], np.float32)
  adv, _ = core.reinforce_pp_baseline_advantages(r, g, m)
  centred = np.array([0.5, -0.5, 0.0, 0.0])[:, None] * m
  np.testing.assert_allclose(adv, _np_whiten(centred, m), atol=1e-5)


def test_remax_opo_passk_hand_computed():
  m = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], np.float32)
  r = np.array([0.2, 0.9, 0.5], np.float32)
  adv, _ = core.remax_advantages(r, np.array([0.5, 0.5, 0.5]), m)
  np.testing.assert_allclose(adv, np.array([-0.3, 0.4, 0.0])[:, None] * m, atol=1e-6)
  g = np.zeros(3, int)
  adv, _ = core.opo_advantages(r, g, m)
  b = (3 * 0.2 + 1 * 0.9 + 2 * 0.5) / 6
  np.testing.assert_allclose(adv, (r - b)[:, None] * m, atol=1e-6)
  adv, _ = core.grpo_passk_advantages(r, g, m)
  std = np.std(r.astype(np.float64), ddof=1)
  np.testing.assert_allclose(adv, np.array([0, 0.4 / (std + 1e-6), 0])[:, None] * m, rtol=1e-5)
  adv, _ = core.grpo_passk_advantages(r, g, m, scale_by_std=False)
  np.testing.assert_allclose(adv[:, 0], [0, 0.4, 0], atol=1e-6)
  # Tied best: the lower index is "best" and gets r_max − r_second = 0.
  adv, _ = core.grpo_passk_advantages(np.array([1.0, 1.0, 0.0]), g, m, scale_by_std=False)
  np.testing.assert_allclose(adv[:, 0], [0, 0, 0], atol=1e-6)
  # A group of one gets 0.
  adv, _ = core.grpo_passk_advantages(np.array([1.0, 0.5, 0.0]), np.array([0, 1, 1]), m)
  assert adv[0, 0] == 0 and adv[1, 0] > 0


@pytest.mark.parametrize("name", [e.value for e in core.AdvantageEstimator])
def test_every_estimator_resolves_and_masks(name):
  fn = core.get_advantage_estimator(name)
  r = np.array([1.0, 0.0, 0.5, 0.2], np.float32)
  g = np.array([0, 0, 1, 1])
  m = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], np.float32)
  token_r = np.asarray(core.scalar_to_token_rewards(r, m))
  args = {
      "gae": (token_r, np.zeros_like(token_r), m),
      "reinforce_pp": (token_r, m),
      "remax": (r, np.full(4, 0.3), m),
  }.get(name, (r, g, m))
  adv, ret = jax.jit(fn)(*args)
  assert adv.shape == ret.shape == m.shape
  assert np.all(np.isfinite(adv)) and np.all(np.asarray(adv)[m == 0] == 0)
