"""Supervised fine-tuning: next-token NLL on the demonstration tokens, one compiled update.

The loss is the token mean over the *whole* batch: ``Σ_{b,t} NLL·m / Σ m``. With gradient
accumulation the global denominator ``Σ m`` is computed first over the whole batch
(``rlx.core.aggregation_denominator``); each micro-batch's gradient is that of its numerator
divided by it, and the ``lax.scan`` sum equals the full-batch gradient exactly (up to float
summation order).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.algorithms.common import accumulate_gradients, target_logprobs
from rlx.optim import OptimizerDef, TrainState, apply_updates

TOKEN_MEAN = core.Aggregation.TOKEN_MEAN


def sft_batch(tokens, mask, loss_mask) -> dict[str, jax.Array]:
  """The update's batch: ``tokens [B,S] int32``, ``mask [B,S]`` real tokens, ``loss_mask [B,S]``
  target tokens (as from ``rlx.data.make_sft_batch``)."""
  return {"tokens": jnp.asarray(tokens, jnp.int32), "mask": jnp.asarray(mask, jnp.float32),
          "loss_mask": jnp.asarray(loss_mask, jnp.float32)}


def nll_numerator(graphdef, params, batch, *, config: models.ModelConfig, chunk_size: int):
  """``Σ NLL·m`` over the batch's target tokens (the token-mean numerator)."""
  s = batch["tokens"].shape[1]
  logp = target_logprobs(graphdef, params, config, batch["tokens"], batch["mask"], s - 1,
                         chunk_size=chunk_size)
  return core.aggregation_numerator(-logp, batch["loss_mask"][:, 1:], TOKEN_MEAN)


def sft_gradients(graphdef, params, batch, *, config: models.ModelConfig, micro_batch_size: int,
                  chunk_size: int = 4096) -> tuple[jax.Array, Any]:
  """``(loss, grads)`` of the batch token-mean NLL, accumulated over micro-batches."""
  denominator = jnp.maximum(
      core.aggregation_denominator(batch["loss_mask"][:, 1:], TOKEN_MEAN), 1e-8)

  def share(p, mb):  # this micro-batch's part of the batch mean
    loss = nll_numerator(graphdef, p, mb, config=config, chunk_size=chunk_size) / denominator
    return loss, {"loss": loss}

  grads, sums = accumulate_gradients(share, params, batch, micro_batch_size)
  return sums["loss"], grads


def make_sft_update(graphdef, config: models.ModelConfig, opt: OptimizerDef, *,
                    micro_batch_size: int, chunk_size: int = 4096, layout=None):
  """The compiled update ``(state, batch, hparams) -> (state, metrics)``; state donated.

  ``hparams = {"lr": f32 scalar}`` is traced (a new learning rate does not recompile). With
  ``layout`` (``rlx.runtime.mesh.Layout``): explicit shardings, as in
  ``rlx.algorithms.grpo.make_grpo_update``.
  """

  def update(state: TrainState, batch, hparams):
    loss, grads = sft_gradients(graphdef, state.params, batch, config=config,
                                micro_batch_size=min(micro_batch_size, batch["tokens"].shape[0]),
                                chunk_size=chunk_size)
    params, opt_state, opt_metrics = apply_updates(opt, state.params, state.opt_state, grads,
                                                   state.step, hparams["lr"])
    metrics = {"loss": loss, "tokens": jnp.sum(batch["loss_mask"][:, 1:]), **opt_metrics}
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), metrics

  if layout is not None:
    return layout.jit(update, ("tree", "batch", "replicated"), ("tree", "replicated"),
                      donate_argnums=0)
  return jax.jit(update, donate_argnums=0)
