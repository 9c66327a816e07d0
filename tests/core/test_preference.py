import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlx import core
from tests.core.helpers import arrays


def _ls(x):  # float64 log-sigmoid
  return -np.logaddexp(0.0, -x)


PC, PR, RC, RR = (np.array(v, np.float32) for v in ([-10.0, -8.0], [-12.0, -7.0], [-11.0, -8.5],
                                                    [-11.5, -7.5]))
DELTA = (PC - RC).astype(np.float64) - (PR - RR)  # (1.5, 0.0)


def test_dpo_family_hand_computed():
  beta, eps = 0.1, 0.1
  z = beta * DELTA
  loss, m = core.dpo_loss(PC, PR, RC, RR, beta=beta)
  np.testing.assert_allclose(loss, -_ls(z), rtol=1e-6)
  np.testing.assert_allclose(m["rewards/accuracy"], 0.5)
  np.testing.assert_allclose(m["rewards/chosen"], np.mean(beta * (PC - RC)), rtol=1e-6)
  np.testing.assert_allclose(m["rewards/margin"], np.mean(z), rtol=1e-6)
  loss, _ = core.dpo_loss(PC, PR, RC, RR, beta=beta, label_smoothing=eps)
  np.testing.assert_allclose(loss, -(1 - eps) * _ls(z) - eps * _ls(-z), rtol=1e-6)
  loss, _ = core.robust_dpo_loss(PC, PR, RC, RR, beta=beta, label_smoothing=eps)
  np.testing.assert_allclose(loss, (-(1 - eps) * _ls(z) + eps * _ls(-z)) / (1 - 2 * eps), rtol=1e-6)
  loss, _ = core.ipo_loss(PC, PR, RC, RR, beta=beta)
  np.testing.assert_allclose(loss, (DELTA - 1 / (2 * beta)) ** 2, rtol=1e-6)
  lc, lr = np.array([3.0, 4.0]), np.array([5.0, 2.0])
  loss, _ = core.ipo_loss(PC, PR, RC, RR, beta=beta, chosen_lengths=lc, rejected_lengths=lr)
  d_norm = (PC - RC) / lc - (PR - RR) / lr
  np.testing.assert_allclose(loss, (d_norm - 1 / (2 * beta)) ** 2, rtol=1e-5)
  loss, _ = core.hinge_loss(PC, PR, RC, RR, beta=beta)
  np.testing.assert_allclose(loss, np.maximum(0, 1 - z), rtol=1e-6)
  loss, _ = core.dpo_loss(PC, PR, RC, RR, beta=beta, margin=np.array([0.05, 0.0]))
  np.testing.assert_allclose(loss, -_ls(z - [0.05, 0.0]), rtol=1e-6)


def test_simpo_orpo_hand_computed():
  lc, lr = np.array([4.0, 2.0]), np.array([6.0, 7.0])
  loss, _ = core.simpo_loss(PC, PR, lc, lr, beta=2.0, gamma=0.5)
  np.testing.assert_allclose(loss, -_ls(2.0 * (PC / lc - PR / lr) - 0.5), rtol=1e-6)
  loss, m = core.orpo_loss(PC, PR, lc, lr, lam=0.1)
  pc, pr = PC / lc, PR / lr
  log_odds = lambda p: p - np.log(1 - np.exp(p))
  expected = -pc - 0.1 * _ls(log_odds(pc) - log_odds(pr))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(m["nll"], np.mean(-pc), rtol=1e-6)


def test_log1mexp_is_stable():
  x = np.array([-1e-7, -0.1, -0.7, -5.0, -50.0])
  np.testing.assert_allclose(core.log1mexp(jnp.asarray(x, jnp.float32)), np.log1p(-np.exp(x)), rtol=1e-5, atol=1e-12)
  g = jax.grad(lambda x: jnp.sum(core.log1mexp(x)))(jnp.asarray(x, jnp.float32))
  assert np.all(np.isfinite(g))
  # At (and just below) 0 the value is a large negative number and the gradient stays finite.
  edge = jnp.asarray([0.0, -1e-13, -1e-10, -1e-9], jnp.float32)
  assert np.all(np.isfinite(core.log1mexp(edge)))
  assert np.all(np.isfinite(jax.grad(lambda x: jnp.sum(core.log1mexp(x)))(edge)))


