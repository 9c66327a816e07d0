"""LaSeR inside the compiled preparation and update: the jax pieces equal the numpy reference in
``rlx.rewards.label_free``; the auxiliary loss is exact under micro-batching and is what the update
minimises; a LaSeR config runs in the RL loop and logs self-verification F1."""

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as rlx_config
from rlx import models
from rlx.algorithms import grpo, laser, learner
from rlx.rewards.label_free import laser_aux_loss, laser_class_weights, laser_mix_advantages
from rlx.runtime.metrics import read_metrics
from rlx.optim import init_train_state, make_optimizer

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)
B, P, T = 8, 4, 6
Z = 511


def batch_and_laser(graphdef, params, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(4, 500, (B, P + T)).astype(np.int32)
  attn = np.ones((B, P + T), np.float32)
  lengths = rng.integers(1, T + 1, B)
  for i in range(B):
    attn[i, P + lengths[i]:] = 0
  loss_mask = attn[:, P:]
  zeros = np.zeros((B, T), np.float32)
  batch = grpo.TrainBatch.create(tokens, attn, loss_mask, zeros - 1.0, zeros)
  r_v = np.array([1, 0, 1, 1, 0, 0, 1, 0], np.float32)
  finished = np.array([1, 1, 1, 0, 1, 1, 1, 0], np.float32)
  gids = np.arange(B) // 4
  return batch, r_v, finished, gids


def test_class_weights_and_mixing_equal_numpy_reference():
  rng = np.random.default_rng(0)
  r_v = (rng.random(16) > 0.4).astype(np.float32)
  fin = (rng.random(16) > 0.2).astype(np.float32)
  np.testing.assert_allclose(laser.class_weights(jnp.asarray(r_v), jnp.asarray(fin)),
                             laser_class_weights(r_v, fin.astype(bool)), rtol=1e-6)
  a_v, a_s = rng.standard_normal((16, 5)), rng.standard_normal((16, 5))
  r_s = rng.standard_normal(16) * np.repeat([0.01, 1.0, 0.05, 2.0], 4)
  gids = np.arange(16) // 4
  got, mixed = laser.mix_advantages(jnp.asarray(a_v, jnp.float32), jnp.asarray(a_s, jnp.float32),
                                    jnp.asarray(r_s, jnp.float32), jnp.asarray(gids), 0.1)
  np.testing.assert_allclose(got, laser_mix_advantages(a_v, a_s, r_s, gids, tau=0.1), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(mixed), np.repeat([False, True, False, True], 4))


def test_aux_loss_equals_reference_and_is_exact_under_micro_batching():
  graphdef, params = models.init_params(CONFIG, 0)
  batch, r_v, fin, gids = batch_and_laser(graphdef, params)
  spec = laser.LaserSpec(token=Z, ref_baseline=False)
  hp = laser.LaserHyper.create(beta_v=0.1, c_ref=-3.0)
  prep = laser.make_laser_prepare(graphdef, CONFIG, spec)
  batch, metrics = prep(params, None, batch, r_v, fin, gids, hp)
  # Reference: r_s from a plain forward, then the numpy loss of rlx.rewards.label_free.
  lp = laser.sequence_token_logprob(graphdef, params, CONFIG, batch.tokens, batch.attention_mask,
                                    Z, 4096)
  r_s = 0.1 * (np.asarray(lp) + 3.0)
  w = laser_class_weights(r_v, fin.astype(bool))
  expected = laser_aux_loss(r_s, r_v, w, fin, alpha=1.0)
  gspec = grpo.GRPOSpec(aux=(spec,))
  h = grpo.Hyper.create(lr=1e-3, aux={"laser/coef": 0.1, "laser/beta": 0.1})
  gradients = lambda s: learner.minibatch_gradients(grpo.PolicyObjective(graphdef, CONFIG, s),
                                                    params, batch, h, s.micro_batch_size)
  full = gradients(gspec)
  micro = gradients(dataclasses.replace(gspec, micro_batch_size=2))
  np.testing.assert_allclose(full[1]["loss/laser"], expected, rtol=1e-5)
  np.testing.assert_allclose(micro[1]["loss/laser"], expected, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(full[0]), jax.tree.leaves(micro[0])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
  rows = fin > 0
  pred, true = (r_s > 0.5) & rows, (r_v > 0.5) & rows
  np.testing.assert_allclose(metrics["laser/accuracy"], np.mean(pred[rows] == true[rows]))
  tp = np.sum(pred & true)
  f1 = 0.0 if tp == 0 else 2 * tp / (np.sum(pred) + np.sum(true))
  np.testing.assert_allclose(metrics["laser/f1"], f1, rtol=1e-6)


def test_update_minimises_the_aux_loss_and_raises_f1():
  graphdef, params = models.init_params(CONFIG, 0)
  batch, r_v, fin, gids = batch_and_laser(graphdef, params)
  spec = laser.LaserSpec(token=Z, ref_baseline=True)
  prep = laser.make_laser_prepare(graphdef, CONFIG, spec)
  ref = jax.tree.map(jnp.copy, params)
  run = rlx_config.validate(rlx_config.default_config())
  opt = make_optimizer(run.optim, 100)
  update = grpo.make_grpo_update(graphdef, CONFIG, opt, grpo.GRPOSpec(aux=(spec,)))
  state = init_train_state(opt, params, 0)
  h = grpo.Hyper.create(lr=1e-2, aux={"laser/coef": 1.0, "laser/beta": 0.1})
  hp = laser.LaserHyper.create(beta_v=0.1)
  losses, f1s = [], []
  for _ in range(25):
    b, m = prep(state.params, ref, batch, r_v, fin, gids, hp)  # advantages 0: LaSeR loss only
    f1s.append(float(m["laser/f1"]))
    state, metrics = update(state, b, h)
    losses.append(float(metrics["loss/laser"]))
  assert losses[-1] < 0.2 * losses[0], losses
  assert f1s[0] == 0.0 and f1s[-1] == 1.0, f1s  # r_s starts at 0 (c_ref = π_ref) < 0.5


def test_laser_config_runs_in_the_loop(tmp_path):
  from tests.runtime.test_loop import tiny_rl_config
  from rlx.runtime.run import train
  cfg = tiny_rl_config("grpo")
  cfg.algo.laser_alpha = 0.1
  cfg.algo.laser_tau = 0.1
  train(cfg, str(tmp_path))
  steps = [r for r in read_metrics(os.path.join(tmp_path, "metrics.jsonl"))
           if r.get("phase") == "rl"]
  for key in ("loss/laser", "laser/f1", "laser/self_reward", "laser/mixed_fraction"):
    assert all(math.isfinite(r[key]) for r in steps), key


def test_laser_config_errors_name_the_field():
  import pytest
  cfg = rlx_config.default_config()
  cfg.algo.laser_alpha = 0.1
  cfg.algo.laser_token = 9999
  with pytest.raises(rlx_config.ConfigError, match="algo.laser_token"):
    rlx_config.validate(cfg)
  cfg = rlx_config.apply_algorithm(rlx_config.default_config(), "ppo")
  cfg.algo.laser_alpha = 0.1
  with pytest.raises(rlx_config.ConfigError, match="algo.laser_alpha"):
    rlx_config.validate(cfg)
