"""Preference optimisation (docs/algorithms.md §7) as one compiled update: DPO and its relatives.

Every loss of ``rlx.core.PreferenceLoss`` — dpo (with cDPO label smoothing), robust, ipo (± length
normalisation), hinge, simpo, orpo, kto — consumes *sequence* log-probs

    ℓ = Σ_t log π(y_t | x, y_<t) · m_t        (sum over the completion tokens only)

of the chosen and rejected completions under the policy, and for the reference-based losses the
same sums under the frozen reference, precomputed (``ref_chosen``/``ref_rejected``, see
``rlx.runtime.preference``). Both rows of a pair go through one forward pass (``[2B,S]``).

The batch loss is the mean over real pairs, ``Σ_b w_b·loss_b / Σ_b w_b`` (``w`` is 0 on padding
rows). As in the SFT and GRPO updates, the global denominator ``Σ w`` is computed first and each
micro-batch contributes ``Σ_{b∈mb} w_b·loss_b / Σ w``, so the ``lax.scan`` over micro-batches
yields exactly the full-batch gradient. KTO's reference point ``z_ref`` (a batch statistic) is
computed over the whole batch before the micro-batch loop for the same reason.

Metrics (means over real pairs): ``loss``, ``rewards/chosen`` and ``rewards/rejected`` (the
loss's implicit rewards, e.g. ``β·(ℓ_c − ℓ_c^ref)`` for DPO), ``rewards/margin``,
``rewards/accuracy`` (chosen reward > rejected reward, i.e. ``Δ > 0``), ``logps/chosen`` and
``logps/rejected`` (policy ℓ), ``logps/accuracy`` (``ℓ_c > ℓ_r``); ORPO adds ``nll`` and
``log_odds_ratio``, KTO ``kl`` (``z_ref``). KTO's chosen/rejected are its desirable/undesirable
examples.

Static choices (loss kind, length normalisation, micro-batch size) are a frozen
:class:`PrefSpec`; the tunable scalars (lr, β, ε, γ, λ, KTO weights, margin and centering
coefficients) are traced :class:`PrefHyper` values — changing them never recompiles.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from rlx import core
from rlx import models
from rlx.algorithms import learner
from rlx.algorithms.common import target_logprobs
from rlx.algorithms.learner import split_micro
from rlx.algorithms.trajectory import rows
from rlx.optim import OptimizerDef

Loss = core.PreferenceLoss
REFERENCE_FREE = (Loss.SIMPO, Loss.ORPO)


@flax.struct.dataclass
class PairBatch:
  """Pairs, right-padded ``prompt + completion`` rows (``rlx.data.preference.pair_arrays``).

  chosen_tokens, rejected_tokens: ``[B,S]`` int32. *_mask: ``[B,S]`` 1 on real tokens.
  *_loss_mask: ``[B,S]`` 1 on completion tokens. ref_chosen, ref_rejected: ``[B]`` reference
  sequence log-probs (zeros for reference-free losses). margin: ``[B]`` per-pair margin.
  weight: ``[B]`` 1 on real pairs, 0 on padding rows.
  """

  chosen_tokens: jax.Array = rows()
  chosen_mask: jax.Array = rows()
  chosen_loss_mask: jax.Array = rows()
  rejected_tokens: jax.Array = rows()
  rejected_mask: jax.Array = rows()
  rejected_loss_mask: jax.Array = rows()
  ref_chosen: jax.Array = rows()
  ref_rejected: jax.Array = rows()
  margin: jax.Array = rows()
  weight: jax.Array = rows()

  @classmethod
  def create(cls, arrays: dict, ref_chosen=None, ref_rejected=None) -> "PairBatch":
    """From :func:`rlx.data.preference.pair_arrays`' dict (reference log-probs default to 0)."""
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    b = np.shape(arrays["weight"])[0]
    zeros = np.zeros((b,), np.float32)
    return cls(
        chosen_tokens=jnp.asarray(arrays["chosen_tokens"], jnp.int32),
        chosen_mask=f32(arrays["chosen_mask"]), chosen_loss_mask=f32(arrays["chosen_loss_mask"]),
        rejected_tokens=jnp.asarray(arrays["rejected_tokens"], jnp.int32),
        rejected_mask=f32(arrays["rejected_mask"]),
        rejected_loss_mask=f32(arrays["rejected_loss_mask"]),
        ref_chosen=f32(zeros if ref_chosen is None else ref_chosen),
        ref_rejected=f32(zeros if ref_rejected is None else ref_rejected),
        margin=f32(arrays["margin"]), weight=f32(arrays["weight"]))


