"""The sampler on a 4-device mesh (simulated CPU devices, own process) equals the 1-device run,
static and continuously batched."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from rlx import models
    from rlx.sampling import Buckets, SamplingParams, sample
    assert jax.device_count() == 4, jax.devices()
    cfg = models.ModelConfig(vocab_size=48, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                             head_dim=8, d_ff=64, init_std=0.3)
    graphdef, params = models.init_params(cfg, seed=1)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 48, size=(4, 6)).astype(np.int32)
    mask = np.ones_like(tokens); mask[0, :3] = 0; mask[2, :1] = 0
    buckets = Buckets(prompt_lengths=(8,), batch_sizes=(4, 8), new_tokens=(8,))
    sp = SamplingParams(temperature=0.9, top_k=10, max_new_tokens=8, n=2, return_entropy=True)
    single = sample(graphdef, params, tokens, mask, sp, jax.random.key(5), buckets=buckets)
    mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("data", "fsdp"))
    replicated = jax.device_put(params, NamedSharding(mesh, P()))
    sharded = sample(graphdef, replicated, tokens, mask, sp, jax.random.key(5), buckets=buckets,
                     mesh=mesh)
    assert len(sharded.completion_tokens.sharding.device_set) == 4, sharded.completion_tokens.sharding
    np.testing.assert_array_equal(single.completion_tokens, sharded.completion_tokens)
    np.testing.assert_allclose(single.logprobs, sharded.logprobs, atol=1e-5)
    np.testing.assert_allclose(single.entropy, sharded.entropy, atol=1e-5)
    # continuous batching on the mesh equals continuous batching on one device
    cb1 = sample(graphdef, params, tokens, mask, sp, jax.random.key(5), buckets=buckets,
                 decode_slots=4)
    cb = sample(graphdef, replicated, tokens, mask, sp, jax.random.key(5), buckets=buckets,
                mesh=mesh, decode_slots=4)
    np.testing.assert_array_equal(cb1.completion_tokens, cb.completion_tokens)
    np.testing.assert_allclose(cb1.logprobs, cb.logprobs, atol=1e-5)
    print("MESH_OK")
""")


def test_sampling_on_a_mesh_equals_single_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0 and "MESH_OK" in proc.stdout, proc.stdout + proc.stderr[-4000:]
