"""PPO with a value network and GAE over token rewards (Schulman et al., 2017; Ouyang et al., 2022).

The policy part is the GRPO family's (``grpo.micro_loss``: policy loss × KL placement ×
aggregation); PPO adds the clipped value loss (docs/algorithms.md §6) of a separate value network
(``rlx.models.ValueModel``, its own optimizer state) and the GAE advantages of §2, over token
rewards (the scalar reward on the last token, minus β·kl when the KL is in the reward; dense
``token_rewards`` of the trajectory reach GAE). Same update structure: epochs × minibatches × micro-batches in
one compiled function, exact global normalisation, traced hyper-parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.algorithms import learner
from rlx.algorithms.common import positions_from_mask
from rlx.algorithms.grpo import (GRPOSpec, Hyper, PolicyObjective, PrepareHyper, PrepareSpec,
                                 TrainBatch, advantage_inputs, rollout_logprobs, rollout_metrics,
                                 sequences, shaped_token_rewards)
from rlx.algorithms.trajectory import Trajectory, rows
from rlx.optim import OptimizerDef


@flax.struct.dataclass
class PPOBatch:
  """A :class:`TrainBatch` plus the rollout-time values and the GAE returns, ``[B,T]``."""

  policy: TrainBatch
  old_values: jax.Array = rows()
  returns: jax.Array = rows()


def completion_values(value_graphdef, value_params, tokens, attention_mask, num_targets):
  """``V[B,T]``: the value of the state before each of the last ``T`` tokens (position s−1)."""
  s = tokens.shape[1]
  v = models.apply(value_graphdef, value_params, tokens, positions_from_mask(attention_mask),
                   attention_mask)
  return v[:, s - num_targets - 1:s - 1]


@dataclasses.dataclass(frozen=True)
class PPOObjective:
  """The policy objective plus the critic's clipped value loss (docs/algorithms.md §6), same
  aggregation and denominator; trains ``(params, value_params)``."""

  policy: PolicyObjective
  value_graphdef: Any
  trains_value = True

  def begin(self, params, minibatch: PPOBatch, hp: Hyper):
    policy, denominator, extra = self.policy.begin(params[0], minibatch.policy, hp)
    return minibatch.replace(policy=policy), denominator, extra

  def loss(self, params, mb: PPOBatch, denominator, hp: Hyper):
    policy_params, value_params = params
    loss, (sums, means, n_tok) = self.policy.loss(policy_params, mb.policy, denominator, hp)
    m = mb.policy.loss_mask
    values = completion_values(self.value_graphdef, value_params, mb.policy.tokens,
                               mb.policy.attention_mask, m.shape[1])
    vl, vmetrics = core.value_loss(values, mb.old_values, mb.returns, m, clip=hp.vf_clip)
    v_term = core.aggregation_numerator(vl, m, self.policy.spec.aggregation) / denominator
    loss = loss + hp.value_coef * v_term
    return loss, ({**sums, "loss/value": v_term, "loss/total": loss}, {**means, **vmetrics},
                  n_tok)

  def weight(self, minibatch: PPOBatch):
    return self.policy.weight(minibatch.policy)

  def finalize(self, metrics: dict) -> dict:
    return metrics


def make_ppo_update(graphdef, value_graphdef, config: models.ModelConfig, opt: OptimizerDef,
                    spec: GRPOSpec, layout=None):
  """Compiled ``(state, batch: PPOBatch, hyper) -> (state, metrics)``; ``state.value_params``
  and ``state.value_opt_state`` hold the critic. The one learner with :class:`PPOObjective`;
  state donated; ``layout``: explicit shardings read off the types."""
  objective = PPOObjective(PolicyObjective(graphdef, config, spec), value_graphdef)
  return learner.make_update(objective, opt, spec.learner, layout)


def make_ppo_prepare(graphdef, value_graphdef, config: models.ModelConfig, spec: PrepareSpec,
                     layout=None):
  """Compiled ``(params, ref_params, value_params, traj: Trajectory, hp) -> (PPOBatch,
  metrics)``: old / ref log-probs, values, token rewards (the scalar reward on the last token
  plus the trajectory's dense ``token_rewards``, minus ``β·kl`` when the KL is in the reward),
  GAE advantages (whitened over trained tokens) and returns (``core.compute_advantages``)."""

  def prepare(params, ref_params, value_params, traj: Trajectory, hp: PrepareHyper):
    tokens, attn, m = sequences(traj)
    t = m.shape[1]
    old, ref = rollout_logprobs(graphdef, config, spec, params, ref_params, tokens, attn, t, hp,
                                traj.sampler_logprobs)
    values = completion_values(value_graphdef, value_params, tokens, attn, t) * m
    dense, metrics = shaped_token_rewards(spec, traj, old, ref, m, hp)
    adv, returns = core.compute_advantages(
        core.AdvantageEstimator.GAE, advantage_inputs(traj, dense, m, values=values),
        core.AdvantageHyper(eps=hp.adv_eps, gamma=hp.gamma, lam=hp.lam))
    metrics.update(rollout_metrics(traj, adv, m, old, spec))
    metrics["value/mean"] = core.masked_mean(values, m)
    weights = core.truncated_importance_weights(old, traj.sampler_logprobs, m, hp.tis_cap) \
        if spec.tis else jnp.ones_like(m)
    policy = TrainBatch(tokens=tokens, attention_mask=attn, loss_mask=m, old_logprobs=old,
                        ref_logprobs=ref, advantages=adv, importance_weights=weights)
    return PPOBatch(policy=policy, old_values=values, returns=returns), metrics

  if layout is not None:
    return layout.jit(prepare)
  return jax.jit(prepare)
