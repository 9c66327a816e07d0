"""Advantage estimators (docs/algorithms.md §2).

Every estimator returns ``(advantages[B,T], returns[B,T])``, both multiplied by the loss mask
``m[B,T]``. Outcome estimators compute one value per sequence and broadcast it over the row; for
them ``returns`` equals ``advantages`` (there is no critic to regress).

Group statistics use a pairwise ``[B,B]`` "same group" matrix built from arbitrary integer group
ids, so the number of groups never needs to be static and the ids need not be contiguous.
Hyper-parameters (γ, λ, eps) are ordinary (traced) arguments.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from rlx.core.masked import masked_fill, masked_whiten, sequence_lengths

Array = jax.Array


class StdScope(enum.Enum):
  """Where GRPO takes the std that scales advantages."""

  GROUP = "group"  # σ of the sample's own group (GRPO paper)
  BATCH = "batch"  # σ of all rewards in the batch (TRL ``scale_rewards="batch"``)


def _broadcast(per_seq: Array, mask: Array) -> Array:
  mask = jnp.asarray(mask)
  return masked_fill(jnp.broadcast_to(per_seq[:, None], mask.shape).astype(jnp.float32), mask)


def _outcome(per_seq: Array, mask: Array) -> tuple[Array, Array]:
  adv = _broadcast(per_seq, mask)
  return adv, adv


def group_matrix(group_ids: Array) -> Array:
  """``same[i, j] = 1.0`` iff sequences i and j share a group; ``[B] → [B,B]`` float32."""
  group_ids = jnp.asarray(group_ids)
  return (group_ids[:, None] == group_ids[None, :]).astype(jnp.float32)


def _row_sums(same: Array, x: Array) -> Array:
  """``Σ_j same[i, j]·x[j]`` in full float32 (no matmul precision loss)."""
  return jnp.sum(same * x[None, :], axis=1)


def group_stats(rewards: Array, group_ids: Array) -> tuple[Array, Array, Array]:
  """Per-sample group size ``n_g``, mean ``μ_g`` and unbiased std ``σ_g`` (0 when ``n_g = 1``); each ``[B]``."""
  r = jnp.asarray(rewards, jnp.float32)
  same = group_matrix(group_ids)
  n = same.sum(axis=1)
  # Elementwise sums, not `same @ r`: a default-precision matmul runs in bf16/TF32 on TPU/GPU,
  # and a group of equal rewards like 0.7 would get a nonzero r − μ comparable to eps.
  mean = _row_sums(same, r) / n
  dev = r[None, :] - mean[:, None]  # [i, j]: r_j − μ_{g(i)}
  ss = jnp.sum(same * jnp.square(dev), axis=1)
  std = jnp.sqrt(ss / jnp.maximum(n - 1.0, 1.0))
  return n, mean, std


def gae_advantages(
    token_rewards: Array,
    values: Array,
    mask: Array,
    gamma=1.0,
    lam=1.0,
    *,
    whiten: bool = True,
) -> tuple[Array, Array]:
  """Generalised advantage estimation over valid tokens (Schulman et al., 2016).

  Backward over t, skipping masked tokens:
    ``δ_t = R_t + γ·V_next − V_t``,  ``A_t = δ_t + γλ·A_next``,
  where ``V_next``/``A_next`` belong to the next *valid* token (0 after the last).
  ``returns = A + V``; then ``A ← masked_whiten(A)`` when ``whiten``.

  Args:
    token_rewards: ``[B,T]`` rewards ``R``.
    values: ``[B,T]`` critic values ``V``.
    mask: ``[B,T]`` loss mask.
    gamma, lam: discount and GAE λ (traced scalars).
    whiten: whiten advantages over the batch.
  """
  mask = jnp.asarray(mask).astype(bool)
  r = masked_fill(jnp.asarray(token_rewards, jnp.float32), mask)
  v = masked_fill(jnp.asarray(values, jnp.float32), mask)
  gamma = jnp.asarray(gamma, jnp.float32)
  lam = jnp.asarray(lam, jnp.float32)

  def step(carry, x):
    next_v, next_a = carry
    r_t, v_t, m_t = x
    delta = r_t + gamma * next_v - v_t
    a_t = delta + gamma * lam * next_a
    a_t = jnp.where(m_t, a_t, 0.0)
    carry = (jnp.where(m_t, v_t, next_v), jnp.where(m_t, a_t, next_a))
    return carry, a_t

  b = r.shape[0]
  init = (jnp.zeros((b,), jnp.float32), jnp.zeros((b,), jnp.float32))
  _, adv_t = jax.lax.scan(step, init, (r.T, v.T, mask.T), reverse=True)
  adv = adv_t.T
  returns = masked_fill(adv + v, mask)
  if whiten:
    adv = masked_whiten(adv, mask)
  return adv, returns


def grpo_advantages(
    rewards: Array,
    group_ids: Array,
    mask: Array,
    eps=1e-6,
    *,
    scale_by_std: bool = True,
    std_scope: StdScope = StdScope.GROUP,
    row_mask: Array | None = None,
) -> tuple[Array, Array]:
  """Group-relative advantages (Shao et al., 2024, DeepSeekMath).

  ``A_i = (r_i − μ_g) / (σ_g + eps)`` with σ unbiased over the group (``std_scope=GROUP``) or over
  the whole batch (``BATCH``). A group of one sample gets ``A = 0``.
  ``scale_by_std=False`` is Dr. GRPO (Liu et al., 2025): ``A_i = r_i − μ_g``.

  Args:
    rewards: ``[B]`` scalar rewards.
    group_ids: ``[B]`` int prompt ids.
    mask: ``[B,T]`` loss mask.
    row_mask: optional ``[B]``; rows with 0 (padding of a static batch) are left out of the
      batch-scope σ. Group statistics need no mask: padding rows sit in groups of their own.
  """
  r = jnp.asarray(rewards, jnp.float32)
  n, mean, std = group_stats(r, group_ids)
  adv = r - mean
  if scale_by_std:
    if StdScope(std_scope) is StdScope.BATCH:
      w = jnp.ones_like(r) if row_mask is None else jnp.asarray(row_mask, jnp.float32)
      count = jnp.sum(w)
      mu = jnp.sum(w * r) / jnp.maximum(count, 1.0)
      var = jnp.sum(w * jnp.square(r - mu)) / jnp.maximum(count - 1.0, 1.0)
      std = jnp.full_like(r, jnp.where(count > 1, jnp.sqrt(var), 0.0))
    adv = adv / (std + eps)
  adv = jnp.where(n > 1, adv, 0.0)
  return _outcome(adv, mask)


def dr_grpo_advantages(rewards: Array, group_ids: Array, mask: Array) -> tuple[Array, Array]:
  """Dr. GRPO (Liu et al., 2025): ``A_i = r_i − μ_g`` (GRPO without the std division)."""
  return grpo_advantages(rewards, group_ids, mask, scale_by_std=False)


def rloo_advantages(rewards: Array, group_ids: Array, mask: Array) -> tuple[Array, Array]:
  """REINFORCE leave-one-out (Ahmadian et al., 2024): ``A_i = r_i − mean_{j≠i, j∈g} r_j``.

  A group of one gets 0.
  """
  r = jnp.asarray(rewards, jnp.float32)
  same = group_matrix(group_ids)
  n = same.sum(axis=1)
  others = (_row_sums(same, r) - r) / jnp.maximum(n - 1.0, 1.0)
  adv = jnp.where(n > 1, r - others, 0.0)
  return _outcome(adv, mask)


def reinforce_pp_advantages(token_rewards: Array, mask: Array, gamma=1.0) -> tuple[Array, Array]:
  """REINFORCE++ (Hu, 2025): discounted return over valid tokens, whitened over the batch.

  ``G_t = R_t + γ·G_next`` with ``G_next`` the return at the next valid token (0 after the last);
  ``returns = G``; ``A = masked_whiten(G)``.
  """
  mask = jnp.asarray(mask).astype(bool)
  r = masked_fill(jnp.asarray(token_rewards, jnp.float32), mask)
  gamma = jnp.asarray(gamma, jnp.float32)

  def step(next_g, x):
    r_t, m_t = x
    g_t = jnp.where(m_t, r_t + gamma * next_g, 0.0)
    return jnp.where(m_t, g_t, next_g), g_t

  _, g_t = jax.lax.scan(step, jnp.zeros((r.shape[0],), jnp.float32), (r.T, mask.T), reverse=True)
  returns = g_t.T
  return masked_whiten(returns, mask), returns


def reinforce_pp_baseline_advantages(
    rewards: Array, group_ids: Array, mask: Array
) -> tuple[Array, Array]:
  """REINFORCE++-baseline: ``a_i = r_i − μ_g`` broadcast over the row, then ``masked_whiten`` over the batch."""
  r = jnp.asarray(rewards, jnp.float32)
  _, mean, _ = group_stats(r, group_ids)
  adv = _broadcast(r - mean, mask)
  adv = masked_whiten(adv, mask)
  return adv, adv


def remax_advantages(rewards: Array, greedy_rewards: Array, mask: Array) -> tuple[Array, Array]:
  """ReMax (Li et al., 2024): ``A_i = r_i − r_greedy(prompt of i)``; no whitening.

  Args:
    rewards: ``[B]`` rewards of the sampled completions.
    greedy_rewards: ``[B]`` reward of one greedy completion of each sample's prompt (repeated per
      sample of the same prompt).
  """
  adv = jnp.asarray(rewards, jnp.float32) - jnp.asarray(greedy_rewards, jnp.float32)
  return _outcome(adv, mask)


def opo_advantages(rewards: Array, group_ids: Array, mask: Array) -> tuple[Array, Array]:
  """On-policy RL with optimal baseline (Hao et al., 2025): length-weighted group baseline.

  ``b_g = Σ_j |y_j|·r_j / Σ_j |y_j|`` over the group; ``A_i = r_i − b_g``.
  """
  r = jnp.asarray(rewards, jnp.float32)
  lengths = sequence_lengths(mask)
  same = group_matrix(group_ids)
  baseline = _row_sums(same, lengths * r) / jnp.maximum(_row_sums(same, lengths), 1e-8)
  return _outcome(r - baseline, mask)


def grpo_passk_advantages(
    rewards: Array,
    group_ids: Array,
    mask: Array,
    eps=1e-6,
    *,
    scale_by_std: bool = True,
) -> tuple[Array, Array]:
  """Pass@k-style GRPO: only the best sample of each group gets ``r_max − r_second``.

  Divided by ``σ_g + eps`` when ``scale_by_std``; every other sample gets 0. Ties for the best are
  broken by the lowest batch index (that sample gets ``r_max − r_second = 0`` when tied).
  A group of one gets 0.
  """
  r = jnp.asarray(rewards, jnp.float32)
  same = group_matrix(group_ids) > 0
  b = r.shape[0]
  idx = jnp.arange(b)
  # j "beats" i if r_j > r_i, or equal reward and lower index.
  beats = same & ((r[None, :] > r[:, None]) | ((r[None, :] == r[:, None]) & (idx[None, :] < idx[:, None])))
  is_best = ~jnp.any(beats, axis=1)
  # Second best of i's group: max over the group excluding the best sample.
  best_mask = same & is_best[None, :]  # [i, j]: j is the best of i's group
  others = jnp.where(same & ~best_mask, r[None, :], -jnp.inf)
  second = jnp.max(others, axis=1)
  n, _, std = group_stats(r, group_ids)
  adv = jnp.where(is_best & (n > 1), r - second, 0.0)
  if scale_by_std:
    adv = adv / (std + eps)
  return _outcome(adv, mask)


class AdvantageEstimator(enum.Enum):
  """Advantage estimators by config name. Resolve once with :func:`get_advantage_estimator`."""

  GAE = "gae"
  GRPO = "grpo"
  DR_GRPO = "dr_grpo"
  RLOO = "rloo"
  REINFORCE_PP = "reinforce_pp"
  REINFORCE_PP_BASELINE = "reinforce_pp_baseline"
  REMAX = "remax"
  OPO = "opo"
  GRPO_PASSK = "grpo_passk"


_ESTIMATORS = {
    AdvantageEstimator.GAE: gae_advantages,
    AdvantageEstimator.GRPO: grpo_advantages,
    AdvantageEstimator.DR_GRPO: dr_grpo_advantages,
    AdvantageEstimator.RLOO: rloo_advantages,
    AdvantageEstimator.REINFORCE_PP: reinforce_pp_advantages,
    AdvantageEstimator.REINFORCE_PP_BASELINE: reinforce_pp_baseline_advantages,
    AdvantageEstimator.REMAX: remax_advantages,
    AdvantageEstimator.OPO: opo_advantages,
    AdvantageEstimator.GRPO_PASSK: grpo_passk_advantages,
}


def get_advantage_estimator(kind: AdvantageEstimator | str):
  """Resolve an estimator name once (outside jit) to its function."""
  return _ESTIMATORS[AdvantageEstimator(kind)]
