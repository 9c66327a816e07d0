"""The decoder-only transformer, its KV cache, and the functional `apply` used under `jax.jit`.

Call contract (the sampler and the learner are written against it):

    cache = model.init_cache(batch, max_len, dtype)
    logits, cache = model(tokens, positions, attention_mask, cache=None)
    h, cache = model.hidden_states(tokens, positions, attention_mask, cache=None)
    logits = model.lm_head(h)

At the jit boundary models are a graph definition plus a parameter pytree:

    graphdef, params = nnx.split(model, nnx.Param)
    logits, cache = jax.jit(apply, static_argnums=0)(graphdef, params, tokens, positions, mask)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx, struct

from rlx.models.config import ModelConfig, rope_inv_freq
from rlx.models.layers import DecoderLayer, KeySeq, RMSNorm, param, softcap, write_slots
from rlx.models import sharding
from rlx.models.sharding import DEFAULT_RULES, param_shardings

Array = jax.Array


@struct.dataclass
class KVCache:
  """Key/value cache of every layer.

  Attributes:
    k: per-layer keys, a tuple of L arrays [B, K, T, E] (T = max_len).
    v: per-layer values, same shapes.
    mask: [B, T] bool, True for slots holding a real (non-padding) token.
    positions: [B, T] int32, the RoPE position of the token in each slot (sliding windows are
      measured in positions, so padding slots left by a continuation never shrink a window).
    index: int32 scalar, the next slot to write; or [B] int32, each row's own next slot (a
      continuously batched decode, where rows start and end at different times).
  """

  k: tuple[Array, ...]
  v: tuple[Array, ...]
  mask: Array
  positions: Array
  index: Array

  @property
  def max_len(self) -> int:
    return self.mask.shape[1]


def attention_masks(s: int, kv_mask: Array, start, windows, q_pos: Array, kv_pos: Array) -> dict:
  """Boolean attention masks [B, S, T] for each distinct window size in `windows`.

  s: number of new tokens S; kv_mask: [B, T] validity of every key slot (the new tokens'
  attention mask already written in); start: slot of the first new token (a scalar, or [B]
  per row); q_pos: [B, S] and
  kv_pos: [B, T] RoPE positions of the queries and of every key slot. Query i sits in slot
  start + i and sees valid slots t <= start + i (causality follows slot order), and, for a
  sliding-window layer of size W, only keys with q_pos − k_pos < W (the Hugging Face convention,
  measured in positions: gaps of padding slots do not count).
  """
  q_slot = jnp.asarray(start, jnp.int32)[..., None, None] + jnp.arange(s, dtype=jnp.int32)[:, None]
  k_slot = jnp.arange(kv_mask.shape[1], dtype=jnp.int32)[None, :]  # [1, T]
  causal = k_slot <= q_slot  # [S, T], or [B, S, T] with per-row starts
  causal = (causal if causal.ndim == 3 else causal[None]) & kv_mask[:, None, :]  # [B, S, T]
  out = {}
  for w in windows:
    out[w] = causal if w is None else causal & (kv_pos[:, None, :] > q_pos[:, :, None] - w)
  return out


class Decoder(nnx.Module):
  """Token embedding, L decoder layers and the final norm: everything but an output head."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    c = config
    self.config = c
    keys = KeySeq(rngs.params())
    self.embedding = param(keys, (c.vocab_size, c.d_model), ("vocab", "embed"), c.param_dtype,
                           init="normal", std=c.init_std)
    self.layers = nnx.List([DecoderLayer(c, keys, f"layers.{i}") for i in range(c.n_layers)])
    self.final_norm = RMSNorm(c.d_model, "embed", c, keys)

  def init_cache(self, batch: int, max_len: int, dtype=jnp.float32) -> KVCache:
    """An empty cache: K/V zeros [B, K, max_len, E] per layer, no valid slot, index 0."""
    c = self.config
    shape = (batch, c.n_kv_heads, max_len, c.head_dim)
    return KVCache(
        k=tuple(jnp.zeros(shape, dtype) for _ in range(c.n_layers)),
        v=tuple(jnp.zeros(shape, dtype) for _ in range(c.n_layers)),
        mask=jnp.zeros((batch, max_len), jnp.bool_),
        positions=jnp.zeros((batch, max_len), jnp.int32),
        index=jnp.zeros((), jnp.int32))

  def embed(self, tokens: Array) -> Array:
    """tokens: [B, S] int32 → [B, S, D] in the compute dtype (Gemma: times sqrt(D))."""
    c = self.config
    x = jnp.take(self.embedding[...], tokens, axis=0).astype(c.dtype)
    if c.scale_embeddings:
      x = x * jnp.asarray(c.d_model**0.5, c.dtype)
    return x

  def hidden_states(self, tokens: Array, positions: Array, attention_mask: Array,
                    cache: KVCache | None = None) -> tuple[Array, KVCache | None]:
    """Final-norm hidden states of S tokens.

    Args:
      tokens: [B, S] int32.
      positions: [B, S] int32 RoPE positions (for left padding, 0 at the first real token).
      attention_mask: [B, S], 1 for real tokens and 0 for padding.
      cache: None for a plain causal pass over the S tokens; otherwise the tokens are written
        at slots [index, index + S) (per row where ``cache.index`` is [B]) and attend causally
        to every valid slot.

    Returns:
      (h [B, S, D] in the compute dtype, updated cache or None).
    """
    c = self.config
    new_mask = attention_mask.astype(jnp.bool_)
    positions = positions.astype(jnp.int32)
    if cache is None:
      kv_mask, kv_pos, start = new_mask, positions, 0
    else:
      kv_mask = write_slots(cache.mask, new_mask, cache.index, axis=1)
      kv_pos = write_slots(cache.positions, positions, cache.index, axis=1)
      start = cache.index
    windows = sorted({c.layer_window(i) for i in range(c.n_layers)}, key=lambda w: w or 0)
    masks = attention_masks(tokens.shape[1], kv_mask, start, windows, positions, kv_pos)
    inv_freq = rope_inv_freq(c)
    act = ("batch", "seq", "act_embed")
    x = sharding.constrain(self.embed(tokens), act)
    policy = sharding.remat_policy() if cache is None else None
    ks, vs = [], []
    for i, layer in enumerate(self.layers):
      kv = None if cache is None else (cache.k[i], cache.v[i])
      if policy is not None:
        x = _remat_layer(layer, policy, x, positions, masks[c.layer_window(i)], inv_freq)
      else:
        x, kv = layer(x, positions, masks[c.layer_window(i)], inv_freq, kv, start)
      x = sharding.constrain(x, act)
      if kv is not None:
        ks.append(kv[0])
        vs.append(kv[1])
    h = self.final_norm(x)
    if cache is not None:
      cache = KVCache(k=tuple(ks), v=tuple(vs), mask=kv_mask, positions=kv_pos,
                      index=cache.index + jnp.int32(tokens.shape[1]))
    return h, cache


