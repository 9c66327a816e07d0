"""Composition: weighted sums of rewards, posterior gating, per-reward metrics.

``compose([{"name": "math_answer", "weight": 1.0},
           {"name": "format", "weight": 0.1, "gate": "math_answer"}])``
gives ``r = 1.0·r_math + 0.1·r_format·1[r_math > 0]`` (P-GRPO posterior gating: a process reward
counts only where the outcome reward is positive). Each part is contained (``SafeReward``); the
composite never raises. Extras are namespaced ``reward/<key>/<extra>``; every part reports
``reward/<key>/score`` and ``reward/<key>/failures``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlx.rewards.base import RewardInput, RewardOutput, Scorer
from rlx.rewards.registry import get_reward
from rlx.rewards.safety import SafeReward


@dataclasses.dataclass
class Component:
  """One part of a composite: ``key`` (metric name), the (contained) reward, its weight, and an
  optional gate (the key of another component whose score must exceed ``gate_threshold``)."""

  key: str
  reward: Any
  weight: float = 1.0
  gate: str | None = None
  gate_threshold: float = 0.0


class CompositeReward:
  """``r = Σ_k w_k · r_k · gate_k`` over components (gates refer to earlier or later components
  by key and use their ungated scores); token scores combine the same way; sample masks
  multiply; ``aux`` is keyed by component."""

  name = "composite"

  def __init__(self, components: Sequence[Component]):
    keys = [c.key for c in components]
    if len(set(keys)) != len(keys):
      raise ValueError(f"component keys must be unique, got {keys}")
    for c in components:
      if c.gate is not None and c.gate not in keys:
        raise ValueError(f"component {c.key!r} is gated on unknown component {c.gate!r}")
    self.components = [dataclasses.replace(c, reward=c.reward if isinstance(c.reward, SafeReward)
                                           else SafeReward(c.reward)) for c in components]

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    b = batch.batch_size
    outs = {c.key: c.reward(batch, scorer) for c in self.components}
    total = np.zeros(b, np.float64)
    token_total = None
    mask = None
    extras: dict[str, np.ndarray] = {}
    failures = np.zeros(b, np.int32)
    for c in self.components:
      out = outs[c.key]
      g = np.ones(b) if c.gate is None else (outs[c.gate].scores > c.gate_threshold).astype(float)
      total += c.weight * g * out.scores
      if out.token_scores is not None:
        ts = c.weight * g[:, None] * out.token_scores
        token_total = ts if token_total is None else token_total + ts
      if out.sample_mask is not None:
        mask = out.sample_mask if mask is None else mask * out.sample_mask
      extras[f"reward/{c.key}/score"] = np.asarray(out.scores, np.float32)
      if c.gate is not None:
        extras[f"reward/{c.key}/gate_open"] = g.astype(np.float32)
      for k, v in out.extras.items():
        extras[f"reward/{c.key}/{k}"] = np.asarray(v, np.float32)
      if out.failures is not None:
        failures += np.asarray(out.failures, np.int32)
    return RewardOutput(total.astype(np.float32),
                        None if token_total is None else token_total.astype(np.float32),
                        extras, mask, {c.key: outs[c.key].aux for c in self.components
                                       if outs[c.key].aux}, failures)

  def state_dict(self) -> dict[str, Any]:
    return {c.key: c.reward.state_dict() for c in self.components
            if hasattr(c.reward.reward, "state_dict")}

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    for c in self.components:
      if c.key in state:
        c.reward.load_state_dict(state[c.key])


def compose(specs: Sequence[Mapping[str, Any] | Component]) -> CompositeReward:
  """A composite from config entries ``{"name", "weight"=1, "gate"=None, "key"=name,
  "gate_threshold"=0, "call_timeout"=60, **reward kwargs}`` (or ``Component`` objects)."""
  comps = []
  for s in specs:
    if isinstance(s, Component):
      comps.append(s)
      continue
    kw = dict(s)
    name = kw.pop("name")
    comps.append(Component(
        key=kw.pop("key", name), weight=float(kw.pop("weight", 1.0)), gate=kw.pop("gate", None),
        gate_threshold=float(kw.pop("gate_threshold", 0.0)),
        reward=get_reward(name, call_timeout=kw.pop("call_timeout", 60.0),
                          default=kw.pop("default", 0.0), **kw)))
  return CompositeReward(comps)


def reward_metrics(out: RewardOutput, prefix: str = "reward") -> dict[str, float]:
  """Scalar metrics of one scored batch: ``<prefix>/mean``, ``<prefix>/std``, the mean of every
  per-sample extra, and counts (sums) for keys ending in ``failures``."""
  m = {f"{prefix}/mean": float(np.mean(out.scores)), f"{prefix}/std": float(np.std(out.scores))}
  for k, v in out.extras.items():
    key = k if k.startswith(prefix + "/") else f"{prefix}/{k}"
    v = np.asarray(v, np.float64)
    m[key] = float(v.sum() if key.rsplit("/", 1)[-1].startswith("failures") else v.mean())
  if out.sample_mask is not None:
    m[f"{prefix}/kept_fraction"] = float(np.mean(out.sample_mask))
  return m
