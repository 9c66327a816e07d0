"""Supervised fine-tuning: next-token NLL on the demonstration tokens, one compiled update.

The loss is the token mean over the *whole* batch: ``Σ_{b,t} NLL·m / Σ m``. With gradient
accumulation the global denominator ``Σ m`` is computed first over the whole batch
(``rlx.core.aggregation_denominator``); each micro-batch's gradient is that of its numerator
divided by it, and the ``lax.scan`` sum equals the full-batch gradient exactly (up to float
summation order).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.algorithms import learner
from rlx.algorithms.common import target_logprobs
from rlx.algorithms.trajectory import rows
from rlx.optim import OptimizerDef

TOKEN_MEAN = core.Aggregation.TOKEN_MEAN


@flax.struct.dataclass
class SFTBatch:
  """tokens: ``[B,S]`` int32. mask: ``[B,S]`` 1 on real tokens. loss_mask: ``[B,S]`` 1 on target
  tokens (as from ``rlx.data.make_sft_batch``)."""

  tokens: jax.Array = rows()
  mask: jax.Array = rows()
  loss_mask: jax.Array = rows()


@flax.struct.dataclass
class SFTHyper:
  lr: jax.Array


def sft_batch(tokens, mask, loss_mask) -> SFTBatch:
  """The update's batch from host arrays."""
  return SFTBatch(tokens=jnp.asarray(tokens, jnp.int32), mask=jnp.asarray(mask, jnp.float32),
                  loss_mask=jnp.asarray(loss_mask, jnp.float32))


def nll_numerator(graphdef, params, batch: SFTBatch, *, config: models.ModelConfig,
                  chunk_size: int):
  """``Σ NLL·m`` over the batch's target tokens (the token-mean numerator)."""
  s = batch.tokens.shape[1]
  logp = target_logprobs(graphdef, params, config, batch.tokens, batch.mask, s - 1,
                         chunk_size=chunk_size)
  return core.aggregation_numerator(-logp, batch.loss_mask[:, 1:], TOKEN_MEAN)


@dataclasses.dataclass(frozen=True)
class SFTObjective:
  """Token-mean NLL over the minibatch's target tokens."""

  graphdef: Any
  config: models.ModelConfig
  chunk_size: int = 4096
  trains_value = False

  def begin(self, params, minibatch: SFTBatch, hp):
    denominator = jnp.maximum(
        core.aggregation_denominator(minibatch.loss_mask[:, 1:], TOKEN_MEAN), 1e-8)
    return minibatch, denominator, {}

  def loss(self, params, mb: SFTBatch, denominator, hp):
    share = nll_numerator(self.graphdef, params, mb, config=self.config,
                          chunk_size=self.chunk_size) / denominator
    return share, ({"loss": share, "tokens": jnp.sum(mb.loss_mask[:, 1:])}, {}, 0.0)

  def weight(self, minibatch: SFTBatch):
    return jnp.sum(minibatch.loss_mask[:, 1:])

  def finalize(self, metrics: dict) -> dict:
    return metrics


def make_sft_update(graphdef, config: models.ModelConfig, opt: OptimizerDef, *,
                    micro_batch_size: int, chunk_size: int = 4096, layout=None):
  """The compiled update ``(state, batch: SFTBatch, SFTHyper) -> (state, metrics)``; state
  donated: the one learner (``rlx.algorithms.learner``) with :class:`SFTObjective`, one
  optimizer step per batch. The learning rate is traced (a new value does not recompile).
  With ``layout`` (``rlx.runtime.mesh.Layout``): explicit shardings read off the types.
  """
  return learner.make_update(SFTObjective(graphdef, config, chunk_size), opt,
                             learner.LearnerSpec(micro_batch_size=micro_batch_size), layout)
