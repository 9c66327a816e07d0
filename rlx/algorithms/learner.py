"""The one learner: epochs × minibatches × micro-batches with exact global normalisation.

Every training objective (SFT, the GRPO family, PPO with its critic, the DPO family, reward
models) plugs into :func:`make_update` as an :class:`Objective`. Inside one compiled function:
an outer ``lax.scan`` over ``epochs × minibatches`` optimizer steps (rows reshuffled every epoch
when there are several minibatches) and, per step, an inner ``lax.scan`` over micro-batches that
accumulates gradients. The objective computes its *global* denominator over the whole minibatch
first (``begin``) and every micro-batch contributes ``numerator / denominator``, so the summed
gradient is the minibatch gradient exactly, however the minibatch is split
(docs/algorithms.md §5).

Metric reductions are declared here, once, for every objective:
- ``sums`` of a micro-batch add up over micro-batches (loss terms that are already fractions of
  the minibatch objective, weighted sums and counts);
- ``means`` are weighted by the micro-batch's ``weight`` (e.g. its trained tokens) and divided
  by the minibatch's total weight; keys ending in ``_min`` / ``_max`` reduce by min / max;
- over the optimizer steps of one update, metrics are averaged weighted by each minibatch's
  ``weight`` (``_min`` / ``_max``: min / max over the steps that train anything), so a
  minibatch of padding rows only dilutes nothing;
- ``objective.finalize`` may turn sums into means (e.g. DPO's per-pair means).
A minibatch whose ``weight`` is 0 (padding rows only) leaves parameters and optimizer state
unchanged (``rlx.optim.apply_updates(active=...)``).

Parameter-efficient runs (``rlx.models.lora``): when the parameters hold ``Adapter`` leaves,
only those are differentiated and optimised; the frozen base enters the compiled update as a
separate argument that is *not* donated (and is not returned), so the reference model and the
train state share one copy of it. Adapters with ``lora.dropout`` drop inputs under a key folded
from the state's RNG, the optimizer step and the micro-batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from rlx.models.layers import lora_dropout
from rlx.models.lora import combine, partition
from rlx.optim import OptimizerDef, TrainState, apply_updates


@dataclasses.dataclass(frozen=True)
class LearnerSpec:
  """Static structure of an update: ``epochs × minibatches`` optimizer steps per batch, each
  accumulated over micro-batches of ``micro_batch_size`` rows (0 = the whole minibatch)."""

  epochs: int = 1
  minibatches: int = 1
  micro_batch_size: int = 0


class Objective(Protocol):
  """What a loss plugs into the learner.

  ``trains_value``: the train state's ``value_params`` are trained too; the loss then receives
  ``(params, value_params)``.
  """

  trains_value: bool

  def begin(self, params, minibatch, hp) -> tuple[Any, Any, dict]:
    """``(minibatch, context, metrics)`` before the micro-batch loop: ``context`` (the global
    denominator and any minibatch-wide statistic) is passed to every :meth:`loss` call."""

  def loss(self, params, micro_batch, context, hp) -> tuple[jax.Array, tuple[dict, dict, Any]]:
    """``(share of the minibatch loss, (sums, means, weight))`` of one micro-batch."""

  def weight(self, minibatch) -> jax.Array:
    """What the minibatch trains on (tokens, pairs); 0 skips the optimizer step."""

  def finalize(self, metrics: dict) -> dict:
    """Reduced metrics of a minibatch → reported metrics."""


def batch_rows(batch) -> int:
  return jax.tree.leaves(batch)[0].shape[0]


def split_micro(tree, num_micro: int):
  """``[B, ...]`` leaves → ``[num_micro, B/num_micro, ...]`` (for ``lax.scan``)."""
  return jax.tree.map(lambda x: x.reshape((num_micro, x.shape[0] // num_micro) + x.shape[1:]),
                      tree)


def _reduce_init(key: str):
  return jnp.full((), jnp.inf if key.endswith("_min") else -jnp.inf if key.endswith("_max")
                  else 0.0, jnp.float32)


def _reduce(key: str, acc, value, weight):
  if key.endswith("_min"):
    return jnp.minimum(acc, value)
  if key.endswith("_max"):
    return jnp.maximum(acc, value)
  return acc + value * weight


def minibatch_gradients(objective: Objective, params, minibatch, hp, micro_batch_size: int = 0,
                        dropout_key=None):
  """``(grads, metrics)`` of one minibatch, accumulated over micro-batches (exactly).

  ``grads`` has the structure of ``rlx.models.lora.partition(params)[0]``: every parameter, or
  only the adapters of a LoRA model (``None`` at the frozen leaves). ``dropout_key``: adapter
  dropout in the loss's forward passes (None: no dropout).
  """
  b = batch_rows(minibatch)
  micro = min(micro_batch_size or b, b)
  if b % micro:
    raise ValueError(f"micro_batch_size={micro} must divide the minibatch size {b}")
  minibatch, context, extra = objective.begin(params, minibatch, hp)
  trainable, frozen = partition(params)

  def loss(t, mb, i):
    drop = contextlib.nullcontext() if dropout_key is None else lora_dropout(
        jax.random.fold_in(dropout_key, i))
    with drop:
      return objective.loss(combine(t, frozen), mb, context, hp)

  grad_fn = jax.grad(loss, has_aux=True)
  n = b // micro
  micro_batches = split_micro(minibatch, n)

  def body(carry, xs):
    mb, i = xs
    grads, sums, means, total = carry
    g, (s, m, w) = grad_fn(trainable, mb, i)
    grads = jax.tree.map(jnp.add, grads, g)
    sums = {k: sums[k] + s[k] for k in sums}
    means = {k: _reduce(k, means[k], m[k], w) for k in means}
    return (grads, sums, means, total + w), None

  first = jax.tree.map(lambda x: x[0], micro_batches)
  _, (s0, m0, _) = jax.eval_shape(grad_fn, trainable, first, 0)
  init = (jax.tree.map(jnp.zeros_like, trainable), {k: jnp.zeros((), jnp.float32) for k in s0},
          {k: _reduce_init(k) for k in m0}, jnp.zeros((), jnp.float32))
  (grads, sums, means, total), _ = jax.lax.scan(body, init,
                                                (micro_batches, jnp.arange(n, dtype=jnp.int32)))
  total = jnp.maximum(total, 1e-8)
  means = {k: v if k.endswith(("_min", "_max")) else v / total for k, v in means.items()}
  return grads, {**objective.finalize({**sums, **means}), **extra}


def minibatch_order(rng, b: int, spec: LearnerSpec):
  """``(rng', [epochs·minibatches, b/minibatches] row ids)``: a fresh permutation per epoch when
  the batch is split into several minibatches, the identity otherwise."""
  if b % spec.minibatches:
    raise ValueError(f"minibatches={spec.minibatches} must divide the batch size {b}")
  rng, shuffle_key = jax.random.split(rng)
  if spec.minibatches > 1:
    order = jax.vmap(lambda k: jax.random.permutation(k, b))(
        jax.random.split(shuffle_key, spec.epochs))
  else:
    order = jnp.broadcast_to(jnp.arange(b), (spec.epochs, b))
  return rng, order.reshape(spec.epochs * spec.minibatches, b // spec.minibatches)


_DROPOUT_STREAM = 0x4C6F5241  # fold_in tag of the adapter-dropout keys
WEIGHT = "@weight"  # per optimizer step: what its minibatch trained on


def reduce_steps(metrics: dict) -> dict:
  """``[steps]`` metrics of one update → scalars: means weighted by each step's minibatch
  weight, ``_min`` / ``_max`` over the steps that trained anything (every step when none did)."""
  w = metrics.pop(WEIGHT)
  if w.shape[0] == 1:  # one optimizer step: its metrics as they are
    return {k: v[0] for k, v in metrics.items()}
  active = w > 0
  live = jnp.where(jnp.any(active), active, True)
  w = jnp.where(jnp.any(active), w, 1.0)
  out = {}
  for k, v in metrics.items():
    if k.endswith("_min"):
      out[k] = jnp.min(jnp.where(live, v, jnp.inf))
    elif k.endswith("_max"):
      out[k] = jnp.max(jnp.where(live, v, -jnp.inf))
    else:
      out[k] = jnp.sum(v * w) / jnp.sum(w)
  return out


def _optimizer_step(objective: Objective, opt: OptimizerDef, spec: LearnerSpec, batch, hp,
                    frozen, dropout_key):
  """One ``lax.scan`` body: the minibatch ``ids`` → gradients → optimizer step(s). The carry
  holds the trainable parts; ``frozen`` = (policy base, value base) or Nones."""

  def opt_step(carry, ids):
    params, value_params, opt_state, value_opt_state, step = carry
    minibatch = jax.tree.map(lambda x: jnp.take(x, ids, axis=0), batch)
    full = combine(params, frozen[0])
    value_full = combine(value_params, frozen[1])
    trainable = (full, value_full) if objective.trains_value else full
    grads, metrics = minibatch_gradients(objective, trainable, minibatch, hp,
                                         spec.micro_batch_size,
                                         jax.random.fold_in(dropout_key, step))
    weight = objective.weight(minibatch)
    active = weight > 0
    g, vg = grads if objective.trains_value else (grads, None)
    params, opt_state, om = apply_updates(opt, params, opt_state, g, step, hp.lr, active)
    metrics = {**metrics, **om, WEIGHT: weight}
    if objective.trains_value:
      value_params, value_opt_state, vom = apply_updates(opt, value_params, value_opt_state, vg,
                                                         step, hp.lr, active)
      metrics["value_grad_norm"] = vom["grad_norm"]
    return (params, value_params, opt_state, value_opt_state, step + 1), metrics

  return opt_step


class Update:
  """The compiled update ``(state, batch, hp) -> (state, metrics)``: splits a LoRA state into
  its trainable part (donated to the compiled step) and its frozen base (passed, not donated,
  not returned), and puts them back together. ``lower`` gives the AOT lowering."""

  def __init__(self, compiled):
    self.compiled = compiled

  @staticmethod
  def split(state: TrainState):
    p, pf = partition(state.params)
    v, vf = partition(state.value_params)
    return state.replace(params=p, value_params=v), (pf, vf)

  def __call__(self, state: TrainState, batch, hp):
    trainable, frozen = self.split(state)
    new, metrics = self.compiled(trainable, frozen, batch, hp)
    return new.replace(params=combine(new.params, frozen[0]),
                       value_params=combine(new.value_params, frozen[1])), metrics

  def lower(self, state: TrainState, batch, hp):
    trainable, frozen = self.split(state)
    return self.compiled.lower(trainable, frozen, batch, hp)

  def _cache_size(self) -> int:
    """Compiled programs so far (``jax.jit``'s cache; tests check nothing recompiles)."""
    return self.compiled._cache_size()


def make_update(objective: Objective, opt: OptimizerDef, spec: LearnerSpec = LearnerSpec(),
                layout=None) -> Update:
  """The compiled update ``(state, batch, hp) -> (state, metrics)``; state donated (the frozen
  base of a LoRA model excepted).

  ``hp`` is a struct of traced hyper-parameters with at least ``lr`` (changing any value never
  recompiles). With ``layout`` (``rlx.runtime.mesh.Layout``) compiled with explicit shardings
  read off the types: state by its parameters' logical axes, the batch's rows fields over
  ``data × fsdp``, hyper-parameters and metrics replicated.
  """

  def update(state: TrainState, frozen, batch, hp):
    dropout_key = jax.random.fold_in(state.rng, _DROPOUT_STREAM)  # leaves the RNG stream as is
    rng, order = minibatch_order(state.rng, batch_rows(batch), spec)
    carry = (state.params, state.value_params, state.opt_state, state.value_opt_state,
             state.step)
    (params, value_params, opt_state, value_opt_state, step), metrics = jax.lax.scan(
        _optimizer_step(objective, opt, spec, batch, hp, frozen, dropout_key), carry, order)
    return state.replace(params=params, value_params=value_params, opt_state=opt_state,
                         value_opt_state=value_opt_state, step=step, rng=rng), \
        reduce_steps(metrics)

  if layout is not None:
    return Update(layout.jit(update, donate_argnums=0))
  return Update(jax.jit(update, donate_argnums=0))
