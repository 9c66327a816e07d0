"""The GRPO family as one compiled update: estimator × policy loss × KL placement × aggregation.

Batch preparation (:func:`make_prepare`) turns a scored :class:`~rlx.algorithms.trajectory.
Trajectory` into a :class:`TrainBatch` — old / reference log-probs, KL, advantages — and the
update (:func:`make_grpo_update`) is the one learner (``rlx.algorithms.learner``) with the
:class:`PolicyObjective`: epochs × minibatches optimizer steps, each accumulating gradients over
micro-batches; every loss term is a numerator over the micro-batch divided by the denominator of
the whole minibatch, so micro-batching never changes the objective (docs/algorithms.md §5).

Static choices (loss kind, aggregation, KL placement, dual clip on/off, the batch layout,
auxiliary losses) are a frozen :class:`GRPOSpec` resolved once from the config; tunable scalars
(lr, β, ε_low, ε_high, dual-clip c, entropy coefficient, temperature, C, auxiliary-loss
coefficients) are traced :class:`Hyper` values.

Auxiliary losses are plug-ins (:class:`AuxLoss`, e.g. ``rlx.algorithms.laser.LaserAux``): each
reads its per-row inputs from ``TrainBatch.aux`` and its coefficients from ``Hyper.aux``, so the
general types carry no field of any one of them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.algorithms import laser, learner
from rlx.algorithms.common import target_logprobs
from rlx.algorithms.trajectory import Trajectory, rows
from rlx.config import AlgoSection, KLPlacement
from rlx.optim import OptimizerDef


@flax.struct.dataclass
class TrainBatch:
  """One step's training data. ``S = P + T``: left-padded prompt then right-padded completion.

  tokens: ``[B,S]`` int32. attention_mask: ``[B,S]`` 1 on real tokens.
  loss_mask: ``[B,T]`` 1 on completion tokens trained on.
  old_logprobs, ref_logprobs, advantages: ``[B,T]`` float32 (constants of the update).
  importance_weights: ``[B,T]`` rollout-correction weights (ones when unused).
  aux: ``{name: [B, ...]}`` inputs of the auxiliary-loss plug-ins (empty without them).
  """

  tokens: jax.Array = rows()
  attention_mask: jax.Array = rows()
  loss_mask: jax.Array = rows()
  old_logprobs: jax.Array = rows()
  ref_logprobs: jax.Array = rows()
  advantages: jax.Array = rows()
  importance_weights: jax.Array = rows()
  aux: dict = rows(default_factory=dict)

  @classmethod
  def create(cls, tokens, attention_mask, loss_mask, old_logprobs, advantages, ref_logprobs=None,
             importance_weights=None, aux=None) -> "TrainBatch":
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    loss_mask = f32(loss_mask)
    return cls(tokens=jnp.asarray(tokens, jnp.int32), attention_mask=f32(attention_mask),
               loss_mask=loss_mask, old_logprobs=f32(old_logprobs),
               ref_logprobs=f32(old_logprobs if ref_logprobs is None else ref_logprobs),
               advantages=f32(advantages),
               importance_weights=jnp.ones_like(loss_mask) if importance_weights is None
               else f32(importance_weights), aux=dict(aux or {}))


@flax.struct.dataclass
class Hyper:
  """Traced hyper-parameters of the update: changing them never recompiles. ``aux``: the
  coefficients of the auxiliary-loss plug-ins, by name."""

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
  aux: dict = flax.struct.field(default_factory=dict)

  @classmethod
  def create(cls, *, lr, beta=0.0, eps_low=0.2, eps_high=0.2, dual_clip=3.0, entropy_coef=0.0,
             temperature=1.0, norm_constant=1.0, value_coef=0.5, vf_clip=0.5,
             aux=None) -> "Hyper":
    f = lambda x: jnp.asarray(x, jnp.float32)
    return cls(lr=f(lr), beta=f(beta), eps_low=f(eps_low), eps_high=f(eps_high),
               dual_clip=f(dual_clip), entropy_coef=f(entropy_coef), temperature=f(temperature),
               norm_constant=f(norm_constant), value_coef=f(value_coef), vf_clip=f(vf_clip),
               aux={k: f(v) for k, v in (aux or {}).items()})


class AuxLoss(Protocol):
  """An auxiliary loss plug-in of the policy objective (frozen dataclass: part of the spec).

  ``name``: its key in ``Hyper.aux`` (``{name}/coef`` weights the term) and the metric
  ``loss/{name}``. ``inputs``: the ``TrainBatch.aux`` keys it reads (each ``[B]`` float32). ``begin(minibatch)``: adjust its ``TrainBatch.aux`` inputs for the minibatch
  (e.g. fold in ``1/rows``). ``term(hidden, micro_batch, params, config, hp)``: this
  micro-batch's share of the term, from the final hidden states ``[B,S,D]``.
  """

  name: str
  inputs: tuple[str, ...]

  def begin(self, minibatch: TrainBatch) -> TrainBatch: ...

  def term(self, hidden, micro_batch: TrainBatch, params, config, hp: Hyper) -> jax.Array: ...


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
  aux: tuple[Any, ...] = ()  # AuxLoss plug-ins

  @property
  def learner(self) -> learner.LearnerSpec:
    return learner.LearnerSpec(self.epochs, self.minibatches, self.micro_batch_size)

  @classmethod
  def from_config(cls, algo: AlgoSection, chunk_size: int = 4096,
                  vocab_size: int | None = None) -> "GRPOSpec":
    aux = laser.aux_from_config(algo, chunk_size, vocab_size)
    return cls(policy_loss=algo.policy_loss, aggregation=algo.aggregation,
               kl_in_loss=algo.kl_placement is KLPlacement.LOSS and algo.beta > 0,
               kl_estimator=algo.kl_estimator, dual_clip=algo.dual_clip > 1,
               epochs=algo.epochs, minibatches=algo.minibatches,
               micro_batch_size=algo.micro_batch_size, chunk_size=chunk_size,
               aux=() if aux is None else (aux,))


def hyper_from_config(algo: AlgoSection, lr: float, temperature: float) -> Hyper:
  return Hyper.create(lr=lr, beta=algo.beta, eps_low=algo.eps_low, eps_high=algo.eps_high,
                      dual_clip=algo.dual_clip or 3.0, entropy_coef=algo.entropy_coef,
                      temperature=temperature, norm_constant=algo.norm_constant or 1.0,
                      value_coef=algo.value_coef, vf_clip=algo.vf_clip,
                      aux=laser.hyper_from_config(algo))


def _policy_kwargs(spec: GRPOSpec, hp: Hyper) -> dict:
  if spec.policy_loss is core.PolicyLoss.PG:
    return {}
  kw = {"eps_low": hp.eps_low, "eps_high": hp.eps_high}
  if spec.policy_loss is core.PolicyLoss.PPO:
    kw["dual_clip"] = hp.dual_clip if spec.dual_clip else None
  return kw


def policy_micro_loss(params, mb: TrainBatch, denominator, hp: Hyper, *, graphdef, config,
                      spec: GRPOSpec):
  """This micro-batch's share of the minibatch loss: ``(loss, (sums, means, tokens))``."""
  t = mb.loss_mask.shape[1]
  need_hidden = bool(spec.aux)
  out = target_logprobs(graphdef, params, config, mb.tokens, mb.attention_mask, t,
                        hp.temperature, chunk_size=spec.chunk_size, with_entropy=True,
                        return_hidden=need_hidden)
  stats, hidden = out if need_hidden else (out, None)
  m = mb.loss_mask
  agg = functools.partial(core.aggregation_numerator, mask=m, mode=spec.aggregation)
  pg, metrics = core.get_policy_loss(spec.policy_loss)(
      stats.logprobs, mb.old_logprobs, mb.advantages, m,
      importance_weights=mb.importance_weights, **_policy_kwargs(spec, hp))
  pg_term = agg(pg) / denominator
  entropy_grad_term = agg(stats.entropy) / denominator
  loss = pg_term - hp.entropy_coef * entropy_grad_term
  sums = {"loss/pg": pg_term, "entropy": jax.lax.stop_gradient(entropy_grad_term)}
  if spec.kl_in_loss:
    kl_term = agg(core.kl_in_loss(stats.logprobs, mb.ref_logprobs, m, spec.kl_estimator)) / denominator
    loss = loss + hp.beta * kl_term
    sums["kl"] = kl_term
  for aux in spec.aux:
    term = aux.term(hidden, mb, params, config, hp)
    loss = loss + hp.aux[f"{aux.name}/coef"] * term
    sums[f"loss/{aux.name}"] = term
  sums["loss/total"] = loss
  return loss, (sums, metrics, jnp.sum(m))


