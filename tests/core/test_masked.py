import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given

from rlx import core
from tests.core.helpers import B, T, arrays, masks, poison


def test_masked_ops_hand_computed():
  x = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 100.0]], np.float32)
  m = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
  # valid values: 1, 2, 4, 100
  np.testing.assert_allclose(core.masked_sum(x, m), 107.0, rtol=1e-6)
  np.testing.assert_allclose(core.masked_mean(x, m), 107.0 / (4 + 1e-8), rtol=1e-6)
  vals = np.array([1.0, 2.0, 4.0, 100.0])
  np.testing.assert_allclose(core.masked_var(x, m), vals.var(ddof=1), rtol=1e-5)
  np.testing.assert_allclose(core.masked_sum(x, m, axis=-1), [3.0, 104.0], rtol=1e-6)
  np.testing.assert_allclose(core.masked_mean(x, m, axis=-1), [1.5, 52.0], rtol=1e-6)
  w = core.masked_whiten(x, m)
  expected = (vals - vals.mean()) / np.sqrt(vals.var(ddof=1) + 1e-8)
  np.testing.assert_allclose(np.asarray(w)[m > 0], expected, rtol=1e-5)
  assert np.all(np.asarray(w)[m == 0] == 0)


def test_scalar_to_token_rewards():
  m = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]], np.float32)
  r = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
  out = core.scalar_to_token_rewards(r, m)
  expected = np.array([[0, 1, 0, 0], [0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 4, 0]], np.float32)
  np.testing.assert_array_equal(out, expected)


def test_var_of_single_element_is_zero_not_nan():
  assert float(core.masked_var(np.array([3.0, 7.0]), np.array([1.0, 0.0]))) == 0.0


@given(arrays((B, T)), masks(min_valid=2))
def test_whiten_zero_mean_unit_variance(x, m):
  x = x + np.arange(B * T, dtype=np.float32).reshape(B, T) * 0.37  # avoid constant inputs
  w = np.asarray(core.masked_whiten(x, m), np.float64)
  valid = w[m > 0]
  assert abs(valid.mean()) < 1e-4
  var = valid.var(ddof=1)
  raw_var = np.asarray(x, np.float64)[m > 0].var(ddof=1)
  np.testing.assert_allclose(var, raw_var / (raw_var + 1e-8), rtol=1e-3)
  assert np.all(w[m == 0] == 0)


@given(arrays((B, T)), masks())
def test_masked_positions_never_change_results(x, m):
  bad = poison(x, m, np.nan)
  for fn in (core.masked_sum, core.masked_mean, core.masked_var):
    np.testing.assert_array_equal(fn(bad, m), fn(x, m))
  np.testing.assert_array_equal(core.masked_whiten(bad, m), core.masked_whiten(x, m))


def test_gradient_is_finite_with_nan_at_masked_positions():
  x = np.array([[1.0, np.nan], [2.0, 3.0]], np.float32)
  m = np.array([[1, 0], [1, 1]], np.float32)
  g = jax.grad(lambda x: core.masked_mean(x, m) + core.masked_var(x, m))(jnp.asarray(x))
  assert np.all(np.isfinite(g))
  assert g[0, 1] == 0
