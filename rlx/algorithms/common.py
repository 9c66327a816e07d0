"""Pieces shared by the objectives: token log-probs of a sequence batch (chunked over V),
positions and the unembedding matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlx import core
from rlx import models


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
