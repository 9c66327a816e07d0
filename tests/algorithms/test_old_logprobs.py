"""π_old from the sampler (``algo.old_logprobs``): the sampler's log-probs are the numbers a
trainer forward pass would recompute (float32), so the preparation skips that pass; the update
from them equals the update from recomputed ones."""

import jax
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx import models
from rlx.algorithms import grpo
from rlx.algorithms.trajectory import Trajectory
from rlx.optim import init_train_state, make_optimizer
from rlx.runtime.rollouts import rollout_to_host
from rlx.sampling import Buckets, SamplingParams, sample

CFG = models.ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         head_dim=8, d_ff=64, init_std=0.3)
PROMPTS = np.array([[0, 3, 7, 1], [5, 2, 9, 11], [0, 0, 8, 4], [6, 6, 2, 1]], np.int32)
MASK = (PROMPTS > 0).astype(np.int32)
MASK[1] = 1


def _spec(**algo):
  cfg = rlx_config.default_config()
  for k, v in algo.items():
    setattr(cfg.algo, k, v)
  return rlx_config.validate(cfg).algo


def _trajectory(graphdef, params):
  r = sample(graphdef, params, PROMPTS, MASK, SamplingParams(max_new_tokens=10, n=2),
             jax.random.key(0), buckets=Buckets(prompt_lengths=(4,), batch_sizes=(8,),
                                                new_tokens=(16,)))
  host = rollout_to_host(r)
  rewards = np.random.default_rng(0).random(8).astype(np.float32)
  return Trajectory.from_rollout(host, rewards)


def test_auto_reuses_sampler_logprobs_only_where_exact():
  assert grpo.PrepareSpec.from_config(_spec(), exact_sampler=True).old_from_sampler
  assert not grpo.PrepareSpec.from_config(_spec(), exact_sampler=False).old_from_sampler
  assert not grpo.PrepareSpec.from_config(_spec(tis_cap=2.0), exact_sampler=True).old_from_sampler
  assert grpo.PrepareSpec.from_config(_spec(old_logprobs="sampler")).old_from_sampler
  assert not grpo.PrepareSpec.from_config(_spec(old_logprobs="recompute"),
                                          exact_sampler=True).old_from_sampler
  with pytest.raises(rlx_config.ConfigError, match="algo.old_logprobs.*'auto', 'sampler', 'recompute'"):
    _spec(old_logprobs="behaviour")


def test_sampler_old_logprobs_skip_the_forward_and_give_the_same_update():
  graphdef, params = models.init_params(CFG, seed=1)
  traj = _trajectory(graphdef, params)
  hp = grpo.PrepareHyper.create()
  specs = {k: grpo.PrepareSpec(old_from_sampler=k == "sampler") for k in ("sampler", "recompute")}
  batches, flops = {}, {}
  for k, spec in specs.items():
    prepare = grpo.make_prepare(graphdef, CFG, spec)
    batches[k], metrics = prepare(params, None, traj, hp)
    flops[k] = prepare.lower(params, None, traj, hp).compile().cost_analysis()
    flops[k] = (flops[k][0] if isinstance(flops[k], list) else flops[k]).get("flops", 0.0)
    assert ("sampler_trainer_logp_diff" in metrics) == (k == "recompute")
  m = np.asarray(traj.loss_mask)
  np.testing.assert_array_equal(batches["sampler"].old_logprobs, traj.sampler_logprobs)
  np.testing.assert_allclose(batches["sampler"].old_logprobs, batches["recompute"].old_logprobs * m,
                             atol=1e-5)
  assert flops["sampler"] < 0.2 * flops["recompute"], flops  # no policy forward pass
  # One update (4 minibatches: later ones see a moved policy) from either batch.
  cfg = rlx_config.default_config()
  cfg.optim.learning_rate = 1e-2
  cfg.algo.batch_size, cfg.algo.minibatches = 8, 4
  run = rlx_config.validate(cfg)
  opt = make_optimizer(run.optim, 4)
  spec = grpo.GRPOSpec.from_config(run.algo, 4096, CFG.vocab_size)
  update = grpo.make_grpo_update(graphdef, CFG, opt, spec)
  hyper = grpo.hyper_from_config(run.algo, 1e-2, 1.0)
  start = jax.tree.map(np.asarray, params)  # the update donates its state's buffers
  out = {k: jax.tree.map(np.asarray, update(init_train_state(opt, jax.tree.map(np.array, start),
                                                             0), b, hyper)[0].params)
         for k, b in batches.items()}
  for a, b in zip(jax.tree.leaves(out["sampler"]), jax.tree.leaves(out["recompute"])):
    np.testing.assert_allclose(a, b, atol=2e-5)
  moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(out["sampler"]),
                                                          jax.tree.leaves(start)))
  assert moved > 1e-3