@dataclasses.dataclass(frozen=True)
class PolicyObjective:
  """The GRPO-family objective for the learner: policy loss (+ KL in the loss, − entropy bonus,
  + auxiliary plug-ins), normalised by the minibatch's aggregation denominator."""

  graphdef: Any
  config: models.ModelConfig
  spec: GRPOSpec
  trains_value = False

  def denominator(self, mask, hp: Hyper):
    return jnp.maximum(core.aggregation_denominator(mask, self.spec.aggregation,
                                                    hp.norm_constant), 1e-8)

  def begin(self, params, minibatch: TrainBatch, hp: Hyper):
    for aux in self.spec.aux:
      minibatch = aux.begin(minibatch)
    return minibatch, self.denominator(minibatch.loss_mask, hp), {}

  def loss(self, params, mb: TrainBatch, denominator, hp: Hyper):
    return policy_micro_loss(params, mb, denominator, hp, graphdef=self.graphdef,
                             config=self.config, spec=self.spec)

  def weight(self, minibatch: TrainBatch):
    return jnp.sum(minibatch.loss_mask)

  def finalize(self, metrics: dict) -> dict:
    return metrics


def make_grpo_update(graphdef, config: models.ModelConfig, opt: OptimizerDef, spec: GRPOSpec,
                     layout=None):
  """The compiled update ``(state, batch: TrainBatch, hyper) -> (state, metrics)``; state
  donated. The one learner (``rlx.algorithms.learner.make_update``) with the
  :class:`PolicyObjective`; with ``layout`` (``rlx.runtime.mesh.Layout``) compiled with
  explicit shardings (state in its parameter layout, batch rows over ``data × fsdp``)."""
  return learner.make_update(PolicyObjective(graphdef, config, spec), opt, spec.learner, layout)


