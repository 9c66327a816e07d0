"""Pieces shared by the update functions: token log-probs of a sequence batch (chunked over V),
micro-batch gradient accumulation, and the weighted optimizer step of the offline updates."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.optim import OptimizerDef, TrainState, apply_updates


def vocab_chunk(vocab_size: int, target: int) -> int:
  """The largest divisor of ``vocab_size`` not above ``target`` (``logprobs_from_hidden`` needs one)."""
  target = max(1, min(int(target), vocab_size))
  for c in range(target, 0, -1):
    if vocab_size % c == 0:
      return c
  return 1


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
  """RoPE positions: 0 at the first real token of each row (left or right padding)."""
  m = attention_mask.astype(jnp.int32)
  return jnp.maximum(jnp.cumsum(m, axis=-1) - 1, 0)


def unembed_matrix(params, config: models.ModelConfig) -> jax.Array:
  """The ``[D,V]`` output projection (the transposed embedding when tied)."""
  if config.tie_embeddings:
    return params["embedding"][...].T
  return params["unembed"][...]


def target_logprobs(graphdef, params, config: models.ModelConfig, tokens, attention_mask,
                    num_targets: int, temperature=1.0, *, chunk_size: int = 4096,
                    with_entropy: bool = False, return_hidden: bool = False):
  """Log-probs ``[B,T]`` of the last ``T = num_targets`` tokens of each row given what precedes.

  ``tokens [B,S]``, ``attention_mask [B,S]``; the hidden state at position ``s−1`` predicts token
  ``s``. The ``[B,T,V]`` logits are never materialised (``rlx.core.logprobs_from_hidden``).
  With ``with_entropy`` returns ``TokenStats(logprobs, entropy)``; with ``return_hidden`` returns
  ``(result, hidden [B,S,D])`` (final hidden states, for auxiliary heads such as LaSeR's).
  """
  s = tokens.shape[1]
  hidden, _ = models.hidden_states(graphdef, params, tokens, positions_from_mask(attention_mask),
                                   attention_mask)
  h = hidden[:, s - num_targets - 1:s - 1]
  targets = tokens[:, s - num_targets:]
  out = core.logprobs_from_hidden(
      h, unembed_matrix(params, config).astype(h.dtype), targets, temperature,
      chunk_size=vocab_chunk(config.vocab_size, chunk_size), softcap=config.final_logit_softcap,
      with_entropy=with_entropy)
  return (out, hidden) if return_hidden else out


def split_micro(tree, num_micro: int):
  """``[B, ...]`` leaves → ``[num_micro, B/num_micro, ...]`` (for ``lax.scan``)."""
  return jax.tree.map(lambda x: x.reshape((num_micro, x.shape[0] // num_micro) + x.shape[1:]), tree)


def accumulate_gradients(loss_fn: Callable, params, batch, micro_batch_size: int):
  """``(grads, sums)`` of ``loss_fn(params, micro_batch) -> (loss share, sums)`` summed over the
  micro-batches of ``batch`` (a ``lax.scan``). With shares normalised by the batch's global
  denominator the summed gradient is the full-batch gradient exactly."""
  b = jax.tree.leaves(batch)[0].shape[0]
  micro = micro_batch_size or b
  if b % micro:
    raise ValueError(f"micro_batch_size={micro} must divide the batch size {b}")
  grad_fn = jax.grad(loss_fn, has_aux=True)

  def body(carry, mb):
    grads, sums = carry
    g, s = grad_fn(params, mb)
    return (jax.tree.map(jnp.add, grads, g), {k: sums[k] + s[k] for k in sums}), None

  micro_batches = split_micro(batch, b // micro)
  first = jax.tree.map(lambda x: x[0], micro_batches)
  _, sums0 = jax.eval_shape(lambda p: grad_fn(p, first), params)
  init = {k: jnp.zeros((), jnp.float32) for k in sums0}
  (grads, sums), _ = jax.lax.scan(body, (jax.tree.map(jnp.zeros_like, params), init),
                                  micro_batches)
  return grads, sums


def make_weighted_step(gradients: Callable, opt: OptimizerDef, layout=None):
  """Compiled ``(state, batch, hyper) -> (state, metrics)`` from
  ``gradients(params, batch, hyper) -> (grads, metrics)``: one optimizer step at ``hyper.lr``,
  skipped (params and optimizer state unchanged) when ``batch.weight`` sums to 0 (a batch of
  padding only). State donated; with ``layout`` (``rlx.runtime.mesh.Layout``) compiled with
  explicit shardings (state in its layout, batch rows over ``data × fsdp``)."""

  def update(state: TrainState, batch, hp):
    grads, metrics = gradients(state.params, batch, hp)
    params, opt_state, opt_metrics = apply_updates(opt, state.params, state.opt_state, grads,
                                                   state.step, hp.lr,
                                                   active=jnp.sum(batch.weight) > 0)
    return (state.replace(params=params, opt_state=opt_state, step=state.step + 1),
            {**metrics, **opt_metrics})

  if layout is not None:
    return layout.jit(update, ("tree", "batch", "replicated"), ("tree", "replicated"),
                      donate_argnums=0)
  return jax.jit(update, donate_argnums=0)
