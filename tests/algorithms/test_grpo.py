"""The GRPO-family update: exact micro-batching, no recompiles on hyper-parameters, every preset
runs with finite loss and metrics."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx import core
from rlx import models
from rlx.algorithms import grpo, learner
from rlx.algorithms.common import target_logprobs
from rlx.optim import init_train_state, make_optimizer

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)
B, P, T = 8, 6, 10


def make_batch(graphdef, params, seed=0, old_shift=0.0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(4, 512, size=(B, P + T)).astype(np.int32)
  attn = np.ones((B, P + T), np.float32)
  prompt_len = rng.integers(2, P + 1, size=B)
  lengths = rng.integers(1, T + 1, size=B)
  for i in range(B):
    attn[i, :P - prompt_len[i]] = 0  # left padding
    attn[i, P + lengths[i]:] = 0  # right padding
  loss_mask = attn[:, P:]
  logp = target_logprobs(graphdef, params, CONFIG, jnp.asarray(tokens), jnp.asarray(attn), T)
  old = np.asarray(logp) + old_shift * rng.standard_normal((B, T)).astype(np.float32)
  rewards = rng.integers(0, 2, size=B).astype(np.float32)
  gids = np.arange(B) // 4
  adv, _ = core.grpo_advantages(rewards, gids, loss_mask)
  ref = np.asarray(logp) + 0.1 * rng.standard_normal((B, T)).astype(np.float32)
  return grpo.TrainBatch.create(tokens, attn, loss_mask, old, adv, ref_logprobs=ref)


def hyper(**kw):
  base = dict(lr=1e-3, beta=0.04, eps_low=0.2, eps_high=0.28, entropy_coef=0.01,
              norm_constant=T)
  base.update(kw)
  return grpo.Hyper.create(**base)


@pytest.mark.parametrize("aggregation", [
    a if a is core.Aggregation.TOKEN_MEAN else pytest.param(a, marks=pytest.mark.slow)
    for a in core.Aggregation])
def test_micro_batched_gradients_equal_full_batch(aggregation):
  graphdef, params = models.init_params(CONFIG, 0)
  batch = make_batch(graphdef, params, old_shift=0.3)
  spec = grpo.GRPOSpec(aggregation=aggregation, kl_in_loss=True)
  grads = {}
  for micro in (B, 2):
    s = dataclasses.replace(spec, micro_batch_size=micro)
    grads[micro] = jax.jit(lambda p, b, h, s=s: learner.minibatch_gradients(
        grpo.PolicyObjective(graphdef, CONFIG, s), p, b, h, s.micro_batch_size))(
            params, batch, hyper())
  np.testing.assert_allclose(grads[B][1]["loss/total"], grads[2][1]["loss/total"], rtol=1e-6,
                             atol=1e-7)
  np.testing.assert_allclose(grads[B][1]["clipfrac"], grads[2][1]["clipfrac"], atol=1e-6)
  for a, b in zip(jax.tree.leaves(grads[B][0]), jax.tree.leaves(grads[2][0])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_ratio_one_pg_loss_is_minus_mean_advantage():
  graphdef, params = models.init_params(CONFIG, 0)
  batch = make_batch(graphdef, params)  # old log-probs = current: ρ = 1
  _, metrics = learner.minibatch_gradients(grpo.PolicyObjective(graphdef, CONFIG, grpo.GRPOSpec()),
                                           params, batch, hyper())
  expected = -core.masked_mean(batch.advantages, batch.loss_mask)
  np.testing.assert_allclose(metrics["loss/pg"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["ratio_mean"], 1.0, atol=1e-5)


def test_hyperparameters_do_not_recompile():
  graphdef, params = models.init_params(CONFIG, 0)
  run = rlx_config.validate(rlx_config.default_config())
  opt = make_optimizer(run.optim, 10)
  spec = grpo.GRPOSpec(kl_in_loss=True, minibatches=2, epochs=2, micro_batch_size=2)
  update = grpo.make_grpo_update(graphdef, CONFIG, opt, spec)
  batch = make_batch(graphdef, params)
  state = init_train_state(opt, params, 0)
  for h in (hyper(), hyper(beta=0.5), hyper(eps_low=0.1, eps_high=0.4), hyper(lr=3e-4),
            hyper(temperature=0.7, entropy_coef=0.0)):
    state, metrics = update(state, batch, h)
  assert update._cache_size() == 1
  assert int(state.step) == 5 * 2 * 2  # epochs × minibatches optimizer steps per call


# SFT, PPO, rejection-sampling SFT and the preference algorithms (dpo, rm, iterative_dpo) have
# their own objectives and tests.
ALGOS = [a for a in rlx_config.ALGORITHM_PRESETS if a not in ("sft", "ppo", "rejection_sft")
         and rlx_config.Algorithm(a) not in rlx_config.PREFERENCE_ALGORITHMS]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
def test_every_preset_runs_two_steps_with_finite_metrics(algo):
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, algo)
  cfg.algo.batch_size = B
  cfg.algo.group_size = 1 if cfg.algo.group_size == 1 else 4
  cfg.algo.micro_batch_size = 4
  cfg.algo.dual_clip = 3.0 if algo == "grpo" else 0.0
  run = rlx_config.validate(cfg)
  graphdef, params = models.init_params(CONFIG, 0)
  opt = make_optimizer(run.optim, 10)
  spec = grpo.GRPOSpec.from_config(run.algo)
  update = grpo.make_grpo_update(graphdef, CONFIG, opt, spec)
  state = init_train_state(opt, params, 0)
  h = grpo.hyper_from_config(run.algo, lr=1e-3, temperature=1.0)
  for step in range(2):
    state, metrics = update(state, make_batch(graphdef, state.params, seed=step, old_shift=0.1), h)
    for k, v in metrics.items():
      assert np.isfinite(np.asarray(v)).all(), (algo, k, v)
  assert ("kl" in metrics) == (run.algo.kl_placement is rlx_config.KLPlacement.LOSS)
