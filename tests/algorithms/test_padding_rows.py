"""Padding rows of a static RL batch (``Trajectory.pad_to``) change nothing: not the advantages
of real rows (batch-scope σ included), not the logged reward mean (GRPO and PPO preparation),
and a minibatch of padding rows only takes no optimizer step."""

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as rlx_config
from rlx import core
from rlx import models
from rlx.algorithms import grpo, ppo
from rlx.algorithms.trajectory import Trajectory
from rlx.optim import init_train_state, make_optimizer

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)
P, T = 4, 6


def rollout_data(rows, seed=0) -> Trajectory:
  """A scored trajectory of ``rows`` real rows (groups of 2), host arrays."""
  rng = np.random.default_rng(seed)
  return Trajectory(
      prompt_tokens=rng.integers(4, 512, (rows, P)).astype(np.int32),
      prompt_mask=np.ones((rows, P), np.float32),
      completion_tokens=rng.integers(4, 512, (rows, T)).astype(np.int32),
      completion_mask=np.ones((rows, T), np.float32),
      loss_mask=np.ones((rows, T), np.float32),
      sampler_logprobs=-rng.random((rows, T)).astype(np.float32),
      rewards=rng.random(rows).astype(np.float32),
      token_rewards=np.zeros((rows, T), np.float32),
      group_ids=(np.arange(rows) // 2).astype(np.int32),
      sample_mask=np.ones((rows,), np.float32),
      finished=np.ones((rows,), np.float32),
      aux={"greedy_rewards": np.zeros(rows, np.float32)})


def padded_with_large_rewards(traj: Trajectory, rows: int) -> Trajectory:
  padded = traj.pad_to(rows)
  rewards = np.array(padded.rewards)
  rewards[traj.num_rows:] = 100.0  # would dominate the mean and σ if counted
  return padded.replace(rewards=rewards)


def test_pad_to_marks_padding_with_negative_unique_groups():
  data = rollout_data(4)
  out = data.pad_to(7)
  assert out.num_rows == 7
  np.testing.assert_array_equal(out.group_ids, [0, 0, 1, 1, -1, -2, -3])
  assert out.loss_mask[4:].sum() == 0 and out.loss_mask[:4].sum() == 4 * T
  np.testing.assert_array_equal(out.sample_mask, [1, 1, 1, 1, 0, 0, 0])
  # Padding rows repeat row 0 (valid tokens, so the forward pass stays finite); real rows are
  # unchanged, auxiliary inputs included.
  np.testing.assert_array_equal(out.completion_tokens[4:], np.repeat(data.completion_tokens[:1],
                                                                     3, axis=0))
  for a, b in zip(jax.tree.leaves(data), jax.tree.leaves(jax.tree.map(lambda x: x[:4], out))):
    np.testing.assert_array_equal(a, b)
  assert out.aux["greedy_rewards"].shape == (7,)
  # The original is not modified, and more rows than asked truncates.
  assert data.num_rows == 4 and data.loss_mask.sum() == 4 * T
  cut = data.pad_to(3)
  assert cut.num_rows == 3 and cut.sample_mask.sum() == 3
  np.testing.assert_array_equal(cut.group_ids, [0, 0, 1])


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
  data = rollout_data(4)
  padded = padded_with_large_rewards(data, 8)
  b_real, m_real = prepare(params, None, data, hp)
  b_pad, m_pad = prepare(params, None, padded, hp)
  np.testing.assert_allclose(m_pad["reward/mean"], np.mean(data.rewards), rtol=1e-6)
  np.testing.assert_allclose(b_pad.advantages[:4], b_real.advantages, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(b_pad.advantages[4:]).sum()) == 0.0


def test_grpo_prepare_reward_mean_excludes_padding_rows():
  run = rlx_config.validate(rlx_config.default_config())
  graphdef, params = models.init_params(CONFIG, 0)
  prepare = grpo.make_prepare(graphdef, CONFIG, grpo.PrepareSpec.from_config(run.algo))
  hp = grpo.PrepareHyper.create()
  data = rollout_data(4, seed=3)
  _, m_real = prepare(params, params, data, hp)
  _, m_pad = prepare(params, params, padded_with_large_rewards(data, 8), hp)
  np.testing.assert_allclose(m_real["reward/mean"], np.mean(data.rewards), rtol=1e-6)
  np.testing.assert_allclose(m_pad["reward/mean"], m_real["reward/mean"], rtol=1e-6)


def test_ppo_prepare_reward_mean_excludes_padding_rows():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "ppo")
  run = rlx_config.validate(cfg)
  graphdef, params = models.init_params(CONFIG, 0)
  value_graphdef, value_params = models.init_params(CONFIG, 1, cls=models.ValueModel)
  prepare = ppo.make_ppo_prepare(graphdef, value_graphdef, CONFIG,
                                 grpo.PrepareSpec.from_config(run.algo))
  hp = grpo.PrepareHyper.create(lam=0.95)
  data = rollout_data(4, seed=3)
  b_real, m_real = prepare(params, params, value_params, data, hp)
  b_pad, m_pad = prepare(params, params, value_params, padded_with_large_rewards(data, 8), hp)
  np.testing.assert_allclose(m_real["reward/mean"], np.mean(data.rewards), rtol=1e-6)
  np.testing.assert_allclose(m_pad["reward/mean"], m_real["reward/mean"], rtol=1e-6)
  # GAE advantages are whitened over trained tokens: padding rows are not among them.
  np.testing.assert_allclose(b_pad.policy.advantages[:4], b_real.policy.advantages, rtol=1e-5,
                             atol=1e-6)
  assert float(jnp.abs(b_pad.policy.advantages[4:]).sum()) == 0.0


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


def test_update_metrics_ignore_minibatches_of_padding_rows_only():
  """With 2 minibatches of which one holds only padding rows, the update's metrics are those of
  the real minibatch (weighted by trained tokens), not halved by the empty one, and
  ``ratio_min``/``ratio_max`` stay finite."""
  from rlx.algorithms import learner

  metrics = {"loss/pg": jnp.array([0.8, 0.0]), "ratio_min": jnp.array([0.9, jnp.inf]),
             "ratio_max": jnp.array([1.2, -jnp.inf]), learner.WEIGHT: jnp.array([12.0, 0.0])}
  out = learner.reduce_steps(dict(metrics))
  np.testing.assert_allclose(out["loss/pg"], 0.8)
  np.testing.assert_allclose(out["ratio_min"], 0.9)
  np.testing.assert_allclose(out["ratio_max"], 1.2)
  both = learner.reduce_steps({"loss/pg": jnp.array([1.0, 4.0]),
                               learner.WEIGHT: jnp.array([3.0, 1.0])})
  np.testing.assert_allclose(both["loss/pg"], (3 * 1.0 + 4.0) / 4)
