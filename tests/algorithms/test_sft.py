"""SFT: micro-batched gradients equal full-batch ones; the loss falls on a synthetic task."""

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as rlx_config
from rlx import models
from rlx.algorithms import learner, sft
from rlx.data import TaskSource, load_task_tokenizer, make_sft_batch
from rlx.optim import init_train_state, make_optimizer

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)


def batch_of(n, seed=0, max_len=48):
  tok = load_task_tokenizer()
  src = TaskSource("calculation", size=1000, seed=seed, difficulty=(1, 2))
  b = make_sft_batch([src[i] for i in range(n)], tok, max_len=max_len)
  return sft.sft_batch(b["tokens"], b["mask"], b["loss_mask"])


def sft_gradients(graphdef, params, batch, micro_batch_size):
  """``(loss, grads)`` of the batch token-mean NLL: the learner with the SFT objective."""
  grads, metrics = learner.minibatch_gradients(sft.SFTObjective(graphdef, CONFIG), params, batch,
                                               sft.SFTHyper(lr=jnp.float32(0.0)),
                                               micro_batch_size)
  return metrics["loss"], grads


def test_micro_batched_gradient_equals_full_batch():
  graphdef, params = models.init_params(CONFIG, 0)
  batch = batch_of(8)
  # Rows of different lengths: the per-micro-batch token counts differ, so a per-micro-batch
  # mean would be wrong; the global denominator makes them agree.
  assert len(set(np.asarray(batch.loss_mask).sum(1).tolist())) > 1
  full = jax.jit(lambda p: sft_gradients(graphdef, p, batch, micro_batch_size=8))(params)
  micro = jax.jit(lambda p: sft_gradients(graphdef, p, batch, micro_batch_size=2))(params)
  np.testing.assert_allclose(full[0], micro[0], rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree.leaves(full[1]), jax.tree.leaves(micro[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_matches_direct_token_mean():
  graphdef, params = models.init_params(CONFIG, 0)
  batch = batch_of(4)

  def direct(p):
    logits, _ = models.apply(graphdef, p, batch.tokens,
                             jnp.broadcast_to(jnp.arange(batch.tokens.shape[1]),
                                              batch.tokens.shape), batch.mask)
    logp = jax.nn.log_softmax(logits[:, :-1], -1)
    nll = -jnp.take_along_axis(logp, batch.tokens[:, 1:, None], -1)[..., 0]
    m = batch.loss_mask[:, 1:]
    return jnp.sum(nll * m) / jnp.sum(m)

  loss, grads = sft_gradients(graphdef, params, batch, micro_batch_size=2)
  ref_loss, ref_grads = jax.value_and_grad(direct)(params)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_sft_loss_falls():
  run = rlx_config.validate(rlx_config.default_config())
  optim = run.optim.__class__(**{**run.optim.__dict__, "learning_rate": 3e-3})
  opt = make_optimizer(optim, total_steps=40)
  graphdef, params = models.init_params(CONFIG, 0)
  state = init_train_state(opt, params, seed=0)
  update = sft.make_sft_update(graphdef, CONFIG, opt, micro_batch_size=8)
  losses = []
  for step in range(40):
    state, metrics = update(state, batch_of(16, seed=step), sft.SFTHyper(lr=jnp.float32(3e-3)))
    losses.append(float(metrics["loss"]))
  assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses
  assert int(state.step) == 40
