"""The GRPO family as one compiled update: estimator × policy loss × KL placement × aggregation.

The update consumes a :class:`TrainBatch` — sequences, masks, behaviour / reference log-probs and
advantages already computed — so it is testable without a sampler. Inside one ``jax.jit``:
epochs × minibatches optimizer steps (an outer ``lax.scan``; rows reshuffled every epoch), each
accumulating gradients over micro-batches (an inner ``lax.scan``). Every loss term is aggregated
as a numerator over the micro-batch divided by the denominator of the whole minibatch, computed
first, so micro-batching never changes the objective (docs/algorithms.md §5).

Static choices (loss kind, aggregation, KL placement, dual clip on/off, the batch layout) are a
frozen :class:`GRPOSpec` resolved once from the config; tunable scalars (lr, β, ε_low, ε_high,
dual-clip c, entropy coefficient, temperature, C) are traced :class:`Hyper` values.
"""

from __future__ import annotations

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.algorithms import laser as laser_lib
from rlx.algorithms.common import split_micro, target_logprobs
from rlx.config import AlgoSection, KLPlacement
from rlx.optim import OptimizerDef, TrainState, apply_updates


@flax.struct.dataclass
class TrainBatch:
  """One step's training data. ``S = P + T``: left-padded prompt then right-padded completion.

  tokens: ``[B,S]`` int32. attention_mask: ``[B,S]`` 1 on real tokens.
  loss_mask: ``[B,T]`` 1 on completion tokens trained on.
  old_logprobs, ref_logprobs, advantages: ``[B,T]`` float32 (constants of the update).
  importance_weights: ``[B,T]`` rollout-correction weights (ones when unused).
  laser_target, laser_weight, laser_c_ref: ``[B]`` LaSeR's verifier reward ``r_v``, weight
  ``w·1[finished]`` and ``c_ref`` (None without LaSeR; see ``rlx.algorithms.laser``).
  """

  tokens: jax.Array
  attention_mask: jax.Array
  loss_mask: jax.Array
  old_logprobs: jax.Array
  ref_logprobs: jax.Array
  advantages: jax.Array
  importance_weights: jax.Array
  laser_target: jax.Array | None = None
  laser_weight: jax.Array | None = None
  laser_c_ref: jax.Array | None = None

  @classmethod
  def create(cls, tokens, attention_mask, loss_mask, old_logprobs, advantages, ref_logprobs=None,
             importance_weights=None) -> "TrainBatch":
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    loss_mask = f32(loss_mask)
    return cls(tokens=jnp.asarray(tokens, jnp.int32), attention_mask=f32(attention_mask),
               loss_mask=loss_mask, old_logprobs=f32(old_logprobs),
               ref_logprobs=f32(old_logprobs if ref_logprobs is None else ref_logprobs),
               advantages=f32(advantages),
               importance_weights=jnp.ones_like(loss_mask) if importance_weights is None
               else f32(importance_weights))


@flax.struct.dataclass
class Hyper:
  """Traced hyper-parameters of the update: changing them never recompiles."""

  lr: jax.Array
  beta: jax.Array
  eps_low: jax.Array
  eps_high: jax.Array
  dual_clip: jax.Array
  entropy_coef: jax.Array
  temperature: jax.Array
  norm_constant: jax.Array
  value_coef: jax.Array
  vf_clip: jax.Array
  laser_alpha: jax.Array  # LaSeR auxiliary-loss weight α
  laser_beta: jax.Array  # LaSeR β_v

  @classmethod
  def create(cls, *, lr, beta=0.0, eps_low=0.2, eps_high=0.2, dual_clip=3.0, entropy_coef=0.0,
             temperature=1.0, norm_constant=1.0, value_coef=0.5, vf_clip=0.5, laser_alpha=0.0,
             laser_beta=0.1) -> "Hyper":
    f = lambda x: jnp.asarray(x, jnp.float32)
    return cls(lr=f(lr), beta=f(beta), eps_low=f(eps_low), eps_high=f(eps_high),
               dual_clip=f(dual_clip), entropy_coef=f(entropy_coef), temperature=f(temperature),
               norm_constant=f(norm_constant), value_coef=f(value_coef), vf_clip=f(vf_clip),
               laser_alpha=f(laser_alpha), laser_beta=f(laser_beta))