def _remat_layer(layer, policy, x, positions, mask, inv_freq):
  """A cache-free decoder layer under `jax.checkpoint(policy=policy)`: the backward pass
  recomputes what the policy does not save. x: [B, S, D] → [B, S, D]."""
  graphdef, state = nnx.split(layer)

  def f(state, x, positions, mask):
    return nnx.merge(graphdef, state)(x, positions, mask, inv_freq, None, 0)[0]

  return jax.checkpoint(f, policy=policy)(state, x, positions, mask)


class Transformer(Decoder):
  """Causal language model: `Decoder` plus the LM head (tied or a separate [D, V] kernel)."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    super().__init__(config, rngs=rngs)
    c = config
    self.unembed = None if c.tie_embeddings else param(
        KeySeq(rngs.params()), (c.d_model, c.vocab_size), ("embed", "vocab"), c.param_dtype, init="normal",
        std=c.init_std)

  def lm_head(self, h: Array, start=0, size: int | None = None) -> Array:
    """h: [..., D] → float32 logits [..., V] (Gemma 2: final soft-cap).

    With `size`, only the vocabulary slice [start, start + size) ([..., size]); `start` may be
    traced, so a `lax.scan`/`fori_loop` over vocabulary chunks never builds the full logits.
    """
    c = self.config
    if self.unembed is None:
      w = self.embedding[...]
      if size is not None:
        w = jax.lax.dynamic_slice_in_dim(w, start, size, axis=0)
      logits = jnp.einsum("...d,vd->...v", h.astype(c.dtype), w.astype(c.dtype),
                          preferred_element_type=jnp.float32)
    else:
      w = self.unembed[...]
      if size is not None:
        w = jax.lax.dynamic_slice_in_dim(w, start, size, axis=1)
      logits = jnp.einsum("...d,dv->...v", h.astype(c.dtype), w.astype(c.dtype),
                          preferred_element_type=jnp.float32)
    return softcap(logits, c.final_logit_softcap)

  def __call__(self, tokens: Array, positions: Array, attention_mask: Array,
               cache: KVCache | None = None) -> tuple[Array, KVCache | None]:
    """(tokens [B, S], positions [B, S], attention_mask [B, S], cache) → (logits [B, S, V] f32,
    cache). See `hidden_states` for the cache semantics."""
    h, cache = self.hidden_states(tokens, positions, attention_mask, cache)
    return self.lm_head(h), cache


def apply(graphdef: nnx.GraphDef, params: nnx.State, tokens: Array, positions: Array,
          attention_mask: Array, cache: KVCache | None = None):
  """Functional forward: `nnx.merge(graphdef, params)(tokens, positions, attention_mask, cache)`.

  Use under `jax.jit(apply, static_argnums=0)`; `params` is the `nnx.Param` state from
  `nnx.split(model, nnx.Param)`. Works for `Transformer` (→ logits, cache) and for the value
  and reward models (→ values / scores).
  """
  model = nnx.merge(graphdef, params)
  if cache is None:
    return model(tokens, positions, attention_mask)
  return model(tokens, positions, attention_mask, cache)


def hidden_states(graphdef: nnx.GraphDef, params: nnx.State, tokens: Array, positions: Array,
                  attention_mask: Array, cache: KVCache | None = None):
  """Functional `Decoder.hidden_states` → (h [B, S, D], cache)."""
  return nnx.merge(graphdef, params).hidden_states(tokens, positions, attention_mask, cache)


def lm_head(graphdef: nnx.GraphDef, params: nnx.State, h: Array, start=0,
            size: int | None = None) -> Array:
  """Functional `Transformer.lm_head`: h [..., D] → float32 logits [..., V] (or the vocabulary
  slice [start, start + size))."""
  return nnx.merge(graphdef, params).lm_head(h, start, size)


def init_params(config: ModelConfig, seed: int = 0, cls=None, *, mesh=None,
                rules=None) -> tuple[nnx.GraphDef, nnx.State]:
  """(graphdef, params) of a randomly initialised `cls(config)` (default `Transformer`).

  Without a mesh the parameters are created eagerly on the default device (fast for small
  models: the per-shape kernels are cached). With a mesh, initialisation is one compiled
  function whose outputs are placed in the shardings given by the parameters' logical axes and
  `rules` (`rlx.models.DEFAULT_RULES` by default), so no device holds a full copy.
  """
  cls = cls or Transformer
  if mesh is None:
    return nnx.split(cls(config, rngs=nnx.Rngs(seed)), nnx.Param)

  graphdef, abs_params = abstract(config, cls)
  shardings = param_shardings(abs_params, mesh, rules or DEFAULT_RULES)

  @functools.partial(jax.jit, out_shardings=shardings)
  def init(key):
    return nnx.split(cls(config, rngs=nnx.Rngs(params=key)), nnx.Param)[1]

  return graphdef, init(jax.random.key(seed))


def create(config: ModelConfig, seed: int = 0, cls=None):
  """A randomly initialised `cls(config)` module (default `Transformer`)."""
  return nnx.merge(*init_params(config, seed, cls))


def abstract(config: ModelConfig, cls=None) -> tuple[nnx.GraphDef, nnx.State]:
  """(graphdef, params) of `cls(config)` (default `Transformer`) with `jax.ShapeDtypeStruct`
  leaves, built under `nnx.eval_shape`: no memory is allocated, so full-size configs are fine."""
  cls = cls or Transformer
  model = nnx.eval_shape(lambda: cls(config, rngs=nnx.Rngs(0)))
  return nnx.split(model, nnx.Param)
