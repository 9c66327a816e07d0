"""LaSeR (docs/algorithms.md §9): the policy's last-token self-reward, trained to predict the verifier.

The self-reward of a finished completion ``y`` of prompt ``x`` is

  ``r_s = β_v · (log π(z | x, y) − c_ref)``

read at the position after the completion's last token (its stop token): the log-probability the
policy gives a fixed token ``z`` there. Training adds the auxiliary loss

  ``α · mean_i w_i · 1[finished_i] · (r_s,i − r_v,i)²``

(``r_v`` the verifier reward, ``w`` class-balanced over finished samples, the mean over the
minibatch's rows) to the policy loss, and optionally mixes advantages,
``A = (1 − τ)·A_v + τ·A_s`` for groups whose ``std(r_s) > 0.1``, ``A_s`` the GRPO advantages of
``r_s``. ``c_ref`` is the frozen initial policy's ``log π_ref(z | x, y)`` per sample (the paper's
choice) or a constant.

Everything here is jax and runs inside the compiled preparation and update; the host-side numpy
versions in ``rlx.rewards.label_free`` (``laser_class_weights``, ``laser_aux_loss``,
``laser_mix_advantages``) are the reference the tests compare with.
"""

from __future__ import annotations

import dataclasses

import flax
import jax
import jax.numpy as jnp

from rlx import core
from rlx import models
from rlx.algorithms.common import positions_from_mask, unembed_matrix, vocab_chunk

MIX_STD_THRESHOLD = 0.1  # groups whose std(r_s) exceeds this get mixed advantages
F1_THRESHOLD = 0.5  # r_s > 0.5 predicts "verified correct" (r_v ∈ {0, 1})


def last_positions(attention_mask: jax.Array) -> jax.Array:
  """``[B]`` index of the last real token of each ``[B,S]`` row."""
  s = attention_mask.shape[1]
  idx = jnp.arange(s)[None, :]
  return jnp.max(jnp.where(attention_mask > 0, idx, -1), axis=1).clip(0)


def token_logprob_after(hidden: jax.Array, attention_mask: jax.Array, unembed: jax.Array,
                        token: int, config: models.ModelConfig, chunk_size: int) -> jax.Array:
  """``[B]`` float32 ``log π(z | row)``: the next-token distribution (temperature 1) after the
  last real token, from final hidden states ``[B,S,D]``."""
  last = last_positions(attention_mask)
  h = jnp.take_along_axis(hidden, last[:, None, None], axis=1)  # [B,1,D]
  z = jnp.full((hidden.shape[0], 1), token, jnp.int32)
  lp = core.logprobs_from_hidden(h, unembed.astype(h.dtype), z, 1.0,
                                 chunk_size=vocab_chunk(config.vocab_size, chunk_size),
                                 softcap=config.final_logit_softcap)
  return lp[:, 0]


def sequence_token_logprob(graphdef, params, config: models.ModelConfig, tokens, attention_mask,
                           token: int, chunk_size: int) -> jax.Array:
  """``[B]`` ``log π(z | row)`` with one forward pass of ``params`` over ``tokens [B,S]``."""
  h, _ = models.hidden_states(graphdef, params, tokens, positions_from_mask(attention_mask),
                              attention_mask)
  return token_logprob_after(h, attention_mask, unembed_matrix(params, config), token, config,
                             chunk_size)


def class_weights(r_v: jax.Array, finished: jax.Array) -> jax.Array:
  """Class-balanced ``[B]`` weights over finished rows: ``n_fin/(2·n_pos)`` for verified-correct
  (``r_v > 0.5``), ``n_fin/(2·n_neg)`` for the others, 0 for unfinished (or padding) rows."""
  fin = finished > 0
  pos = (r_v > 0.5) & fin
  neg = ~pos & fin
  n = jnp.sum(fin).astype(jnp.float32)
  w_pos = n / (2.0 * jnp.maximum(jnp.sum(pos), 1))
  w_neg = n / (2.0 * jnp.maximum(jnp.sum(neg), 1))
  return jnp.where(pos, w_pos, jnp.where(neg, w_neg, 0.0)).astype(jnp.float32)