@flax.struct.dataclass
class UnpairedBatch:
  """KTO examples (``rlx.data.preference.make_unpaired_batch``).

  tokens, mask, loss_mask: ``[B,S]`` the examples. kl_tokens, kl_mask, kl_loss_mask: ``[B,S]``
  mismatched prompt/completion rows (KTO's KL reference point). ref, ref_kl: ``[B]`` their
  reference sequence log-probs. desirable: ``[B]`` 1/0. weight: ``[B]`` 1 on real rows.
  """

  tokens: jax.Array = rows()
  mask: jax.Array = rows()
  loss_mask: jax.Array = rows()
  kl_tokens: jax.Array = rows()
  kl_mask: jax.Array = rows()
  kl_loss_mask: jax.Array = rows()
  ref: jax.Array = rows()
  ref_kl: jax.Array = rows()
  desirable: jax.Array = rows()
  weight: jax.Array = rows()

  @classmethod
  def create(cls, arrays: dict, ref=None, ref_kl=None) -> "UnpairedBatch":
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    zeros = np.zeros((np.shape(arrays["weight"])[0],), np.float32)
    return cls(tokens=jnp.asarray(arrays["tokens"], jnp.int32), mask=f32(arrays["mask"]),
               loss_mask=f32(arrays["loss_mask"]),
               kl_tokens=jnp.asarray(arrays["kl_tokens"], jnp.int32),
               kl_mask=f32(arrays["kl_mask"]), kl_loss_mask=f32(arrays["kl_loss_mask"]),
               ref=f32(zeros if ref is None else ref),
               ref_kl=f32(zeros if ref_kl is None else ref_kl),
               desirable=f32(arrays["desirable"]), weight=f32(arrays["weight"]))


@flax.struct.dataclass
class PrefHyper:
  """Traced hyper-parameters (a new value never recompiles).

  lr: peak learning rate. beta: β (SimPO's β too). label_smoothing: ε of dpo / robust.
  gamma: SimPO's γ. orpo_lambda: ORPO's λ. desirable_weight, undesirable_weight: KTO's w_d, w_u.
  margin_coef: scales the data's per-pair margin. center_coef: reward-model centering λ.
  """

  lr: jax.Array
  beta: jax.Array
  label_smoothing: jax.Array
  gamma: jax.Array
  orpo_lambda: jax.Array
  desirable_weight: jax.Array
  undesirable_weight: jax.Array
  margin_coef: jax.Array
  center_coef: jax.Array

  @classmethod
  def create(cls, *, lr, beta=0.1, label_smoothing=0.0, gamma=0.5, orpo_lambda=0.1,
             desirable_weight=1.0, undesirable_weight=1.0, margin_coef=1.0,
             center_coef=0.0) -> "PrefHyper":
    f = lambda x: jnp.asarray(x, jnp.float32)
    return cls(lr=f(lr), beta=f(beta), label_smoothing=f(label_smoothing), gamma=f(gamma),
               orpo_lambda=f(orpo_lambda), desirable_weight=f(desirable_weight),
               undesirable_weight=f(undesirable_weight), margin_coef=f(margin_coef),
               center_coef=f(center_coef))

  @classmethod
  def from_config(cls, pref, lr: float) -> "PrefHyper":
    """From the run's ``pref`` section (``rlx.config.PrefSection``)."""
    return cls.create(lr=lr, beta=pref.beta, label_smoothing=pref.label_smoothing,
                      gamma=pref.gamma, orpo_lambda=pref.orpo_lambda,
                      desirable_weight=pref.kto_desirable_weight,
                      undesirable_weight=pref.kto_undesirable_weight,
                      margin_coef=pref.margin_coef, center_coef=pref.center_coef)


