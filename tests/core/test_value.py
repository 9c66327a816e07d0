import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given

from rlx import core
from tests.core.helpers import B, T, arrays, masks, poison


def test_clipped_value_loss_hand_computed():
  v = np.array([[1.0, 0.0, 2.0]], np.float32)
  v_old = np.array([[0.0, 0.0, 1.9]], np.float32)
  ret = np.array([[2.0, 1.0, 0.0]], np.float32)
  m = np.ones((1, 3), np.float32)
  loss, metrics = core.value_loss(v, v_old, ret, m, clip=0.5)
  # t0: V_c = 0.5 → ½·max(1, 2.25) = 1.125; t1: V_c = 0 → ½·max(1, 1) = 0.5;
  # t2: V_c = 2.0 → ½·max(4, 4) = 2.
  np.testing.assert_allclose(loss, [[1.125, 0.5, 2.0]], rtol=1e-6)
  np.testing.assert_allclose(metrics["vf_clipfrac"], 1 / 3, rtol=1e-6)


@given(arrays((B, T)), arrays((B, T)), arrays((B, T)), masks())
def test_value_loss_masked_and_finite_gradient(v, v_old, ret, m):
  f = lambda v, vo, r: jnp.sum(core.value_loss(v, vo, r, m)[0])
  clean = jax.value_and_grad(f)(v, v_old, ret)
  dirty = jax.value_and_grad(f)(poison(v, m), poison(v_old, m), poison(ret, m, np.inf))
  np.testing.assert_array_equal(clean[0], dirty[0])
  np.testing.assert_array_equal(clean[1], dirty[1])
  assert np.all(np.isfinite(dirty[1]))


def test_total_loss_and_entropy_bonus():
  h = core.entropy_bonus(np.array([[1.0, np.nan]]), np.array([[1, 0]]))
  np.testing.assert_array_equal(h, [[1.0, 0.0]])
  total, parts = core.total_loss(2.0, value_loss=1.0, kl_loss=0.5, entropy=3.0, value_coef=0.5,
                                 beta=0.1, entropy_coef=0.01, aux_losses={"laser": 0.25})
  np.testing.assert_allclose(total, 2.0 + 0.5 + 0.05 - 0.03 + 0.25, rtol=1e-6)
  assert set(parts) == {"pg", "value", "kl", "entropy", "aux/laser"}
