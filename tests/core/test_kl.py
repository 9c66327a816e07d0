import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from rlx import core
from tests.core.helpers import B, T, arrays, masks, poison

ESTIMATORS = [e.value for e in core.KLEstimator]


def test_estimators_hand_computed():
  logp = np.array([[-1.0, -2.0, -0.5]], np.float32)
  ref = np.array([[-1.5, -1.0, -0.5]], np.float32)
  m = np.ones_like(logp)
  d = logp - ref  # (0.5, −1, 0)
  np.testing.assert_allclose(core.kl_penalty(logp, ref, m, "k1"), d, atol=1e-7)
  np.testing.assert_allclose(core.kl_penalty(logp, ref, m, "abs"), np.abs(d), atol=1e-7)
  np.testing.assert_allclose(core.kl_penalty(logp, ref, m, "k2"), 0.5 * d**2, atol=1e-7)
  x = -d
  np.testing.assert_allclose(core.kl_penalty(logp, ref, m, "k3"), np.exp(x) - x - 1, atol=1e-6)


def test_k3_clamps():
  # x = ℓ_ref − ℓ = 30 is clipped to 20, and exp(20) − 21 is clipped to 10.
  assert float(core.kl_k3(jnp.array(-30.0), jnp.array(0.0))) == 10.0
  # x = −30 → −20: exp(−20) + 20 − 1 ≈ 19 → clipped to 10.
  assert float(core.kl_k3(jnp.array(30.0), jnp.array(0.0))) == 10.0
  g = jax.grad(lambda l: core.kl_k3(l, jnp.array(0.0)))(jnp.array(-30.0))
  assert np.isfinite(g) and g == 0.0


@pytest.mark.parametrize("name", ESTIMATORS)
@given(arrays((B, T), -6.0, 0.0), masks())
def test_kl_of_identical_policies_is_zero_and_masked(name, logp, m):
  kl = core.kl_penalty(poison(logp, m), poison(logp, m, -np.inf), m, name)
  np.testing.assert_allclose(kl, 0.0, atol=1e-7)
  grad = jax.grad(lambda l: jnp.sum(core.kl_in_loss(l, logp, m, name)))(jnp.asarray(poison(logp, m)))
  assert np.all(np.isfinite(grad))
  if name == "k1":  # d(ℓ − ℓ_ref)/dℓ = 1 on valid tokens
    np.testing.assert_allclose(grad, m, atol=1e-6)
  elif name != "abs":  # k2, k3 are minimised at ℓ = ℓ_ref; |d| has no gradient at 0
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)
  assert np.all(np.asarray(grad)[m == 0] == 0)


@pytest.mark.parametrize("name", ["k1", "k2", "k3"])
def test_estimators_agree_with_true_kl_in_expectation(name):
  # Sample tokens from p; the mean of each estimator approximates KL(p ‖ q) (k1, k3 unbiased;
  # k2 is biased but close for nearby distributions).
  rng = np.random.default_rng(0)
  p = np.array([0.5, 0.3, 0.2])
  q = np.array([0.4, 0.4, 0.2])
  true_kl = float(np.sum(p * np.log(p / q)))
  y = rng.choice(3, size=200_000, p=p)
  kl = core.kl_penalty(np.log(p)[y][None], np.log(q)[y][None], np.ones((1, y.size)), name)
  assert abs(float(jnp.mean(kl)) - true_kl) < 3e-3


def test_kl_in_reward_uses_old_logprobs_and_beta():
  r = np.array([[0.0, 1.0, 0.0]], np.float32)
  old = np.array([[-1.0, -1.0, np.nan]], np.float32)
  ref = np.array([[-2.0, -1.5, -1.0]], np.float32)
  m = np.array([[1, 1, 0]], np.float32)
  shaped, kl = core.kl_in_reward(r, old, ref, m, 0.1, "k1")
  np.testing.assert_allclose(kl, [[1.0, 0.5, 0.0]], atol=1e-7)
  np.testing.assert_allclose(shaped, [[-0.1, 0.95, 0.0]], atol=1e-7)


def test_adaptive_controller_hand_computed():
  state = core.adaptive_kl_init(0.1)
  # KL = 0.09, target 0.06 → e = clip(0.5, ±0.2) = 0.2; β ← 0.1·(1 + 0.2·256/10000)
  state = core.adaptive_kl_update(state, 0.09, 256, 0.06, 10000)
  np.testing.assert_allclose(state.beta, 0.1 * (1 + 0.2 * 256 / 10000), rtol=1e-6)
  # KL = 0.054 → e = −0.1
  state2 = core.adaptive_kl_update(state, 0.054, 256, 0.06, 10000)
  np.testing.assert_allclose(state2.beta, state.beta * (1 - 0.1 * 256 / 10000), rtol=1e-6)
  assert core.fixed_kl_update(state, 1.0, 256).beta == state.beta
  kl = np.array([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0]], np.float32)
  m = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
  np.testing.assert_allclose(core.sequence_mean_kl(kl, m), (2.0 + 2.0) / 2, rtol=1e-6)
  # An empty row (e.g. overlong-filtered) does not dilute the statistic.
  kl3 = np.concatenate([kl, [[9.0, 9.0, 9.0]]])
  m3 = np.concatenate([m, [[0, 0, 0]]])
  np.testing.assert_allclose(core.sequence_mean_kl(kl3, m3), 2.0, rtol=1e-6)
