"""Advantage estimators (docs/algorithms.md §2).

Every estimator returns ``(advantages[B,T], returns[B,T])``, both multiplied by the loss mask
``m[B,T]``. Outcome estimators compute one value per sequence and broadcast it over the row; for
them ``returns`` equals ``advantages`` (there is no critic to regress).

Group statistics use a pairwise ``[B,B]`` "same group" matrix built from arbitrary integer group
ids, so the number of groups never needs to be static and the ids need not be contiguous.
Hyper-parameters (γ, λ, eps) are ordinary (traced) arguments.

Two ways in:

- one function per estimator (``grpo_advantages(rewards, group_ids, mask, eps, ...)``, ...), each
  with the arguments its paper needs;
- :func:`compute_advantages` ``(kind, AdvantageInputs, AdvantageHyper, *, std_scope, whiten)``:
  one signature for every estimator, dispatched through the registry (each entry an adapter with
  that same signature), so a trainer never branches on the estimator.
"""

from __future__ import annotations

import enum
from typing import Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from rlx.core import _checks as check
from rlx.core.masked import (masked_fill, masked_sum, masked_whiten, scalar_to_token_rewards,
                             sequence_lengths)

Array = jax.Array


class StdScope(enum.Enum):
  """Where GRPO takes the std that scales advantages."""

  GROUP = "group"  # σ of the sample's own group (GRPO paper)
  BATCH = "batch"  # σ of all rewards in the batch (TRL ``scale_rewards="batch"``)


def _check_outcome(where, rewards, group_ids=None, mask=None, **rows) -> None:
  """``rewards [B]``, ``group_ids [B]`` int, ``mask [B,T]`` and further ``[B]`` arrays."""
  check.ranks(where, rewards=(rewards, "[B]"), group_ids=(group_ids, "[B]"), mask=(mask, "[B,T]"),
              **{k: (v, "[B]") for k, v in rows.items()})
  check.integer(where, "group_ids", group_ids)
  check.numeric(where, "mask", mask)
  check.same_rows(where, rewards=rewards, group_ids=group_ids, mask=mask, **rows)


def _check_tokens(where, mask, **named) -> None:
  """``[B,T]`` arrays of one shape (``mask`` numeric)."""
  check.ranks(where, mask=(mask, "[B,T]"), **{k: (v, "[B,T]") for k, v in named.items()})
  check.numeric(where, "mask", mask)
  check.same_shape(where, **named, mask=mask)


def _check_scalars(where, **named) -> None:
  check.ranks(where, **{k: (v, "[]") for k, v in named.items()})


def _broadcast(per_seq: Array, mask: Array) -> Array:
  mask = jnp.asarray(mask)
  return masked_fill(jnp.broadcast_to(per_seq[:, None], mask.shape).astype(jnp.float32), mask)


def _outcome(per_seq: Array, mask: Array) -> tuple[Array, Array]:
  adv = _broadcast(per_seq, mask)
  return adv, adv


def group_matrix(group_ids: Array) -> Array:
  """``same[i, j] = 1.0`` iff sequences i and j share a group; ``[B] → [B,B]`` float32."""
  check.ranks("group_matrix", group_ids=(group_ids, "[B]"))
  check.integer("group_matrix", "group_ids", group_ids)
  group_ids = jnp.asarray(group_ids)
  return (group_ids[:, None] == group_ids[None, :]).astype(jnp.float32)


def _row_sums(same: Array, x: Array) -> Array:
  """``Σ_j same[i, j]·x[j]`` in full float32 (no matmul precision loss)."""
  return jnp.sum(same * x[None, :], axis=1)


