"""Masked reductions (docs/algorithms.md §1).

Every function takes an explicit mask ``m`` of the same shape as ``x`` (or broadcastable to it).
Values outside the mask never reach a result, even when they are NaN or inf: they are replaced by
zero with ``jnp.where`` *before* any arithmetic, so neither the value nor the gradient of a result
depends on them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlx.core import _checks as check

Array = jax.Array

MEAN_EPS = 1e-8
WHITEN_EPS = 1e-8


def _as_bool(mask: Array) -> Array:
  return jnp.asarray(mask).astype(bool)


def masked_fill(x: Array, mask: Array, value: float = 0.0) -> Array:
  """``x`` where ``mask`` else ``value`` (broadcasting ``mask`` to ``x``)."""
  check.broadcasts_to("masked_fill", "mask", mask, "x", x)
  return jnp.where(_as_bool(mask), x, jnp.asarray(value, dtype=jnp.result_type(x)))


def masked_sum(x: Array, mask: Array, axis=None) -> Array:
  """``Σ x·m`` over ``axis`` (all axes by default). Masked-out values are ignored, NaN included."""
  check.broadcasts_to("masked_sum", "mask", mask, "x", x)
  x = jnp.asarray(x)
  mask = jnp.asarray(mask)
  weights = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
  return jnp.sum(masked_fill(x, weights) * weights, axis=axis)


def masked_count(mask: Array, axis=None, dtype=jnp.float32) -> Array:
  """``Σ m`` over ``axis``."""
  check.numeric("masked_count", "mask", mask)
  return jnp.sum(jnp.asarray(mask).astype(dtype), axis=axis)


def masked_mean(x: Array, mask: Array, axis=None) -> Array:
  """``masked_sum(x, m) / (Σ m + 1e-8)``."""
  check.broadcasts_to("masked_mean", "mask", mask, "x", x)
  x = jnp.asarray(x)
  count = masked_count(jnp.broadcast_to(mask, x.shape), axis=axis)  # float32 even for bf16 x
  return (masked_sum(x, mask, axis=axis) / (count + MEAN_EPS)).astype(jnp.result_type(x, jnp.float32))


def masked_var(x: Array, mask: Array, axis=None, unbiased: bool = True) -> Array:
  """Masked variance; unbiased by default: ``masked_mean((x − μ)², m) · N/(N − 1)``, ``N = Σ m``.

  With ``N <= 1`` the unbiased correction is undefined; the result is then the (zero) biased
  variance rather than NaN.
  """
  check.broadcasts_to("masked_var", "mask", mask, "x", x)
  x = jnp.asarray(x)
  mean = masked_mean(x, mask, axis=axis)
  if axis is not None:
    mean = jnp.expand_dims(mean, axis)
  centered = masked_fill(x, jnp.broadcast_to(mask, x.shape)) - mean
  var = masked_mean(jnp.square(centered), mask, axis=axis)
  if unbiased:
    n = masked_count(jnp.broadcast_to(mask, x.shape), axis=axis)
    var = var * jnp.where(n > 1, n / jnp.maximum(n - 1, 1), 1.0)
  return var


def masked_whiten(x: Array, mask: Array, shift_mean: bool = True) -> Array:
  """``(x − μ) · rsqrt(var + 1e-8) · m`` with μ, var (unbiased) over every masked element of ``x``.

  ``shift_mean=False`` keeps the mean (scales only), as some PPO implementations do for returns.
  """
  check.broadcasts_to("masked_whiten", "mask", mask, "x", x)
  x = jnp.asarray(x)
  mask = jnp.broadcast_to(mask, x.shape)
  mean = masked_mean(x, mask)
  var = masked_var(x, mask)
  x = masked_fill(x, mask)
  whitened = (x - mean) * jax.lax.rsqrt(var + WHITEN_EPS)
  if not shift_mean:
    whitened = whitened + mean
  return masked_fill(whitened, mask)


def last_valid_index(mask: Array) -> Array:
  """Index of the last nonzero entry along the last axis of ``mask[B,T]`` (0 for empty rows)."""
  check.ranks("last_valid_index", mask=(mask, "[B,T]"))
  check.numeric("last_valid_index", "mask", mask)
  mask = _as_bool(mask)
  t = mask.shape[-1]
  idx = jnp.arange(t)
  return jnp.max(jnp.where(mask, idx, -1), axis=-1).clip(min=0)


def scalar_to_token_rewards(rewards: Array, mask: Array) -> Array:
  """Place the scalar reward ``r_i`` on the last valid token of row ``i``.

  Args:
    rewards: ``[B]`` per-sequence rewards.
    mask: ``[B,T]`` loss mask.

  Returns:
    ``[B,T]`` token rewards, zero everywhere except the last valid token of each non-empty row.
  """
  check.ranks("scalar_to_token_rewards", rewards=(rewards, "[B]"), mask=(mask, "[B,T]"))
  check.numeric("scalar_to_token_rewards", "mask", mask)
  check.same_rows("scalar_to_token_rewards", rewards=rewards, mask=mask)
  mask = _as_bool(mask)
  rewards = jnp.asarray(rewards)
  last = last_valid_index(mask)
  onehot = jnp.arange(mask.shape[-1])[None, :] == last[:, None]
  onehot = onehot & jnp.any(mask, axis=-1, keepdims=True)
  return jnp.where(onehot, rewards[:, None], 0.0).astype(jnp.result_type(rewards, jnp.float32))


def sequence_lengths(mask: Array, dtype=jnp.float32) -> Array:
  """``|y_i| = Σ_t m[i,t]`` for ``mask[B,T]``; returns ``[B]``."""
  check.ranks("sequence_lengths", mask=(mask, "[B,T]"))
  check.numeric("sequence_lengths", "mask", mask)
  return masked_count(mask, axis=-1, dtype=dtype)
