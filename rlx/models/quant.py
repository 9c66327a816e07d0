"""Weight-only quantisation of frozen projection kernels: int8 per output channel, NF4 blocks.

A kernel W (any rank; its *contracting* axes are those the projection's einsum sums over) is
stored as integer ``codes`` and float32 ``scale``; :func:`dequantize` restores
``W ≈ decode(codes) · scale`` inside the matmul, so only the codes stay in memory.

- ``int8``: symmetric, per output channel: scale = max|W| / 127 over the contracting axes
  (kept as size-1 dims), codes = round(W / scale) in [-127, 127].
- ``nf4`` (QLoRA, Dettmers et al. 2023): blocks of ``group_size`` consecutive inputs along the
  last contracting axis; scale = the block's absmax; each weight is the nearest of the 16
  NormalFloat levels of W / scale; two 4-bit codes per byte (element 2i in the low nibble,
  2i + 1 in the high one), so the axis is stored at half its length.

Why hand-written rather than qwix/AQT: rlx's projections are explicit ``jnp.einsum`` calls on
parameters with logical axis names, used functionally (``nnx.merge(graphdef, params)``);
qwix's PTQ/QLoRA rewrites a module by intercepting its ops during a traced call and keeps its
quantised arrays in its own wrapper types, which would bypass the logical-axis sharding rules
and rlx's checkpoint format. The two formats here are ~80 lines and tested against their
definitions (tests/models/test_quant.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# The 16 NormalFloat4 levels (QLoRA, Appendix E; the table bitsandbytes ships).
NF4_LEVELS = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], np.float32)
_NF4_MIDPOINTS = (NF4_LEVELS[1:] + NF4_LEVELS[:-1]) / 2


def nf4_group(size: int, group_size: int) -> int:
  """The NF4 block length along an axis of ``size``: ``group_size``, or the whole axis when it
  is shorter; must divide ``size`` and be even."""
  g = min(group_size, size)
  if size % g or g % 2:
    raise ValueError(f"nf4: block of {g} does not split an axis of {size} into even blocks; "
                     f"choose lora.group_size dividing {size}")
  return g


def code_shape(shape: Sequence[int], mode: str, contract: Sequence[int]) -> tuple[int, ...]:
  """Shape of the stored codes of a kernel of ``shape``."""
  shape = list(shape)
  if mode == "nf4":
    shape[contract[-1]] //= 2
  return tuple(shape)


def scale_shape(shape: Sequence[int], mode: str, contract: Sequence[int],
                group_size: int) -> tuple[int, ...]:
  """Shape of the float32 scales of a kernel of ``shape``."""
  shape = list(shape)
  if mode == "int8":
    for a in contract:
      shape[a] = 1
  else:
    a = contract[-1]
    shape[a] //= nf4_group(shape[a], group_size)
  return tuple(shape)


def quantize(w: Array, mode: str, contract: Sequence[int], group_size: int = 64):
  """``(codes, scale)`` of kernel ``w``; ``contract``: its contracting axes (sorted)."""
  w = jnp.asarray(w, jnp.float32)
  if mode == "int8":
    absmax = jnp.max(jnp.abs(w), axis=tuple(contract), keepdims=True)
    scale = jnp.where(absmax > 0, absmax / 127.0, 1.0)
    return jnp.clip(jnp.round(w / scale), -127, 127).astype(jnp.int8), scale
  if mode != "nf4":
    raise ValueError(f"quantize mode {mode!r}: allowed values: 'int8', 'nf4'")
  a = contract[-1]
  n = w.shape[a]
  g = nf4_group(n, group_size)
  blocks = w.reshape(w.shape[:a] + (n // g, g) + w.shape[a + 1:])
  absmax = jnp.max(jnp.abs(blocks), axis=a + 1, keepdims=True)
  absmax = jnp.where(absmax > 0, absmax, 1.0)
  codes = jnp.searchsorted(jnp.asarray(_NF4_MIDPOINTS), (blocks / absmax).ravel())
  codes = codes.astype(jnp.uint8).reshape(w.shape)
  pairs = codes.reshape(w.shape[:a] + (n // 2, 2) + w.shape[a + 1:])
  lo = jnp.take(pairs, 0, axis=a + 1)
  hi = jnp.take(pairs, 1, axis=a + 1)
  return lo | (hi << 4), jnp.squeeze(absmax, axis=a + 1)


def dequantize(codes: Array, scale: Array, mode: str, contract: Sequence[int],
               dtype=jnp.float32) -> Array:
  """The kernel ``decode(codes) · scale`` in ``dtype`` (the inverse of :func:`quantize`)."""
  if mode == "int8":
    return (codes.astype(jnp.float32) * scale).astype(dtype)
  a = contract[-1]
  lo, hi = codes & 0xF, codes >> 4
  idx = jnp.stack([lo, hi], axis=a + 1)
  shape = codes.shape[:a] + (codes.shape[a] * 2,) + codes.shape[a + 1:]
  values = jnp.take(jnp.asarray(NF4_LEVELS), idx.astype(jnp.int32)).reshape(shape)
  n, blocks = shape[a], scale.shape[a]
  values = values.reshape(shape[:a] + (blocks, n // blocks) + shape[a + 1:])
  return (values * jnp.expand_dims(scale, a + 1)).reshape(shape).astype(dtype)