def group_stats(rewards: Array, group_ids: Array) -> tuple[Array, Array, Array]:
  """Per-sample group size ``n_g``, mean ``μ_g`` and unbiased std ``σ_g`` (0 when ``n_g = 1``); each ``[B]``."""
  _check_outcome("group_stats", rewards, group_ids)
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
  _check_tokens("gae_advantages", mask, token_rewards=token_rewards, values=values)
  _check_scalars("gae_advantages", gamma=gamma, lam=lam)
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
  _check_outcome("grpo_advantages", rewards, group_ids, mask, row_mask=row_mask)
  check.numeric("grpo_advantages", "row_mask", row_mask)
  _check_scalars("grpo_advantages", eps=eps)
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
  _check_outcome("dr_grpo_advantages", rewards, group_ids, mask)
  return grpo_advantages(rewards, group_ids, mask, scale_by_std=False)


def rloo_advantages(rewards: Array, group_ids: Array, mask: Array) -> tuple[Array, Array]:
  """REINFORCE leave-one-out (Ahmadian et al., 2024): ``A_i = r_i − mean_{j≠i, j∈g} r_j``.

  A group of one gets 0.
  """
  _check_outcome("rloo_advantages", rewards, group_ids, mask)
  r = jnp.asarray(rewards, jnp.float32)
  same = group_matrix(group_ids)
  n = same.sum(axis=1)
  others = (_row_sums(same, r) - r) / jnp.maximum(n - 1.0, 1.0)
  adv = jnp.where(n > 1, r - others, 0.0)
  return _outcome(adv, mask)


def reinforce_pp_advantages(token_rewards: Array, mask: Array, gamma=1.0, *,
                            whiten: bool = True) -> tuple[Array, Array]:
  """REINFORCE++ (Hu, 2025): discounted return over valid tokens, whitened over the batch.

  ``G_t = R_t + γ·G_next`` with ``G_next`` the return at the next valid token (0 after the last);
  ``returns = G``; ``A = masked_whiten(G)`` (``A = G`` when ``whiten=False``).
  """
  _check_tokens("reinforce_pp_advantages", mask, token_rewards=token_rewards)
  _check_scalars("reinforce_pp_advantages", gamma=gamma)
  mask = jnp.asarray(mask).astype(bool)
  r = masked_fill(jnp.asarray(token_rewards, jnp.float32), mask)
  gamma = jnp.asarray(gamma, jnp.float32)

  def step(next_g, x):
    r_t, m_t = x
    g_t = jnp.where(m_t, r_t + gamma * next_g, 0.0)
    return jnp.where(m_t, g_t, next_g), g_t

  _, g_t = jax.lax.scan(step, jnp.zeros((r.shape[0],), jnp.float32), (r.T, mask.T), reverse=True)
  returns = g_t.T
  return (masked_whiten(returns, mask) if whiten else returns), returns


def reinforce_pp_baseline_advantages(
    rewards: Array, group_ids: Array, mask: Array, *, whiten: bool = True
) -> tuple[Array, Array]:
  """REINFORCE++-baseline: ``a_i = r_i − μ_g`` broadcast over the row, then ``masked_whiten`` over
  the batch (every token of ``mask``; skipped when ``whiten=False``)."""
  _check_outcome("reinforce_pp_baseline_advantages", rewards, group_ids, mask)
  r = jnp.asarray(rewards, jnp.float32)
  _, mean, _ = group_stats(r, group_ids)
  adv = _broadcast(r - mean, mask)
  if whiten:
    adv = masked_whiten(adv, mask)
  return adv, adv


def remax_advantages(rewards: Array, greedy_rewards: Array, mask: Array) -> tuple[Array, Array]:
  """ReMax (Li et al., 2024): ``A_i = r_i − r_greedy(prompt of i)``; no whitening.

  Args:
    rewards: ``[B]`` rewards of the sampled completions.
    greedy_rewards: ``[B]`` reward of one greedy completion of each sample's prompt (repeated per
      sample of the same prompt).
  """
  _check_outcome("remax_advantages", rewards, None, mask, greedy_rewards=greedy_rewards)
  adv = jnp.asarray(rewards, jnp.float32) - jnp.asarray(greedy_rewards, jnp.float32)
  return _outcome(adv, mask)


