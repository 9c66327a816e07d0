import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp as np_logsumexp

from rlx import core


def _reference(logits, tokens, temperature, softcap=None):
  z = np.asarray(logits, np.float64)
  if softcap is not None:
    z = softcap * np.tanh(z / softcap)
  z = z / temperature
  lse = np_logsumexp(z, axis=-1)
  logp = np.take_along_axis(z, tokens[..., None], -1)[..., 0] - lse
  p = np.exp(z - lse[..., None])
  entropy = lse - (p * z).sum(-1)
  sc = -np.log(z.shape[-1]) - (z - lse[..., None]).mean(-1)  # KL(U ‖ p), docs/algorithms.md §9
  return logp, entropy, sc


def test_hand_computed_two_token_vocab():
  # logits (0, log 3): p = (1/4, 3/4); at temperature 1, log p(1) = log 0.75.
  logits = np.array([[[0.0, np.log(3.0)]]], np.float32)
  tokens = np.array([[1]])
  stats = core.logprobs_from_logits(logits, tokens, 1.0, with_entropy=True)
  np.testing.assert_allclose(stats.logprobs, [[np.log(0.75)]], rtol=1e-6)
  np.testing.assert_allclose(stats.entropy, [[-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))]], rtol=1e-6)
  # temperature 2: z = (0, log 3 / 2) ⇒ p(1) = √3 / (1 + √3)
  lp = core.logprobs_from_logits(logits, tokens, 2.0)
  np.testing.assert_allclose(lp, [[np.log(np.sqrt(3) / (1 + np.sqrt(3)))]], rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.7])
def test_direct_and_chunked_logits_match_float64(temperature):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 7, 64)).astype(np.float32) * 3
  tokens = rng.integers(0, 64, size=(2, 7))
  ref_lp, ref_h, ref_sc = _reference(logits, tokens, temperature)
  direct = core.logprobs_from_logits(logits, tokens, temperature, with_entropy=True)
  chunked = core.logprobs_from_logits(logits, tokens, temperature, chunk_size=16, with_entropy=True)
  for stats in (direct, chunked):  # float32 vs float64: |z| reaches ~30 here
    np.testing.assert_allclose(stats.logprobs, ref_lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.entropy, ref_h, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(chunked.logprobs, direct.logprobs, atol=1e-6)
  np.testing.assert_allclose(chunked.entropy, direct.entropy, atol=1e-6)
  np.testing.assert_allclose(core.entropy_from_logits(logits, temperature), ref_h, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(core.self_certainty_from_logits(logits, temperature), ref_sc,
                             rtol=1e-5, atol=1e-5)


def test_bfloat16_logits_chunked_are_computed_in_float32():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(2, 3, 32)) * 4, jnp.bfloat16)
  tokens = rng.integers(0, 32, size=(2, 3))
  out = core.logprobs_from_logits(logits, tokens, 1.0, chunk_size=8)
  assert out.dtype == jnp.float32
  ref, _, _ = _reference(np.asarray(logits.astype(jnp.float32)), tokens, 1.0)
  np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_hidden_path_matches_direct_values_and_gradients(softcap):
  rng = np.random.default_rng(2)
  b, t, d, v = 2, 5, 8, 96
  hidden = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
  unembed = jnp.asarray(rng.normal(size=(d, v)) * 0.5, jnp.float32)
  tokens = jnp.asarray(rng.integers(0, v, size=(b, t)))

  def direct(h, w):
    z = h @ w
    if softcap is not None:
      z = softcap * jnp.tanh(z / softcap)
    return core.logprobs_from_logits(z, tokens, 0.8, with_entropy=True)

  def chunked(h, w):
    return core.logprobs_from_hidden(h, w, tokens, 0.8, chunk_size=32, softcap=softcap,
                                     with_entropy=True)

  a, c = direct(hidden, unembed), chunked(hidden, unembed)
  ref_lp, ref_h, _ = _reference(np.asarray(hidden @ unembed), np.asarray(tokens), 0.8, softcap)
  np.testing.assert_allclose(c.logprobs, a.logprobs, atol=1e-6)
  np.testing.assert_allclose(c.entropy, a.entropy, atol=1e-6)
  np.testing.assert_allclose(c.logprobs, ref_lp, atol=1e-5)
  np.testing.assert_allclose(c.entropy, ref_h, atol=1e-5)

  def objective(fn):
    return lambda h, w: jnp.sum(fn(h, w).logprobs) + 0.3 * jnp.sum(fn(h, w).entropy)

  ga = jax.grad(objective(direct), argnums=(0, 1))(hidden, unembed)
  gc = jax.grad(objective(chunked), argnums=(0, 1))(hidden, unembed)
  for x, y in zip(ga, gc):
    np.testing.assert_allclose(y, x, atol=1e-5)


def _temp_bytes(fn, *args):
  compiled = jax.jit(fn).lower(*args).compile()
  analysis = compiled.memory_analysis()
  return analysis.temp_size_in_bytes


def test_chunked_path_peak_memory_below_direct_at_32k_vocab():
  b, t, d, v = 2, 64, 64, 32768
  hidden = jax.ShapeDtypeStruct((b, t, d), jnp.float32)
  unembed = jax.ShapeDtypeStruct((d, v), jnp.float32)
  tokens = jax.ShapeDtypeStruct((b, t), jnp.int32)
  full_logits_bytes = b * t * v * 4

  def direct(h, w, y):
    return core.logprobs_from_logits(h @ w, y, 1.0, with_entropy=True)

  def chunked(h, w, y):
    return core.logprobs_from_hidden(h, w, y, 1.0, chunk_size=4096, with_entropy=True)

  def direct_grad(h, w, y):
    return jax.grad(lambda h, w: jnp.sum(direct(h, w, y).logprobs), argnums=(0, 1))(h, w)

  def chunked_grad(h, w, y):
    return jax.grad(lambda h, w: jnp.sum(chunked(h, w, y).logprobs), argnums=(0, 1))(h, w)

  direct_bytes = _temp_bytes(direct, hidden, unembed, tokens)
  chunked_bytes = _temp_bytes(chunked, hidden, unembed, tokens)
  assert direct_bytes >= full_logits_bytes
  assert chunked_bytes < full_logits_bytes / 2, (chunked_bytes, full_logits_bytes)
  assert chunked_bytes < direct_bytes
  # The backward pass must not store per-chunk logits either (the scan body is rematerialised).
  direct_grad_bytes = _temp_bytes(direct_grad, hidden, unembed, tokens)
  chunked_grad_bytes = _temp_bytes(chunked_grad, hidden, unembed, tokens)
  # Allowed: one [D,V] accumulator for the unembedding's gradient plus a few chunk-sized buffers.
  unembed_bytes = d * v * 4
  assert chunked_grad_bytes < unembed_bytes + full_logits_bytes / 4, chunked_grad_bytes
  assert direct_grad_bytes >= 2 * full_logits_bytes
  assert chunked_grad_bytes < direct_grad_bytes / 3


def test_chunk_size_must_divide_vocab():
  with pytest.raises(ValueError, match="chunk_size"):
    core.logprobs_from_logits(np.zeros((1, 1, 10)), np.zeros((1, 1), int), 1.0, chunk_size=3)
