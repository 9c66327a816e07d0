"""Token log-probabilities and entropies from logits (docs/algorithms.md §1).

Everything is computed in float32 from ``z = logits / temperature``:

  ``ℓ_t = z_t[y_t] − logsumexp(z_t)``,   ``H_t = logsumexp(z_t) − Σ_v softmax(z_t)_v · z_t[v]``.

Two paths:
- :func:`logprobs_from_logits` takes logits ``[B,T,V]`` (any float dtype). With ``chunk_size`` it
  walks the vocabulary in chunks, casting one ``[B,T,chunk]`` slice at a time to float32, so a
  full float32 copy of bfloat16 logits is never made.
- :func:`logprobs_from_hidden` takes final hidden states ``[B,T,D]`` and the unembedding
  ``[D,V]`` and never materialises the logits at all: a ``lax.scan`` over vocabulary chunks keeps
  an online logsumexp (running max ``M``, ``Σ exp(z − M)`` and ``Σ exp(z − M)·z``) and picks out the
  target logit. The scan body is rematerialised (``jax.checkpoint``) so the backward pass stores
  only ``[B,T]`` carries per chunk, not the chunk logits.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.core import _checks as check

Array = jax.Array


class TokenStats(NamedTuple):
  """Per-token statistics of the temperature-scaled distribution; all ``[B,T]`` float32."""

  logprobs: Array  # log p(y_t)
  entropy: Array  # H(p_t)


def _scale(z: Array, temperature, softcap) -> Array:
  z = z.astype(jnp.float32)
  if softcap is not None:
    z = softcap * jnp.tanh(z / softcap)
  return z / jnp.asarray(temperature, jnp.float32)


def logprobs_from_logits(
    logits: Array,
    tokens: Array,
    temperature=1.0,
    *,
    chunk_size: int | None = None,
    with_entropy: bool = False,
) -> Array | TokenStats:
  """Log-probs of ``tokens`` under ``softmax(logits / temperature)``.

  Args:
    logits: ``[B,T,V]`` logits aligned with ``tokens`` (position t predicts ``tokens[:, t]``).
    tokens: ``[B,T]`` int token ids.
    temperature: scalar (traced; changing it does not recompile).
    chunk_size: if set, process the vocabulary in chunks of this size (must divide V).
    with_entropy: also return the entropy ``H_t``.

  Returns:
    ``[B,T]`` float32 log-probs, or :class:`TokenStats` when ``with_entropy``.
  """
  where = "logprobs_from_logits"
  check.ranks(where, logits=(logits, "[B,T,V]"), tokens=(tokens, "[B,T]"),
              temperature=(temperature, "[]"))
  check.integer(where, "tokens", tokens)
  if logits.shape[:-1] != tokens.shape:
    raise AssertionError(f"[Chex] {where}: logits {logits.shape} must be tokens {tokens.shape} "
                         "plus a vocabulary axis")
  if chunk_size is None or chunk_size >= logits.shape[-1]:
    z = _scale(logits, temperature, None)
    lse = jax.nn.logsumexp(z, axis=-1)
    target = jnp.take_along_axis(z, tokens[..., None].astype(jnp.int32), axis=-1)[..., 0]
    logp = target - lse
    if not with_entropy:
      return logp
    return TokenStats(logp, _entropy(z - lse[..., None]))
  v = logits.shape[-1]
  if v % chunk_size:
    raise ValueError(f"chunk_size={chunk_size} must divide the vocabulary size {v}")
  n = v // chunk_size

  def chunk_logits(offset):
    # One [B,T,C] slice of the input, cast to float32: no full-size copy in any dtype.
    c = jax.lax.dynamic_slice_in_dim(logits, offset, chunk_size, axis=-1)
    return _scale(c, temperature, None)

  return _online_stats(chunk_logits, n, tokens, chunk_size, with_entropy)


def logprobs_from_hidden(
    hidden: Array,
    unembed: Array,
    tokens: Array,
    temperature=1.0,
    *,
    chunk_size: int = 4096,
    softcap: float | None = None,
    with_entropy: bool = False,
) -> Array | TokenStats:
  """Log-probs of ``tokens`` under ``softmax(softcap(hidden @ unembed) / temperature)``, chunked.

  Args:
    hidden: ``[B,T,D]`` final hidden states (after the final norm).
    unembed: ``[D,V]`` output projection (for tied embeddings pass ``embedding.T``).
    tokens: ``[B,T]`` int token ids.
    temperature: scalar (traced).
    chunk_size: vocabulary chunk (must divide V); peak extra memory is ``B·T·chunk_size`` floats.
    softcap: final-logit soft-capping (Gemma 2: ``c·tanh(z/c)``), applied before the temperature.
    with_entropy: also return the entropy ``H_t``.

  Returns:
    ``[B,T]`` float32 log-probs, or :class:`TokenStats` when ``with_entropy``.
  """
  where = "logprobs_from_hidden"
  check.ranks(where, hidden=(hidden, "[B,T,D]"), unembed=(unembed, "[D,V]"),
              tokens=(tokens, "[B,T]"), temperature=(temperature, "[]"))
  check.integer(where, "tokens", tokens)
  if hidden.shape[:-1] != tokens.shape or hidden.shape[-1] != unembed.shape[0]:
    raise AssertionError(f"[Chex] {where}: hidden {hidden.shape} must be tokens {tokens.shape} "
                         f"plus D, and unembed {unembed.shape} must be [D,V]")
  d, v = unembed.shape
  chunk_size = min(chunk_size, v)
  if v % chunk_size:
    raise ValueError(f"chunk_size={chunk_size} must divide the vocabulary size {v}")
  n = v // chunk_size

  def chunk_logits(offset):
    w = jax.lax.dynamic_slice_in_dim(unembed, offset, chunk_size, axis=1)  # [D,C]
    z = jnp.einsum("btd,dc->btc", hidden, w, preferred_element_type=jnp.float32)
    return _scale(z, temperature, softcap)

  return _online_stats(chunk_logits, n, tokens, chunk_size, with_entropy)


def _online_stats(make_logits, n, tokens, chunk_size, with_entropy):
  """Online logsumexp / target gather / entropy over ``n`` vocabulary chunks.

  ``make_logits(k·chunk_size)`` returns chunk ``k``'s float32 logits ``[B,T,C]``.
  """
  tokens = tokens.astype(jnp.int32)
  shape = tokens.shape
  init = (
      jnp.full(shape, -jnp.inf, jnp.float32),  # running max M
      jnp.zeros(shape, jnp.float32),  # Σ exp(z − M)
      jnp.zeros(shape, jnp.float32),  # Σ exp(z − M)·(z − M), shifted to avoid cancellation
      jnp.zeros(shape, jnp.float32),  # target logit
  )

  @jax.checkpoint
  def body(carry, inputs):
    m, s, sz, target = carry
    offset = inputs
    z = make_logits(offset)  # [B,T,C] float32
    m_new = jnp.maximum(m, jnp.max(z, axis=-1))
    scale = jnp.exp(m - m_new)  # exp(-inf) = 0 on the first chunk
    e = jnp.exp(z - m_new[..., None])
    s_new = s * scale + jnp.sum(e, axis=-1)
    if with_entropy:
      # Re-centre the running Σ e·(z − M) on the new max: + s·(M − M_new), zero on the first chunk.
      shift = s * (jnp.where(jnp.isfinite(m), m, m_new) - m_new)
      sz = (sz + shift) * scale + jnp.sum(e * (z - m_new[..., None]), axis=-1)
    local = tokens - offset
    in_chunk = (local >= 0) & (local < chunk_size)
    picked = jnp.take_along_axis(z, jnp.clip(local, 0, chunk_size - 1)[..., None], axis=-1)[..., 0]
    target = jnp.where(in_chunk, picked, target)
    return (m_new, s_new, sz, target), None

  offsets = jnp.arange(n, dtype=jnp.int32) * chunk_size
  (m, s, sz, target), _ = jax.lax.scan(body, init, offsets)
  lse = m + jnp.log(s)
  logp = target - lse
  if not with_entropy:
    return logp
  # H = lse − Σ p z = log s − Σ e·(z − M) / s.
  return TokenStats(logp, jnp.log(s) - sz / s)


def _entropy(log_p: Array) -> Array:
  """``−Σ p log p`` over the last axis; tokens with p = 0 (logit −inf) contribute 0, not NaN."""
  p = jnp.exp(log_p)
  return -jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=-1)


def entropy_from_logits(logits: Array, temperature=1.0) -> Array:
  """``H_t = logsumexp(z) − Σ_v softmax(z)_v z_v`` for ``z = logits / temperature``; ``[..., V] → [...]``."""
  check.ranks("entropy_from_logits", logits=(logits, "[...,V]"), temperature=(temperature, "[]"))
  return _entropy(jax.nn.log_softmax(_scale(logits, temperature, None), axis=-1))


def self_certainty_from_logits(logits: Array, temperature=1.0) -> Array:
  """Self-certainty (Kang et al., 2025): ``KL(U ‖ p_t) = −log V − mean_v log p_t(v)``.

  Equals ``logsumexp(z) − mean_v z_v − log V``; 0 for the uniform distribution. ``[..., V] → [...]``.
  """
  check.ranks("self_certainty_from_logits", logits=(logits, "[...,V]"),
              temperature=(temperature, "[]"))
  z = _scale(logits, temperature, None)
  return -jnp.log(z.shape[-1]) - jnp.mean(jax.nn.log_softmax(z, axis=-1), axis=-1)