@dataclasses.dataclass(frozen=True)
class PrefSpec:
  """Static structure of the update (a change recompiles)."""

  loss: core.PreferenceLoss = Loss.DPO
  length_normalize: bool = False  # IPO: divide c and j by the completion lengths
  micro_batch_size: int = 0  # rows per gradient-accumulation micro-batch (0 = whole batch)
  chunk_size: int = 4096  # vocabulary chunk of the log-prob computation

  @property
  def uses_reference(self) -> bool:
    return self.loss not in REFERENCE_FREE

  @property
  def paired(self) -> bool:
    return self.loss is not Loss.KTO

  @classmethod
  def from_config(cls, run) -> "PrefSpec":
    return cls(loss=run.pref.loss, length_normalize=run.pref.length_normalize,
               micro_batch_size=run.algo.micro_batch_size, chunk_size=run.model.logprob_chunk)


# ---------------------------------------------------------------------------------------------
# Sequence log-probs.


def sequence_logps(graphdef, params, config: models.ModelConfig, tokens, mask, loss_mask, *,
                   chunk_size: int = 4096) -> tuple[jax.Array, jax.Array]:
  """``(ℓ [B], |y| [B])``: ``ℓ_b = Σ_s log π(x_s | x_<s)·loss_mask_{b,s}`` and the completion
  lengths ``Σ_s loss_mask_{b,s}``, for right-padded ``tokens``/``mask``/``loss_mask [B,S]``."""
  s = tokens.shape[1]
  logp = target_logprobs(graphdef, params, config, tokens, mask, s - 1, chunk_size=chunk_size)
  m = loss_mask[:, 1:]
  return core.masked_sum(logp, m, axis=-1), jnp.sum(m, axis=-1)


def pair_logps(graphdef, params, config, batch: PairBatch, *, chunk_size: int = 4096):
  """``(ℓ_c, ℓ_r, |y_c|, |y_r|)``, each ``[B]``, from one forward pass over ``[2B,S]``."""
  b = batch.chosen_tokens.shape[0]
  cat = lambda x, y: jnp.concatenate([x, y], axis=0)
  logps, lengths = sequence_logps(
      graphdef, params, config, cat(batch.chosen_tokens, batch.rejected_tokens),
      cat(batch.chosen_mask, batch.rejected_mask),
      cat(batch.chosen_loss_mask, batch.rejected_loss_mask), chunk_size=chunk_size)
  return logps[:b], logps[b:], lengths[:b], lengths[b:]


def reference_logps(graphdef, params, config, batch, *, chunk_size: int = 4096):
  """What a batch needs from the reference: ``(ℓ_c^ref, ℓ_r^ref)`` of a :class:`PairBatch`,
  ``(ℓ^ref, ℓ_kl^ref)`` of an :class:`UnpairedBatch` (both ``[B]``, no gradient)."""
  params = jax.lax.stop_gradient(params)
  if isinstance(batch, PairBatch):
    c, r, _, _ = pair_logps(graphdef, params, config, batch, chunk_size=chunk_size)
    return c, r
  b = batch.tokens.shape[0]
  cat = lambda x, y: jnp.concatenate([x, y], axis=0)
  logps, _ = sequence_logps(graphdef, params, config, cat(batch.tokens, batch.kl_tokens),
                            cat(batch.mask, batch.kl_mask),
                            cat(batch.loss_mask, batch.kl_loss_mask), chunk_size=chunk_size)
  return logps[:b], logps[b:]


def make_reference_logps(graphdef, config: models.ModelConfig, chunk_size: int = 4096,
                         layout=None):
  """Compiled ``(params, batch) -> (ℓ_a [B], ℓ_b [B])`` (:func:`reference_logps`)."""
  fn = lambda params, batch: reference_logps(graphdef, params, config, batch,
                                             chunk_size=chunk_size)
  if layout is not None:
    return layout.jit(fn)
  return jax.jit(fn)


# ---------------------------------------------------------------------------------------------
# Per-pair losses and metric sums.


