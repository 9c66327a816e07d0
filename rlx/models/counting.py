"""Parameter and FLOP counting from abstract (`jax.eval_shape`) models: no memory is allocated."""

from __future__ import annotations

import math

import jax

from rlx.models.config import ModelConfig
from rlx.models.transformer import abstract


def count_params(config: ModelConfig, *, include_embedding: bool = True, cls=None) -> int:
  """Number of parameters of `cls(config)` (default `Transformer`), built with `eval_shape`.

  `include_embedding=False` leaves out the input embedding (and the untied LM head), the
  "non-embedding" count that model cards quote.
  """
  _, params = abstract(config, cls)
  total = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
  if not include_embedding:
    n_embed = config.vocab_size * config.d_model
    total -= n_embed if config.tie_embeddings else 2 * n_embed
  return total


def flops_per_token(config: ModelConfig, context: int) -> float:
  """Forward FLOPs per token: 2 × (matmul parameters, LM head included) + attention.

  Attention counts 2·2·L·H·E·context (scores and weighted values) with `context` keys per query;
  pass the mean attended length (≈ S/2 for a causal pass over S tokens) for model FLOPs, or the
  key length the implementation actually multiplies (S) for hardware FLOPs. Training ≈ 3× this.
  """
  c = config
  d, h, k, e, f = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff
  per_layer = d * h * e + 2 * d * k * e + h * e * d + 3 * d * f
  matmul = c.n_layers * per_layer + d * c.vocab_size
  attention = 4 * c.n_layers * h * e * context
  return 2.0 * matmul + attention
