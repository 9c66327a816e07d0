"""Building blocks of the decoder: RMSNorm, RoPE, grouped-query attention, gated MLP.

Shape letters: B batch, S query tokens, T key slots, D model width, H query heads, K kv heads,
G = H // K, E head dim, F MLP width. Every parameter carries logical axis names in its
`out_sharding` metadata (`embed`, `vocab`, `heads`, `kv_heads`, `head_dim`, `mlp`) for the runtime
to map onto mesh axes.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import zlib

import jax
import jax.numpy as jnp
from flax import nnx

from rlx.models.config import Activation, ModelConfig
from rlx.models import quant, sharding

Array = jax.Array

# Large negative logit for masked slots: finite, so fully masked rows (padding queries) give a
# uniform distribution instead of NaN.
_MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


class KeySeq:
  """A plain stream of PRNG keys, fold_in(key, 1), fold_in(key, 2), ...

  Used instead of threading `nnx.Rngs` through every constructor: one draw from `nnx.Rngs` per
  model keeps `nnx.eval_shape` of an 80-layer model fast (each `Rngs` draw updates a Variable,
  which costs time quadratic in the traced program under `eval_shape`).
  """

  def __init__(self, key: Array):
    self.key = key
    self.count = 0

  def __call__(self) -> Array:
    self.count += 1
    return jax.random.fold_in(self.key, self.count)


def param(keys: KeySeq | None, shape, axes: tuple[str | None, ...], dtype, *, init: str,
          std: float = 0.02) -> nnx.Param:
  """A parameter with logical axis names; `init` is "normal", "zeros" or "ones"."""
  assert len(shape) == len(axes), (shape, axes)
  if init == "normal":
    value = std * jax.random.normal(keys(), shape, jnp.float32)
  elif init == "zeros":
    value = jnp.zeros(shape, jnp.float32)
  elif init == "ones":
    value = jnp.ones(shape, jnp.float32)
  else:
    raise ValueError(init)
  return nnx.Param(value.astype(dtype), eager_sharding=False, out_sharding=tuple(axes))


class RMSNorm(nnx.Module):
  """y = x / sqrt(mean(x²) + eps) * scale, computed in float32; scale = 1 + w for Gemma."""

  def __init__(self, dim: int, axis_name: str, config: ModelConfig, keys: KeySeq | None = None):
    self.plus_one = config.norm_plus_one
    self.eps = config.norm_eps
    self.scale = param(keys, (dim,), (axis_name,), config.param_dtype,
                       init="zeros" if config.norm_plus_one else "ones")

  def __call__(self, x: Array) -> Array:
    """x: [..., dim] → [..., dim] in x.dtype."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    scale = self.scale[...].astype(jnp.float32)
    if self.plus_one:
      scale = 1.0 + scale
    return (y * scale).astype(x.dtype)


def apply_rope(x: Array, positions: Array, inv_freq) -> Array:
  """Rotary embedding, "rotate half" convention (Hugging Face Llama/Qwen/Gemma).

  x: [B, S, N, E]; positions: [B, S] int32; inv_freq: [E/2] float32. Returns [B, S, N, E].
  """
  angles = positions.astype(jnp.float32)[:, :, None] * jnp.asarray(inv_freq)  # [B, S, E/2]
  cos = jnp.cos(angles).astype(x.dtype)[:, :, None, :]
  sin = jnp.sin(angles).astype(x.dtype)[:, :, None, :]
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def softcap(x: Array, cap: float | None) -> Array:
  """cap · tanh(x / cap), or x when cap is None."""
  return x if cap is None else cap * jnp.tanh(x / cap)


class Adapter(nnx.Param):
  """A parameter a parameter-efficient run trains (LoRA's A and B, a scalar head on a LoRA
  backbone). When a parameter tree holds any ``Adapter``, only its ``Adapter`` leaves are
  trained, checkpointed and given optimizer state; the rest is the frozen base
  (``rlx.models.lora``)."""


# Dropout on the adapters' input: a PRNG key (traced) set by the learner around a training
# forward pass; every adapter folds in its own call index. Unset (sampling, log-prob passes,
# evaluation): no dropout.
_DROPOUT = contextvars.ContextVar("rlx_lora_dropout", default=None)


@contextlib.contextmanager
def lora_dropout(key):
  """While tracing inside, LoRA adapters with ``dropout > 0`` drop inputs using ``key``."""
  token = _DROPOUT.set([key, 0])
  try:
    yield
  finally:
    _DROPOUT.reset(token)


