"""The forward contract: KV-cache decoding equals the full pass, jit via split/merge, metadata."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rlx.models as M
from tests.models.hf_helpers import FAMILIES, left_padded_batch, random_params


_forward = jax.jit(M.apply, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=5)
def _step(graphdef, params, tokens, positions, mask, cache):
  return M.apply(graphdef, params, tokens, positions, mask, cache)


@pytest.mark.parametrize("family", FAMILIES)
def test_incremental_decoding_equals_full_forward(family):
  """Prefill a left-padded prompt, then feed one token at a time: same logits as one full pass."""
  config = M.TINY[family]
  graphdef, params = random_params(config)
  prompt, n_new = 6, 6
  seq = prompt + n_new
  tokens, positions, mask = left_padded_batch(config.vocab_size, (6, 4, 1), prompt, seed=3)
  rng = np.random.default_rng(4)
  new_tokens = rng.integers(0, config.vocab_size, (3, n_new)).astype(np.int32)
  all_tokens = np.concatenate([tokens, new_tokens], axis=1)
  all_mask = np.concatenate([mask, np.ones((3, n_new), np.int32)], axis=1)
  all_positions = np.maximum(np.cumsum(all_mask, axis=1) - 1, 0).astype(np.int32)
  full, _ = _forward(graphdef, params, all_tokens, all_positions, all_mask)
  full = np.asarray(full)

  model = nnx.merge(graphdef, params)
  cache = model.init_cache(3, seq, jnp.float32)
  logits, cache = _step(graphdef, params, tokens, positions, mask, cache)
  got = [np.asarray(logits)]
  for t in range(prompt, seq):
    logits, cache = _step(graphdef, params, all_tokens[:, t:t + 1], all_positions[:, t:t + 1],
                          all_mask[:, t:t + 1], cache)
    got.append(np.asarray(logits))
  got = np.concatenate(got, axis=1)
  assert int(cache.index) == seq
  np.testing.assert_array_equal(np.asarray(cache.mask), all_mask.astype(bool))
  valid = all_mask.astype(bool)
  assert np.abs(full[valid]).max() > 0.5
  np.testing.assert_allclose(got[valid], full[valid], atol=1e-5, rtol=0)


def test_hidden_states_and_lm_head_compose():
  graphdef, params = random_params(M.TINY["gemma2"])
  tokens, positions, mask = left_padded_batch(128, (5, 3), 5)
  logits, _ = _forward(graphdef, params, tokens, positions, mask)
  h, cache = jax.jit(M.hidden_states, static_argnums=0)(graphdef, params, tokens, positions, mask)
  assert h.shape == (2, 5, 32) and cache is None
  head = jax.jit(M.lm_head, static_argnums=0)(graphdef, params, h)
  np.testing.assert_allclose(np.asarray(head), np.asarray(logits), atol=1e-6, rtol=0)
  chunk = jax.jit(M.lm_head, static_argnums=(0, 4))(graphdef, params, h, 96, 32)  # vocab slice
  np.testing.assert_allclose(np.asarray(chunk), np.asarray(logits)[..., 96:128], atol=1e-6)
  # Gemma 2 final soft-cap bounds the logits.
  assert np.abs(np.asarray(logits)).max() <= 30.0


def test_init_cache_layout():
  config = M.TINY["llama"]
  cache = nnx.merge(*random_params(config)).init_cache(3, 16, jnp.bfloat16)
  assert len(cache.k) == len(cache.v) == config.n_layers
  assert cache.k[0].shape == (3, config.n_kv_heads, 16, config.head_dim)
  assert cache.k[0].dtype == jnp.bfloat16
  assert cache.mask.shape == (3, 16) and not bool(cache.mask.any())
  assert cache.index.dtype == jnp.int32 and cache.max_len == 16
  # A pytree: it crosses jit boundaries and is donated by the sampler.
  assert cache.positions.shape == (3, 16) and cache.positions.dtype == jnp.int32
  assert len(jax.tree.leaves(cache)) == 2 * config.n_layers + 3


def test_decode_step_updates_cache_in_place():
  """The jitted decode step aliases the donated cache buffers to its outputs (no copies)."""
  config = M.TINY["llama"]
  graphdef, params = random_params(config)
  cache = nnx.merge(graphdef, params).init_cache(2, 8)
  one = np.ones((2, 1), np.int32)
  hlo = _step.lower(graphdef, params, one, one, one, cache).compile().as_text()
  # every K/V buffer (2 per layer) plus the mask/index is an input-output alias
  assert hlo.count("may-alias") + hlo.count("must-alias") >= 2 * config.n_layers


def test_params_carry_logical_axes():
  _, params = M.abstract(M.TINY["qwen2"])
  axes = {tuple(map(str, p)): v.get_metadata()["out_sharding"]
          for p, v in nnx.to_flat_state(params)}
  assert axes[("embedding",)] == ("vocab", "embed")
  assert axes[("layers", "0", "attn", "q_proj", "kernel")] == ("embed", "heads", "head_dim")
  assert axes[("layers", "0", "attn", "k_proj", "bias")] == ("kv_heads", "head_dim")
  assert axes[("layers", "1", "mlp", "down_proj", "kernel")] == ("mlp", "embed")
  for v in jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, nnx.Variable)):
    assert len(v.get_metadata()["out_sharding"]) == len(v.shape)


def test_bfloat16_params_and_compute():
  config = M.TINY["qwen3"].replace(dtype="bfloat16", param_dtype="bfloat16")
  graphdef, params = random_params(M.TINY["qwen3"])
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
  graphdef16, _ = M.abstract(config)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
  tokens, positions, mask = left_padded_batch(128, (7, 4), 7)
  logits16, _ = _forward(graphdef16, params, tokens, positions, mask)
  assert logits16.dtype == jnp.float32  # logits always float32
  params32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
  logits32, _ = _forward(graphdef, params32, tokens, positions, mask)
  valid = mask.astype(bool)
  err = np.abs(np.asarray(logits16) - np.asarray(logits32))[valid].max()
  assert err < 0.1 * np.abs(np.asarray(logits32)[valid]).max()


def test_eval_shape_full_size_allocates_nothing():
  graphdef, params = M.abstract(M.PRESETS["llama-3.1-70b"])
  leaves = jax.tree.leaves(params)
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