# ---------------------------------------------------------------------------------------------
# Turning a scored trajectory into a TrainBatch: old / reference log-probs, KL, advantages.


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
  old_from_sampler: bool = False

  @classmethod
  def from_config(cls, algo: AlgoSection, chunk_size: int = 4096,
                  exact_sampler: bool = False) -> "PrepareSpec":
    """``exact_sampler``: the sampler computes its log-probs at the trainer's precision
    (float32 parameters and compute), which ``algo.old_logprobs="auto"`` needs to reuse them."""
    use_ref = algo.kl_placement is not KLPlacement.NONE and (algo.beta > 0 or algo.adaptive_kl)
    reuse = algo.old_logprobs == "sampler" or (
        algo.old_logprobs == "auto" and exact_sampler and algo.tis_cap == 0)
    return cls(estimator=algo.estimator, kl_placement=algo.kl_placement if use_ref else
               KLPlacement.NONE, kl_estimator=algo.kl_estimator, std_scope=algo.std_scope,
               use_reference=use_ref, tis=algo.tis_cap > 0, chunk_size=chunk_size,
               old_from_sampler=reuse)


@flax.struct.dataclass
class PrepareHyper:
  beta: jax.Array
  temperature: jax.Array
  adv_eps: jax.Array
  gamma: jax.Array
  tis_cap: jax.Array
  lam: jax.Array

  @classmethod
  def create(cls, *, beta=0.0, temperature=1.0, adv_eps=1e-6, gamma=1.0, tis_cap=2.0, lam=1.0):
    f = lambda x: jnp.asarray(x, jnp.float32)
    return cls(f(beta), f(temperature), f(adv_eps), f(gamma), f(tis_cap), f(lam))


def sequences(traj: Trajectory):
  """``(tokens [B,S], attention_mask [B,S], loss_mask [B,T])`` of a trajectory."""
  tokens = jnp.concatenate([traj.prompt_tokens, traj.completion_tokens], axis=1).astype(jnp.int32)
  attn = jnp.concatenate([traj.prompt_mask, traj.completion_mask], axis=1).astype(jnp.float32)
  return tokens, attn, jnp.asarray(traj.loss_mask, jnp.float32)


def rollout_logprobs(graphdef, config, spec: PrepareSpec, params, ref_params, tokens, attn, t,
                     hp: PrepareHyper, sampler_logprobs=None):
  """``(ℓ_old, ℓ_ref)`` ``[B,T]`` of the sampled tokens (no gradient); ``ℓ_ref = ℓ_old``
  without a reference. With ``spec.old_from_sampler``, ``ℓ_old`` is the sampler's own
  ``sampler_logprobs`` (the same numbers: log-softmax of the logits / temperature under the
  policy that sampled, before any update) and the policy's forward pass is skipped."""
  logp = lambda p: jax.lax.stop_gradient(target_logprobs(
      graphdef, p, config, tokens, attn, t, hp.temperature, chunk_size=spec.chunk_size))
  if spec.old_from_sampler:
    old = jax.lax.stop_gradient(jnp.asarray(sampler_logprobs, jnp.float32))
  else:
    old = logp(params)
  return old, (logp(ref_params) if spec.use_reference else old)