def pair_losses(spec: PrefSpec, hp: PrefHyper, policy_chosen, policy_rejected, ref_chosen,
                ref_rejected, chosen_lengths, rejected_lengths, margin):
  """The spec's loss per pair: ``(loss [B], metrics {name: [B]})``.

  Calls the ``rlx.core`` loss once per pair (``vmap``), so each metric comes back per pair and
  the caller can weight it. ``margin [B]`` enters dpo / robust / hinge inside the sigmoid
  (``βΔ − margin``) and SimPO as an addition to γ; ipo and orpo take none.
  """
  kind = spec.loss

  def one(pc, pr, rc, rr, lc, lr, m):
    if kind is Loss.DPO:
      return core.dpo_loss(pc, pr, rc, rr, beta=hp.beta, label_smoothing=hp.label_smoothing,
                           margin=m)
    if kind is Loss.ROBUST:
      return core.robust_dpo_loss(pc, pr, rc, rr, beta=hp.beta,
                                  label_smoothing=hp.label_smoothing, margin=m)
    if kind is Loss.IPO:
      lengths = (lc, lr) if spec.length_normalize else (None, None)
      return core.ipo_loss(pc, pr, rc, rr, beta=hp.beta, chosen_lengths=lengths[0],
                           rejected_lengths=lengths[1])
    if kind is Loss.HINGE:
      return core.hinge_loss(pc, pr, rc, rr, beta=hp.beta, margin=m)
    if kind is Loss.SIMPO:
      return core.simpo_loss(pc, pr, lc, lr, beta=hp.beta, gamma=hp.gamma + m)
    if kind is Loss.ORPO:
      return core.orpo_loss(pc, pr, lc, lr, lam=hp.orpo_lambda)
    raise ValueError(f"{kind.value!r} is not a paired loss")

  return jax.vmap(one)(policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_lengths,
                       rejected_lengths, margin)


def pair_micro_loss(params, mb: PairBatch, hp: PrefHyper, denominator, *, graphdef, config,
                    spec: PrefSpec):
  """``(Σ_{b∈mb} w_b·loss_b / denominator, sums)``; ``sums`` are weighted metric sums."""
  pc, pr, lc, lr = pair_logps(graphdef, params, config, mb, chunk_size=spec.chunk_size)
  loss, metrics = pair_losses(spec, hp, pc, pr, mb.ref_chosen, mb.ref_rejected, lc, lr,
                              hp.margin_coef * mb.margin)
  w = mb.weight
  wsum = lambda x: jnp.sum(w * jax.lax.stop_gradient(x))
  sums = {k: wsum(v) for k, v in metrics.items()}
  sums.update({"loss": wsum(loss), "logps/chosen": wsum(pc), "logps/rejected": wsum(pr),
               "logps/accuracy": wsum((pc > pr).astype(jnp.float32)), "count": jnp.sum(w)})
  return jnp.sum(w * loss) / denominator, sums


