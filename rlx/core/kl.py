"""KL estimators, their placement, and the adaptive KL controller (docs/algorithms.md §3).

Per-token estimators of ``KL(π ‖ π_ref)`` from the log-probs of the sampled tokens,
``d = ℓ − ℓ_ref`` (Schulman, "Approximating KL divergence", 2020):

- ``k1 = d``, ``abs = |d|``, ``k2 = ½ d²``,
- ``k3`` ("low_var_kl"): ``x = clip(ℓ_ref − ℓ, −20, 20)``, ``k3 = clip(exp(x) − x − 1, −10, 10)``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.core import _checks as check
from rlx.core.masked import masked_fill, masked_mean

Array = jax.Array


def _check_pair(where, logp, ref_logp) -> None:
  check.same_shape(where, logp=logp, ref_logp=ref_logp)


def _check_tokens(where, mask, **named) -> None:
  """``[B,T]`` arrays of one shape (``mask`` numeric)."""
  check.ranks(where, **{k: (v, "[B,T]") for k, v in named.items()}, mask=(mask, "[B,T]"))
  check.numeric(where, "mask", mask)
  check.same_shape(where, **named, mask=mask)


class KLEstimator(enum.Enum):
  K1 = "k1"
  ABS = "abs"
  K2 = "k2"
  K3 = "k3"


def kl_k1(logp: Array, ref_logp: Array) -> Array:
  """``k1 = ℓ − ℓ_ref`` (unbiased, high variance, can be negative)."""
  _check_pair("kl_k1", logp, ref_logp)
  return logp - ref_logp


def kl_abs(logp: Array, ref_logp: Array) -> Array:
  """``|ℓ − ℓ_ref|``."""
  _check_pair("kl_abs", logp, ref_logp)
  return jnp.abs(logp - ref_logp)


def kl_k2(logp: Array, ref_logp: Array) -> Array:
  """``k2 = ½ (ℓ − ℓ_ref)²``."""
  _check_pair("kl_k2", logp, ref_logp)
  return 0.5 * jnp.square(logp - ref_logp)


def kl_k3(logp: Array, ref_logp: Array) -> Array:
  """``k3 = clip(exp(x) − x − 1, −10, 10)`` with ``x = clip(ℓ_ref − ℓ, −20, 20)`` (non-negative, low variance)."""
  _check_pair("kl_k3", logp, ref_logp)
  x = jnp.clip(ref_logp - logp, -20.0, 20.0)
  return jnp.clip(jnp.exp(x) - x - 1.0, -10.0, 10.0)


_ESTIMATORS = {
    KLEstimator.K1: kl_k1,
    KLEstimator.ABS: kl_abs,
    KLEstimator.K2: kl_k2,
    KLEstimator.K3: kl_k3,
}


def get_kl_estimator(estimator: KLEstimator | str):
  """Resolve an estimator name once (outside jit) to its function ``(logp, ref_logp) -> kl``."""
  return _ESTIMATORS[KLEstimator(estimator)]


def kl_penalty(logp: Array, ref_logp: Array, mask: Array, estimator: KLEstimator | str = "k3") -> Array:
  """Per-token KL ``[B,T]`` by ``estimator``, zero (and NaN-free) outside ``mask``."""
  _check_tokens("kl_penalty", mask, logp=logp, ref_logp=ref_logp)
  mask = jnp.asarray(mask).astype(bool)
  logp = masked_fill(jnp.asarray(logp, jnp.float32), mask)
  ref_logp = masked_fill(jnp.asarray(ref_logp, jnp.float32), mask)
  return masked_fill(get_kl_estimator(estimator)(logp, ref_logp), mask)


def kl_in_reward(
    token_rewards: Array,
    old_logp: Array,
    ref_logp: Array,
    mask: Array,
    beta,
    estimator: KLEstimator | str = "k1",
) -> tuple[Array, Array]:
  """KL placed in the reward: ``R_t ← R_t − β·kl_t`` using the behaviour log-probs ``ℓ_old``.

  Returns ``(shaped token rewards [B,T], kl [B,T])``; the rewards carry no gradient.
  """
  _check_tokens("kl_in_reward", mask, token_rewards=token_rewards, old_logp=old_logp,
                ref_logp=ref_logp)
  check.ranks("kl_in_reward", beta=(beta, "[]"))
  kl = kl_penalty(jax.lax.stop_gradient(old_logp), ref_logp, mask, estimator)
  shaped = masked_fill(jnp.asarray(token_rewards, jnp.float32), mask) - beta * kl
  return jax.lax.stop_gradient(masked_fill(shaped, mask)), kl


def kl_in_loss(logp: Array, ref_logp: Array, mask: Array, estimator: KLEstimator | str = "k3") -> Array:
  """KL placed in the loss: the per-token term ``kl_t`` (aggregate it and add ``β·agg(kl)``).

  Differentiable in ``logp``; ``ref_logp`` is treated as a constant.
  """
  _check_tokens("kl_in_loss", mask, logp=logp, ref_logp=ref_logp)
  return kl_penalty(logp, jax.lax.stop_gradient(ref_logp), mask, estimator)


def sequence_mean_kl(kl: Array, mask: Array) -> Array:
  """The controller's statistic: batch mean of per-sequence masked-mean KL; ``[B,T] → []``.

  Rows without a valid token are left out (as in every aggregation denominator).
  """
  _check_tokens("sequence_mean_kl", mask, kl=kl)
  nonempty = (jnp.sum(jnp.asarray(mask, jnp.float32), axis=-1) > 0).astype(jnp.float32)
  per_seq = masked_mean(kl, mask, axis=-1)
  return jnp.sum(per_seq * nonempty) / jnp.maximum(jnp.sum(nonempty), 1.0)


class AdaptiveKLState(NamedTuple):
  """State of the adaptive KL controller: the current coefficient β (float32 scalar)."""

  beta: Array


def adaptive_kl_init(init_beta) -> AdaptiveKLState:
  check.ranks("adaptive_kl_init", init_beta=(init_beta, "[]"))
  return AdaptiveKLState(beta=jnp.asarray(init_beta, jnp.float32))


def adaptive_kl_update(state: AdaptiveKLState, kl, n_steps, target, horizon) -> AdaptiveKLState:
  """Adaptive KL controller (Ziegler et al., 2019).

  ``e = clip(KL/target − 1, −0.2, 0.2)``, ``β ← β·(1 + e·n/horizon)`` with ``n`` the batch size and
  ``KL`` the batch mean of per-sequence masked-mean KL (:func:`sequence_mean_kl`).
  """
  check.ranks("adaptive_kl_update", beta=(state.beta, "[]"), kl=(kl, "[]"),
              n_steps=(n_steps, "[]"), target=(target, "[]"), horizon=(horizon, "[]"))
  error = jnp.clip(jnp.asarray(kl, jnp.float32) / target - 1.0, -0.2, 0.2)
  return AdaptiveKLState(beta=state.beta * (1.0 + error * n_steps / horizon))


def fixed_kl_update(state: AdaptiveKLState, kl, n_steps, target=None, horizon=None) -> AdaptiveKLState:
  """The fixed controller: β never changes (same signature as :func:`adaptive_kl_update`)."""
  check.ranks("fixed_kl_update", beta=(state.beta, "[]"), kl=(kl, "[]"), n_steps=(n_steps, "[]"))
  del kl, n_steps, target, horizon
  return state