def opo_advantages(rewards: Array, group_ids: Array, mask: Array) -> tuple[Array, Array]:
  """On-policy RL with optimal baseline (Hao et al., 2025): length-weighted group baseline.

  ``b_g = Σ_j |y_j|·r_j / Σ_j |y_j|`` over the group; ``A_i = r_i − b_g``.
  """
  _check_outcome("opo_advantages", rewards, group_ids, mask)
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
  _check_outcome("grpo_passk_advantages", rewards, group_ids, mask)
  _check_scalars("grpo_passk_advantages", eps=eps)
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


# One signature for every estimator ------------------------------------------------------------


@flax.struct.dataclass
class AdvantageInputs:
  """Everything any estimator reads, ``B`` rows of ``T`` completion tokens (a pytree).

  Attributes:
    rewards: ``[B]`` float32 scalar (outcome) rewards.
    token_rewards: ``[B,T]`` float32 *dense* per-token rewards only (e.g. ``−β·kl_t`` with KL in
      the reward, process rewards); it does not include the scalar reward. Zeros when none.
    group_ids: ``[B]`` int prompt ids (any integers; padding rows get ids ``< 0`` of their own).
    mask: ``[B,T]`` loss mask (float, int or bool).
    values: ``[B,T]`` critic values (gae only), else ``None``.
    greedy_rewards: ``[B]`` reward of the greedy completion of each row's prompt (remax only),
      else ``None``.
    row_mask: ``[B]`` 1 for a real row, 0 for a padding row of a static batch, or ``None`` (all
      real). Padding rows are left out of batch-wide statistics (grpo's batch-scope σ, the
      whitening of gae, reinforce_pp and reinforce_pp_baseline) and get zero advantages.
  """

  rewards: jax.Array
  token_rewards: jax.Array
  group_ids: jax.Array
  mask: jax.Array
  values: jax.Array | None = None
  greedy_rewards: jax.Array | None = None
  row_mask: jax.Array | None = None

  @classmethod
  def create(cls, rewards, mask, *, group_ids=None, token_rewards=None, values=None,
             greedy_rewards=None, row_mask=None) -> "AdvantageInputs":
    """Cast to the canonical dtypes; ``token_rewards`` default to zeros, ``group_ids`` to
    ``arange(B)`` (every row a group of its own: group estimators then give 0)."""
    f32 = lambda x: None if x is None else jnp.asarray(x, jnp.float32)
    mask = f32(mask)
    b = mask.shape[0]
    return cls(rewards=f32(rewards),
               token_rewards=jnp.zeros_like(mask) if token_rewards is None else f32(token_rewards),
               group_ids=jnp.arange(b, dtype=jnp.int32) if group_ids is None
               else jnp.asarray(group_ids, jnp.int32),
               mask=mask, values=f32(values), greedy_rewards=f32(greedy_rewards),
               row_mask=f32(row_mask))


@flax.struct.dataclass
class AdvantageHyper:
  """Traced hyper-parameters of the estimators (float32 scalars; changing one never recompiles).

  ``eps``: grpo / grpo_passk std offset; ``gamma``: discount (gae, reinforce_pp); ``lam``: GAE λ.
  """

  eps: jax.Array
  gamma: jax.Array
  lam: jax.Array

  @classmethod
  def create(cls, *, eps=1e-6, gamma=1.0, lam=1.0) -> "AdvantageHyper":
    f = lambda x: jnp.asarray(x, jnp.float32)
    return cls(eps=f(eps), gamma=f(gamma), lam=f(lam))


def _effective_mask(x: AdvantageInputs) -> Array:
  """The loss mask with padding rows (``row_mask == 0``) zeroed."""
  m = jnp.asarray(x.mask, jnp.float32)
  if x.row_mask is None:
    return m
  return m * jnp.asarray(x.row_mask, jnp.float32)[:, None]


