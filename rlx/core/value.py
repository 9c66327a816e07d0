"""Value loss, entropy bonus and the total loss (docs/algorithms.md §6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlx.core import _checks as check
from rlx.core.masked import masked_fill, masked_mean

Array = jax.Array
sg = jax.lax.stop_gradient


def value_loss(
    values: Array,
    old_values: Array,
    returns: Array,
    mask: Array,
    *,
    clip=0.5,
) -> tuple[Array, dict[str, Array]]:
  """Clipped value loss (PPO): ``V_c = V_old + clip(V − V_old, −c_v, c_v)``,
  ``L_V = ½·max((V − ret)², (V_c − ret)²)`` per token; aggregate like the policy loss.

  Args:
    values: ``[B,T]`` current critic values (differentiated).
    old_values: ``[B,T]`` values at rollout time (constant).
    returns: ``[B,T]`` regression targets (constant).
    mask: ``[B,T]`` loss mask.
    clip: ``c_v`` (traced).

  Returns:
    ``(loss[B,T], {"vf_clipfrac", "vpred_mean"})``.
  """
  check.ranks("value_loss", values=(values, "[B,T]"), old_values=(old_values, "[B,T]"),
              returns=(returns, "[B,T]"), mask=(mask, "[B,T]"), clip=(clip, "[]"))
  check.numeric("value_loss", "mask", mask)
  check.same_shape("value_loss", values=values, old_values=old_values, returns=returns, mask=mask)
  mask = jnp.asarray(mask).astype(bool)
  v = masked_fill(jnp.asarray(values, jnp.float32), mask)
  v_old = sg(masked_fill(jnp.asarray(old_values, jnp.float32), mask))
  ret = sg(masked_fill(jnp.asarray(returns, jnp.float32), mask))
  v_clipped = v_old + jnp.clip(v - v_old, -clip, clip)
  unclipped = jnp.square(v - ret)
  clipped = jnp.square(v_clipped - ret)
  loss = 0.5 * jnp.maximum(unclipped, clipped)
  metrics = {
      "vf_clipfrac": masked_mean(sg(clipped > unclipped).astype(jnp.float32), mask),
      "vpred_mean": masked_mean(sg(v), mask),
  }
  return masked_fill(loss, mask), metrics


def entropy_bonus(entropy: Array, mask: Array) -> Array:
  """Per-token entropy term (zero outside ``mask``); the total subtracts ``c_H·agg(H)``."""
  check.ranks("entropy_bonus", entropy=(entropy, "[B,T]"), mask=(mask, "[B,T]"))
  check.numeric("entropy_bonus", "mask", mask)
  check.same_shape("entropy_bonus", entropy=entropy, mask=mask)
  mask = jnp.asarray(mask).astype(bool)
  return masked_fill(jnp.asarray(entropy, jnp.float32), mask)


def total_loss(
    policy_loss: Array,
    *,
    value_loss: Array | float = 0.0,
    kl_loss: Array | float = 0.0,
    entropy: Array | float = 0.0,
    value_coef=0.5,
    beta=0.0,
    entropy_coef=0.0,
    aux_losses: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """``L = L_pg + c_V·L_V + β·L_kl − c_H·H + Σ aux`` from already-aggregated scalars.

  Returns the total and a dict of its (coefficient-weighted) parts for logging.
  """
  check.ranks("total_loss", policy_loss=(policy_loss, "[]"), value_loss=(value_loss, "[]"),
              kl_loss=(kl_loss, "[]"), entropy=(entropy, "[]"), value_coef=(value_coef, "[]"),
              beta=(beta, "[]"), entropy_coef=(entropy_coef, "[]"),
              **{f"aux_losses[{k!r}]": (v, "[]") for k, v in (aux_losses or {}).items()})
  parts = {
      "pg": jnp.asarray(policy_loss, jnp.float32),
      "value": value_coef * jnp.asarray(value_loss, jnp.float32),
      "kl": beta * jnp.asarray(kl_loss, jnp.float32),
      "entropy": -entropy_coef * jnp.asarray(entropy, jnp.float32),
  }
  for name, aux in (aux_losses or {}).items():
    parts[f"aux/{name}"] = jnp.asarray(aux, jnp.float32)
  total = sum(parts.values())
  return total, parts
