"""Value and reward models: shapes, initialisation from a policy, last-token scoring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rlx.models as M
from tests.models.hf_helpers import left_padded_batch, random_params

CONFIG = M.TINY["qwen2"]


def test_value_model_shapes_and_init_from_policy():
  policy_graphdef, policy = random_params(CONFIG, seed=1)
  value_graphdef, value = random_params(CONFIG, seed=2, cls=M.ValueModel)
  value = M.init_from_policy(value, policy)
  # backbone copied, separate parameters, head kept
  np.testing.assert_array_equal(np.asarray(value["embedding"][...]),
                                np.asarray(policy["embedding"][...]))
  np.testing.assert_array_equal(
      np.asarray(value["layers"][1]["mlp"]["up_proj"]["kernel"][...]),
      np.asarray(policy["layers"][1]["mlp"]["up_proj"]["kernel"][...]))
  assert "value_head" in value and "value_head" not in policy
  assert value["value_head"]["kernel"][...].shape == (CONFIG.d_model,)
  assert value["value_head"]["kernel"].get_metadata()["out_sharding"] == ("embed",)
  tokens, positions, mask = left_padded_batch(CONFIG.vocab_size, (6, 2), 6)
  values = jax.jit(M.apply, static_argnums=0)(value_graphdef, value, tokens, positions, mask)
  assert values.shape == (2, 6) and values.dtype == jnp.float32
  # values are the scalar head applied to the policy's hidden states
  h, _ = M.hidden_states(policy_graphdef, policy, tokens, positions, mask)
  head = value["value_head"]
  want = np.asarray(h) @ np.asarray(head["kernel"][...]) + float(head["bias"][...])
  np.testing.assert_allclose(np.asarray(values), want, atol=1e-5)


def test_init_from_policy_rejects_other_backbone():
  _, policy = random_params(CONFIG.replace(d_ff=96))
  _, value = random_params(CONFIG, cls=M.ValueModel)
  with pytest.raises(ValueError, match="mlp"):
    M.init_from_policy(value, policy)


def test_reward_model_scores_last_valid_token():
  graphdef, params = random_params(CONFIG, cls=M.RewardModel)
  model = nnx.merge(graphdef, params)
  tokens, positions, mask = left_padded_batch(CONFIG.vocab_size, (6, 3), 6, seed=5)
  scores = jax.jit(M.apply, static_argnums=0)(graphdef, params, tokens, positions, mask)
  assert scores.shape == (2,) and scores.dtype == jnp.float32
  # Right-padded copy of row 1 (its 3 real tokens first): the same score.
  right = np.zeros((1, 6), np.int32)
  right[0, :3] = tokens[1, 3:]
  right_mask = np.array([[1, 1, 1, 0, 0, 0]], np.int32)
  right_pos = np.array([[0, 1, 2, 0, 0, 0]], np.int32)
  np.testing.assert_allclose(np.asarray(model(right, right_pos, right_mask)),
                             np.asarray(scores[1:]), atol=1e-5)
  np.testing.assert_array_equal(np.asarray(M.last_valid_index(right_mask)), [2])