def _dense_token_rewards(x: AdvantageInputs, m: Array) -> Array:
  """Token-level estimators' ``R = scalar_to_token_rewards(r, m) + token_rewards·m``."""
  return (scalar_to_token_rewards(jnp.asarray(x.rewards, jnp.float32), m)
          + masked_fill(jnp.asarray(x.token_rewards, jnp.float32), m))


def _sequence_rewards(x: AdvantageInputs, m: Array) -> Array:
  """Sequence-level estimators' ``r + Σ_t token_rewards·m``."""
  return jnp.asarray(x.rewards, jnp.float32) + masked_sum(
      jnp.asarray(x.token_rewards, jnp.float32), m, axis=-1)


def _require(x: AdvantageInputs, field: str, kind: str):
  value = getattr(x, field)
  if value is None:
    raise ValueError(f"advantage estimator {kind!r} needs AdvantageInputs.{field} (got None)")
  return value


def _gae(x: AdvantageInputs, hp: AdvantageHyper, *, std_scope=StdScope.GROUP, whiten=True):
  del std_scope
  values = _require(x, "values", "gae")
  m = _effective_mask(x)
  return gae_advantages(_dense_token_rewards(x, m), values, m, hp.gamma, hp.lam, whiten=whiten)


def _grpo(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del whiten
  m = _effective_mask(x)
  return grpo_advantages(_sequence_rewards(x, m), x.group_ids, m, hp.eps, std_scope=std_scope,
                         row_mask=x.row_mask)


def _dr_grpo(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del hp, std_scope, whiten
  m = _effective_mask(x)
  return dr_grpo_advantages(_sequence_rewards(x, m), x.group_ids, m)


def _rloo(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del hp, std_scope, whiten
  m = _effective_mask(x)
  return rloo_advantages(_sequence_rewards(x, m), x.group_ids, m)


def _reinforce_pp(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del std_scope
  m = _effective_mask(x)
  return reinforce_pp_advantages(_dense_token_rewards(x, m), m, hp.gamma, whiten=whiten)


def _reinforce_pp_baseline(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del hp, std_scope
  m = _effective_mask(x)
  return reinforce_pp_baseline_advantages(_sequence_rewards(x, m), x.group_ids, m, whiten=whiten)


def _remax(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del hp, std_scope, whiten
  greedy = _require(x, "greedy_rewards", "remax")
  m = _effective_mask(x)
  return remax_advantages(_sequence_rewards(x, m), greedy, m)


def _opo(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del hp, std_scope, whiten
  m = _effective_mask(x)
  return opo_advantages(_sequence_rewards(x, m), x.group_ids, m)


def _grpo_passk(x, hp, *, std_scope=StdScope.GROUP, whiten=True):
  del std_scope, whiten
  m = _effective_mask(x)
  return grpo_passk_advantages(_sequence_rewards(x, m), x.group_ids, m, hp.eps)


AdvantageAdapter = Callable[..., tuple[Array, Array]]


class _Entry(NamedTuple):
  function: Callable  # the estimator's own function (its paper's arguments)
  adapter: AdvantageAdapter  # (inputs, hp, *, std_scope, whiten) -> (adv, returns)
  token_level: bool  # sees dense per-token rewards R[B,T]; else the per-row sum r[B]


_ESTIMATORS = {
    AdvantageEstimator.GAE: _Entry(gae_advantages, _gae, True),
    AdvantageEstimator.GRPO: _Entry(grpo_advantages, _grpo, False),
    AdvantageEstimator.DR_GRPO: _Entry(dr_grpo_advantages, _dr_grpo, False),
    AdvantageEstimator.RLOO: _Entry(rloo_advantages, _rloo, False),
    AdvantageEstimator.REINFORCE_PP: _Entry(reinforce_pp_advantages, _reinforce_pp, True),
    AdvantageEstimator.REINFORCE_PP_BASELINE: _Entry(
        reinforce_pp_baseline_advantages, _reinforce_pp_baseline, False),
    AdvantageEstimator.REMAX: _Entry(remax_advantages, _remax, False),
    AdvantageEstimator.OPO: _Entry(opo_advantages, _opo, False),
    AdvantageEstimator.GRPO_PASSK: _Entry(grpo_passk_advantages, _grpo_passk, False),
}


def get_advantage_estimator(kind: AdvantageEstimator | str):
  """Resolve an estimator name once (outside jit) to its own function (its paper's arguments,
  e.g. ``grpo_advantages(rewards, group_ids, mask, eps)``)."""
  return _ESTIMATORS[AdvantageEstimator(kind)].function


def get_advantage_adapter(kind: AdvantageEstimator | str) -> AdvantageAdapter:
  """Resolve an estimator name to its adapter ``(inputs, hp, *, std_scope, whiten) -> (A, returns)``,
  the signature every estimator shares (what :func:`compute_advantages` dispatches to)."""
  return _ESTIMATORS[AdvantageEstimator(kind)].adapter


def is_token_level(kind: AdvantageEstimator | str) -> bool:
  """True for estimators that see per-token rewards ``R[B,T]`` (gae, reinforce_pp)."""
  return _ESTIMATORS[AdvantageEstimator(kind)].token_level


def _check_inputs(x: AdvantageInputs) -> None:
  where = "compute_advantages"
  check.ranks(where, rewards=(x.rewards, "[B]"), token_rewards=(x.token_rewards, "[B,T]"),
              group_ids=(x.group_ids, "[B]"), mask=(x.mask, "[B,T]"), values=(x.values, "[B,T]"),
              greedy_rewards=(x.greedy_rewards, "[B]"), row_mask=(x.row_mask, "[B]"))
  check.integer(where, "group_ids", x.group_ids)
  check.numeric(where, "mask", x.mask)
  check.numeric(where, "row_mask", x.row_mask)
  check.same_shape(where, token_rewards=x.token_rewards, mask=x.mask, values=x.values)
  check.same_rows(where, rewards=x.rewards, group_ids=x.group_ids, mask=x.mask,
                  greedy_rewards=x.greedy_rewards, row_mask=x.row_mask)


def compute_advantages(
    kind: AdvantageEstimator | str,
    inputs: AdvantageInputs,
    hp: AdvantageHyper,
    *,
    std_scope: StdScope | str = StdScope.GROUP,
    whiten: bool = True,
) -> tuple[Array, Array]:
  """``(advantages [B,T], returns [B,T])`` of estimator ``kind``, one signature for all of them.

  Dense rewards: ``inputs.rewards [B]`` are scalar rewards, ``inputs.token_rewards [B,T]`` dense
  per-token rewards only (KL in the reward, process rewards; zeros when none).
  - token-level estimators (gae, reinforce_pp) see
    ``R = scalar_to_token_rewards(rewards, m) + token_rewards·m`` (the scalar on the last valid token);
  - sequence-level (outcome) estimators (grpo, dr_grpo, rloo, reinforce_pp_baseline, remax, opo,
    grpo_passk) see ``r = rewards + Σ_t token_rewards·m`` (remax's ``greedy_rewards`` as given).

  ``values`` (gae) and ``greedy_rewards`` (remax) must be set for the estimators that read them
  (``ValueError`` otherwise). Rows with ``row_mask == 0`` (padding of a static batch, in groups
  of their own with ids < 0) are taken out of the mask — they get zero advantages and count in no
  batch-wide statistic (grpo's batch-scope σ, the batch whitening).

  Static (python) options: ``kind``, ``std_scope`` (grpo: σ of the group or of the batch) and
  ``whiten`` (gae, reinforce_pp, reinforce_pp_baseline: whiten over the batch; the others never
  whiten). Under jit mark them static:
  ``jax.jit(compute_advantages, static_argnums=0, static_argnames=("std_scope", "whiten"))``.
  """
  entry = _ESTIMATORS[AdvantageEstimator(kind)]
  _check_inputs(inputs)
  return entry.adapter(inputs, hp, std_scope=StdScope(std_scope), whiten=whiten)
