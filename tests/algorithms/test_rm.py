"""Reward-model training: the Bradley–Terry loss on the model's last-token scores, exact over
micro-batches; a checkpoint loads back as the ``reward_model`` reward with the same scores."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rlx import models
from rlx.algorithms import dpo, learner, rm
from rlx.data import SyntheticPreferenceSource, load_task_tokenizer
from rlx.data import preference as pref_data
from rlx.rewards import RewardInput, get_reward
from rlx.runtime.checkpoint import Checkpointer
from rlx.runtime.scorer import ModelLoader, load_reward_model
from rlx.optim import TrainState
from tests.algorithms.test_dpo import compilation_cache, jax_cache_dir  # noqa: F401 (fixtures)

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)
TOK = load_task_tokenizer()


def setup_model():
  _, policy = models.init_params(CONFIG, 0)
  return rm.init_reward_model(CONFIG, policy, seed=1)


def pairs_batch(n=3, rows=4):
  src = SyntheticPreferenceSource("calculation", size=16, seed=0, difficulty=(1, 2), margins=True)
  pairs = [src[i] for i in range(n)]
  return pairs, pref_data.make_pair_batch(pairs, TOK, max_len=40, rows=rows)


def direct_scores(graphdef, params, tokens, mask):
  """The score head applied at every position, read at each row's last real token."""
  @jax.jit
  def all_positions(params, tokens, mask):
    model = nnx.merge(graphdef, params)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
    h, _ = model.hidden_states(tokens, positions, mask)
    return model.score_head(h)  # [B,S]

  scores = np.asarray(all_positions(params, jnp.asarray(tokens), jnp.asarray(mask)))
  last = np.asarray(mask).sum(1).astype(int) - 1
  return scores[np.arange(len(last)), last]


def test_bradley_terry_loss_on_model_scores_and_micro_batches():
  graphdef, params = setup_model()
  _, arrays = pairs_batch(n=3, rows=4)
  batch = dpo.PairBatch.create(arrays)
  hp = dpo.PrefHyper.create(lr=1.0, margin_coef=2.0, center_coef=0.01)
  out = {micro: jax.jit(lambda p: learner.minibatch_gradients(
      rm.RewardModelObjective(graphdef), p, batch, hp, micro))(params) for micro in (4, 2)}
  sc = direct_scores(graphdef, params, arrays["chosen_tokens"][:3], arrays["chosen_mask"][:3])
  sr = direct_scores(graphdef, params, arrays["rejected_tokens"][:3],
                     arrays["rejected_mask"][:3])
  z = sc - sr - 2.0 * arrays["margin"][:3]
  expected = np.logaddexp(0.0, -z) + 0.01 * (sc + sr) ** 2  # −log σ(z) + λ(s_c + s_r)²
  for micro in (4, 2):
    _, metrics = out[micro]
    np.testing.assert_allclose(metrics["loss"], expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["rewards/chosen"], sc.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["rewards/accuracy"], np.mean(sc > sr))
  for a, b in zip(jax.tree.leaves(out[4][0]), jax.tree.leaves(out[2][0])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoint_loads_as_the_reward_model_reward(tmp_path):
  """A reward-model checkpoint (as an ``algo.name="rm"`` run writes it) → ``load_reward_model``
  and the registry's ``reward_model`` with ``checkpoint=``: the training forward's scores."""
  graphdef, params = setup_model()
  ckpt = Checkpointer(str(tmp_path / "checkpoints"))
  state = TrainState(params=params, opt_state=(), step=jnp.zeros((), jnp.int32),
                     rng=jax.random.PRNGKey(0))
  ckpt.save(7, {"train": state}, {"phase": "rm", "reward_model": {
      "model_config": rm.model_config_to_json(CONFIG), "pad_id": TOK.pad_id}})
  ckpt.close()
  pairs, arrays = pairs_batch(n=3, rows=3)
  sc, _ = jax.jit(lambda p: rm.pair_scores(graphdef, p, dpo.PairBatch.create(arrays)))(params)

  prompts = [np.asarray(pref_data.encode_prompt(p.prompt, TOK)) for p in pairs]
  completions = [pref_data.encode_completion(p.chosen, TOK) for p in pairs]
  ids, mask = np.zeros((3, 32), np.int32), np.zeros((3, 32), np.float32)
  for i, c in enumerate(completions):
    ids[i, :len(c)], mask[i, :len(c)] = c, 1
  scorer = load_reward_model(str(tmp_path))  # the workdir or its checkpoints folder
  np.testing.assert_allclose(scorer.sequence_scores(prompts, ids, mask), sc, rtol=1e-5,
                             atol=1e-5)
  reward = get_reward("reward_model", checkpoint=str(tmp_path / "checkpoints"))
  out = reward(RewardInput(prompts=[p.prompt for p in pairs], completions=[p.chosen for p in pairs],
                           completion_ids=ids, completion_mask=mask, prompt_ids=prompts),
               ModelLoader())
  np.testing.assert_allclose(out.scores, sc, rtol=1e-5, atol=1e-5)
