"""The same metric means the same thing in every phase: for each objective of the one learner
(SFT, GRPO family, PPO, DPO family, KTO, reward model), padding rows appended to a batch change
neither its metrics nor its gradients. (The RL phases' ``reward/mean`` is checked in
``test_padding_rows.py``.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import core
from rlx import models
from rlx.algorithms import dpo, grpo, learner, ppo, rm, sft
from rlx.data import SyntheticPreferenceSource, load_task_tokenizer
from rlx.data import preference as pref_data
from tests.algorithms.test_padding_rows import CONFIG, rollout_data

TOK = load_task_tokenizer()
GRAPHDEF, PARAMS = models.init_params(CONFIG, 0)


def metrics_and_grads(objective, params, batch, hp):
  return jax.jit(lambda p, b: learner.minibatch_gradients(objective, p, b, hp))(params, batch)


def assert_inert(objective, params, real, padded, hp):
  (g1, m1), (g2, m2) = (metrics_and_grads(objective, params, b, hp) for b in (real, padded))
  assert set(m1) == set(m2)
  for k in m1:
    np.testing.assert_allclose(m1[k], m2[k], rtol=2e-5, atol=1e-6, err_msg=k)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-4 * float(np.abs(b).max()))


def test_sft_objective():
  rng = np.random.default_rng(0)
  tokens = rng.integers(4, 512, (8, 12)).astype(np.int32)
  mask = np.ones((8, 12), np.float32)
  loss_mask = np.concatenate([np.zeros((8, 5)), np.ones((8, 7))], axis=1).astype(np.float32)
  loss_mask[4:] = 0  # rows 4..7 are padding
  real = sft.sft_batch(tokens[:4], mask[:4], loss_mask[:4])
  padded = sft.sft_batch(tokens, mask, loss_mask)
  assert_inert(sft.SFTObjective(GRAPHDEF, CONFIG), PARAMS, real, padded,
               sft.SFTHyper(lr=jnp.float32(1e-3)))


def prepared(traj):
  spec = grpo.PrepareSpec(estimator=core.AdvantageEstimator.GRPO)
  batch, _ = grpo.make_prepare(GRAPHDEF, CONFIG, spec)(PARAMS, PARAMS, traj,
                                                       grpo.PrepareHyper.create())
  return batch


@pytest.mark.parametrize("aggregation", list(core.Aggregation))
def test_policy_objective(aggregation):
  spec = grpo.GRPOSpec(aggregation=aggregation, kl_in_loss=True)
  hp = grpo.Hyper.create(lr=1e-3, beta=0.1, entropy_coef=0.01, norm_constant=6.0)
  traj = rollout_data(4)
  assert_inert(grpo.PolicyObjective(GRAPHDEF, CONFIG, spec), PARAMS, prepared(traj),
               prepared(traj.pad_to(8)), hp)


def test_ppo_objective():
  value_graphdef, value_params = models.init_params(CONFIG, 1, cls=models.ValueModel)
  prep = ppo.make_ppo_prepare(GRAPHDEF, value_graphdef, CONFIG, grpo.PrepareSpec())
  hp = grpo.PrepareHyper.create(lam=0.95)
  traj = rollout_data(4)
  real, _ = prep(PARAMS, PARAMS, value_params, traj, hp)
  padded, _ = prep(PARAMS, PARAMS, value_params, traj.pad_to(8), hp)
  objective = ppo.PPOObjective(grpo.PolicyObjective(GRAPHDEF, CONFIG, grpo.GRPOSpec()),
                               value_graphdef)
  assert_inert(objective, (PARAMS, value_params), real, padded, grpo.Hyper.create(lr=1e-3))


def pair_batches(n=3):
  src = SyntheticPreferenceSource("calculation", size=16, seed=0, difficulty=(1, 2),
                                  margins=True)
  pairs = [src[i] for i in range(n)]
  ref = lambda rows, base: np.concatenate([base + np.arange(n), np.zeros(rows - n)])
  out = []
  for rows in (4, 8):
    arrays = pref_data.make_pair_batch(pairs, TOK, max_len=40, rows=rows)
    out.append(dpo.PairBatch.create(arrays, ref(rows, -60.0), ref(rows, -61.0)))
  return out


@pytest.mark.parametrize("loss", [l for l in core.PreferenceLoss if l is not core.PreferenceLoss.KTO])
def test_preference_objective(loss):
  real, padded = pair_batches()
  spec = dpo.PrefSpec(loss=loss)
  assert_inert(dpo.PreferenceObjective(GRAPHDEF, CONFIG, spec), PARAMS, real, padded,
               dpo.PrefHyper.create(lr=1e-3))


def test_kto_objective():
  src = pref_data.UnpairedView(SyntheticPreferenceSource("calculation", size=16, seed=0,
                                                         difficulty=(1, 2)))
  items = [src[i] for i in range(4)]
  partners = [src[(i + 2) % 4] for i in range(4)]
  batches = [dpo.UnpairedBatch.create(pref_data.make_unpaired_batch(
      items, TOK, rows=rows, mismatched=partners, max_len=40)) for rows in (4, 8)]
  spec = dpo.PrefSpec(loss=core.PreferenceLoss.KTO)
  assert_inert(dpo.PreferenceObjective(GRAPHDEF, CONFIG, spec), PARAMS, *batches,
               dpo.PrefHyper.create(lr=1e-3))


def test_reward_model_objective():
  graphdef, params = rm.init_reward_model(CONFIG, PARAMS, seed=1)
  real, padded = pair_batches()
  assert_inert(rm.RewardModelObjective(graphdef), params, real, padded,
               dpo.PrefHyper.create(lr=1e-3))