@dataclasses.dataclass(frozen=True)
class GRPOSpec:
  """Static structure of the update (a change recompiles)."""

  policy_loss: core.PolicyLoss = core.PolicyLoss.PPO
  aggregation: core.Aggregation = core.Aggregation.TOKEN_MEAN
  kl_in_loss: bool = False
  kl_estimator: core.KLEstimator = core.KLEstimator.K3
  dual_clip: bool = False
  epochs: int = 1
  minibatches: int = 1
  micro_batch_size: int = 0  # 0 = the whole minibatch
  chunk_size: int = 4096
  laser: laser_lib.LaserSpec | None = None  # LaSeR's auxiliary loss (None = off)

  @classmethod
  def from_config(cls, algo: AlgoSection, chunk_size: int = 4096,
                  vocab_size: int | None = None) -> "GRPOSpec":
    return cls(policy_loss=algo.policy_loss, aggregation=algo.aggregation,
               kl_in_loss=algo.kl_placement is KLPlacement.LOSS and algo.beta > 0,
               kl_estimator=algo.kl_estimator, dual_clip=algo.dual_clip > 1,
               epochs=algo.epochs, minibatches=algo.minibatches,
               micro_batch_size=algo.micro_batch_size, chunk_size=chunk_size,
               laser=laser_spec_from_config(algo, chunk_size, vocab_size))


def laser_spec_from_config(algo: AlgoSection, chunk_size: int = 4096,
                           vocab_size: int | None = None) -> laser_lib.LaserSpec | None:
  """LaSeR's static settings (None when ``algo.laser_alpha == 0``); ``laser_token = -1`` is the
  last vocabulary id (a token the task vocabulary never emits in solutions)."""
  if algo.laser_alpha <= 0:
    return None
  token = algo.laser_token
  if token < 0:
    if vocab_size is None:
      raise ValueError("laser_token=-1 needs the vocabulary size")
    token = vocab_size - 1
  return laser_lib.LaserSpec(token=int(token), ref_baseline=algo.laser_ref,
                             mix=algo.laser_tau > 0, chunk_size=chunk_size)


def hyper_from_config(algo: AlgoSection, lr: float, temperature: float) -> Hyper:
  return Hyper.create(lr=lr, beta=algo.beta, eps_low=algo.eps_low, eps_high=algo.eps_high,
                      dual_clip=algo.dual_clip or 3.0, entropy_coef=algo.entropy_coef,
                      temperature=temperature, norm_constant=algo.norm_constant or 1.0,
                      value_coef=algo.value_coef, vf_clip=algo.vf_clip,
                      laser_alpha=algo.laser_alpha, laser_beta=algo.laser_beta)


def _policy_kwargs(spec: GRPOSpec, hp: Hyper) -> dict:
  if spec.policy_loss is core.PolicyLoss.PG:
    return {}
  kw = {"eps_low": hp.eps_low, "eps_high": hp.eps_high}
  if spec.policy_loss is core.PolicyLoss.PPO:
    kw["dual_clip"] = hp.dual_clip if spec.dual_clip else None
  return kw


_MIN_KEYS = ("ratio_min",)
_MAX_KEYS = ("ratio_max",)


def micro_loss(params, mb: TrainBatch, denominator, hp: Hyper, *, graphdef, config, spec):
  """This micro-batch's share of the minibatch loss (numerators / the minibatch denominator)."""
  t = mb.loss_mask.shape[1]
  stats, hidden = target_logprobs(graphdef, params, config, mb.tokens, mb.attention_mask, t,
                                  hp.temperature, chunk_size=spec.chunk_size, with_entropy=True,
                                  return_hidden=True)
  m = mb.loss_mask
  agg = functools.partial(core.aggregation_numerator, mask=m, mode=spec.aggregation)
  pg, metrics = core.get_policy_loss(spec.policy_loss)(
      stats.logprobs, mb.old_logprobs, mb.advantages, m,
      importance_weights=mb.importance_weights, **_policy_kwargs(spec, hp))
  pg_term = agg(pg) / denominator
  entropy_term = agg(jax.lax.stop_gradient(stats.entropy)) / denominator
  entropy_grad_term = agg(stats.entropy) / denominator
  loss = pg_term - hp.entropy_coef * entropy_grad_term
  parts = {"loss/pg": pg_term, "entropy": entropy_term}
  if spec.kl_in_loss:
    kl_term = agg(core.kl_in_loss(stats.logprobs, mb.ref_logprobs, m, spec.kl_estimator)) / denominator
    loss = loss + hp.beta * kl_term
    parts["kl"] = kl_term
  if spec.laser is not None:
    laser_term = laser_lib.aux_term(hidden, mb, params, config, spec.laser, hp.laser_beta)
    loss = loss + hp.laser_alpha * laser_term
    parts["loss/laser"] = laser_term
  parts["loss/total"] = loss
  return loss, (parts, metrics, jnp.sum(m))


