"""Public ``rlx.core`` functions check the ranks (and where it matters dtypes) of their arrays at
trace time and name the offending argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import core

B, T, V = 4, 3, 8
SEQ = np.zeros(B, np.float32)  # [B]
TOK = np.zeros((B, T), np.float32)  # [B,T]
MASK = np.ones((B, T), np.float32)
GID = np.array([0, 0, 1, 1], np.int32)

# name → (call with one argument of the wrong rank / dtype, text the message must contain)
WRONG = {
    "grpo_rewards_BT": (lambda: core.grpo_advantages(TOK, GID, MASK), "grpo_advantages: rewards must be [B]"),
    "grpo_mask_B": (lambda: core.grpo_advantages(SEQ, GID, SEQ), "grpo_advantages: mask must be [B,T]"),
    "grpo_float_ids": (lambda: core.grpo_advantages(SEQ, GID.astype(np.float32), MASK), "integer"),
    "grpo_rows": (lambda: core.grpo_advantages(SEQ[:3], GID, MASK), "same batch size"),
    "gae_values_B": (lambda: core.gae_advantages(TOK, SEQ, MASK), "gae_advantages: values must be [B,T]"),
    "reinforce_pp_B": (lambda: core.reinforce_pp_advantages(SEQ, MASK), "token_rewards must be [B,T]"),
    "remax_greedy_BT": (lambda: core.remax_advantages(SEQ, TOK, MASK), "greedy_rewards must be [B]"),
    "rloo_rewards_BT": (lambda: core.rloo_advantages(TOK, GID, MASK), "rloo_advantages: rewards"),
    "compute_token_rewards_B": (lambda: core.compute_advantages(
        "grpo", core.AdvantageInputs(SEQ, SEQ, GID, MASK), core.AdvantageHyper.create()),
        "compute_advantages: token_rewards must be [B,T]"),
    "ppo_advantages_B": (lambda: core.ppo_loss(TOK, TOK, SEQ, MASK), "ppo_loss: advantages must be [B,T]"),
    "ppo_eps_vector": (lambda: core.ppo_loss(TOK, TOK, TOK, MASK, eps_high=SEQ), "eps_high must be []"),
    "gspo_shape": (lambda: core.gspo_loss(TOK, TOK[:, :2], TOK, MASK), "same shape"),
    "tis_B": (lambda: core.truncated_importance_weights(SEQ, TOK, MASK), "trainer_logp must be [B,T]"),
    "kl_penalty_B": (lambda: core.kl_penalty(SEQ, SEQ, MASK), "kl_penalty: logp must be [B,T]"),
    "kl_in_reward_beta": (lambda: core.kl_in_reward(TOK, TOK, TOK, MASK, SEQ), "beta must be []"),
    "kl_k3_shape": (lambda: core.kl_k3(TOK, SEQ), "same shape"),
    "aggregate_loss_B": (lambda: core.aggregate_mean(SEQ, MASK, "token-mean"), "loss must be [B,T]"),
    "finalize_vector": (lambda: core.finalize(SEQ, 1.0), "numerator must be []"),
    "value_returns_B": (lambda: core.value_loss(TOK, TOK, SEQ, MASK), "returns must be [B,T]"),
    "total_loss_vector": (lambda: core.total_loss(TOK), "policy_loss must be []"),
    "masked_mean_x_B": (lambda: core.masked_mean(SEQ, MASK), "does not broadcast"),
    "scalar_to_token_BT": (lambda: core.scalar_to_token_rewards(TOK, MASK), "rewards must be [B]"),
    "sequence_lengths_B": (lambda: core.sequence_lengths(SEQ), "mask must be [B,T]"),
    "dpo_token_level": (lambda: core.dpo_loss(TOK, TOK, TOK, TOK), "dpo_loss: policy_chosen must be [B] or []"),
    "kto_zref_vector": (lambda: core.kto_loss(SEQ, SEQ, SEQ > 0, SEQ), "z_ref must be []"),
    "bt_shape": (lambda: core.bradley_terry_loss(SEQ, SEQ[:2]), "same shape"),
    "logprobs_float_tokens": (lambda: core.logprobs_from_logits(
        np.zeros((B, T, V), np.float32), TOK), "tokens must have an integer dtype"),
    "logprobs_rank": (lambda: core.logprobs_from_logits(
        np.zeros((B, V), np.float32), GID), "logits must be [B,T,V]"),
    "hidden_rank": (lambda: core.logprobs_from_hidden(
        np.zeros((B, 2), np.float32), np.zeros((2, V), np.float32), GID), "hidden must be [B,T,D]"),
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_rank_or_dtype_fails_with_a_clear_message(name):
  fn, text = WRONG[name]
  with pytest.raises(AssertionError, match=text.replace("[", r"\[").replace("]", r"\]")):
    fn()


def test_checks_fire_at_trace_time_under_jit():
  traces = []

  @jax.jit
  def f(r, g, m):
    traces.append(1)
    return core.grpo_advantages(r, g, m)[0]

  with pytest.raises(AssertionError, match=r"rewards must be \[B\] \(rank 1\), got shape \(4, 3\)"):
    f(TOK, GID, MASK)
  assert f(SEQ, GID, MASK).shape == (B, T)
  f(SEQ + 1, GID, MASK)
  assert len(traces) == 2  # one failed trace, one compiled; no further traces


@pytest.mark.parametrize("dtype", [np.float32, np.int32, bool, jnp.bfloat16])
def test_masks_of_any_numeric_dtype_are_accepted(dtype):
  m, ref = MASK.astype(dtype), MASK.astype(np.float32)
  np.testing.assert_allclose(core.grpo_advantages(SEQ, GID, m)[0],
                             core.grpo_advantages(SEQ, GID, ref)[0])
  np.testing.assert_allclose(core.ppo_loss(TOK, TOK, TOK, m)[0], core.ppo_loss(TOK, TOK, TOK, ref)[0])
  np.testing.assert_allclose(core.masked_mean(TOK, m), core.masked_mean(TOK, ref))
  np.testing.assert_allclose(core.aggregate_mean(TOK, m, "seq-mean-token-mean"),
                             core.aggregate_mean(TOK, ref, "seq-mean-token-mean"))


def test_python_lists_and_scalars_are_accepted():
  adv, _ = core.grpo_advantages([1.0, 0.0, 1.0, 0.0], [0, 0, 1, 1], MASK.tolist())
  assert adv.shape == (B, T)
  core.kl_k1(0.5, 0.2)
  core.total_loss(1.0, value_loss=0.5, beta=0.1)


def test_preference_losses_take_one_pair_under_vmap():
  loss, _ = jax.vmap(lambda c, r: core.dpo_loss(c, r, c, r, margin=0.5))(SEQ, SEQ)
  assert loss.shape == (B,)
