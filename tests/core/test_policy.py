import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from rlx import core
from tests.core.helpers import B, T, arrays, masks, poison

LOSSES = [e.value for e in core.PolicyLoss]


def test_ppo_hand_computed_asymmetric_and_dual_clip():
  old = np.zeros((1, 4), np.float32)
  logp = np.log(np.array([[1.5, 0.5, 1.1, 3.0]], np.float32))
  adv = np.array([[1.0, -1.0, -2.0, -1.0]], np.float32)
  m = np.ones((1, 4), np.float32)
  loss, metrics = core.ppo_loss(logp, old, adv, m, eps_low=0.2, eps_high=0.28)
  # ρ=1.5, A=1: max(−1.5, −1.28) = −1.28 (clipped). ρ=0.5, A=−1: max(0.5, 0.8) = 0.8 (clipped).
  # ρ=1.1, A=−2: max(2.2, 2.2) = 2.2. ρ=3, A=−1: max(3, 1.28) = 3 (unclipped).
  np.testing.assert_allclose(loss, [[-1.28, 0.8, 2.2, 3.0]], rtol=1e-6)
  np.testing.assert_allclose(metrics["clipfrac"], 0.5, rtol=1e-6)
  np.testing.assert_allclose(metrics["ratio_max"], 3.0, rtol=1e-6)
  np.testing.assert_allclose(metrics["approx_kl"], -np.mean(np.log([1.5, 0.5, 1.1, 3.0])), rtol=1e-5)
  loss, metrics = core.ppo_loss(logp, old, adv, m, eps_low=0.2, eps_high=0.28, dual_clip=2.5)
  # Dual clip on A<0: min(L, −A·c) → token 3: min(3, 2.5) = 2.5; token 2: min(2.2, 5) = 2.2.
  np.testing.assert_allclose(loss, [[-1.28, 0.8, 2.2, 2.5]], rtol=1e-6)
  np.testing.assert_allclose(metrics["clipfrac_lower"], 0.25, rtol=1e-6)


@given(arrays((B, T), -4.0, 0.0), arrays((B, T), -2.0, 2.0), masks())
def test_ratio_one_gives_minus_advantage_for_every_loss(logp, adv, m):
  for name in ("ppo", "gspo", "pg"):
    fn = core.get_policy_loss(name)
    loss, metrics = fn(poison(logp, m), poison(logp, m), poison(adv, m), m)
    expected = -adv * m * (logp if name == "pg" else 1.0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["ratio_mean"], 1.0 if m.sum() else 0.0, atol=1e-5)
  loss, _ = core.cispo_loss(logp, logp, adv, m)
  np.testing.assert_allclose(loss, -adv * logp * m, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LOSSES)
@given(arrays((B, T), -4.0, 0.0), arrays((B, T), -4.0, 0.0), arrays((B, T)), masks())
def test_masked_positions_never_change_loss_or_gradient(name, logp, old, adv, m):
  fn = jax.jit(core.get_policy_loss(name))

  def objective(lp, old, adv):
    loss, _ = fn(lp, old, adv, m)
    return jnp.sum(loss)

  clean = jax.value_and_grad(objective)(logp, old, adv)
  dirty = jax.value_and_grad(objective)(poison(logp, m), poison(old, m, np.inf), poison(adv, m))
  np.testing.assert_array_equal(clean[0], dirty[0])
  np.testing.assert_array_equal(clean[1], dirty[1])
  assert np.all(np.isfinite(dirty[1]))
  assert np.all(np.asarray(dirty[1])[m == 0] == 0)


def test_ppo_gradient_is_zero_where_clipped():
  old = jnp.zeros((1, 2))
  adv = jnp.array([[1.0, 1.0]])
  logp = jnp.log(jnp.array([[1.5, 1.1]]))
  grad = jax.grad(lambda l: jnp.sum(core.ppo_loss(l, old, adv, jnp.ones((1, 2)))[0]))(logp)
  # token 0 clipped (ρ > 1+ε): no gradient; token 1: d(−ρ)/dℓ = −ρ = −1.1.
  np.testing.assert_allclose(grad, [[0.0, -1.1]], rtol=1e-6)


def test_gspo_sequence_ratio_and_token_gradient():
  old = jnp.zeros((2, 3))
  logp = jnp.array([[0.1, 0.2, 0.3], [0.2, -0.2, 9.0]])
  m = jnp.array([[1, 1, 1], [1, 1, 0]], jnp.float32)
  adv = jnp.array([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]])
  loss, metrics = core.gspo_loss(logp, old, adv, m, eps_low=0.5, eps_high=0.5)
  s = np.exp([0.2, 0.0])  # mean log ratio per sequence
  np.testing.assert_allclose(loss, [[-s[0]] * 3, [s[1], s[1], 0]], rtol=1e-6)
  grad = jax.grad(lambda l: jnp.sum(core.gspo_loss(l, old, adv, m, eps_low=0.5, eps_high=0.5)[0]))(logp)
  # dS/dℓ_t = S per token (ratio value is the sequence ratio).
  np.testing.assert_allclose(grad, [[-s[0]] * 3, [s[1], s[1], 0]], rtol=1e-6)
  np.testing.assert_allclose(metrics["ratio_max"], s[0], rtol=1e-6)


def test_cispo_keeps_gradient_through_clipped_tokens():
  old = jnp.zeros((1, 2))
  logp = jnp.log(jnp.array([[2.0, 1.0]]))
  adv = jnp.array([[1.0, 1.0]])
  m = jnp.ones((1, 2))
  loss, metrics = core.cispo_loss(logp, old, adv, m, eps_low=0.2, eps_high=0.2)
  np.testing.assert_allclose(loss, [[-1.2 * np.log(2.0), 0.0]], atol=1e-6)
  grad = jax.grad(lambda l: jnp.sum(core.cispo_loss(l, old, adv, m)[0]))(logp)
  np.testing.assert_allclose(grad, [[-1.2, -1.0]], rtol=1e-6)
  np.testing.assert_allclose(metrics["clipfrac"], 0.5)


def test_importance_weights_multiply_detached():
  logp = jnp.array([[-1.0, -2.0]])
  adv = jnp.array([[1.0, 2.0]])
  m = jnp.ones((1, 2))
  w = jnp.array([[0.5, 2.0]])
  for name in LOSSES:
    fn = core.get_policy_loss(name)
    base, _ = fn(logp, logp, adv, m)
    weighted, _ = fn(logp, logp, adv, m, importance_weights=w)
    np.testing.assert_allclose(weighted, base * w, rtol=1e-6)
  tis = core.truncated_importance_weights(jnp.array([[0.0, 2.0]]), jnp.zeros((1, 2)), m, cap=2.0)
  np.testing.assert_allclose(tis, [[1.0, 2.0]], rtol=1e-6)