def minibatch_gradients(params, minibatch: TrainBatch, hp: Hyper, *, graphdef, config,
                        spec: GRPOSpec, loss_fn=None):
  """``(grads, metrics)`` of one minibatch, accumulated over micro-batches (exactly).

  ``loss_fn(params, micro_batch, denominator, hp) -> (loss, (parts, metrics, n_tokens))``
  defaults to :func:`micro_loss` (PPO passes one that adds the value loss).
  """
  mask = getattr(minibatch, "policy", minibatch).loss_mask  # a TrainBatch, or PPO's wrapper
  b = mask.shape[0]
  micro = spec.micro_batch_size or b
  if b % micro:
    raise ValueError(f"micro_batch_size={micro} must divide the minibatch size {b}")
  denominator = jnp.maximum(core.aggregation_denominator(
      mask, spec.aggregation, hp.norm_constant), 1e-8)
  loss_fn = loss_fn or functools.partial(micro_loss, graphdef=graphdef, config=config, spec=spec)
  grad_fn = jax.grad(loss_fn, has_aux=True)
  total_tokens = jnp.maximum(jnp.sum(mask), 1.0)
  if getattr(minibatch, "laser_weight", None) is not None:
    # LaSeR's loss is a mean over the minibatch's rows: fold 1/b into the weights, so that the
    # micro-batch terms add up to it exactly.
    minibatch = minibatch.replace(laser_weight=minibatch.laser_weight / b)

  def body(carry, mb):
    grads, sums = carry
    g, (parts, metrics, n_tok) = grad_fn(params, mb, denominator, hp)
    grads = jax.tree.map(jnp.add, grads, g)
    new = dict(sums)
    for k, v in parts.items():
      new[k] = sums[k] + v  # already fractions of the minibatch objective: they add up
    for k, v in metrics.items():
      if k in _MIN_KEYS:
        new[k] = jnp.minimum(sums[k], v)
      elif k in _MAX_KEYS:
        new[k] = jnp.maximum(sums[k], v)
      else:
        new[k] = sums[k] + v * n_tok / total_tokens  # token-weighted mean
    return (grads, new), None

  micro_batches = split_micro(minibatch, b // micro)
  first = jax.tree.map(lambda x: x[0], micro_batches)
  _, (parts0, metrics0, _) = jax.eval_shape(
      lambda p: grad_fn(p, first, denominator, hp), params)
  init = {k: jnp.zeros((), jnp.float32) for k in parts0}
  for k in metrics0:
    init[k] = jnp.full((), jnp.inf if k in _MIN_KEYS else -jnp.inf if k in _MAX_KEYS else 0.0)
  zeros = jax.tree.map(jnp.zeros_like, params)
  (grads, sums), _ = jax.lax.scan(body, (zeros, init), micro_batches)
  return grads, sums


def make_grpo_update(graphdef, config: models.ModelConfig, opt: OptimizerDef, spec: GRPOSpec,
                     layout=None):
  """The compiled update ``(state, batch, hyper) -> (state, metrics)``; state donated.

  With ``layout`` (``rlx.runtime.mesh.Layout``) the update is compiled with explicit shardings:
  state in its parameter layout (in and out), batch rows over ``data × fsdp``, hyper-parameters
  and metrics replicated; activations and remat follow the layout.
  """

  def update(state: TrainState, batch: TrainBatch, hp: Hyper):
    b = batch.tokens.shape[0]
    if b % spec.minibatches:
      raise ValueError(f"minibatches={spec.minibatches} must divide the batch size {b}")
    mb_size = b // spec.minibatches
    rng, shuffle_key = jax.random.split(state.rng)
    if spec.minibatches > 1:
      order = jax.vmap(lambda k: jax.random.permutation(k, b))(
          jax.random.split(shuffle_key, spec.epochs))
    else:
      order = jnp.broadcast_to(jnp.arange(b), (spec.epochs, b))
    order = order.reshape(spec.epochs * spec.minibatches, mb_size)

    def opt_step(carry, ids):
      params, opt_state, step = carry
      minibatch = jax.tree.map(lambda x: jnp.take(x, ids, axis=0), batch)
      grads, metrics = minibatch_gradients(params, minibatch, hp, graphdef=graphdef,
                                           config=config, spec=spec)
      params, opt_state, opt_metrics = apply_updates(opt, params, opt_state, grads, step, hp.lr,
                                                     active=jnp.sum(minibatch.loss_mask) > 0)
      return (params, opt_state, step + 1), {**metrics, **opt_metrics}

    (params, opt_state, step), metrics = jax.lax.scan(
        opt_step, (state.params, state.opt_state, state.step), order)
    metrics = {k: (jnp.min(v) if k in _MIN_KEYS else jnp.max(v) if k in _MAX_KEYS
                   else jnp.mean(v)) for k, v in metrics.items()}
    return state.replace(params=params, opt_state=opt_state, step=step, rng=rng), metrics

  if layout is not None:
    return layout.jit(update, ("tree", "batch", "replicated"), ("tree", "replicated"),
                      donate_argnums=0)
  return jax.jit(update, donate_argnums=0)


# ---------------------------------------------------------------------------------------------
# Turning a scored rollout into a TrainBatch: old / reference log-probs, KL, advantages.


@dataclasses.dataclass(frozen=True)
class PrepareSpec:
  """Static structure of the batch preparation (estimator, KL placement, rollout correction)."""

  estimator: core.AdvantageEstimator = core.AdvantageEstimator.GRPO
  kl_placement: KLPlacement = KLPlacement.NONE
  kl_estimator: core.KLEstimator = core.KLEstimator.K3
  std_scope: core.StdScope = core.StdScope.GROUP
  use_reference: bool = False
  tis: bool = False
  chunk_size: int = 4096

  @classmethod
  def from_config(cls, algo: AlgoSection, chunk_size: int = 4096) -> "PrepareSpec":
    use_ref = algo.kl_placement is not KLPlacement.NONE and (algo.beta > 0 or algo.adaptive_kl)
    return cls(estimator=algo.estimator, kl_placement=algo.kl_placement if use_ref else
               KLPlacement.NONE, kl_estimator=algo.kl_estimator, std_scope=algo.std_scope,
               use_reference=use_ref, tis=algo.tis_cap > 0, chunk_size=chunk_size)


@flax.struct.dataclass
class PrepareHyper:
  beta: jax.Array
  temperature: jax.Array
  adv_eps: jax.Array
  gamma: jax.Array
  tis_cap: jax.Array

  @classmethod
  def create(cls, *, beta=0.0, temperature=1.0, adv_eps=1e-6, gamma=1.0, tis_cap=2.0):
    f = lambda x: jnp.asarray(x, jnp.float32)
    return cls(f(beta), f(temperature), f(adv_eps), f(gamma), f(tis_cap))


def advantages(spec: PrepareSpec, rewards, token_rewards, group_ids, greedy_rewards, mask,
               hp: PrepareHyper, row_mask=None):
  """Dispatch on the (static) estimator; returns ``advantages [B,T]``. ``row_mask [B]`` marks
  real rows (0 = padding of the static batch; left out of batch-wide statistics)."""
  e = core.AdvantageEstimator
  est = spec.estimator
  if est is e.GRPO:
    return core.grpo_advantages(rewards, group_ids, mask, hp.adv_eps, std_scope=spec.std_scope,
                                row_mask=row_mask)[0]
  if est is e.DR_GRPO:
    return core.dr_grpo_advantages(rewards, group_ids, mask)[0]
  if est is e.RLOO:
    return core.rloo_advantages(rewards, group_ids, mask)[0]
  if est is e.REINFORCE_PP:
    return core.reinforce_pp_advantages(token_rewards, mask, hp.gamma)[0]
  if est is e.REINFORCE_PP_BASELINE:
    return core.reinforce_pp_baseline_advantages(rewards, group_ids, mask)[0]
  if est is e.REMAX:
    return core.remax_advantages(rewards, greedy_rewards, mask)[0]
  if est is e.OPO:
    return core.opo_advantages(rewards, group_ids, mask)[0]
  if est is e.GRPO_PASSK:
    return core.grpo_passk_advantages(rewards, group_ids, mask, hp.adv_eps)[0]
  raise ValueError(f"estimator {est.value!r} needs a value network (use the PPO update)")


def reference_kl(spec: PrepareSpec, old, ref, token_rewards, mask, hp: PrepareHyper):
  """KL to the reference where the spec keeps one: ``(token rewards, kl | None, metrics)``.

  With KL in the reward, ``R_t ← R_t − β·kl_t`` (docs/algorithms.md §3); ``kl/rollout`` is the adaptive
  controller's statistic. Shared by the GRPO-family and PPO preparation.
  """
  if not spec.use_reference:
    return token_rewards, None, {}
  kl = core.kl_penalty(old, ref, mask, spec.kl_estimator)
  metrics = {"kl/rollout": core.sequence_mean_kl(kl, mask)}
  if spec.kl_placement is KLPlacement.REWARD:
    token_rewards, _ = core.kl_in_reward(token_rewards, old, ref, mask, hp.beta, spec.kl_estimator)
  return token_rewards, kl, metrics


def make_prepare(graphdef, config: models.ModelConfig, spec: PrepareSpec, layout=None):
  """Compiled ``(params, ref_params, rollout arrays, rewards, ...) -> (TrainBatch, metrics)``.

  Arrays: ``prompt_tokens [B,P]``, ``prompt_mask [B,P]``, ``completion_tokens [B,T]``,
  ``completion_mask [B,T]`` (sampled tokens, attended to), ``loss_mask [B,T]`` (trained on),
  ``sampler_logprobs [B,T]``, ``rewards [B]``, ``group_ids [B]`` (negative = a padding row of
  the static batch, see ``rlx.runtime.rollouts.pad_rows``), ``greedy_rewards [B]`` (ReMax; zeros
  otherwise). With ``layout``: compiled with explicit shardings (parameters in their layout, the
  arrays and the returned batch split by rows over ``data × fsdp``).
  """

  def prepare(params, ref_params, prompt_tokens, prompt_mask, completion_tokens,
              completion_mask, loss_mask, sampler_logprobs, rewards, group_ids, greedy_rewards, hp: PrepareHyper):
    tokens = jnp.concatenate([prompt_tokens, completion_tokens], axis=1).astype(jnp.int32)
    t = completion_tokens.shape[1]
    m = loss_mask.astype(jnp.float32)
    attn = jnp.concatenate([prompt_mask, completion_mask], axis=1).astype(jnp.float32)
    logp = lambda p: target_logprobs(graphdef, p, config, tokens, attn, t, hp.temperature,
                                     chunk_size=spec.chunk_size)
    old = jax.lax.stop_gradient(logp(params))
    ref = jax.lax.stop_gradient(logp(ref_params)) if spec.use_reference else old
    r = jnp.asarray(rewards, jnp.float32)
    token_r = core.scalar_to_token_rewards(r, m)
    valid = (jnp.asarray(group_ids) >= 0).astype(jnp.float32)  # real rows, not padding
    metrics = {"reward/mean": jnp.sum(valid * r) / jnp.maximum(jnp.sum(valid), 1.0)}
    token_r, kl, kl_metrics = reference_kl(spec, old, ref, token_r, m, hp)
    metrics.update(kl_metrics)
    if kl is not None and spec.kl_placement is KLPlacement.REWARD:
      r = r - hp.beta * core.masked_sum(kl, m, axis=-1)  # outcome estimators see Σ_t of it
    adv = advantages(spec, r, token_r, group_ids, greedy_rewards, m, hp, row_mask=valid)
    weights = core.truncated_importance_weights(old, sampler_logprobs, m, hp.tis_cap) \
        if spec.tis else jnp.ones_like(m)
    metrics["advantage/mean"] = core.masked_mean(adv, m)
    metrics["advantage/std"] = jnp.sqrt(core.masked_var(adv, m))
    metrics["sampler_trainer_logp_diff"] = core.masked_mean(jnp.abs(old - sampler_logprobs), m)
    batch = TrainBatch(tokens=tokens, attention_mask=attn, loss_mask=m, old_logprobs=old,
                       ref_logprobs=ref, advantages=adv, importance_weights=weights)
    return batch, metrics

  if layout is not None:
    return layout.jit(prepare, ("tree", "tree") + ("batch",) * 9 + ("replicated",),
                      ("batch", "replicated"))
  return jax.jit(prepare)
