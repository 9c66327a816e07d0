"""Reward-model training (Bradley–Terry, docs/algorithms.md §7) and loading a trained reward model.

The reward model is ``rlx.models.RewardModel``: the decoder backbone with a scalar head read at
the last real token, ``s(x, y)``. Per pair the loss is

    −log σ(s_c − s_r − margin) + λ·(s_c + s_r)²         (``rlx.core.bradley_terry_loss``)

with the per-pair margin from the data (× ``margin_coef``) and the optional centering term
(Eisenstein et al., 2023). Same update structure as DPO (``rlx.algorithms.dpo``): one compiled
function, micro-batches in a ``lax.scan`` with the global pair count as denominator, traced
hyper-parameters. Metrics: ``loss``, ``rewards/chosen`` / ``rewards/rejected`` (mean scores),
``rewards/margin`` and ``rewards/accuracy`` (``s_c > s_r``).

A reward-model run's checkpoints record the architecture (``host["reward_model"]``), so
``rlx.runtime.scorer.load_reward_model`` rebuilds the scorer from the checkpoint directory alone; that is what
the ``reward_model`` reward of ``rlx.rewards`` loads for ``kwargs={"checkpoint": DIR}``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlx import core
from rlx import models
from rlx.algorithms import learner
from rlx.algorithms.common import positions_from_mask
from rlx.algorithms.dpo import PairBatch, PrefHyper, finalize_metrics
from rlx.optim import OptimizerDef, frozen_copy


def pair_scores(graphdef, params, batch: PairBatch) -> tuple[jax.Array, jax.Array]:
  """``(s_c [B], s_r [B])`` from one forward pass of the reward model over ``[2B,S]``."""
  b = batch.chosen_tokens.shape[0]
  tokens = jnp.concatenate([batch.chosen_tokens, batch.rejected_tokens], axis=0)
  mask = jnp.concatenate([batch.chosen_mask, batch.rejected_mask], axis=0)
  scores = models.apply(graphdef, params, tokens, positions_from_mask(mask), mask)
  return scores[:b], scores[b:]


def rm_micro_loss(params, mb: PairBatch, hp: PrefHyper, denominator, *, graphdef):
  """``(Σ_{b∈mb} w_b·loss_b / denominator, weighted metric sums)``."""
  sc, sr = pair_scores(graphdef, params, mb)
  loss, metrics = jax.vmap(lambda c, r, m: core.bradley_terry_loss(
      c, r, margin=m, center_coef=hp.center_coef))(sc, sr, hp.margin_coef * mb.margin)
  w = mb.weight
  sums = {k: jnp.sum(w * v) for k, v in metrics.items()}
  sums["loss"] = jnp.sum(w * jax.lax.stop_gradient(loss))
  sums["count"] = jnp.sum(w)
  return jnp.sum(w * loss) / denominator, sums


@dataclasses.dataclass(frozen=True)
class RewardModelObjective:
  """The Bradley–Terry loss for the learner: the mean over real pairs."""

  graphdef: Any
  trains_value = False

  def begin(self, params, batch: PairBatch, hp: PrefHyper):
    return batch, jnp.maximum(jnp.sum(batch.weight), 1e-8), {}

  def loss(self, params, mb: PairBatch, denominator, hp: PrefHyper):
    share, sums = rm_micro_loss(params, mb, hp, denominator, graphdef=self.graphdef)
    return share, (sums, {}, 0.0)

  def weight(self, batch: PairBatch):
    return jnp.sum(batch.weight)

  def finalize(self, metrics: dict) -> dict:
    return finalize_metrics(metrics)


def make_rm_update(graphdef, opt: OptimizerDef, *, micro_batch_size: int = 0, layout=None):
  """Compiled ``(state, batch: PairBatch, hyper: PrefHyper) -> (state, metrics)``; ``state``
  holds the reward model's parameters; donated. The one learner with
  :class:`RewardModelObjective` (one optimizer step per call, micro-batched exactly)."""
  return learner.make_update(RewardModelObjective(graphdef), opt,
                             learner.LearnerSpec(micro_batch_size=micro_batch_size), layout)


def make_rm_metrics(graphdef, layout=None):
  """Compiled ``(params, batch, hyper) -> weighted metric sums`` (held-out evaluation)."""

  def metrics(params, batch: PairBatch, hp: PrefHyper):
    return rm_micro_loss(params, batch, hp, 1.0, graphdef=graphdef)[1]

  if layout is not None:
    return layout.jit(metrics)
  return jax.jit(metrics)


def init_reward_model(model_config: models.ModelConfig, policy_params, seed: int, **place):
  """``(graphdef, params)`` of a ``RewardModel`` whose backbone is copied from ``policy_params``
  (a random, loaded or warm-started policy); the score head is freshly initialised."""
  graphdef, params = models.init_params(model_config, seed, cls=models.RewardModel, **place)
  # Own buffers; on a LoRA policy its adapters and head over the policy's shared base.
  return graphdef, frozen_copy(models.init_from_policy(params, policy_params))


# ---------------------------------------------------------------------------------------------
# Loading a trained reward model: the score function of the ``reward_model`` reward.


def model_config_to_json(config: models.ModelConfig) -> dict:
  """The architecture as JSON-able values (recorded in the reward model's checkpoints)."""
  out = dataclasses.asdict(config)
  for k, v in out.items():
    if hasattr(v, "value"):  # enums
      out[k] = v.value
    elif isinstance(v, tuple):
      out[k] = list(v)
  return out


def model_config_from_json(d: dict) -> models.ModelConfig:
  d = dict(d)
  if d.get("rope_scaling"):
    d["rope_scaling"] = models.RopeScaling(**d["rope_scaling"])
  d["sliding_layers"] = tuple(d.get("sliding_layers") or ())
  if d.get("lora"):
    d["lora"] = models.LoRASpec(**d["lora"])
  return models.ModelConfig(**d)


def _bucket(n: int, lo: int = 8) -> int:
  return max(lo, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


class RewardModelScorer:
  """``sequence_scores(prompt_ids, completion_ids, completion_mask) -> [B]`` of a reward model
  (host in, host out), the ``score_fn`` of ``rlx.rewards.RewardModelReward``.

  Each row is ``prompt + completion`` right-padded, as in training; batch and width are
  bucketed to powers of two (a small, bounded number of compiled shapes).
  """

  def __init__(self, graphdef, params, pad_id: int = 0):
    self.graphdef, self.params, self.pad_id = graphdef, params, int(pad_id)
    self._fn = jax.jit(lambda p, t, m: models.apply(graphdef, p, t, positions_from_mask(m), m))

  def sequence_scores(self, prompt_ids: Sequence[np.ndarray], completion_ids,
                      completion_mask) -> np.ndarray:
    completion_ids = np.asarray(completion_ids, np.int32)
    completion_mask = np.asarray(completion_mask) > 0
    rows = [np.concatenate([np.asarray(p, np.int32).reshape(-1), c[m]])
            for p, c, m in zip(prompt_ids, completion_ids, completion_mask)]
    b = len(rows)
    bb, width = _bucket(b, 1), _bucket(max(len(r) for r in rows))
    tokens = np.full((bb, width), self.pad_id, np.int32)
    mask = np.zeros((bb, width), np.float32)
    for i, r in enumerate(rows):
      tokens[i, :len(r)] = r
      mask[i, :len(r)] = 1
    mask[b:, 0] = 1  # padding rows: one token, never read
    return np.asarray(jax.device_get(self._fn(self.params, tokens, mask)))[:b].astype(np.float32)