def mix_advantages(a_v: jax.Array, a_s: jax.Array, r_s: jax.Array, group_ids: jax.Array, tau,
                   threshold: float = MIX_STD_THRESHOLD) -> tuple[jax.Array, jax.Array]:
  """``(A, mixed [B])``: ``(1−τ)A_v + τA_s`` on rows of groups with unbiased ``std(r_s) >
  threshold`` (groups of one never mix), ``A_v`` elsewhere. ``a_v``/``a_s`` are ``[B,T]``."""
  n, _, std = core.group_stats(r_s, group_ids)
  mixed = (n > 1) & (std > threshold)
  tau = jnp.asarray(tau, jnp.float32)
  return jnp.where(mixed[:, None], (1 - tau) * a_v + tau * a_s, a_v), mixed


def f1_metrics(r_s: jax.Array, r_v: jax.Array, rows: jax.Array) -> dict[str, jax.Array]:
  """Self-verification of the last-token score over ``rows`` (finished, real): ``r_s > 0.5``
  predicts ``r_v > 0.5``. Precision, recall, F1 and accuracy (0 where undefined)."""
  rows = rows > 0
  pred = (r_s > F1_THRESHOLD) & rows
  true = (r_v > 0.5) & rows
  tp = jnp.sum(pred & true).astype(jnp.float32)
  precision = tp / jnp.maximum(jnp.sum(pred), 1)
  recall = tp / jnp.maximum(jnp.sum(true), 1)
  f1 = 2 * precision * recall / jnp.maximum(precision + recall, 1e-8)
  accuracy = jnp.sum((pred == true) & rows) / jnp.maximum(jnp.sum(rows), 1)
  return {"laser/precision": precision, "laser/recall": recall, "laser/f1": f1,
          "laser/accuracy": accuracy}


@dataclasses.dataclass(frozen=True)
class LaserSpec:
  """LaSeR as an auxiliary-loss plug-in of the policy objective (``rlx.algorithms.grpo.AuxLoss``)
  and its static settings: the token ``z``, whether ``c_ref`` comes from the reference model,
  whether advantages are mixed, the vocabulary chunk. Its inputs live in ``TrainBatch.aux``
  (``laser_target``, ``laser_weight``, ``laser_c_ref``, filled by :func:`make_laser_prepare`);
  its coefficients in ``Hyper.aux`` (``laser/coef`` = α, ``laser/beta`` = β_v)."""

  token: int
  ref_baseline: bool = True
  mix: bool = False
  chunk_size: int = 4096
  name: str = "laser"
  inputs: tuple[str, ...] = ("laser_target", "laser_weight", "laser_c_ref")

  def begin(self, minibatch):
    """LaSeR's loss is a mean over the minibatch's rows: fold ``1/rows`` into the weights, so
    that the micro-batch terms add up to it exactly."""
    b = minibatch.loss_mask.shape[0]
    return minibatch.replace(aux={**minibatch.aux,
                                  "laser_weight": minibatch.aux["laser_weight"] / b})

  def term(self, hidden, mb, params, config: models.ModelConfig, hp):
    return aux_term(hidden, mb, params, config, self, hp.aux["laser/beta"])


def aux_from_config(algo, chunk_size: int = 4096, vocab_size: int | None = None
                    ) -> LaserSpec | None:
  """LaSeR's plug-in (None when ``algo.laser_alpha == 0``); ``laser_token = -1`` is the last
  vocabulary id (a token the task vocabulary never emits in solutions)."""
  if algo.laser_alpha <= 0:
    return None
  token = algo.laser_token
  if token < 0:
    if vocab_size is None:
      raise ValueError("laser_token=-1 needs the vocabulary size")
    token = vocab_size - 1
  return LaserSpec(token=int(token), ref_baseline=algo.laser_ref, mix=algo.laser_tau > 0,
                   chunk_size=chunk_size)