def shaped_token_rewards(spec: PrepareSpec, traj: Trajectory, old, ref, m, hp: PrepareHyper):
  """``(dense token rewards [B,T], metrics)``: the trajectory's per-token rewards, minus
  ``β·kl_t`` when the KL is in the reward (docs/algorithms.md §3). The scalar reward is not in
  them: ``core.compute_advantages`` places it (last token, or the row sum for outcome
  estimators)."""
  dense = jnp.asarray(traj.token_rewards, jnp.float32) * m
  if not spec.use_reference:
    return dense, {}
  kl = core.kl_penalty(old, ref, m, spec.kl_estimator)
  metrics = {"kl/rollout": core.sequence_mean_kl(kl, m)}
  if spec.kl_placement is KLPlacement.REWARD:
    dense = dense - hp.beta * kl * m
  return dense, metrics


def row_mean(x, rows_mask):
  """Mean of ``[B]`` values over real rows (padding rows of the static batch excluded)."""
  return jnp.sum(rows_mask * x) / jnp.maximum(jnp.sum(rows_mask), 1.0)


def advantage_inputs(traj: Trajectory, dense, m, values=None) -> core.AdvantageInputs:
  return core.AdvantageInputs(
      rewards=jnp.asarray(traj.rewards, jnp.float32), token_rewards=dense,
      group_ids=jnp.asarray(traj.group_ids), mask=m, values=values,
      greedy_rewards=traj.aux.get("greedy_rewards"),
      row_mask=jnp.asarray(traj.sample_mask, jnp.float32))


def rollout_metrics(traj: Trajectory, adv, m, old, spec: PrepareSpec | None = None) -> dict:
  """Metrics every RL preparation reports, over real rows / trained tokens only
  (``sampler_trainer_logp_diff`` only where the trainer recomputed ``old``)."""
  valid = jnp.asarray(traj.sample_mask, jnp.float32)
  out = {"reward/mean": row_mean(jnp.asarray(traj.rewards, jnp.float32), valid),
         "reward/token_sum": row_mean(core.masked_sum(traj.token_rewards, m, axis=-1), valid),
         "advantage/mean": core.masked_mean(adv, m),
         "advantage/std": jnp.sqrt(core.masked_var(adv, m))}
  if spec is None or not spec.old_from_sampler:
    out["sampler_trainer_logp_diff"] = core.masked_mean(jnp.abs(old - traj.sampler_logprobs), m)
  return out


def make_prepare(graphdef, config: models.ModelConfig, spec: PrepareSpec, layout=None):
  """Compiled ``(params, ref_params, traj: Trajectory, hp) -> (TrainBatch, metrics)``.

  Old and reference log-probs, the KL (in the reward or for the loss), advantages of the
  spec's estimator over the scalar and the dense token rewards (``core.compute_advantages``;
  padding rows left out of batch-wide statistics), truncated importance weights. With
  ``layout``: compiled with explicit shardings (parameters in their layout, the trajectory and
  the returned batch split by rows over ``data × fsdp``).
  """

  def prepare(params, ref_params, traj: Trajectory, hp: PrepareHyper):
    tokens, attn, m = sequences(traj)
    t = m.shape[1]
    old, ref = rollout_logprobs(graphdef, config, spec, params, ref_params, tokens, attn, t, hp,
                                traj.sampler_logprobs)
    dense, metrics = shaped_token_rewards(spec, traj, old, ref, m, hp)
    adv, _ = core.compute_advantages(
        spec.estimator, advantage_inputs(traj, dense, m),
        core.AdvantageHyper(eps=hp.adv_eps, gamma=hp.gamma, lam=hp.lam),
        std_scope=spec.std_scope)
    weights = core.truncated_importance_weights(old, traj.sampler_logprobs, m, hp.tis_cap) \
        if spec.tis else jnp.ones_like(m)
    metrics.update(rollout_metrics(traj, adv, m, old, spec))
    batch = TrainBatch(tokens=tokens, attention_mask=attn, loss_mask=m, old_logprobs=old,
                       ref_logprobs=ref, advantages=adv, importance_weights=weights)
    return batch, metrics

  if layout is not None:
    return layout.jit(prepare)
  return jax.jit(prepare)
