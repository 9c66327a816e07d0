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

from rlx.core.masked import masked_fill, masked_mean

Array = jax.Array


class KLEstimator(enum.Enum):
  K1 = "k1"
  ABS = "abs"
  K2 = "k2"
  K3 = "k3"


def kl_k1(logp: Array, ref_logp: Array) -> Array:
  """``k1 = ℓ − ℓ_ref`` (unbiased, high variance, can be negative)."""
  return logp - ref_logp


def kl_abs(logp: Array, ref_logp: Array) -> Array:
  """``|ℓ − ℓ_ref|``."""
  return jnp.abs(logp - ref_logp)


def kl_k2(logp: Array, ref_logp: Array) -> Array:
  """``k2 = ½ (ℓ − ℓ_ref)²``."""
  return 0.5 * jnp.square(logp - ref_logp)


def kl_k3(logp: Array, ref_logp: Array) -> Array:
  """``k3 = clip(exp(x) − x − 1, −10, 10)`` with ``x = clip(ℓ_ref − ℓ, −20, 20)`` (non-negative, low variance)."""
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
  kl = kl_penalty(jax.lax.stop_gradient(old_logp), ref_logp, mask, estimator)
  shaped = masked_fill(jnp.asarray(token_rewards, jnp.float32), mask) - beta * kl
  return jax.lax.stop_gradient(masked_fill(shaped, mask)), kl


def kl_in_loss(logp: Array, ref_logp: Array, mask: Array, estimator: KLEstimator | str = "k3") -> Array:
  """KL placed in the loss: the per-token term ``kl_t`` (aggregate it and add ``β·agg(kl)``).

  Differentiable in ``logp``; ``ref_logp`` is treated as a constant.
  """
  return kl_penalty(logp, jax.lax.stop_gradient(ref_logp), mask, estimator)


def sequence_mean_kl(kl: Array, mask: Array) -> Array:
  """The controller's statistic: batch mean of per-sequence masked-mean KL; ``[B,T] → []``.

  Rows without a valid token are left out (as in every aggregation denominator).
  """
  nonempty = (jnp.sum(jnp.asarray(mask, jnp.float32), axis=-1) > 0).astype(jnp.float32)
  per_seq = masked_mean(kl, mask, axis=-1)
  return jnp.sum(per_seq * nonempty) / jnp.maximum(jnp.sum(nonempty), 1.0)


class AdaptiveKLState(NamedTuple):
  """State of the adaptive KL controller: the current coefficient β (float32 scalar)."""

  beta: Array


def adaptive_kl_init(init_beta) -> AdaptiveKLState:
  return AdaptiveKLState(beta=jnp.asarray(init_beta, jnp.float32))


def adaptive_kl_update(state: AdaptiveKLState, kl, n_steps, target, horizon) -> AdaptiveKLState:
  """Adaptive KL controller (Ziegler et al., 2019).

  ``e = clip(KL/target − 1, −0.2, 0.2)``, ``β ← β·(1 + e·n/horizon)`` with ``n`` the batch size and
  ``KL`` the batch mean of per-sequence masked-mean KL (:func:`sequence_mean_kl`).
  """
  error = jnp.clip(jnp.asarray(kl, jnp.float32) / target - 1.0, -0.2, 0.2)
  return AdaptiveKLState(beta=state.beta * (1.0 + error * n_steps / horizon))


def fixed_kl_update(state: AdaptiveKLState, kl, n_steps, target=None, horizon=None) -> AdaptiveKLState:
  """The fixed controller: β never changes (same signature as :func:`adaptive_kl_update`)."""
  del kl, n_steps, target, horizon
  return state
