"""The typed data that crosses the RL step: sampler → rewards → filters → prepare → update.

A :class:`Trajectory` is what the sampler and the host side (rewards, filters) produce and what
batch preparation (``rlx.algorithms.grpo.make_prepare`` / ``rlx.algorithms.ppo``) consumes. The
same struct holds numpy arrays on the host and ``jax.Array``s on the device. Every field that has
one row per sequence is declared a *rows* field (:func:`rows`): on a mesh its leading dimension
is split over ``data × fsdp`` (``rlx.runtime.mesh.Layout.shardings_for`` reads the declaration),
so compiled steps need no per-argument sharding list.

Shapes: ``B`` rows (prompt-major: the ``G`` samples of a group are adjacent), ``P`` prompt
tokens (left-padded), ``T`` completion tokens (right-padded).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import numpy as np

from rlx.sampling import LENGTH

ROWS = "rows"


def rows(**kwargs):
  """A struct field whose leaves are ``[B, ...]`` arrays, split by rows on a mesh."""
  return flax.struct.field(metadata={"sharding": ROWS}, **kwargs)


def is_rows_field(field: dataclasses.Field) -> bool:
  return field.metadata.get("sharding") == ROWS


@flax.struct.dataclass
class Trajectory:
  """One step's sampled and scored sequences.

  prompt_tokens: ``[B,P]`` int32, left-padded. prompt_mask: ``[B,P]`` 1 on real prompt tokens.
  completion_tokens: ``[B,T]`` int32. completion_mask: ``[B,T]`` 1 on tokens that exist (the
  model attends to them: sampled tokens and, in multi-turn episodes, observation tokens).
  loss_mask: ``[B,T]`` 1 on tokens the policy chose *and* that are trained on; 0 on padding, on
  tokens the policy did not choose (tool / environment output), on samples a reward or filter
  masked out and on padding rows. Log-probs, KL, lengths and losses count only these tokens.
  sampler_logprobs: ``[B,T]`` float32 log-probs of the sampled tokens under the sampling policy.
  rewards: ``[B]`` float32 scalar rewards (after length shaping).
  token_rewards: ``[B,T]`` float32 dense per-token rewards (process rewards; zeros when none).
  group_ids: ``[B]`` int32 prompt (group) ids; ``< 0`` marks a padding row of the static batch.
  sample_mask: ``[B]`` float32 1 on real rows, 0 on padding rows.
  finished: ``[B]`` float32 1 where the sample ended on a stop token (not the length limit).
  aux: ``{name: [B, ...]}`` extra per-row inputs of a plug-in (e.g. ``verifier_rewards`` before
  length shaping for LaSeR, ``greedy_rewards`` for ReMax).
  """

  prompt_tokens: Any = rows()
  prompt_mask: Any = rows()
  completion_tokens: Any = rows()
  completion_mask: Any = rows()
  loss_mask: Any = rows()
  sampler_logprobs: Any = rows()
  rewards: Any = rows()
  token_rewards: Any = rows()
  group_ids: Any = rows()
  sample_mask: Any = rows()
  finished: Any = rows()
  aux: dict = rows(default_factory=dict)

  @property
  def num_rows(self) -> int:
    return int(np.shape(self.rewards)[0])

  @classmethod
  def from_rollout(cls, rollout: dict[str, np.ndarray], rewards, *, token_rewards=None,
                   sample_mask=None, aux=None) -> "Trajectory":
    """From the sampler's host arrays (``rlx.runtime.rollouts.rollout_to_host``) and the scores.

    ``sample_mask [B]`` (a reward's or the overlong filter's) zeroes the loss mask of masked
    samples; the trajectory's own ``sample_mask`` marks real rows (all ones here)."""
    cm = np.asarray(rollout["completion_mask"], np.float32)
    b = cm.shape[0]
    keep = np.ones((b,), np.float32) if sample_mask is None else np.asarray(sample_mask,
                                                                            np.float32)
    loss_mask = rollout.get("loss_mask", cm) * keep[:, None]
    dense = np.zeros_like(cm) if token_rewards is None else np.asarray(token_rewards,
                                                                       np.float32) * cm
    return cls(
        prompt_tokens=np.asarray(rollout["prompt_tokens"], np.int32),
        prompt_mask=np.asarray(rollout["prompt_mask"], np.float32),
        completion_tokens=np.asarray(rollout["completion_tokens"], np.int32),
        completion_mask=cm, loss_mask=np.asarray(loss_mask, np.float32),
        sampler_logprobs=np.asarray(rollout["logprobs"], np.float32),
        rewards=np.asarray(rewards, np.float32), token_rewards=dense,
        group_ids=np.asarray(rollout["group_ids"], np.int32),
        sample_mask=np.ones((b,), np.float32),
        finished=np.asarray(rollout["finish_reason"] != LENGTH, np.float32),
        aux={k: np.asarray(v) for k, v in (aux or {}).items()})

  @classmethod
  def from_device_rollout(cls, rollout, rewards) -> "Trajectory":
    """From a ``rlx.sampling.Rollout`` left on the devices (no host transfer: on several
    processes its arrays are not fully addressable from one host) and host ``rewards [B]``;
    every row real and trained on, no dense rewards."""
    b = len(rewards)
    return cls(
        prompt_tokens=rollout.prompt_tokens, prompt_mask=rollout.prompt_mask,
        completion_tokens=rollout.completion_tokens, completion_mask=rollout.completion_mask,
        loss_mask=rollout.completion_mask, sampler_logprobs=rollout.logprobs, rewards=rewards,
        token_rewards=np.zeros(rollout.completion_mask.shape, np.float32),
        group_ids=rollout.group_ids, sample_mask=np.ones((b,), np.float32),
        finished=(rollout.finish_reason != LENGTH).astype(np.float32))

  def pad_to(self, num_rows: int) -> "Trajectory":
    """Exactly ``num_rows`` rows: truncated, or padded by repeating row 0 as *padding rows*
    (zero loss mask and sample mask, unique negative group ids) so the update keeps one static
    shape. Padding rows count in no numerator, denominator or batch-wide statistic."""
    have = self.num_rows
    if have >= num_rows:
      return take_rows(self, np.arange(num_rows))
    extra = num_rows - have
    out = take_rows(self, np.concatenate([np.arange(have), np.zeros(extra, np.int64)]))
    pad = np.arange(have, num_rows)
    loss_mask, sample_mask = np.array(out.loss_mask), np.array(out.sample_mask)
    group_ids = np.array(out.group_ids)
    loss_mask[pad], sample_mask[pad] = 0, 0
    group_ids[pad] = -1 - np.arange(extra)
    return out.replace(loss_mask=loss_mask, sample_mask=sample_mask, group_ids=group_ids)


def take_rows(tree, index):
  """Rows ``index`` of every ``[B, ...]`` leaf (host arrays)."""
  return jax.tree.map(lambda x: np.asarray(x)[index], tree)
