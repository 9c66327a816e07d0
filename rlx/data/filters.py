"""Online group filters, the refill loop and a staged curriculum (docs/algorithms.md §11).

Filters work on plain host arrays: ``rewards [N]`` and ``group_ids [N]`` (rows with a negative
group id are padding and ignored). A filter is a pair of pure functions in a small class::

    state = f.init_state()                       # dict of numpy scalars (checkpointable)
    keep, state = f.keep(stats, state)           # stats = group_stats(rewards, group_ids)

``keep`` is ``[K] bool`` over ``stats.group_ids``. :func:`fill_batch` runs the over-sample and
refill loop around any filter with a callable that samples and scores more groups.

Definitions (per group, rewards ``r_1..r_G``): ``std`` is the population standard deviation and
``p̂ = mean(r_i >= pass_threshold)`` the pass rate.

- :class:`DynamicSampling` (DAPO): keep iff ``std > min_std`` (``min_std`` 0 up to float noise).
- :class:`BalancedDifficulty` (Bae et al.): keep iff ``lo ≤ p̂ ≤ hi``, each bound closed or open.
- :class:`StdEMA` (RLPR): keep iff ``std ≥ ratio · EMA(std)`` (ratio 0.5, decay 0.99), keeping
  everything during the first ``warmup`` calls; the EMA tracks the mean group std of each call.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

FilterState = dict[str, np.ndarray]


def _scalar(dtype, value) -> np.ndarray:
  """A 0-d numpy array: state leaves that orbax and ``jax.tree_util`` handle as arrays."""
  return np.asarray(value, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class GroupStats:
  """Per-group statistics, all ``[K]`` over the distinct non-negative group ids, in order of
  first appearance."""

  group_ids: np.ndarray
  size: np.ndarray
  mean: np.ndarray
  std: np.ndarray
  pass_rate: np.ndarray


def group_stats(rewards: np.ndarray, group_ids: np.ndarray, *,
                pass_threshold: float = 1.0) -> GroupStats:
  """Group sizes, mean and population std of rewards, and pass rates ``mean(r >= threshold)``.

  Args:
    rewards: ``[N]`` float.
    group_ids: ``[N]`` int; rows with negative ids are ignored.
  """
  rewards = np.asarray(rewards, np.float64)
  group_ids = np.asarray(group_ids)
  if rewards.shape != group_ids.shape or rewards.ndim != 1:
    raise ValueError(f"rewards {rewards.shape} and group_ids {group_ids.shape} must be [N]")
  valid = group_ids >= 0
  ids, first, inverse = np.unique(group_ids[valid], return_index=True, return_inverse=True)
  order = np.argsort(first, kind="stable")  # groups in order of first appearance
  rank = np.empty_like(order)
  rank[order] = np.arange(len(order))
  ids, inverse = ids[order], rank[inverse.reshape(-1)]
  r = rewards[valid]
  size = np.bincount(inverse, minlength=len(ids)).astype(np.int64)
  mean = np.bincount(inverse, weights=r, minlength=len(ids)) / np.maximum(size, 1)
  var = np.bincount(inverse, weights=(r - mean[inverse]) ** 2, minlength=len(ids))
  std = np.sqrt(var / np.maximum(size, 1))
  passed = np.bincount(inverse, weights=(r >= pass_threshold).astype(np.float64),
                       minlength=len(ids))
  return GroupStats(group_ids=ids, size=size, mean=mean, std=std,
                    pass_rate=passed / np.maximum(size, 1))


class GroupFilter:
  """Base: keeps every group, stateless."""

  def init_state(self) -> FilterState:
    return {}

  def keep(self, stats: GroupStats, state: FilterState) -> tuple[np.ndarray, FilterState]:
    return np.ones_like(stats.group_ids, dtype=bool), state


@dataclasses.dataclass(frozen=True)
class DynamicSampling(GroupFilter):
  """DAPO dynamic sampling: keep a group iff its reward std ``> min_std``."""

  min_std: float = 1e-6

  def keep(self, stats, state):
    return stats.std > self.min_std, state


@dataclasses.dataclass(frozen=True)
class BalancedDifficulty(GroupFilter):
  """Keep a group iff its pass rate lies in the band ``lo ≤ p̂ ≤ hi`` (bounds closed or open)."""

  lo: float = 0.25
  hi: float = 0.75
  lo_closed: bool = True
  hi_closed: bool = True

  def keep(self, stats, state):
    p = stats.pass_rate
    above = p >= self.lo if self.lo_closed else p > self.lo
    below = p <= self.hi if self.hi_closed else p < self.hi
    return above & below, state


@dataclasses.dataclass(frozen=True)
class StdEMA(GroupFilter):
  """RLPR std filter: keep iff ``std ≥ ratio · EMA(std)`` once ``warmup`` calls have been seen.

  The EMA (bias-corrected, decay ``decay``) is updated after each call with the mean std of all
  groups scored in that call, filtered or not; the decision uses the EMA *before* the update.
  State: ``{"ema": f64 (uncorrected), "count": i64 (calls seen)}``.
  """

  ratio: float = 0.5
  decay: float = 0.99
  warmup: int = 10

  def init_state(self):
    return {"ema": _scalar(np.float64, 0.0), "count": _scalar(np.int64, 0)}

  def ema(self, state: FilterState) -> float:
    """The bias-corrected EMA of the mean group std (0 before any call)."""
    count = int(state["count"])
    return 0.0 if count == 0 else float(state["ema"]) / (1.0 - self.decay**count)

  def keep(self, stats, state):
    if int(state["count"]) < self.warmup:
      keep = np.ones_like(stats.group_ids, dtype=bool)
    else:
      keep = stats.std >= self.ratio * self.ema(state)
    if len(stats.std) == 0:
      return keep, state
    ema = self.decay * float(state["ema"]) + (1.0 - self.decay) * float(stats.std.mean())
    count = int(state["count"]) + 1
    return keep, {"ema": _scalar(np.float64, ema), "count": _scalar(np.int64, count)}


def filter_metrics(pass_rate: np.ndarray, keep: np.ndarray) -> dict[str, float]:
  """Kept fraction, mean pass rate ``p̂`` and mean ``p̂(1-p̂)`` over scored groups ``[K]``."""
  p, keep = np.asarray(pass_rate, np.float64), np.asarray(keep, bool)
  k = len(p)
  return {
      "num_groups": float(k),
      "kept_groups": float(keep.sum()),
      "kept_fraction": float(keep.mean()) if k else 0.0,
      "mean_p": float(p.mean()) if k else 0.0,
      "mean_p_var": float((p * (1 - p)).mean()) if k else 0.0,
      "mean_p_kept": float(p[keep].mean()) if keep.any() else 0.0,
  }


# --- the refill loop -------------------------------------------------------------------------
class RefillExhaustedWarning(UserWarning):
  """The refill limit was reached before the batch was full."""


@dataclasses.dataclass(frozen=True)
class ScoredGroups:
  """One round of sampled and scored groups.

  Attributes:
    rewards: ``[N]`` float.
    group_ids: ``[N]`` int (ids need only be distinct within the round; < 0 marks padding).
    data: optional pytree of arrays with leading dimension N (e.g. the rollout); kept rows are
      gathered from it.
  """

  rewards: np.ndarray
  group_ids: np.ndarray
  data: Any = None


@dataclasses.dataclass(frozen=True)
class FillResult:
  """The kept groups, renumbered ``0..num_groups-1`` in the order they were kept.

  Attributes:
    rewards: ``[M]`` rewards of the kept rows.
    group_ids: ``[M]`` new group ids.
    data: the kept rows of each round's ``data``, concatenated (None if rounds had no data).
    num_groups: groups kept (``== target`` unless exhausted).
    refills: rounds sampled after the first.
    exhausted: the refill limit was hit before the batch was full.
    metrics: ``filter/...`` scalars: kept_fraction, mean_p, mean_p_var (over all scored
      groups), refills, exhausted (0/1), kept_groups, num_groups.
  """

  rewards: np.ndarray
  group_ids: np.ndarray
  data: Any
  num_groups: int
  refills: int
  exhausted: bool
  metrics: dict[str, float]


def _gather(datas: Sequence[Any], rows: Sequence[np.ndarray]) -> Any:
  if all(d is None for d in datas):
    return None
  import jax
  parts = [jax.tree_util.tree_map(lambda x, r=r: np.asarray(x)[r], d)
           for d, r in zip(datas, rows)]
  return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *parts)


def fill_batch(
    sample_fn: Callable[[int], ScoredGroups],
    group_filter: GroupFilter,
    state: FilterState,
    *,
    num_groups: int,
    max_refills: int,
    pass_threshold: float = 1.0,
    truncate: bool = True,
) -> tuple[FillResult, FilterState]:
  """Samples, filters and refills until ``num_groups`` groups are kept.

  ``sample_fn(round)`` samples and scores a fresh set of groups (round 0 is the first draw, then
  one call per refill). Kept groups accumulate in order; with ``truncate`` the surplus beyond
  ``num_groups`` is dropped. After ``max_refills`` refills the loop stops, emits a
  :class:`RefillExhaustedWarning` and returns what was kept (``exhausted=True``, metric
  ``filter/exhausted = 1``): the caller trains on the smaller batch.

  Returns:
    The :class:`FillResult` and the filter state after every round.
  """
  kept_rewards, kept_gids, datas, rows = [], [], [], []
  all_pass, all_keep = [], []
  total, rounds = 0, 0
  while True:
    scored = sample_fn(rounds)
    rewards, gids = np.asarray(scored.rewards), np.asarray(scored.group_ids)
    stats = group_stats(rewards, gids, pass_threshold=pass_threshold)
    keep, state = group_filter.keep(stats, state)
    all_pass.append(stats.pass_rate)
    all_keep.append(keep)
    kept_ids = stats.group_ids[keep]
    if truncate:
      kept_ids = kept_ids[:max(num_groups - total, 0)]
    # New ids: consecutive in the order of kept groups.
    new_id = {int(g): total + j for j, g in enumerate(kept_ids)}
    row = np.array([i for i, g in enumerate(gids) if int(g) in new_id], dtype=np.int64)
    kept_rewards.append(rewards[row])
    kept_gids.append(np.array([new_id[int(g)] for g in gids[row]], dtype=np.int32))
    datas.append(scored.data)
    rows.append(row)
    total += len(kept_ids)
    if total >= num_groups or rounds >= max_refills:
      break
    rounds += 1
  exhausted = total < num_groups
  if exhausted:
    warnings.warn(
        f"online filter {type(group_filter).__name__}: kept {total} of {num_groups} groups after "
        f"{max_refills} refills; training on the {total} kept groups",
        RefillExhaustedWarning, stacklevel=2)
  p, keep = np.concatenate(all_pass), np.concatenate(all_keep)
  metrics = {f"filter/{k}": v for k, v in filter_metrics(p, keep).items()}
  metrics["filter/kept_groups"] = float(total)
  metrics["filter/refills"] = float(rounds)
  metrics["filter/exhausted"] = float(exhausted)
  return FillResult(
      rewards=np.concatenate(kept_rewards), group_ids=np.concatenate(kept_gids),
      data=_gather(datas, rows), num_groups=total, refills=rounds, exhausted=exhausted,
      metrics=metrics), state


# --- curriculum -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StagedCurriculum:
  """Staged difficulty: advance to the next stage by step count or by measured pass rate.

  ``stages`` are difficulties (or lists of difficulties) for the task source. With
  ``steps_per_stage`` the stage advances every that many updates; otherwise it advances once the
  EMA (``decay``) of the measured pass rate reaches ``promote_at`` after at least ``min_steps``
  updates in the stage. State: ``{"stage", "steps_in_stage" (i64), "pass_ema" (f64)}``.
  """

  stages: Sequence[Any]
  promote_at: float = 0.8
  min_steps: int = 1
  decay: float = 0.9
  steps_per_stage: int | None = None

  def init_state(self) -> FilterState:
    return {"stage": _scalar(np.int64, 0), "steps_in_stage": _scalar(np.int64, 0),
            "pass_ema": _scalar(np.float64, 0.0)}

  def current(self, state: FilterState) -> Any:
    """The current stage's difficulty setting."""
    return self.stages[int(state["stage"])]

  def update(self, state: FilterState, mean_pass_rate: float) -> FilterState:
    """Records one step's mean pass rate; returns the next state (possibly a new stage)."""
    stage, steps = int(state["stage"]), int(state["steps_in_stage"]) + 1
    if steps == 1:
      ema = float(mean_pass_rate)
    else:
      ema = self.decay * float(state["pass_ema"]) + (1 - self.decay) * float(mean_pass_rate)
    if self.steps_per_stage is not None:
      promote = steps >= self.steps_per_stage
    else:
      promote = steps >= self.min_steps and ema >= self.promote_at
    if promote and stage + 1 < len(self.stages):
      return {"stage": _scalar(np.int64, stage + 1), "steps_in_stage": _scalar(np.int64, 0),
              "pass_ema": _scalar(np.float64, 0.0)}
    return {"stage": _scalar(np.int64, stage), "steps_in_stage": _scalar(np.int64, steps),
            "pass_ema": _scalar(np.float64, ema)}
