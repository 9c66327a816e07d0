"""Train state and optimizer.

``TrainState`` holds what an update changes: trainable parameters, their optax state, the step and
the RNG key; PPO adds the value network's parameters and optimizer state. The frozen reference
policy is *not* part of it: it is a separate parameter tree, passed to the functions that need it,
with no optimizer state (docs/architecture.md principle 2).

The learning rate is a traced hyper-parameter: the optax transformation stops before the step
size, and :func:`apply_updates` multiplies by ``lr · schedule(step)`` where ``lr`` is a traced
scalar and ``schedule`` a unit-peak optax schedule (warm-up, then constant / cosine / linear).
Changing ``lr`` therefore never recompiles.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from rlx.config import OptimSection, Optimizer, Schedule
from rlx.models.lora import combine, frozen_view, has_adapters, partition, trainable_only

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """params, opt_state, step (int32 scalar), rng (uint32[2] key); optional value network."""

  params: PyTree
  opt_state: PyTree
  step: jax.Array
  rng: jax.Array
  value_params: PyTree = None
  value_opt_state: PyTree = None


@flax.struct.dataclass
class OptimizerDef:
  """The static half of the optimizer: the transformation (without step size) and the schedule."""

  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  schedule: Callable[[jax.Array], jax.Array] = flax.struct.field(pytree_node=False)


def unit_schedule(cfg: OptimSection, total_steps: int) -> optax.Schedule:
  """Warm-up from 0 to 1 over ``warmup_steps``, then constant / cosine / linear to ``end_lr_factor``."""
  warmup = int(cfg.warmup_steps)
  decay = max(int(total_steps) - warmup, 1)
  if cfg.schedule is Schedule.CONSTANT:
    after = optax.constant_schedule(1.0)
  elif cfg.schedule is Schedule.COSINE:
    after = optax.cosine_decay_schedule(1.0, decay, alpha=cfg.end_lr_factor)
  else:
    after = optax.linear_schedule(1.0, cfg.end_lr_factor, decay)
  if warmup == 0:
    return after
  # Step s of the warm-up uses (s + 1) / warmup so that the first update is not a no-op.
  warm = optax.linear_schedule(1.0 / warmup, 1.0, warmup - 1) if warmup > 1 else (
      optax.constant_schedule(1.0))
  return optax.join_schedules([warm, after], [warmup])


def scale_lora_b(ratio: float) -> optax.GradientTransformation:
  """LoRA+ (Hayou et al., 2024): the updates of every LoRA ``B`` matrix (a ``lora_b`` leaf)
  times ``ratio``, so B moves with step size ``ratio · lr`` and A with ``lr``."""

  def is_b(path) -> bool:
    return any(getattr(k, "key", None) == "lora_b" for k in path)

  def update(updates, state, params=None):
    del params
    return jax.tree_util.tree_map_with_path(lambda p, u: u * ratio if is_b(p) else u,
                                            updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(cfg: OptimSection, total_steps: int) -> OptimizerDef:
  """Gradient clipping → Adam(W)/SGD direction → (decoupled weight decay) → (LoRA+ scaling of
  the B adapters, ``cfg.lora_plus_ratio``); step size applied later."""
  parts = []
  if cfg.max_grad_norm > 0:
    parts.append(optax.clip_by_global_norm(cfg.max_grad_norm))
  if cfg.name in (Optimizer.ADAMW, Optimizer.ADAM):
    parts.append(optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
  if cfg.name is Optimizer.ADAMW and cfg.weight_decay > 0:
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  if cfg.lora_plus_ratio != 1.0:
    parts.append(scale_lora_b(cfg.lora_plus_ratio))
  # (plain SGD without clipping has no part: optax.chain() of nothing fails)
  return OptimizerDef(tx=optax.chain(*parts) if parts else optax.identity(),
                      schedule=unit_schedule(cfg, total_steps))


def apply_updates(opt: OptimizerDef, params, opt_state, grads, step, lr, active=None):
  """One optimizer step with the traced peak ``lr``; returns ``(params, opt_state, metrics)``.

  ``active`` (a traced bool) skips the step when false: params and optimizer state come back
  unchanged (e.g. a minibatch of padding rows only; Adam would otherwise still move the params
  along its momentum). The step counter, and so the schedule, advances either way.
  """
  new_updates, new_opt_state = opt.tx.update(grads, opt_state, params)
  scale = -jnp.asarray(lr, jnp.float32) * opt.schedule(step)
  new_params = jax.tree.map(lambda p, u: (p + scale * u).astype(p.dtype), params, new_updates)
  metrics = {"grad_norm": optax.tree.norm(grads), "lr": -scale}
  if active is None:
    return new_params, new_opt_state, metrics
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)
  return keep(new_params, params), keep(new_opt_state, opt_state), metrics


def init_train_state(opt: OptimizerDef, params, seed: int, value_params=None) -> TrainState:
  """A fresh state; optimizer state for the trainable parameters only (a LoRA model's
  adapters, ``rlx.models.lora.partition``)."""
  rng = jax.random.PRNGKey(seed)
  return TrainState(
      params=params, opt_state=opt.tx.init(trainable_only(params)), step=jnp.zeros((), jnp.int32),
      rng=rng, value_params=value_params,
      value_opt_state=None if value_params is None else opt.tx.init(trainable_only(value_params)))


def create_train_state(opt: OptimizerDef, params, seed: int, value_params=None, *,
                       layout=None) -> TrainState:
  """:func:`init_train_state`, laid out on ``layout`` (a ``rlx.runtime.mesh.Layout``) if given.

  The sharded recipe: ``jax.eval_shape`` of the initialisation → shardings from the logical axes
  of every parameter-like leaf (Adam's moments inherit them from the parameters; step and RNG
  are replicated) → one ``jax.jit(init, out_shardings=...)``, so the optimizer state is created
  in place, shard by shard, and no device or host ever holds a full copy. ``params`` (and
  ``value_params``) are placed in their shardings first if they are not already there (e.g.
  parameters from ``rlx.models.init_params(..., mesh=)`` or ``load_hf(..., mesh=)`` are).
  """
  if layout is None:
    return init_train_state(opt, params, seed, value_params)
  # A LoRA model's frozen base is placed, never passed through the compiled init (which would
  # return a second copy of it).
  params, frozen = partition(layout.put_tree(params))
  value_params, value_frozen = partition(
      None if value_params is None else layout.put_tree(value_params))
  init = lambda p, vp: init_train_state(opt, p, seed, vp)
  in_shardings = (layout.tree_shardings(params), layout.tree_shardings(value_params))
  out_shardings = layout.tree_shardings(jax.eval_shape(init, params, value_params))
  params, value_params = layout.put((params, value_params), in_shardings)
  state = jax.jit(init, in_shardings=in_shardings, out_shardings=out_shardings)(params,
                                                                                value_params)
  return state.replace(params=combine(state.params, frozen),
                       value_params=combine(state.value_params, value_frozen))


def frozen_copy(params, dtype: str = ""):
  """A frozen model's parameters (the reference or initial policy) as their own buffers: the
  train state starts from the same arrays and donates them at its first update. ``dtype``
  (``mesh.reference_dtype``, "" = unchanged) casts; a cast to the dtype an array already has
  returns that very array, so that case copies too. Shardings are kept.

  A LoRA model's snapshot copies (and casts) its adapters only and shares the frozen base
  arrays with the train state (``rlx.models.lora.frozen_view``): one copy of the base."""
  if has_adapters(params):
    return frozen_view(params, lambda x: x.astype(dtype) if dtype and x.dtype != dtype
                       else jnp.copy(x))
  return jax.tree.map(
      lambda x: x.astype(dtype) if dtype and x.dtype != dtype else jnp.copy(x), params)