def test_orpo_gradient_finite_for_a_zero_weighted_padded_pair():
  # A padding pair with all-zero log-probs (p̄ = 0) weighted 0 must not poison the update.
  chosen = jnp.asarray([-6.0, 0.0])
  rejected = jnp.asarray([-9.0, 0.0])
  weights = jnp.asarray([1.0, 0.0])
  g = jax.grad(lambda c, r: jnp.sum(weights * core.orpo_loss(c, r, jnp.asarray([3.0, 1.0]),
                                                             jnp.asarray([3.0, 1.0]))[0]),
               argnums=(0, 1))(chosen, rejected)
  assert all(np.all(np.isfinite(x)) for x in g)
  assert float(g[0][1]) == 0.0 and float(g[1][1]) == 0.0


def test_kto_hand_computed():
  pol = np.array([-3.0, -5.0, -4.0], np.float32)
  ref = np.array([-4.0, -4.0, -4.0], np.float32)
  desirable = np.array([True, False, True])
  z = core.kto_reference_point(np.array([-6.0, -5.0]), np.array([-6.5, -5.3]))
  np.testing.assert_allclose(z, 0.4, rtol=1e-6)  # mean(0.5, 0.3)
  assert float(core.kto_reference_point(np.array([-7.0]), np.array([-6.0]))) == 0.0  # clamped at 0
  loss, m = core.kto_loss(pol, ref, desirable, z, beta=0.1, desirable_weight=1.0, undesirable_weight=1.33)
  r = pol - ref
  sig = lambda x: 1 / (1 + np.exp(-x))
  expected = [1 - sig(0.1 * (r[0] - 0.4)), 1.33 * (1 - sig(0.1 * (0.4 - r[1]))), 1 - sig(0.1 * (r[2] - 0.4))]
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(m["rewards/rejected"], 0.1 * r[1], rtol=1e-6)


def test_bradley_terry_hand_computed():
  sc, sr = np.array([2.0, -1.0]), np.array([1.0, 0.5])
  loss, m = core.bradley_terry_loss(sc, sr)
  np.testing.assert_allclose(loss, -_ls(sc - sr), rtol=1e-6)
  loss, _ = core.bradley_terry_loss(sc, sr, margin=np.array([0.5, 0.0]), center_coef=0.01)
  np.testing.assert_allclose(loss, -_ls(sc - sr - [0.5, 0.0]) + 0.01 * (sc + sr) ** 2, rtol=1e-6)
  np.testing.assert_allclose(m["rewards/accuracy"], 0.5)


@given(arrays((4,), -20.0, -1.0), arrays((4,), -20.0, -1.0), st.floats(0.01, 1.0))
def test_dpo_properties(pc, pr, beta):
  # Policy equal to the reference: Δ = 0 and the loss is log 2 for any β (no label smoothing).
  loss, _ = core.dpo_loss(pc, pr, pc, pr, beta=beta)
  np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)
  # The gradient pushes chosen up and rejected down, and is finite.
  g = jax.grad(lambda c, r: jnp.sum(core.dpo_loss(c, r, pc, pr, beta=beta)[0]), argnums=(0, 1))(
      jnp.asarray(pc), jnp.asarray(pr))
  assert np.all(np.asarray(g[0]) < 0) and np.all(np.asarray(g[1]) > 0)
  for name in [e.value for e in core.PreferenceLoss]:
    assert callable(core.get_preference_loss(name))


def test_reference_log_probs_get_no_gradient():
  g = jax.grad(lambda rc: jnp.sum(core.dpo_loss(PC, PR, rc, RR)[0]))(jnp.asarray(RC))
  np.testing.assert_array_equal(g, 0.0)
  with pytest.raises(ValueError, match="both"):
    core.ipo_loss(PC, PR, RC, RR, chosen_lengths=np.ones(2))
