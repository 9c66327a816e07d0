"""Value and reward models: the decoder backbone with a scalar head instead of the LM head.

Both own separate parameters; `init_from_policy` copies a policy's backbone (embedding, layers,
final norm) into them, leaving the scalar head as initialised.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rlx.models.config import ModelConfig
from rlx.models.layers import Adapter, KeySeq, param
from rlx.models.transformer import Decoder

Array = jax.Array


class ScalarHead(nnx.Module):
  """h [..., D] → float32 [...]: h·w + b. On a LoRA backbone (``config.lora``) the head is an
  ``Adapter``: trained alongside the adapters while the backbone stays frozen."""

  def __init__(self, config: ModelConfig, keys: KeySeq):
    d = config.d_model
    self.kernel = param(keys, (d,), ("embed",), config.param_dtype, init="normal",
                        std=1.0 / (d + 1))
    self.bias = param(keys, (), (), config.param_dtype, init="zeros")
    if config.lora is not None:
      self.kernel = Adapter(self.kernel[...].astype(jnp.float32), eager_sharding=False,
                            out_sharding=("embed",))
      self.bias = Adapter(self.bias[...].astype(jnp.float32), eager_sharding=False,
                          out_sharding=())

  def __call__(self, h: Array) -> Array:
    return (jnp.einsum("...d,d->...", h.astype(jnp.float32), self.kernel[...].astype(jnp.float32))
            + self.bias[...].astype(jnp.float32))


class ValueModel(Decoder):
  """Per-token state values V(s_t): `(tokens, positions, attention_mask) -> values [B, S] f32`."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    super().__init__(config, rngs=rngs)
    self.value_head = ScalarHead(config, KeySeq(rngs.params()))

  def __call__(self, tokens: Array, positions: Array, attention_mask: Array) -> Array:
    """tokens, positions, attention_mask: [B, S] → values [B, S] float32."""
    h, _ = self.hidden_states(tokens, positions, attention_mask)
    return self.value_head(h)


def last_valid_index(attention_mask: Array) -> Array:
  """[B, S] mask → [B] int32 index of the last real token (0 when a row has none)."""
  s = attention_mask.shape[1]
  idx = jnp.where(attention_mask.astype(jnp.bool_), jnp.arange(s, dtype=jnp.int32), -1)
  return jnp.maximum(jnp.max(idx, axis=1), 0)


class RewardModel(Decoder):
  """Sequence score read at the last real token: `(tokens, positions, mask) -> scores [B] f32`.

  Works for left- and right-padded batches alike (the last position with mask 1).
  """

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    super().__init__(config, rngs=rngs)
    self.score_head = ScalarHead(config, KeySeq(rngs.params()))

  def __call__(self, tokens: Array, positions: Array, attention_mask: Array) -> Array:
    """tokens, positions, attention_mask: [B, S] → scores [B] float32."""
    h, _ = self.hidden_states(tokens, positions, attention_mask)
    last = last_valid_index(attention_mask)
    h_last = jnp.take_along_axis(h, last[:, None, None], axis=1)[:, 0]  # [B, D]
    return self.score_head(h_last)


_BACKBONE = ("embedding", "layers", "final_norm")


def init_from_policy(params: nnx.State, policy_params: nnx.State) -> nnx.State:
  """Copy of `params` (a value or reward model's `nnx.Param` state) whose backbone leaves
  (embedding, layers, final norm) are taken from `policy_params`; the scalar head is kept.

  The configs must agree on the backbone; mismatched shapes raise a ValueError naming the leaf.
  """
  target = nnx.to_pure_dict(params)
  source = nnx.to_pure_dict(policy_params)
  for key in _BACKBONE:
    src, dst = source[key], target[key]
    src_leaves, src_tree = jax.tree.flatten_with_path(src)
    dst_leaves, dst_tree = jax.tree.flatten_with_path(dst)
    if src_tree != dst_tree:
      raise ValueError(f"backbone structure of {key!r} differs between policy and head model")
    for (path, a), (_, b) in zip(src_leaves, dst_leaves):
      if a.shape != b.shape:
        raise ValueError(f"{key}{jax.tree_util.keystr(path)}: policy shape {a.shape} != {b.shape}")
    target[key] = jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), src, dst)
  out = jax.tree.map(lambda x: x, params)  # fresh State container
  nnx.replace_by_pure_dict(out, target)
  return out
