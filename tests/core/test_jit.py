"""Every core function runs under jax.jit, and changing a hyper-parameter never recompiles."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import core

B, T, V = 4, 3, 16
RNG = np.random.default_rng(0)
LOGP = jnp.asarray(RNG.normal(size=(B, T)) - 2, jnp.float32)
OLD = LOGP + jnp.asarray(RNG.normal(size=(B, T)) * 0.6, jnp.float32)
ADV = jnp.asarray(RNG.normal(size=(B, T)), jnp.float32)
MASK = jnp.asarray([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], jnp.float32)
R = jnp.asarray([1.0, 0.0, 0.5, 1.0])
GID = jnp.asarray([0, 0, 1, 1])
SEQ = jnp.asarray([-5.0, -6.0, -4.0, -3.0])
LOGITS = jnp.asarray(RNG.normal(size=(B, T, V)), jnp.float32)
TOKENS = jnp.asarray(RNG.integers(0, V, size=(B, T)))
HIDDEN = jnp.asarray(RNG.normal(size=(B, T, 8)), jnp.float32)
UNEMBED = jnp.asarray(RNG.normal(size=(8, V)), jnp.float32)

# name → (function of one traced hyper-parameter h, two values of h)
CASES = {
    "logprobs_temperature": (lambda t: core.logprobs_from_logits(LOGITS, TOKENS, t), (0.7, 1.3)),
    "logprobs_chunked_temperature": (
        lambda t: core.logprobs_from_logits(LOGITS, TOKENS, t, chunk_size=4, with_entropy=True), (0.7, 1.3)),
    "hidden_temperature": (
        lambda t: core.logprobs_from_hidden(HIDDEN, UNEMBED, TOKENS, t, chunk_size=8), (0.7, 1.3)),
    "gae_gamma": (lambda g: core.gae_advantages(ADV, LOGP, MASK, g, 0.95), (0.9, 1.0)),
    "gae_lambda": (lambda l: core.gae_advantages(ADV, LOGP, MASK, 1.0, l), (0.9, 1.0)),
    "grpo_eps": (lambda e: core.grpo_advantages(R, GID, MASK, e), (1e-6, 1e-4)),
    "reinforce_pp_gamma": (lambda g: core.reinforce_pp_advantages(ADV, MASK, g), (0.9, 1.0)),
    "kl_in_reward_beta": (lambda b: core.kl_in_reward(ADV, OLD, LOGP, MASK, b, "k3"), (0.01, 0.04)),
    "adaptive_kl_target": (
        lambda t: core.adaptive_kl_update(core.adaptive_kl_init(0.1), 0.2, 8, t, 100.0), (0.1, 0.2)),
    "ppo_eps": (lambda e: core.ppo_loss(LOGP, OLD, ADV, MASK, eps_low=e, eps_high=e), (0.2, 0.28)),
    "ppo_dual_clip": (lambda c: core.ppo_loss(LOGP, OLD, ADV, MASK, dual_clip=c), (1.5, 3.0)),
    "gspo_eps": (lambda e: core.gspo_loss(LOGP, OLD, ADV, MASK, eps_high=e), (4e-4, 1e-3)),
    "cispo_eps": (lambda e: core.cispo_loss(LOGP, OLD, ADV, MASK, eps_high=e), (0.2, 4.0)),
    "value_clip": (lambda c: core.value_loss(LOGP, OLD, ADV, MASK, clip=c), (0.2, 0.5)),
    "agg_norm_constant": (
        lambda c: core.aggregate(ADV, MASK, "seq-mean-token-sum-norm", c), (64.0, 128.0)),
    "total_beta": (lambda b: core.total_loss(1.0, kl_loss=0.5, beta=b), (0.0, 0.04)),
    "dpo_beta": (lambda b: core.dpo_loss(SEQ, SEQ + 1, SEQ, SEQ, beta=b, label_smoothing=0.1), (0.1, 0.5)),
    "ipo_beta": (lambda b: core.ipo_loss(SEQ, SEQ + 1, SEQ, SEQ, beta=b), (0.1, 0.5)),
    "simpo_gamma": (lambda g: core.simpo_loss(SEQ, SEQ, R + 1, R + 1, gamma=g), (0.5, 1.0)),
    "orpo_lambda": (lambda l: core.orpo_loss(SEQ, SEQ, R + 1, R + 1, lam=l), (0.1, 0.2)),
    "kto_beta": (lambda b: core.kto_loss(SEQ, SEQ, GID > 0, 0.1, beta=b), (0.1, 0.2)),
    "bt_margin": (lambda m: core.bradley_terry_loss(SEQ, SEQ, margin=m), (0.0, 1.0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_changing_a_hyper_parameter_does_not_recompile(name):
  fn, values = CASES[name]
  traces = []

  @jax.jit
  def run(h):
    traces.append(1)
    return fn(h)

  outs = [jax.block_until_ready(run(jnp.float32(v))) for v in values]
  assert len(traces) == 1, f"{name} was traced {len(traces)} times"
  # The value matters: both outputs are finite and the hyper-parameter actually changed something.
  leaves = [jax.tree.leaves(o) for o in outs]
  assert all(np.all(np.isfinite(x)) for x in leaves[0] + leaves[1])
  assert any(not np.array_equal(a, b) for a, b in zip(*leaves))


def test_compile_count_with_jax_cache():
  """The same check through jit's own executable cache (compilations, not just traces)."""
  run = jax.jit(functools.partial(core.ppo_loss, eps_low=0.2))
  for e in (0.2, 0.25, 0.28, 0.3):
    run(LOGP, OLD, ADV, MASK, eps_high=jnp.float32(e))
  assert run._cache_size() == 1
