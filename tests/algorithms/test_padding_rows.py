"""Padding rows of a static RL batch (``rlx.runtime.rollouts.pad_rows``) change nothing: not the
advantages of real rows (batch-scope σ included), not the logged reward mean, and a minibatch of
padding rows only takes no optimizer step."""

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as rlx_config
from rlx import core
from rlx import models
from rlx.algorithms import grpo
from rlx.runtime.rollouts import pad_rows
from rlx.optim import init_train_state, make_optimizer

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)
P, T = 4, 6


def rollout_data(rows, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "prompt_tokens": rng.integers(4, 512, (rows, P)).astype(np.int32),
      "prompt_mask": np.ones((rows, P), np.float32),
      "completion_tokens": rng.integers(4, 512, (rows, T)).astype(np.int32),
      "completion_mask": np.ones((rows, T), np.float32),
      "loss_mask": np.ones((rows, T), np.float32),
      "logprobs": -rng.random((rows, T)).astype(np.float32),
      "rewards": rng.random(rows).astype(np.float32),
      "group_ids": (np.arange(rows) // 2).astype(np.int32),
      "greedy_rewards": np.zeros(rows, np.float32),
  }


def test_pad_rows_marks_padding_with_negative_unique_groups():
  out = pad_rows(rollout_data(4), 7)
  np.testing.assert_array_equal(out["group_ids"], [0, 0, 1, 1, -1, -2, -3])
  assert out["loss_mask"][4:].sum() == 0 and out["loss_mask"][:4].sum() == 4 * T


def test_batch_std_with_row_mask_equals_unpadded_batch():
  r = np.array([0.0, 1.0, 1.0, 1.0, 0.3, 0.9], np.float32)
  gids = np.array([0, 0, 1, 1, -1, -2])
  mask = np.ones((6, 3), np.float32)
  mask[4:] = 0
  padded, _ = core.grpo_advantages(r, gids, mask, std_scope="batch", row_mask=gids >= 0)
  real, _ = core.grpo_advantages(r[:4], gids[:4], mask[:4], std_scope="batch")
  np.testing.assert_allclose(padded[:4], real, rtol=1e-6)
  # By hand: σ_batch = std([0, 1, 1, 1], ddof=1) = 0.5; group 0 (r − μ) = ∓0.5 → ∓1/(0.5 + ε).
  np.testing.assert_allclose(real[:2, 0], [-0.5 / (0.5 + 1e-6), 0.5 / (0.5 + 1e-6)], rtol=1e-6)


def test_prepare_ignores_padding_rows():
  cfg = rlx_config.default_config()
  cfg.algo.std_scope = "batch"
  cfg.algo.kl_placement = "none"
  run = rlx_config.validate(cfg)
  graphdef, params = models.init_params(CONFIG, 0)
  prepare = grpo.make_prepare(graphdef, CONFIG, grpo.PrepareSpec.from_config(run.algo))
  hp = grpo.PrepareHyper.create()
  keys = ("prompt_tokens", "prompt_mask", "completion_tokens", "completion_mask", "loss_mask",
          "logprobs", "rewards", "group_ids", "greedy_rewards")
  data = rollout_data(4)
  padded = pad_rows(dict(data), 8)
  padded["rewards"][4:] = 100.0  # would dominate the mean and σ if counted
  b_real, m_real = prepare(params, None, *(data[k] for k in keys), hp)
  b_pad, m_pad = prepare(params, None, *(padded[k] for k in keys), hp)
  np.testing.assert_allclose(m_pad["reward/mean"], np.mean(data["rewards"]), rtol=1e-6)
  np.testing.assert_allclose(b_pad.advantages[:4], b_real.advantages, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(b_pad.advantages[4:]).sum()) == 0.0


def test_all_padding_minibatch_takes_no_optimizer_step():
  cfg = rlx_config.default_config()
  run = rlx_config.validate(cfg)
  graphdef, params = models.init_params(CONFIG, 0)
  opt = make_optimizer(run.optim, 10)
  update = grpo.make_grpo_update(graphdef, CONFIG, opt, grpo.GRPOSpec())
  b = 4
  rng = np.random.default_rng(0)
  tokens = rng.integers(4, 512, (b, P + T)).astype(np.int32)
  attn = np.ones((b, P + T), np.float32)
  zeros = np.zeros((b, T), np.float32)
  batch = grpo.TrainBatch.create(tokens, attn, zeros, zeros - 1.0, zeros + 1.0)
  state = init_train_state(opt, jax.tree.map(jnp.copy, params), 0)
  # Give Adam momentum first, so a zero-gradient step would still move the parameters.
  live = batch.replace(loss_mask=jnp.ones((b, T), jnp.float32))
  state, _ = update(state, live, grpo.Hyper.create(lr=1e-2))
  before = jax.tree.map(np.asarray, (state.params, state.opt_state))
  state, _ = update(state, batch, grpo.Hyper.create(lr=1e-2))
  after = jax.tree.map(np.asarray, (state.params, state.opt_state))
  for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(x, y)
  assert int(state.step) == 2
