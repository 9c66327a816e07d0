"""PPO with a value network and GAE over token rewards (Schulman et al., 2017; Ouyang et al., 2022).

The policy part is the GRPO family's (``grpo.micro_loss``: policy loss × KL placement ×
aggregation); PPO adds the clipped value loss (docs/algorithms.md §6) of a separate value network
(``rlx.models.ValueModel``, its own optimizer state) and the GAE advantages of §2, over token
rewards (the scalar reward on the last token, minus β·kl when the KL is in the reward; dense
``token_rewards`` are supported). Same update structure: epochs × minibatches × micro-batches in
one compiled function, exact global normalisation, traced hyper-parameters.
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.algorithms.common import positions_from_mask
from rlx.algorithms.grpo import (GRPOSpec, Hyper, PrepareHyper, PrepareSpec, TrainBatch,
                                 minibatch_gradients, micro_loss, reference_kl,
                                 target_logprobs)
from rlx.optim import OptimizerDef, TrainState, apply_updates


@flax.struct.dataclass
class PPOBatch:
  """A :class:`TrainBatch` plus the rollout-time values and the GAE returns, ``[B,T]``."""

  policy: TrainBatch
  old_values: jax.Array
  returns: jax.Array


def completion_values(value_graphdef, value_params, tokens, attention_mask, num_targets):
  """``V[B,T]``: the value of the state before each of the last ``T`` tokens (position s−1)."""
  s = tokens.shape[1]
  v = models.apply(value_graphdef, value_params, tokens, positions_from_mask(attention_mask),
                   attention_mask)
  return v[:, s - num_targets - 1:s - 1]


def ppo_micro_loss(params, mb: PPOBatch, denominator, hp: Hyper, *, graphdef, value_graphdef,
                   config, spec: GRPOSpec):
  policy_params, value_params = params
  loss, (parts, metrics, n_tok) = micro_loss(policy_params, mb.policy, denominator, hp,
                                             graphdef=graphdef, config=config, spec=spec)
  m = mb.policy.loss_mask
  values = completion_values(value_graphdef, value_params, mb.policy.tokens,
                             mb.policy.attention_mask, m.shape[1])
  vl, vmetrics = core.value_loss(values, mb.old_values, mb.returns, m, clip=hp.vf_clip)
  v_term = core.aggregation_numerator(vl, m, spec.aggregation) / denominator
  loss = loss + hp.value_coef * v_term
  parts = {**parts, "loss/value": v_term, "loss/total": loss}
  return loss, (parts, {**metrics, **vmetrics}, n_tok)


def make_ppo_update(graphdef, value_graphdef, config: models.ModelConfig, opt: OptimizerDef,
                    spec: GRPOSpec, layout=None):
  """Compiled ``(state, batch: PPOBatch, hyper) -> (state, metrics)``; ``state.value_params``
  and ``state.value_opt_state`` hold the critic. State donated. ``layout``: explicit shardings,
  as in ``rlx.algorithms.grpo.make_grpo_update``."""
  loss_fn = functools.partial(ppo_micro_loss, graphdef=graphdef, value_graphdef=value_graphdef,
                              config=config, spec=spec)

  def update(state: TrainState, batch: PPOBatch, hp: Hyper):
    b = batch.old_values.shape[0]
    mb_size = b // spec.minibatches
    rng, shuffle_key = jax.random.split(state.rng)
    order = jax.vmap(lambda k: jax.random.permutation(k, b))(
        jax.random.split(shuffle_key, spec.epochs)) if spec.minibatches > 1 else jnp.broadcast_to(
            jnp.arange(b), (spec.epochs, b))
    order = order.reshape(spec.epochs * spec.minibatches, mb_size)

    def opt_step(carry, ids):
      params, value_params, opt_state, value_opt_state, step = carry
      minibatch = jax.tree.map(lambda x: jnp.take(x, ids, axis=0), batch)
      (g, vg), metrics = minibatch_gradients((params, value_params), minibatch, hp,
                                             graphdef=graphdef, config=config, spec=spec,
                                             loss_fn=loss_fn)
      active = jnp.sum(minibatch.policy.loss_mask) > 0  # not a minibatch of padding rows only
      params, opt_state, om = apply_updates(opt, params, opt_state, g, step, hp.lr, active)
      value_params, value_opt_state, vom = apply_updates(opt, value_params, value_opt_state, vg,
                                                         step, hp.lr, active)
      metrics = {**metrics, **om, "value_grad_norm": vom["grad_norm"]}
      return (params, value_params, opt_state, value_opt_state, step + 1), metrics

    carry = (state.params, state.value_params, state.opt_state, state.value_opt_state, state.step)
    (params, value_params, opt_state, value_opt_state, step), metrics = jax.lax.scan(
        opt_step, carry, order)
    metrics = {k: (jnp.min(v) if k.endswith("_min") else jnp.max(v) if k.endswith("_max")
                   else jnp.mean(v)) for k, v in metrics.items()}
    return state.replace(params=params, value_params=value_params, opt_state=opt_state,
                         value_opt_state=value_opt_state, step=step, rng=rng), metrics

  if layout is not None:
    return layout.jit(update, ("tree", "batch", "replicated"), ("tree", "replicated"),
                      donate_argnums=0)
  return jax.jit(update, donate_argnums=0)


def make_ppo_prepare(graphdef, value_graphdef, config: models.ModelConfig, spec: PrepareSpec,
                     layout=None):
  """Compiled batch preparation for PPO: old / ref log-probs, values, KL-shaped token rewards,
  GAE advantages (whitened) and returns. ``token_rewards`` (dense, ``[B,T]``) are added to the
  scalar reward placed on the last token. ``layout``: explicit shardings (see
  ``rlx.algorithms.grpo.make_prepare``)."""

  def prepare(params, ref_params, value_params, prompt_tokens, prompt_mask, completion_tokens,
              completion_mask, loss_mask, sampler_logprobs, rewards, token_rewards,
              hp: PrepareHyper, lam):
    tokens = jnp.concatenate([prompt_tokens, completion_tokens], axis=1).astype(jnp.int32)
    attn = jnp.concatenate([prompt_mask, completion_mask], axis=1).astype(jnp.float32)
    t = completion_tokens.shape[1]
    m = loss_mask.astype(jnp.float32)
    logp = lambda p: target_logprobs(graphdef, p, config, tokens, attn, t, hp.temperature,
                                     chunk_size=spec.chunk_size)
    old = jax.lax.stop_gradient(logp(params))
    ref = jax.lax.stop_gradient(logp(ref_params)) if spec.use_reference else old
    values = completion_values(value_graphdef, value_params, tokens, attn, t) * m
    r = jnp.asarray(rewards, jnp.float32)
    token_r = core.scalar_to_token_rewards(r, m) + jnp.asarray(token_rewards, jnp.float32) * m
    metrics = {"reward/mean": jnp.mean(r)}
    token_r, _, kl_metrics = reference_kl(spec, old, ref, token_r, m, hp)
    metrics.update(kl_metrics)
    adv, returns = core.gae_advantages(token_r, values, m, hp.gamma, lam)
    metrics["advantage/mean"] = core.masked_mean(adv, m)
    metrics["value/mean"] = core.masked_mean(values, m)
    weights = core.truncated_importance_weights(old, sampler_logprobs, m, hp.tis_cap) \
        if spec.tis else jnp.ones_like(m)
    policy = TrainBatch(tokens=tokens, attention_mask=attn, loss_mask=m, old_logprobs=old,
                        ref_logprobs=ref, advantages=adv, importance_weights=weights)
    return PPOBatch(policy=policy, old_values=values, returns=returns), metrics

  if layout is not None:
    return layout.jit(prepare, ("tree",) * 3 + ("batch",) * 8 + ("replicated",) * 2,
                      ("batch", "replicated"))
  return jax.jit(prepare)