def _dropout(x: Array, rate: float) -> Array:
  state = _DROPOUT.get()
  if state is None or rate == 0.0:
    return x
  state[1] += 1
  keep = jax.random.bernoulli(jax.random.fold_in(state[0], state[1]), 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def _split_equation(equation: str):
  """"bsd,dhe->bshe" → (x subscripts, kernel subscripts, output subscripts, contracting axes of
  the kernel, kept letters of x)."""
  inputs, out = equation.split("->")
  xs, ks = inputs.split(",")
  contract = tuple(i for i, c in enumerate(ks) if c in xs)
  return xs, ks, out, contract, "".join(c for c in xs if c not in ks)


class Projection(nnx.Module):
  """A dense map written as one einsum, with an optional bias over the output dims.

  With ``config.lora`` targeting this projection's ``path``: y = x·W + s·(drop(x)·A)·B, A over
  the kernel's contracting dims and the rank r, B over r and its output dims (both ``Adapter``s
  with the kernel's logical axes, so they shard by the same rules). With ``lora.quantize`` the
  kernel is stored as int8 / NF4 codes plus ``kernel_scale`` (``rlx.models.quant``).
  """

  def __init__(self, equation: str, kernel_shape, kernel_axes, config: ModelConfig, *,
               bias_shape=None, bias_axes=None, keys: KeySeq | None = None, path: str = ""):
    self.equation = equation
    self.dtype = config.dtype
    spec = config.lora
    xs, ks, out, contract, kept = _split_equation(equation)
    self.contract = contract
    self.quantize = spec.quantize if spec is not None else ""
    kernel = param(keys, kernel_shape, kernel_axes, config.param_dtype, init="normal",
                   std=config.init_std)
    if self.quantize:
      codes, scale = quant.quantize(kernel[...], self.quantize, contract, spec.group_size)
      scale_axes = tuple(None if (i in contract and self.quantize == "int8") else a
                         for i, a in enumerate(kernel_axes))
      kernel = nnx.Param(codes, eager_sharding=False, out_sharding=tuple(kernel_axes))
      self.kernel_scale = nnx.Param(scale, eager_sharding=False, out_sharding=scale_axes)
    else:
      self.kernel_scale = None
    self.kernel = kernel
    self.bias = None if bias_shape is None else param(keys, bias_shape, bias_axes,
                                                      config.param_dtype, init="zeros")
    lora_a = lora_b = None
    if spec is not None and path and spec.targets_path(path):
      r = spec.rank
      fan_in = math.prod(kernel_shape[i] for i in contract)
      bound = 1.0 / math.sqrt(fan_in)  # Kaiming-uniform with a = sqrt(5), as loralib / PEFT
      a_shape = tuple(kernel_shape[i] for i in contract) + (r,)
      out_dims = [i for i in range(len(ks)) if i not in contract]
      # Drawn from the path, not the key stream, so the base weights of a random model are the
      # same with and without adapters.
      key = jax.random.fold_in(keys.key, zlib.crc32(path.encode()) & 0x7FFFFFFF)
      lora_a = Adapter(
          jax.random.uniform(key, a_shape, jnp.float32, -bound, bound),
          eager_sharding=False, out_sharding=tuple(kernel_axes[i] for i in contract) + (None,))
      lora_b = Adapter(
          jnp.zeros((r,) + tuple(kernel_shape[i] for i in out_dims), jnp.float32),
          eager_sharding=False, out_sharding=(None,) + tuple(kernel_axes[i] for i in out_dims))
      contract_s = "".join(ks[i] for i in contract)
      out_s = "".join(ks[i] for i in out_dims)
      self.equation_a = f"{xs},{contract_s}r->{kept}r"
      self.equation_b = f"{kept}r,r{out_s}->{out}"
      self.equation_delta = f"{contract_s}r,r{out_s}->{ks}"  # A·B in the kernel's layout
      self.lora_scale = spec.scale
      self.lora_dropout = spec.dropout
    self.lora_a, self.lora_b = lora_a, lora_b

  def weight(self, dtype=None) -> Array:
    """The base kernel in ``dtype`` (dequantised when stored quantised)."""
    dtype = dtype or self.dtype
    if self.kernel_scale is None:
      return self.kernel[...].astype(dtype)
    return quant.dequantize(self.kernel[...], self.kernel_scale[...], self.quantize,
                            self.contract, dtype)

  def merged_kernel(self) -> Array:
    """W + s·A·B in float32 (the kernel of the equivalent plain projection)."""
    w = self.weight(jnp.float32)
    if self.lora_a is None:
      return w
    delta = jnp.einsum(self.equation_delta, self.lora_a[...].astype(jnp.float32),
                       self.lora_b[...].astype(jnp.float32))
    return w + self.lora_scale * delta

  def _base(self, x: Array) -> Array:
    """x·W. A quantised kernel is dequantised inside a rematerialised block, so the backward
    pass dequantises again instead of keeping a full-precision copy of every kernel alive."""
    if self.kernel_scale is None:
      return jnp.einsum(self.equation, x, self.weight())

    def matmul(x, codes, scale):
      w = quant.dequantize(codes, scale, self.quantize, self.contract, self.dtype)
      return jnp.einsum(self.equation, x, w)

    return jax.checkpoint(matmul, policy=jax.checkpoint_policies.nothing_saveable)(
        x, self.kernel[...], self.kernel_scale[...])

  def __call__(self, x: Array) -> Array:
    x = x.astype(self.dtype)
    y = self._base(x)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    if self.lora_a is not None:
      h = jnp.einsum(self.equation_a, _dropout(x, self.lora_dropout),
                     self.lora_a[...].astype(self.dtype))
      y = y + jnp.einsum(self.equation_b, h, self.lora_b[...].astype(self.dtype)) * jnp.asarray(
          self.lora_scale, self.dtype)
    return y


class Attention(nnx.Module):
  """Grouped-query attention with RoPE, optional QKV bias, q/k norm, soft-capping, window.

  The KV cache layout is [B, K, T, E]; new keys/values are written with
  `lax.dynamic_update_slice` so a donated or loop-carried cache is updated in place, and both
  attention dots have their batch dimensions (b, k) leading, so XLA never transposes the cache.
  """

  def __init__(self, config: ModelConfig, keys: KeySeq | None = None, path: str = "attn"):
    c = config
    d, h, k, e = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim
    bias = dict(bias_shape=(h, e), bias_axes=("heads", "head_dim")) if c.qkv_bias else {}
    kv_bias = dict(bias_shape=(k, e), bias_axes=("kv_heads", "head_dim")) if c.qkv_bias else {}
    self.q_proj = Projection("bsd,dhe->bshe", (d, h, e), ("embed", "heads", "head_dim"), c,
                             keys=keys, path=f"{path}.q_proj", **bias)
    self.k_proj = Projection("bsd,dke->bske", (d, k, e), ("embed", "kv_heads", "head_dim"), c,
                             keys=keys, path=f"{path}.k_proj", **kv_bias)
    self.v_proj = Projection("bsd,dke->bske", (d, k, e), ("embed", "kv_heads", "head_dim"), c,
                             keys=keys, path=f"{path}.v_proj", **kv_bias)
    # jnp.einsum orders contracted dims alphabetically: "hk" keeps (heads, head_dim) in memory
    # order; with "he" XLA transposed the [H, E, D] kernel and the attention output on every call
    # (12 copies per decode step of the sampling benchmark, 8% of its time).
    self.o_proj = Projection("bshk,hkd->bsd", (h, e, d), ("heads", "head_dim", "embed"), c,
                             keys=keys, path=f"{path}.o_proj")
    self.q_norm = RMSNorm(e, "head_dim", c, keys) if c.qk_norm else None
    self.k_norm = RMSNorm(e, "head_dim", c, keys) if c.qk_norm else None
    self.n_kv_heads = k
    self.scale = c.attn_scale
    self.logit_cap = c.attn_logit_softcap
    self.dtype = c.dtype

  def __call__(self, x: Array, positions: Array, mask: Array, inv_freq,
               kv: tuple[Array, Array] | None, index: Array | None):
    """Attend from S new tokens to T key slots.

    Args:
      x: [B, S, D] normalised input.
      positions: [B, S] int32 RoPE positions.
      mask: [B, S, T] bool, True where query s may attend to slot t.
      inv_freq: [E/2] RoPE inverse frequencies.
      kv: cached (keys, values), each [B, K, T, E], or None (then T = S and the keys are the
        new tokens themselves).
      index: int32 scalar, slot of the first new token in the cache, or [B] per row (ignored
        without cache).

    Returns:
      ([B, S, D] output, updated (keys, values) or None).
    """
    b, s, _ = x.shape
    q = sharding.constrain(self.q_proj(x), ("batch", "seq", "act_heads", "head_dim"))  # [B,S,H,E]
    k = sharding.constrain(self.k_proj(x), ("batch", "seq", "act_kv_heads", "head_dim"))  # [B,S,K,E]
    v = sharding.constrain(self.v_proj(x), ("batch", "seq", "act_kv_heads", "head_dim"))
    if self.q_norm is not None:
      q, k = self.q_norm(q), self.k_norm(k)
    q = apply_rope(q, positions, inv_freq)
    k = apply_rope(k, positions, inv_freq).transpose(0, 2, 1, 3)  # [B, K, S, E]
    v = v.transpose(0, 2, 1, 3)
    if kv is not None:
      k_cache, v_cache = kv
      k = write_slots(k_cache, k, index, axis=2)
      v = write_slots(v_cache, v, index, axis=2)
      kv = (k, v)
    q = (q * jnp.asarray(self.scale, q.dtype)).reshape(b, s, self.n_kv_heads, -1, q.shape[-1])
    out = _attend(q, k.astype(self.dtype), v.astype(self.dtype), mask, self.logit_cap)
    return self.o_proj(out.reshape(b, s, -1, out.shape[-1])), kv


def _attend(q, k, v, mask, cap):
  """Softmax attention as two batched matmuls; logits and softmax in float32.

  q: [B, S, K, G, E] (already scaled); k, v: [B, K, T, E]; mask: [B, S, T] bool.
  Returns [B, S, K, G, E].

  Performance note (XLA:CPU): queries are regrouped to [B, K, G·S, E] (a copy of the S new
  tokens only) so both dots are plain batched matmuls over (b, k) with the cache in its stored
  layout. With a [B, T, K, E] cache XLA transposed every layer's K and V before each dot, a copy
  of the whole cache per decode step (the sampling benchmark ran 1.6x slower).
  """
  b, s, kh, g, e = q.shape
  q = q.transpose(0, 2, 3, 1, 4).reshape(b, kh, g * s, e)
  logits = jnp.einsum("bkqe,bkte->bkqt", q, k, preferred_element_type=jnp.float32)
  logits = softcap(logits.reshape(b, kh, g, s, -1), cap)
  logits = jnp.where(mask[:, None, None, :, :], logits, _MASK_VALUE)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype).reshape(b, kh, g * s, -1)
  out = jnp.einsum("bkqt,bkte->bkqe", probs, v)
  return out.reshape(b, kh, g, s, e).transpose(0, 3, 1, 2, 4)