def kto_reference(graphdef, params, config, batch: UnpairedBatch, *, chunk_size: int,
                  micro_batch_size: int = 0):
  """KTO's ``z_ref = max(mean_b w_b·(ℓ_kl − ℓ_kl^ref), 0)`` over the whole batch, detached
  (the policy forward runs per micro-batch, without gradient)."""
  b = batch.tokens.shape[0]
  micro = micro_batch_size or b
  params = jax.lax.stop_gradient(params)

  def one(_, mb):
    logps, _ = sequence_logps(graphdef, params, config, mb.kl_tokens, mb.kl_mask,
                              mb.kl_loss_mask, chunk_size=chunk_size)
    return None, logps

  _, logps = jax.lax.scan(one, None, split_micro(batch, b // micro))
  return core.kto_reference_point(logps.reshape(b), batch.ref_kl, batch.weight)


def kto_micro_loss(params, mb: UnpairedBatch, hp: PrefHyper, denominator, z_ref, *, graphdef,
                   config, spec: PrefSpec):
  """KTO's share of the batch loss; sums split by desirable (``d``) / undesirable rows."""
  logps, _ = sequence_logps(graphdef, params, config, mb.tokens, mb.mask, mb.loss_mask,
                            chunk_size=spec.chunk_size)
  loss, _ = core.kto_loss(logps, mb.ref, mb.desirable, z_ref, beta=hp.beta,
                          desirable_weight=hp.desirable_weight,
                          undesirable_weight=hp.undesirable_weight)
  w, d = mb.weight, mb.desirable
  r = jax.lax.stop_gradient(hp.beta * (logps - mb.ref))
  lp = jax.lax.stop_gradient(logps)
  sums = {"loss": jnp.sum(w * jax.lax.stop_gradient(loss)),
          "rewards/chosen": jnp.sum(w * d * r), "rewards/rejected": jnp.sum(w * (1 - d) * r),
          "logps/chosen": jnp.sum(w * d * lp), "logps/rejected": jnp.sum(w * (1 - d) * lp),
          "count": jnp.sum(w), "count/desirable": jnp.sum(w * d)}
  return jnp.sum(w * loss) / denominator, sums


def finalize_metrics(sums: dict, paired: bool = True) -> dict:
  """Weighted sums → means (works on jax and numpy values). Paired: every metric over the real
  pairs. KTO: ``*/chosen`` over desirable, ``*/rejected`` over undesirable rows."""
  host = all(isinstance(v, (np.ndarray, np.generic, float, int)) for v in sums.values())
  xp = np if host else jnp
  n = xp.maximum(sums["count"], 1e-8)
  if paired:
    return {k: v / n for k, v in sums.items() if not k.startswith("count")}
  nd = xp.maximum(sums["count/desirable"], 1e-8)
  nu = xp.maximum(sums["count"] - sums["count/desirable"], 1e-8)
  out = {}
  for k, v in sums.items():
    if k.startswith("count"):
      continue
    out[k] = v / (nd if k.endswith("/chosen") else nu if k.endswith("/rejected") else n)
  out["rewards/margin"] = out["rewards/chosen"] - out["rewards/rejected"]
  return out


# ---------------------------------------------------------------------------------------------
# The update.


@dataclasses.dataclass(frozen=True)
class PreferenceObjective:
  """The spec's preference loss for the learner: the mean over real pairs (or KTO examples),
  ``Σ_b w_b·loss_b / Σ_b w_b``; KTO's ``z_ref`` is taken over the whole minibatch first."""

  graphdef: Any
  config: models.ModelConfig
  spec: PrefSpec
  trains_value = False

  def begin(self, params, batch, hp: PrefHyper):
    denominator = jnp.maximum(jnp.sum(batch.weight), 1e-8)
    if self.spec.paired:
      return batch, (denominator, None), {}
    z_ref = kto_reference(self.graphdef, params, self.config, batch,
                          chunk_size=self.spec.chunk_size,
                          micro_batch_size=self.spec.micro_batch_size)
    return batch, (denominator, z_ref), {"kl": z_ref}

  def loss(self, params, mb, context, hp: PrefHyper):
    denominator, z_ref = context
    kw = dict(graphdef=self.graphdef, config=self.config, spec=self.spec)
    if self.spec.paired:
      share, sums = pair_micro_loss(params, mb, hp, denominator, **kw)
    else:
      share, sums = kto_micro_loss(params, mb, hp, denominator, z_ref, **kw)
    return share, (sums, {}, 0.0)

  def weight(self, batch):
    return jnp.sum(batch.weight)

  def finalize(self, metrics: dict) -> dict:
    return finalize_metrics(metrics, self.spec.paired)


def make_preference_update(graphdef, config: models.ModelConfig, opt: OptimizerDef,
                           spec: PrefSpec, layout=None):
  """The compiled update ``(state, batch, hyper) -> (state, metrics)``; state donated.

  ``batch`` is a :class:`PairBatch` (or an :class:`UnpairedBatch` for KTO) whose reference
  log-probs are filled in. The one learner (``rlx.algorithms.learner``) with
  :class:`PreferenceObjective`: one optimizer step per call, micro-batched exactly; skipped
  (params and optimizer state unchanged) when the batch holds no real pair.
  """
  return learner.make_update(PreferenceObjective(graphdef, config, spec), opt,
                             learner.LearnerSpec(micro_batch_size=spec.micro_batch_size), layout)


def make_preference_metrics(graphdef, config: models.ModelConfig, spec: PrefSpec, layout=None):
  """Compiled ``(params, batch, hyper) -> sums`` without gradients (held-out evaluation): the
  weighted metric sums of one batch (add them over batches, then :func:`finalize_metrics`).
  KTO's ``z_ref`` is taken over this batch."""
  objective = PreferenceObjective(graphdef, config, spec)

  def metrics(params, batch, hp: PrefHyper):
    batch, context, _ = objective.begin(params, batch, hp)
    return objective.loss(params, batch, context, hp)[1][0]

  if layout is not None:
    return layout.jit(metrics)
  return jax.jit(metrics)


def batch_type(spec: PrefSpec) -> type:
  return PairBatch if spec.paired else UnpairedBatch

