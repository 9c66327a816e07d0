"""Argument checks for the public functions of ``rlx.core``.

Ranks and dtypes are static, so these run once at trace time under ``jax.jit`` (and cost a few
microseconds per call when run eagerly); a compiled step never executes them. They raise
``AssertionError`` (chex's convention) naming the function and the argument, e.g.
``ppo_loss: advantages must be [B,T] (rank 2), got shape (4,)``. ``chex.disable_asserts()`` turns
the chex-based ones off.

Shapes are written as in the docstrings: ``"[]"`` (a scalar), ``"[B]"``, ``"[B,T]"``,
``"[B] or []"`` (either), ``"[...,V]"`` (rank at least 1).
"""

from __future__ import annotations

import functools

import chex
import jax.numpy as jnp
import numpy as np


def _array(x):
  """Python lists / tuples as arrays (chex would read a list as a sequence of inputs)."""
  return np.asarray(x) if isinstance(x, (list, tuple)) else x


@functools.lru_cache(maxsize=None)
def _ranks(doc: str) -> frozenset[int]:
  ranks = set()
  for alt in doc.split(" or "):
    dims = [d for d in alt.strip().strip("[]").split(",") if d.strip()]
    if any(d.strip() == "..." for d in dims):
      ranks.update(range(len(dims) - 1, 9))
    else:
      ranks.add(len(dims))
  return frozenset(ranks)


def _describe(doc: str) -> str:
  ranks = sorted(_ranks(doc))
  if len(ranks) == 1:
    return f"{doc} (rank {ranks[0]})"
  if ranks == list(range(ranks[0], 9)):
    return f"{doc} (rank >= {ranks[0]})"
  return f"{doc} (rank {' or '.join(map(str, ranks))})"


def ranks(where: str, **named) -> None:
  """``name=(x, "[B,T]")`` for each argument; ``None`` values are skipped."""
  for name, (x, doc) in named.items():
    if x is None:
      continue
    x = _array(x)
    expected = _ranks(doc)
    if np.ndim(x) not in expected:  # cheap pre-check; chex builds the message
      chex.assert_rank(x, set(expected), custom_message=(
          f"{where}: {name} must be {_describe(doc)}, got shape {np.shape(x)}"))


def same_shape(where: str, **named) -> None:
  """All given (non-``None``) arrays have one shape."""
  named = {k: _array(v) for k, v in named.items() if v is not None}
  shapes = {k: np.shape(v) for k, v in named.items()}
  if len(set(shapes.values())) > 1:
    chex.assert_equal_shape(list(named.values()), custom_message=(
        f"{where}: {', '.join(named)} must have the same shape, got " +
        ", ".join(f"{k} {s}" for k, s in shapes.items())))


def same_rows(where: str, **named) -> None:
  """All given (non-``None``) arrays have the same leading dimension ``B``."""
  named = {k: _array(v) for k, v in named.items() if v is not None}
  shapes = {k: np.shape(v) for k, v in named.items()}
  if len({s[:1] for s in shapes.values()}) > 1:
    chex.assert_equal_shape_prefix(list(named.values()), 1, custom_message=(
        f"{where}: {', '.join(named)} must have the same batch size B (first dimension), got " +
        ", ".join(f"{k} {s}" for k, s in shapes.items())))


def integer(where: str, name: str, x) -> None:
  """``x`` has an integer dtype (ids, token ids)."""
  if x is None:
    return
  x = _array(x)
  dtype = np.result_type(x) if not hasattr(x, "dtype") else x.dtype
  if not jnp.issubdtype(dtype, jnp.integer):
    chex.assert_type(x, int, custom_message=f"{where}: {name} must have an integer dtype, got {dtype}")


def numeric(where: str, name: str, x) -> None:
  """``x`` is bool or a number (masks: float, int and bool masks are all accepted)."""
  if x is None:
    return
  x = _array(x)
  dtype = np.result_type(x) if not hasattr(x, "dtype") else x.dtype
  if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
    raise AssertionError(f"[Chex] {where}: {name} must be numeric or bool, got dtype {dtype}")


def broadcasts_to(where: str, mask_name: str, mask, x_name: str, x) -> None:
  """``mask`` broadcasts to the shape of ``x`` (without growing it), and is numeric."""
  numeric(where, mask_name, mask)
  ms, xs = np.shape(_array(mask)), np.shape(_array(x))
  ok = len(ms) <= len(xs) and all(a in (1, b) for a, b in zip(ms[::-1], xs[::-1]))
  if not ok:
    raise AssertionError(f"[Chex] {where}: {mask_name} of shape {ms} does not broadcast to "
                         f"{x_name} of shape {xs} (pass a mask of the same shape as {x_name})")