def write_slots(buf: Array, x: Array, index, axis: int) -> Array:
  """``buf`` with ``x`` written at ``index`` along ``axis`` (dim 0 is the batch): one
  ``dynamic_update_slice`` for a scalar index (in place in a loop-carried or donated buffer), or
  a per-row one (a scatter) where ``index`` is [B]."""
  def one(b, v, i, ax):
    start = [0] * b.ndim
    start[ax] = i
    return jax.lax.dynamic_update_slice(b, v.astype(b.dtype), start)
  if jnp.ndim(index) == 0:
    return one(buf, x, index, axis)
  return jax.vmap(lambda b, v, i: one(b, v, i, axis - 1))(buf, x, index)


class MLP(nnx.Module):
  """Gated MLP: down(act(x·gate) ⊙ (x·up)); SwiGLU (silu) or GeGLU (gelu, tanh approx.)."""

  def __init__(self, config: ModelConfig, keys: KeySeq | None = None, path: str = "mlp"):
    c = config
    kw = dict(keys=keys)
    self.gate_proj = Projection("bsd,df->bsf", (c.d_model, c.d_ff), ("embed", "mlp"), c,
                                path=f"{path}.gate_proj", **kw)
    self.up_proj = Projection("bsd,df->bsf", (c.d_model, c.d_ff), ("embed", "mlp"), c,
                              path=f"{path}.up_proj", **kw)
    self.down_proj = Projection("bsf,fd->bsd", (c.d_ff, c.d_model), ("mlp", "embed"), c,
                                path=f"{path}.down_proj", **kw)
    self.gelu = c.activation == Activation.GELU_TANH

  def __call__(self, x: Array) -> Array:
    """x: [B, S, D] → [B, S, D]."""
    gate = self.gate_proj(x)
    gate = jax.nn.gelu(gate, approximate=True) if self.gelu else jax.nn.silu(gate)
    hidden = sharding.constrain(gate * self.up_proj(x), ("batch", "seq", "act_mlp"))  # [B,S,F]
    return self.down_proj(hidden)