def hyper_from_config(algo) -> dict[str, float]:
  """LaSeR's traced coefficients in ``Hyper.aux`` (empty when off)."""
  if algo.laser_alpha <= 0:
    return {}
  return {"laser/coef": algo.laser_alpha, "laser/beta": algo.laser_beta}


@flax.struct.dataclass
class LaserHyper:
  beta_v: jax.Array
  c_ref: jax.Array  # the constant c_ref (unused with ref_baseline)
  tau: jax.Array
  adv_eps: jax.Array

  @classmethod
  def create(cls, *, beta_v=0.1, c_ref=0.0, tau=0.1, adv_eps=1e-6):
    f = lambda x: jnp.asarray(x, jnp.float32)
    return cls(f(beta_v), f(c_ref), f(tau), f(adv_eps))


def make_laser_prepare(graphdef, config: models.ModelConfig, spec: LaserSpec):
  """Compiled ``(params, ref_params, batch, r_v, finished, group_ids, hp) -> (batch, metrics)``.

  Adds ``laser_target`` (``r_v``), ``laser_weight`` (``w·1[finished]``, 0 on padding rows) and
  ``laser_c_ref`` to a ``TrainBatch``'s ``aux`` and, with ``spec.mix``, mixes its advantages. ``r_s`` is
  measured under ``params`` (the policy that sampled the batch): its F1 against ``r_v`` on these
  not-yet-trained-on samples is the logged self-verification score.
  """

  @jax.jit
  def prepare(params, ref_params, batch, r_v, finished, group_ids, hp: LaserHyper):
    lp = lambda p: sequence_token_logprob(graphdef, p, config, batch.tokens, batch.attention_mask,
                                          spec.token, spec.chunk_size)
    valid = (jnp.asarray(group_ids) >= 0).astype(jnp.float32)
    fin = jnp.asarray(finished, jnp.float32) * valid
    r_v = jnp.asarray(r_v, jnp.float32)
    c_ref = lp(ref_params) if spec.ref_baseline else jnp.full_like(r_v, hp.c_ref)
    r_s = hp.beta_v * (lp(params) - c_ref)
    weights = class_weights(r_v, fin) * fin
    adv = batch.advantages
    metrics = {"laser/self_reward": jnp.sum(r_s * fin) / jnp.maximum(jnp.sum(fin), 1.0),
               **f1_metrics(r_s, r_v, fin)}
    if spec.mix:
      a_s = core.grpo_advantages(r_s, group_ids, batch.loss_mask, hp.adv_eps,
                                 row_mask=valid)[0]
      adv, mixed = mix_advantages(adv, a_s, r_s, group_ids, hp.tau)
      metrics["laser/mixed_fraction"] = jnp.sum(mixed * valid) / jnp.maximum(jnp.sum(valid), 1)
    batch = batch.replace(advantages=adv, aux={
        **batch.aux, "laser_target": r_v, "laser_weight": weights,
        "laser_c_ref": jax.lax.stop_gradient(c_ref)})
    return batch, metrics

  return prepare


def aux_term(hidden, mb, params, config: models.ModelConfig, spec: LaserSpec, beta_v):
  """This micro-batch's ``Σ_i laser_weight_i · (r_s,i − r_v,i)²`` (weights already divided by
  the minibatch's row count, so micro-batch terms add up to the minibatch mean)."""
  lp = token_logprob_after(hidden, mb.attention_mask, unembed_matrix(params, config), spec.token,
                           config, spec.chunk_size)
  r_s = beta_v * (lp - mb.aux["laser_c_ref"])
  return jnp.sum(mb.aux["laser_weight"] * jnp.square(r_s - mb.aux["laser_target"]))
