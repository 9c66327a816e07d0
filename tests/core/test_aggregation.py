import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from rlx import core
from tests.core.helpers import arrays, masks, poison

MODES = [e.value for e in core.Aggregation]
B8, T6 = 8, 6


def test_modes_hand_computed():
  loss = np.array([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0], [5.0, 5.0, 5.0]], np.float32)
  m = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], np.float32)  # the empty row counts nowhere
  assert float(core.aggregate_mean(loss, m, "token-mean")) == pytest.approx(10.0 / 4)
  assert float(core.aggregate_mean(loss, m, "seq-mean-token-sum")) == pytest.approx((6 + 4) / 2)
  assert float(core.aggregate_mean(loss, m, "seq-mean-token-mean")) == pytest.approx((2 + 4) / 2)
  assert float(core.aggregate_mean(loss, m, "seq-mean-token-sum-norm", 5)) == pytest.approx(10 / (2 * 5))
  with pytest.raises(ValueError, match="norm_constant"):
    core.aggregate(loss, m, "seq-mean-token-sum-norm")
  assert float(core.aggregate_mean(loss, np.zeros_like(m), "token-mean")) == 0.0


@pytest.mark.parametrize("mode", MODES)
@given(arrays((B8, T6)), masks((B8, T6)))
def test_four_micro_batches_equal_the_full_batch(mode, loss, m):
  full = core.aggregate_mean(loss, m, mode, 7.0)
  nums, dens = zip(*(core.aggregate(loss[i:i + 2], m[i:i + 2], mode, 7.0) for i in range(0, B8, 2)))
  np.testing.assert_allclose(core.finalize(sum(nums), sum(dens)), full, rtol=1e-6, atol=1e-6)
  # The trainer's form: global denominator first, each micro-batch divides by it.
  den = core.aggregation_denominator(m, mode, 7.0)
  split = sum(core.finalize(core.aggregation_numerator(loss[i:i + 2], m[i:i + 2], mode), den)
              for i in range(0, B8, 2))
  np.testing.assert_allclose(split, full, rtol=1e-6, atol=1e-6)
  # Masked positions never matter, even NaN.
  np.testing.assert_array_equal(core.aggregate_mean(poison(loss, m), m, mode, 7.0), full)


@pytest.mark.parametrize("mode", MODES)
def test_micro_batched_gradients_equal_full_batch(mode):
  rng = np.random.default_rng(0)
  logp = jnp.asarray(rng.normal(size=(B8, T6)) - 2, jnp.float32)
  old = logp + jnp.asarray(rng.normal(size=(B8, T6)) * 0.1, jnp.float32)
  adv = jnp.asarray(rng.normal(size=(B8, T6)), jnp.float32)
  m = jnp.asarray(np.arange(T6)[None] < rng.integers(1, T6 + 1, size=(B8, 1)), jnp.float32)

  def objective(lp, rows, den):
    loss, _ = core.ppo_loss(lp[rows], old[rows], adv[rows], m[rows], eps_high=0.28)
    return core.finalize(core.aggregation_numerator(loss, m[rows], mode), den)

  den = core.aggregation_denominator(m, mode, 12.0)
  full = jax.grad(objective)(logp, slice(None), den)
  micro = sum(jax.grad(objective)(logp, slice(i, i + 2), den) for i in range(0, B8, 2))
  np.testing.assert_allclose(micro, full, rtol=1e-6, atol=1e-7)
