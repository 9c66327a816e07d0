"""Loss aggregation modes (docs/algorithms.md §5).

Every mode is a ratio ``numerator / denominator`` where both parts are *sums over sequences*.
Sum numerators and denominators separately over micro-batches and devices and divide once
(:func:`finalize`): the objective then does not depend on how a batch is split. A trainer that
accumulates gradients over micro-batches computes the global denominator first
(:func:`aggregation_denominator` over the whole batch's mask) and divides each micro-batch's
numerator by it.

Modes (``L`` per-token loss, ``m`` mask, ``|y_i| = Σ_t m``, ``N_tok = Σ m``,
``N_seq`` = number of rows with at least one valid token):

- ``token-mean``: ``Σ L·m / N_tok``
- ``seq-mean-token-sum``: ``Σ_i Σ_t L·m / N_seq``
- ``seq-mean-token-mean``: ``Σ_i (Σ_t L·m / max(|y_i|, 1)) / N_seq``
- ``seq-mean-token-sum-norm`` (Dr. GRPO): ``Σ_i Σ_t L·m / (N_seq · C)``, ``C`` a constant
  (the maximum completion length of the config; never the padded width of a tensor).

Rows with no valid token (e.g. removed by overlong filtering) count in no denominator.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from rlx.core import _checks as check
from rlx.core.masked import masked_sum, sequence_lengths

Array = jax.Array

DIVIDE_EPS = 1e-8


class Aggregation(enum.Enum):
  TOKEN_MEAN = "token-mean"
  SEQ_MEAN_TOKEN_SUM = "seq-mean-token-sum"
  SEQ_MEAN_TOKEN_MEAN = "seq-mean-token-mean"
  SEQ_MEAN_TOKEN_SUM_NORM = "seq-mean-token-sum-norm"


def _check(where, loss, mask) -> None:
  check.ranks(where, loss=(loss, "[B,T]"), mask=(mask, "[B,T]"))
  check.numeric(where, "mask", mask)
  check.same_shape(where, loss=loss, mask=mask)


def aggregation_numerator(loss: Array, mask: Array, mode: Aggregation | str) -> Array:
  """The numerator of ``mode`` for per-token ``loss[B,T]``: a scalar, additive over sequences."""
  _check("aggregation_numerator", loss, mask)
  mode = Aggregation(mode)
  if mode is Aggregation.SEQ_MEAN_TOKEN_MEAN:
    per_seq = masked_sum(loss, mask, axis=-1) / jnp.maximum(sequence_lengths(mask, loss.dtype), 1.0)
    return jnp.sum(per_seq)
  return masked_sum(loss, mask)


def aggregation_denominator(mask: Array, mode: Aggregation | str, norm_constant=None) -> Array:
  """The denominator of ``mode`` for ``mask[B,T]``: a float32 scalar, additive over sequences.

  ``norm_constant`` is ``C`` of ``seq-mean-token-sum-norm`` (required there, ignored otherwise).
  """
  check.ranks("aggregation_denominator", mask=(mask, "[B,T]"), norm_constant=(norm_constant, "[]"))
  check.numeric("aggregation_denominator", "mask", mask)
  mode = Aggregation(mode)
  lengths = sequence_lengths(mask)
  if mode is Aggregation.TOKEN_MEAN:
    return jnp.sum(lengths)
  n_seq = jnp.sum((lengths > 0).astype(jnp.float32))
  if mode is Aggregation.SEQ_MEAN_TOKEN_SUM_NORM:
    if norm_constant is None:
      raise ValueError("seq-mean-token-sum-norm needs norm_constant (the max completion length C)")
    return n_seq * jnp.asarray(norm_constant, jnp.float32)
  return n_seq


def aggregate(loss: Array, mask: Array, mode: Aggregation | str, norm_constant=None) -> tuple[Array, Array]:
  """``(numerator, denominator)`` of ``mode`` for per-token ``loss[B,T]`` and ``mask[B,T]``."""
  _check("aggregate", loss, mask)
  return (aggregation_numerator(loss, mask, mode),
          aggregation_denominator(mask, mode, norm_constant))


def finalize(numerator: Array, denominator: Array) -> Array:
  """Divide once: ``numerator / max(denominator, 1e-8)`` (0 for an empty batch)."""
  check.ranks("finalize", numerator=(numerator, "[]"), denominator=(denominator, "[]"))
  return numerator / jnp.maximum(denominator, DIVIDE_EPS)


def aggregate_mean(loss: Array, mask: Array, mode: Aggregation | str, norm_constant=None) -> Array:
  """``finalize(*aggregate(...))``: the aggregated scalar for a whole batch."""
  _check("aggregate_mean", loss, mask)
  return finalize(*aggregate(loss, mask, mode, norm_constant))
