"""Preference-optimisation and reward-model losses (docs/algorithms.md §7).

Inputs are per-pair *sequence* log-probs (sums over response tokens), ``[B]`` each:
``ℓ_c``/``ℓ_r`` under the policy and ``ℓ_c^ref``/``ℓ_r^ref`` under the reference, with
``c = ℓ_c − ℓ_c^ref``, ``j = ℓ_r − ℓ_r^ref`` and ``Δ = c − j``. Every loss returns
``(loss[B], metrics)``; the caller reduces (mean over pairs). Metrics: ``rewards/chosen`` (``β·c``),
``rewards/rejected`` (``β·j``), ``rewards/margin`` and ``rewards/accuracy`` (``Δ > 0``).
An optional per-pair ``margin[B]`` (e.g. margin-aware DPO) is subtracted from ``βΔ`` inside the
sigmoid-type losses.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from rlx.core import _checks as check

Array = jax.Array
sg = jax.lax.stop_gradient
log_sigmoid = jax.nn.log_sigmoid


class PreferenceLoss(enum.Enum):
  DPO = "dpo"
  ROBUST = "robust"
  IPO = "ipo"
  HINGE = "hinge"
  SIMPO = "simpo"
  ORPO = "orpo"
  KTO = "kto"


PAIR = "[B] or []"  # per pair, or one pair (under vmap)


def _check(where, margin=None, scalars=None, **per_pair) -> None:
  """Per-pair sequence quantities ``[B]`` (``[]`` for one pair) of one shape; ``margin`` per pair
  or one scalar; ``scalars`` hyper-parameters."""
  check.ranks(where, **{k: (v, PAIR) for k, v in per_pair.items()}, margin=(margin, PAIR),
              **{k: (v, "[]") for k, v in (scalars or {}).items()})
  check.same_shape(where, **per_pair)
  if margin is not None and jnp.ndim(margin) > 0:
    check.same_shape(where, **per_pair, margin=margin)


def _f32(*xs):
  return tuple(jnp.asarray(x, jnp.float32) for x in xs)


def _metrics(chosen_reward, rejected_reward) -> dict[str, Array]:
  chosen_reward, rejected_reward = sg(chosen_reward), sg(rejected_reward)
  return {
      "rewards/chosen": jnp.mean(chosen_reward),
      "rewards/rejected": jnp.mean(rejected_reward),
      "rewards/margin": jnp.mean(chosen_reward - rejected_reward),
      "rewards/accuracy": jnp.mean((chosen_reward > rejected_reward).astype(jnp.float32)),
  }


def _logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, margin):
  policy_chosen, policy_rejected, ref_chosen, ref_rejected = _f32(
      policy_chosen, policy_rejected, ref_chosen, ref_rejected)
  c = policy_chosen - sg(ref_chosen)
  j = policy_rejected - sg(ref_rejected)
  z = beta * (c - j)
  if margin is not None:
    z = z - sg(jnp.asarray(margin, jnp.float32))
  return z, beta * c, beta * j


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1,
             label_smoothing=0.0, margin=None) -> tuple[Array, dict[str, Array]]:
  """DPO (Rafailov et al., 2023), sigmoid form with cDPO label smoothing ε:

  ``−(1−ε)·logσ(βΔ) − ε·logσ(−βΔ)``.
  """
  _check("dpo_loss", margin, dict(beta=beta, label_smoothing=label_smoothing),
         policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
         ref_rejected=ref_rejected)
  z, rc, rr = _logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, margin)
  loss = -(1.0 - label_smoothing) * log_sigmoid(z) - label_smoothing * log_sigmoid(-z)
  return loss, _metrics(rc, rr)


def robust_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1,
                    label_smoothing=0.1, margin=None) -> tuple[Array, dict[str, Array]]:
  """Robust DPO (Chowdhury et al., 2024): ``[−(1−ε)·logσ(βΔ) + ε·logσ(−βΔ)] / (1 − 2ε)``, ε < ½."""
  _check("robust_dpo_loss", margin, dict(beta=beta, label_smoothing=label_smoothing),
         policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
         ref_rejected=ref_rejected)
  z, rc, rr = _logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, margin)
  loss = (-(1.0 - label_smoothing) * log_sigmoid(z) + label_smoothing * log_sigmoid(-z)) / (
      1.0 - 2.0 * label_smoothing)
  return loss, _metrics(rc, rr)


def ipo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1,
             chosen_lengths=None, rejected_lengths=None) -> tuple[Array, dict[str, Array]]:
  """IPO (Azar et al., 2023): ``(Δ − 1/(2β))²``.

  With ``chosen_lengths``/``rejected_lengths`` (``[B]``) given, ``c`` and ``j`` are divided by the
  response lengths first (length-normalised IPO, as in TRL).
  """
  _check("ipo_loss", None, dict(beta=beta), policy_chosen=policy_chosen,
         policy_rejected=policy_rejected, ref_chosen=ref_chosen, ref_rejected=ref_rejected,
         chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
  policy_chosen, policy_rejected, ref_chosen, ref_rejected = _f32(
      policy_chosen, policy_rejected, ref_chosen, ref_rejected)
  c = policy_chosen - sg(ref_chosen)
  j = policy_rejected - sg(ref_rejected)
  if (chosen_lengths is None) != (rejected_lengths is None):
    raise ValueError("length-normalised IPO needs both chosen_lengths and rejected_lengths")
  if chosen_lengths is not None:
    c = c / jnp.maximum(jnp.asarray(chosen_lengths, jnp.float32), 1.0)
    j = j / jnp.maximum(jnp.asarray(rejected_lengths, jnp.float32), 1.0)
  loss = jnp.square(c - j - 1.0 / (2.0 * beta))
  return loss, _metrics(beta * c, beta * j)


def hinge_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1,
               margin=None) -> tuple[Array, dict[str, Array]]:
  """SLiC-style hinge (Zhao et al., 2023): ``relu(1 − βΔ)``."""
  _check("hinge_loss", margin, dict(beta=beta), policy_chosen=policy_chosen,
         policy_rejected=policy_rejected, ref_chosen=ref_chosen, ref_rejected=ref_rejected)
  z, rc, rr = _logits(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, margin)
  return jax.nn.relu(1.0 - z), _metrics(rc, rr)


def simpo_loss(policy_chosen, policy_rejected, chosen_lengths, rejected_lengths, *, beta=2.0,
               gamma=0.5) -> tuple[Array, dict[str, Array]]:
  """SimPO (Meng et al., 2024), reference-free: ``−logσ(β(ℓ_c/|y_c| − ℓ_r/|y_r|) − γ)``.

  Metrics use the length-normalised rewards ``β·ℓ/|y|``.
  """
  _check("simpo_loss", None, dict(beta=beta, gamma=gamma), policy_chosen=policy_chosen,
         policy_rejected=policy_rejected, chosen_lengths=chosen_lengths,
         rejected_lengths=rejected_lengths)
  policy_chosen, policy_rejected = _f32(policy_chosen, policy_rejected)
  rc = beta * policy_chosen / jnp.maximum(jnp.asarray(chosen_lengths, jnp.float32), 1.0)
  rr = beta * policy_rejected / jnp.maximum(jnp.asarray(rejected_lengths, jnp.float32), 1.0)
  return -log_sigmoid(rc - rr - gamma), _metrics(rc, rr)


def log1mexp(x: Array) -> Array:
  """``log(1 − exp(x))`` for ``x < 0``, stable (Mächler, 2012): ``log(−expm1(x))`` near 0,
  ``log1p(−exp(x))`` below ``−log 2``."""
  x = jnp.where(x < -1e-12, x, -1e-12)  # where, not minimum: no NaN gradient leaks at x >= 0
  near_zero = x > -jnp.log(2.0)
  # Double where: each branch only ever sees inputs where it is finite, so neither value nor
  # gradient of the unused branch can be inf/NaN.
  hi = jnp.where(near_zero, x, -1.0)
  lo = jnp.where(near_zero, -1.0, x)
  return jnp.where(near_zero, jnp.log(-jnp.expm1(hi)), jnp.log1p(-jnp.exp(lo)))


def orpo_loss(policy_chosen, policy_rejected, chosen_lengths, rejected_lengths, *,
              lam=0.1) -> tuple[Array, dict[str, Array]]:
  """ORPO (Hong et al., 2024), reference-free: ``NLL(chosen) − λ·logσ(log_odds_c − log_odds_r)``.

  ``p̄ = ℓ/|y|`` is the mean token log-prob, ``log_odds = p̄ − log1mexp(p̄)``, ``NLL = −p̄_c``.
  Metrics add ``log_odds_ratio`` and ``nll``; rewards are ``λ·p̄``.
  """
  _check("orpo_loss", None, dict(lam=lam), policy_chosen=policy_chosen,
         policy_rejected=policy_rejected, chosen_lengths=chosen_lengths,
         rejected_lengths=rejected_lengths)
  policy_chosen, policy_rejected = _f32(policy_chosen, policy_rejected)
  pc = policy_chosen / jnp.maximum(jnp.asarray(chosen_lengths, jnp.float32), 1.0)
  pr = policy_rejected / jnp.maximum(jnp.asarray(rejected_lengths, jnp.float32), 1.0)
  log_odds = (pc - log1mexp(pc)) - (pr - log1mexp(pr))
  ratio_term = log_sigmoid(log_odds)
  loss = -pc - lam * ratio_term
  metrics = _metrics(lam * pc, lam * pr)
  metrics["log_odds_ratio"] = jnp.mean(sg(ratio_term))
  metrics["nll"] = jnp.mean(sg(-pc))
  return loss, metrics


def kto_reference_point(policy_kl_logps, ref_kl_logps, mask=None) -> Array:
  """KTO's ``z_ref = max(mean(ℓ − ℓ_ref) over mismatched pairs, 0)``, detached.

  ``policy_kl_logps``/``ref_kl_logps`` are ``[B]`` sequence log-probs of *mismatched*
  prompt/completion pairs; ``mask[B]`` selects the valid ones. Compute it over the whole batch
  (all micro-batches and devices) and pass it to :func:`kto_loss`.
  """
  _check("kto_reference_point", policy_kl_logps=policy_kl_logps, ref_kl_logps=ref_kl_logps,
         mask=mask)
  check.numeric("kto_reference_point", "mask", mask)
  d = jnp.asarray(policy_kl_logps, jnp.float32) - jnp.asarray(ref_kl_logps, jnp.float32)
  if mask is None:
    mask = jnp.ones_like(d)
  mask = jnp.asarray(mask, jnp.float32)
  mean = jnp.sum(jnp.where(mask > 0, d, 0.0)) / jnp.maximum(jnp.sum(mask), 1e-8)
  return sg(jnp.maximum(mean, 0.0))


def kto_loss(policy_logps, ref_logps, desirable, z_ref, *, beta=0.1, desirable_weight=1.0,
             undesirable_weight=1.0) -> tuple[Array, dict[str, Array]]:
  """KTO (Ethayarajh et al., 2024) on unpaired examples.

  With ``r = ℓ − ℓ_ref`` per example: desirable ``w_d(1 − σ(β(r − z_ref)))``, undesirable
  ``w_u(1 − σ(β(z_ref − r)))``.

  Args:
    policy_logps, ref_logps: ``[B]`` sequence log-probs.
    desirable: ``[B]`` bool, True for desirable examples.
    z_ref: scalar from :func:`kto_reference_point`.
  """
  _check("kto_loss", None, dict(z_ref=z_ref, beta=beta, desirable_weight=desirable_weight,
                                undesirable_weight=undesirable_weight),
         policy_logps=policy_logps, ref_logps=ref_logps, desirable=desirable)
  check.numeric("kto_loss", "desirable", desirable)
  policy_logps, ref_logps = _f32(policy_logps, ref_logps)
  desirable = jnp.asarray(desirable).astype(bool)
  r = policy_logps - sg(ref_logps)
  z_ref = sg(jnp.asarray(z_ref, jnp.float32))
  loss = jnp.where(desirable,
                   desirable_weight * (1.0 - jax.nn.sigmoid(beta * (r - z_ref))),
                   undesirable_weight * (1.0 - jax.nn.sigmoid(beta * (z_ref - r))))
  d = desirable.astype(jnp.float32)
  br = sg(beta * r)
  metrics = {
      "rewards/chosen": jnp.sum(br * d) / jnp.maximum(jnp.sum(d), 1.0),
      "rewards/rejected": jnp.sum(br * (1 - d)) / jnp.maximum(jnp.sum(1 - d), 1.0),
      "kl": z_ref,
  }
  metrics["rewards/margin"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
  return loss, metrics


def bradley_terry_loss(chosen_scores, rejected_scores, *, margin=None,
                       center_coef=0.0) -> tuple[Array, dict[str, Array]]:
  """Reward-model loss (Bradley–Terry): ``−logσ(s_c − s_r − margin) + λ·(s_c + s_r)²``.

  The centering term (Eisenstein et al., 2023) averages to ``λ·mean((s_c + s_r)²)``.
  """
  _check("bradley_terry_loss", margin, dict(center_coef=center_coef),
         chosen_scores=chosen_scores, rejected_scores=rejected_scores)
  sc, sr = _f32(chosen_scores, rejected_scores)
  z = sc - sr
  if margin is not None:
    z = z - sg(jnp.asarray(margin, jnp.float32))
  loss = -log_sigmoid(z) + center_coef * jnp.square(sc + sr)
  return loss, _metrics(sc, sr)


_LOSSES = {
    PreferenceLoss.DPO: dpo_loss,
    PreferenceLoss.ROBUST: robust_dpo_loss,
    PreferenceLoss.IPO: ipo_loss,
    PreferenceLoss.HINGE: hinge_loss,
    PreferenceLoss.SIMPO: simpo_loss,
    PreferenceLoss.ORPO: orpo_loss,
    PreferenceLoss.KTO: kto_loss,
}


def get_preference_loss(kind: PreferenceLoss | str):
  """Resolve a preference-loss name once (outside jit) to its function."""
  return _LOSSES[PreferenceLoss(kind)]
