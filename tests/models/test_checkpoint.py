"""Hugging Face checkpoint import/export: round trips, error messages, sharded loading."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from flax import nnx

import rlx.models as M
from rlx.models.checkpoint import Checkpoint, TensorSpec, _read_block, write_safetensors
from tests.models.hf_helpers import random_params


def _leaves(params):
  return [(p, np.asarray(v[...])) for p, v in nnx.to_flat_state(params)]


@pytest.mark.parametrize("family,dtype,shard_bytes", [
    ("llama", "float32", 2**40),
    ("gemma2", "bfloat16", 2**40),
    ("qwen2", "float32", 20_000),  # forces several files + model.safetensors.index.json
])
def test_save_load_round_trip_is_bit_exact(tmp_path, family, dtype, shard_bytes):
  config = M.TINY[family].replace(dtype=dtype, param_dtype=dtype)
  _, params = random_params(config)
  M.save_hf(str(tmp_path), config, params, max_shard_bytes=shard_bytes)
  sharded = os.path.exists(tmp_path / "model.safetensors.index.json")
  assert sharded == (shard_bytes < 2**40)
  loaded_config, loaded = M.load_hf(str(tmp_path), dtype=dtype)
  assert loaded_config == config
  assert isinstance(M.from_params(loaded_config, loaded), M.Transformer)
  want, got = _leaves(params), _leaves(loaded)
  assert [p for p, _ in want] == [p for p, _ in got]
  for (path, a), (_, b) in zip(want, got):
    assert a.dtype == b.dtype and a.shape == b.shape, path
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=str(path))


def _rewrite(directory, edit):
  """Apply `edit(dict name -> array)` to the single-file checkpoint in `directory`."""
  ckpt = Checkpoint(str(directory))
  tensors = {n: np.array(ckpt.view(n)) for n in ckpt.where}
  edit(tensors)
  write_safetensors(str(directory / "model.safetensors"), list(tensors.items()))


@pytest.fixture()
def saved_llama(tmp_path):
  config = M.TINY["llama"]
  _, params = random_params(config)
  M.save_hf(str(tmp_path), config, params)
  return tmp_path


def test_missing_tensor_is_named(saved_llama):
  _rewrite(saved_llama, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
  with pytest.raises(KeyError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
    M.load_hf(str(saved_llama))


def test_misshaped_tensor_is_named(saved_llama):
  def edit(t):
    t["model.layers.0.self_attn.k_proj.weight"] = t["model.layers.0.self_attn.k_proj.weight"][:8]
  _rewrite(saved_llama, edit)
  with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.k_proj\.weight.*\(8, 32\)"):
    M.load_hf(str(saved_llama))


def test_unexpected_tensor_is_named(saved_llama):
  _rewrite(saved_llama, lambda t: t.update({"model.layers.0.extra.weight": np.zeros(3, np.float32)}))
  with pytest.raises(ValueError, match=r"model\.layers\.0\.extra\.weight"):
    M.load_hf(str(saved_llama))
  M.load_hf(str(saved_llama), strict=False)


def test_read_block_equals_slice_of_full_tensor():
  """Each shard read from the HF layout equals the same slice of the fully loaded parameter."""
  rng = np.random.default_rng(0)
  d, h, e = 6, 4, 8
  hf = rng.standard_normal((h * e, d)).astype(np.float32)  # q_proj.weight [H·E, D]
  spec = TensorSpec("q", transpose=True, groups=(1, 2))
  full = _read_block(hf, spec, (d, h, e))
  np.testing.assert_array_equal(full, hf.T.reshape(d, h, e))
  for index in [(slice(0, 3), slice(None), slice(None)), (slice(3, 6), slice(2, 4), slice(0, 4)),
                (slice(None), slice(1, 2), slice(4, 8))]:
    np.testing.assert_array_equal(_read_block(hf, spec, (d, h, e), index), full[index])
  o = rng.standard_normal((d, h * e)).astype(np.float32)  # o_proj.weight [D, H·E]
  spec = TensorSpec("o", transpose=True, groups=(2, 1))
  full = _read_block(o, spec, (h, e, d))
  np.testing.assert_array_equal(full, o.T.reshape(h, e, d))
  index = (slice(1, 3), slice(2, 6), slice(0, 3))
  np.testing.assert_array_equal(_read_block(o, spec, (h, e, d), index), full[index])


def test_config_round_trip_through_hf_json():
  for name in ("llama-3.1-8b", "qwen2.5-7b", "qwen3-8b", "gemma-2-9b"):
    config = M.PRESETS[name]
    hf = json.loads(json.dumps(M.config_to_hf(config)))
    assert M.config_from_hf(hf) == config, name


_SHARDED_LOAD = textwrap.dedent("""
    import sys
    import jax, numpy as np
    from flax import nnx
    import rlx.models as M
    assert jax.device_count() == 8
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 3)
    config, params = M.load_hf(sys.argv[1], mesh=mesh)
    _, host = M.load_hf(sys.argv[1])
    specs = {}
    for (path, v), (_, w) in zip(nnx.to_flat_state(params), nnx.to_flat_state(host)):
      a = v[...]
      specs[".".join(map(str, path))] = tuple(a.sharding.spec)
      np.testing.assert_array_equal(np.asarray(a), np.asarray(w[...]))
    assert specs["embedding"] == ("tensor", "fsdp"), specs["embedding"]
    assert specs["layers.0.attn.q_proj.kernel"] == ("fsdp", "tensor", None)
    assert specs["layers.0.mlp.down_proj.kernel"] == ("tensor", "fsdp")
    # a shard holds a quarter of the q kernel (fsdp x tensor), replicated over data
    q = params["layers"][0]["attn"]["q_proj"]["kernel"][...]
    assert q.addressable_shards[0].data.shape == (16, 2, 8)
    # the loaded params run under jit with their shardings
    graphdef, _ = M.abstract(config)
    tokens = np.ones((2, 4), np.int32)
    logits, _ = jax.jit(M.apply, static_argnums=0)(graphdef, params, tokens, tokens, tokens)
    ref, _ = jax.jit(M.apply, static_argnums=0)(graphdef, host, tokens, tokens, tokens)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref), atol=1e-5)
    # random initialisation straight into the same shardings
    _, fresh = M.init_params(config, seed=0, mesh=mesh)
    q = fresh["layers"][0]["attn"]["q_proj"]["kernel"][...]
    assert tuple(q.sharding.spec) == ("fsdp", "tensor", None)
    print("ok")
""")


def test_load_with_mesh_places_shards(tmp_path):
  """8 simulated CPU devices: each parameter is created straight into its NamedSharding."""
  config = M.TINY["llama"]
  _, params = random_params(config)
  M.save_hf(str(tmp_path), config, params, max_shard_bytes=30_000)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _SHARDED_LOAD, str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().endswith("ok")