class DecoderLayer(nnx.Module):
  """Pre-norm block; Gemma 2 adds a norm after attention and after the MLP (`post_norms`)."""

  def __init__(self, config: ModelConfig, keys: KeySeq | None = None, path: str = "layers.0"):
    c = config
    self.attn_norm = RMSNorm(c.d_model, "embed", c, keys)
    self.attn = Attention(c, keys, f"{path}.attn")
    self.mlp_norm = RMSNorm(c.d_model, "embed", c, keys)
    self.mlp = MLP(c, keys, f"{path}.mlp")
    self.post_attn_norm = RMSNorm(c.d_model, "embed", c, keys) if c.post_norms else None
    self.post_mlp_norm = RMSNorm(c.d_model, "embed", c, keys) if c.post_norms else None

  def __call__(self, x, positions, mask, inv_freq, kv, index):
    """x: [B, S, D] → ([B, S, D], updated kv); see `Attention` for the other arguments."""
    h, kv = self.attn(self.attn_norm(x), positions, mask, inv_freq, kv, index)
    if self.post_attn_norm is not None:
      h = self.post_attn_norm(h)
    x = x + h
    h = self.mlp(self.mlp_norm(x))
    if self.post_mlp_norm is not None:
      h = self.post_mlp_norm(h)
    return x + h, kv
