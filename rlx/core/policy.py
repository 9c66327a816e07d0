"""Policy-gradient losses, per token and before aggregation (docs/algorithms.md §4).

All losses share one signature::

    loss_fn(logp, old_logp, advantages, mask, *, eps_low, eps_high, ..., importance_weights=None)
        -> (loss[B,T], metrics: dict[str, scalar])

``logp`` are the current policy's log-probs of the taken tokens (differentiated), ``old_logp``
the behaviour policy's (constant), ``advantages`` are constants. The ratio is
``ρ = exp(clip(ℓ − ℓ_old, −20, 20))``. Optional ``importance_weights[B,T]`` (rollout correction,
e.g. truncated IS between sampler and trainer) multiply the loss, detached. The loss is zero and
NaN-free outside ``mask``; inputs at masked positions never reach the result or its gradient.
Aggregate the per-token loss with :mod:`rlx.core.aggregation`.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from rlx.core import _checks as check
from rlx.core.masked import masked_fill, masked_mean, sequence_lengths

Array = jax.Array
sg = jax.lax.stop_gradient

LOG_RATIO_CLIP = 20.0
GSPO_LOG_RATIO_MAX = 10.0


class PolicyLoss(enum.Enum):
  PPO = "ppo"
  GSPO = "gspo"
  CISPO = "cispo"
  PG = "pg"


def _check(where, logp, old_logp, advantages, mask, importance_weights=None, **scalars) -> None:
  """The four ``[B,T]`` inputs (and optional weights) of one shape; clip parameters scalars."""
  check.ranks(where, logp=(logp, "[B,T]"), old_logp=(old_logp, "[B,T]"),
              advantages=(advantages, "[B,T]"), mask=(mask, "[B,T]"),
              importance_weights=(importance_weights, "[B,T]"),
              **{k: (v, "[]") for k, v in scalars.items()})
  check.numeric(where, "mask", mask)
  check.same_shape(where, logp=logp, old_logp=old_logp, advantages=advantages, mask=mask,
                   importance_weights=importance_weights)


def _prepare(logp, old_logp, advantages, mask):
  mask = jnp.asarray(mask).astype(bool)
  logp = masked_fill(jnp.asarray(logp, jnp.float32), mask)
  old_logp = sg(masked_fill(jnp.asarray(old_logp, jnp.float32), mask))
  advantages = sg(masked_fill(jnp.asarray(advantages, jnp.float32), mask))
  return logp, old_logp, advantages, mask


def _finish(loss, mask, importance_weights):
  if importance_weights is not None:
    loss = loss * sg(masked_fill(jnp.asarray(importance_weights, jnp.float32), mask))
  return masked_fill(loss, mask)


def _ratio_metrics(ratio, logp, old_logp, mask) -> dict[str, Array]:
  ratio = sg(ratio)
  return {
      "approx_kl": masked_mean(sg(old_logp - logp), mask),
      "ratio_mean": masked_mean(ratio, mask),
      "ratio_min": jnp.min(jnp.where(mask, ratio, jnp.inf)),
      "ratio_max": jnp.max(jnp.where(mask, ratio, -jnp.inf)),
  }


def _clipped_surrogate(ratio, advantages, mask, eps_low, eps_high, dual_clip):
  unclipped = -advantages * ratio
  clipped = -advantages * jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
  loss = jnp.maximum(unclipped, clipped)
  metrics = {"clipfrac": masked_mean(sg(clipped > unclipped).astype(jnp.float32), mask)}
  if dual_clip is not None:
    bound = -advantages * dual_clip
    lower_hit = (advantages < 0) & (bound < loss)
    loss = jnp.where(advantages < 0, jnp.minimum(loss, bound), loss)
    metrics["clipfrac_lower"] = masked_mean(sg(lower_hit).astype(jnp.float32), mask)
  else:
    metrics["clipfrac_lower"] = jnp.zeros((), jnp.float32)
  return loss, metrics


def ppo_loss(
    logp: Array,
    old_logp: Array,
    advantages: Array,
    mask: Array,
    *,
    eps_low=0.2,
    eps_high=0.2,
    dual_clip=None,
    importance_weights: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
  """PPO clipped surrogate with asymmetric clip (Schulman et al., 2017; DAPO clip-higher).

  ``L = max(−A·ρ, −A·clip(ρ, 1−ε_l, 1+ε_h))``. Dual clip (Ye et al., 2020; ``c > 1``, off when
  ``None``): where ``A < 0``, ``L ← min(L, −A·c)``.

  Args:
    logp, old_logp: ``[B,T]`` current / behaviour log-probs of the taken tokens.
    advantages: ``[B,T]``.
    mask: ``[B,T]`` loss mask.
    eps_low, eps_high: clip range (traced).
    dual_clip: ``c`` (traced) or ``None``.
    importance_weights: optional ``[B,T]`` detached multipliers.
  """
  _check("ppo_loss", logp, old_logp, advantages, mask, importance_weights,
         eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip)
  logp, old_logp, advantages, mask = _prepare(logp, old_logp, advantages, mask)
  ratio = jnp.exp(jnp.clip(logp - old_logp, -LOG_RATIO_CLIP, LOG_RATIO_CLIP))
  loss, metrics = _clipped_surrogate(ratio, advantages, mask, eps_low, eps_high, dual_clip)
  metrics.update(_ratio_metrics(ratio, logp, old_logp, mask))
  return _finish(loss, mask, importance_weights), metrics


def gspo_loss(
    logp: Array,
    old_logp: Array,
    advantages: Array,
    mask: Array,
    *,
    eps_low=3e-4,
    eps_high=4e-4,
    importance_weights: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
  """Group sequence policy optimisation (Zheng et al., 2025): a sequence-level ratio.

  ``s_i = Σ_t (ℓ − ℓ_old)·m / max(|y_i|, 1)``;  ``log S_{i,t} = min(ℓ − sg(ℓ) + sg(s_i), 10)``;
  ``L = max(−A·S, −A·clip(S, 1−ε_l, 1+ε_h))``. The value of ``S`` is the sequence ratio
  ``exp(s_i)``; its gradient flows through each token's ``ℓ``. Paper clip range 3e-4 / 4e-4;
  pair with ``seq-mean-token-mean`` aggregation.
  """
  _check("gspo_loss", logp, old_logp, advantages, mask, importance_weights,
         eps_low=eps_low, eps_high=eps_high)
  logp, old_logp, advantages, mask = _prepare(logp, old_logp, advantages, mask)
  seq_log_ratio = jnp.sum(jnp.where(mask, logp - old_logp, 0.0), axis=-1) / jnp.maximum(
      sequence_lengths(mask), 1.0)
  log_s = jnp.minimum(logp - sg(logp) + sg(seq_log_ratio)[:, None], GSPO_LOG_RATIO_MAX)
  ratio = jnp.exp(log_s)
  loss, metrics = _clipped_surrogate(ratio, advantages, mask, eps_low, eps_high, None)
  del metrics["clipfrac_lower"]
  metrics.update(_ratio_metrics(ratio, logp, old_logp, mask))
  return _finish(loss, mask, importance_weights), metrics


def cispo_loss(
    logp: Array,
    old_logp: Array,
    advantages: Array,
    mask: Array,
    *,
    eps_low=0.2,
    eps_high=0.2,
    importance_weights: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
  """Clipped IS-weight policy optimisation (MiniMax-M1, 2025).

  ``L = −sg(clip(ρ, 1−ε_l, 1+ε_h)) · A · ℓ``: the IS weight is clipped and detached, so every
  token keeps a gradient (none is dropped by the clip).
  """
  _check("cispo_loss", logp, old_logp, advantages, mask, importance_weights,
         eps_low=eps_low, eps_high=eps_high)
  logp, old_logp, advantages, mask = _prepare(logp, old_logp, advantages, mask)
  ratio = jnp.exp(jnp.clip(logp - old_logp, -LOG_RATIO_CLIP, LOG_RATIO_CLIP))
  clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
  loss = -sg(clipped) * advantages * logp
  metrics = {"clipfrac": masked_mean(sg(clipped != ratio).astype(jnp.float32), mask)}
  metrics.update(_ratio_metrics(ratio, logp, old_logp, mask))
  return _finish(loss, mask, importance_weights), metrics


def pg_loss(
    logp: Array,
    old_logp: Array,
    advantages: Array,
    mask: Array,
    *,
    importance_weights: Array | None = None,
    **unused_clip,
) -> tuple[Array, dict[str, Array]]:
  """Plain REINFORCE: ``L = −A·ℓ``. ``old_logp`` is used for metrics only; clip args are ignored."""
  _check("pg_loss", logp, old_logp, advantages, mask, importance_weights)
  del unused_clip
  logp, old_logp, advantages, mask = _prepare(logp, old_logp, advantages, mask)
  ratio = jnp.exp(jnp.clip(logp - old_logp, -LOG_RATIO_CLIP, LOG_RATIO_CLIP))
  metrics = {"clipfrac": jnp.zeros((), jnp.float32)}
  metrics.update(_ratio_metrics(ratio, logp, old_logp, mask))
  return _finish(-advantages * logp, mask, importance_weights), metrics


_LOSSES = {
    PolicyLoss.PPO: ppo_loss,
    PolicyLoss.GSPO: gspo_loss,
    PolicyLoss.CISPO: cispo_loss,
    PolicyLoss.PG: pg_loss,
}


def get_policy_loss(kind: PolicyLoss | str):
  """Resolve a policy-loss name once (outside jit) to its function."""
  return _LOSSES[PolicyLoss(kind)]


def truncated_importance_weights(trainer_logp: Array, sampler_logp: Array, mask: Array, cap=2.0) -> Array:
  """Truncated IS rollout correction: ``w = min(exp(ℓ_trainer_old − ℓ_sampler), cap)``, detached.

  Use when the sampler's log-probs differ from the trainer's recomputation of the behaviour policy
  (e.g. bfloat16 sampling); pass the result as ``importance_weights``.
  """
  where = "truncated_importance_weights"
  check.ranks(where, trainer_logp=(trainer_logp, "[B,T]"), sampler_logp=(sampler_logp, "[B,T]"),
              mask=(mask, "[B,T]"), cap=(cap, "[]"))
  check.numeric(where, "mask", mask)
  check.same_shape(where, trainer_logp=trainer_logp, sampler_logp=sampler_logp, mask=mask)
  mask = jnp.asarray(mask).astype(bool)
  d = masked_fill(jnp.asarray(trainer_logp, jnp.float32) - jnp.asarray(sampler_logp, jnp.float32), mask)
  return sg(masked_fill(jnp.minimum(jnp.exp(jnp.clip(d, -LOG_RATIO_CLIP, LOG_RATIO_CLIP)), cap), mask))
