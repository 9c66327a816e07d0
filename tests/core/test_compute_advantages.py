"""``compute_advantages``: one signature for every estimator, dispatched through the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import core

E = core.AdvantageEstimator
ALL = list(E)
TOKEN_LEVEL = {E.GAE, E.REINFORCE_PP}

R = np.array([1.0, 0.0, 0.5, 0.2, 0.9, 0.4], np.float32)
G = np.array([0, 0, 1, 1, 1, 2], np.int32)
M = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0],
              [1, 1, 0, 0]], np.float32)
V = np.array(np.random.default_rng(0).normal(size=M.shape), np.float32)
GREEDY = np.array([0.5, 0.5, 0.3, 0.3, 0.3, 0.0], np.float32)
GAMMA, LAM, EPS = 0.9, 0.8, 1e-4

jit_compute = jax.jit(core.compute_advantages, static_argnums=0,
                      static_argnames=("std_scope", "whiten"))


def inputs(rewards=R, token_rewards=None, group_ids=G, mask=M, row_mask=None, values=V,
           greedy=GREEDY):
  return core.AdvantageInputs.create(rewards, mask, group_ids=group_ids,
                                     token_rewards=token_rewards, values=values,
                                     greedy_rewards=greedy, row_mask=row_mask)


HP = core.AdvantageHyper.create(eps=EPS, gamma=GAMMA, lam=LAM)


def reference(kind, r, g, m, *, token_r=None, std_scope="group", whiten=True):
  """The estimator's own function on the same data (``token_r``: the token-level ``R``)."""
  token_r = core.scalar_to_token_rewards(r, m) if token_r is None else token_r
  return {
      E.GAE: lambda: core.gae_advantages(token_r, V, m, GAMMA, LAM, whiten=whiten),
      E.GRPO: lambda: core.grpo_advantages(r, g, m, EPS, std_scope=std_scope),
      E.DR_GRPO: lambda: core.dr_grpo_advantages(r, g, m),
      E.RLOO: lambda: core.rloo_advantages(r, g, m),
      E.REINFORCE_PP: lambda: core.reinforce_pp_advantages(token_r, m, GAMMA, whiten=whiten),
      E.REINFORCE_PP_BASELINE: lambda: core.reinforce_pp_baseline_advantages(r, g, m, whiten=whiten),
      E.REMAX: lambda: core.remax_advantages(r, GREEDY, m),
      E.OPO: lambda: core.opo_advantages(r, g, m),
      E.GRPO_PASSK: lambda: core.grpo_passk_advantages(r, g, m, EPS),
  }[kind]()


@pytest.mark.parametrize("kind,std_scope", [(k, "group") for k in ALL] + [(E.GRPO, "batch")],
                         ids=lambda k: getattr(k, "value", k))
def test_adapter_equals_the_estimators_own_function(kind, std_scope):
  want_adv, want_ret = reference(kind, R, G, M, std_scope=std_scope)
  got_adv, got_ret = jit_compute(kind, inputs(), HP, std_scope=std_scope)
  np.testing.assert_allclose(got_adv, want_adv, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_ret, want_ret, rtol=1e-5, atol=1e-6)
  # The registry entry is the adapter, with the same signature; names resolve too.
  adapter = core.get_advantage_adapter(kind.value)
  adv, _ = adapter(inputs(), HP, std_scope=core.StdScope(std_scope), whiten=True)
  np.testing.assert_allclose(adv, want_adv, rtol=1e-5, atol=1e-6)
  assert core.is_token_level(kind) == (kind in TOKEN_LEVEL)


@pytest.mark.parametrize("kind", [E.GAE, E.REINFORCE_PP, E.REINFORCE_PP_BASELINE],
                         ids=lambda k: k.value)
def test_whiten_false_leaves_advantages_raw(kind):
  want, _ = reference(kind, R, G, M, whiten=False)
  got, _ = jit_compute(kind, inputs(), HP, whiten=False)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  whitened, _ = jit_compute(kind, inputs(), HP)
  assert not np.allclose(got, whitened)


def test_dense_token_rewards_reach_every_estimator_by_the_rule():
  rng = np.random.default_rng(1)
  dense = rng.normal(size=M.shape).astype(np.float32)
  dense_poisoned = np.where(M > 0, dense, np.nan).astype(np.float32)  # outside m: ignored
  x = inputs(token_rewards=dense_poisoned)
  token_r = np.asarray(core.scalar_to_token_rewards(R, M)) + dense * M
  seq_r = R + (dense * M).sum(-1)
  for kind in ALL:
    want, _ = (reference(kind, R, G, M, token_r=token_r) if kind in TOKEN_LEVEL
               else reference(kind, seq_r, G, M))
    got, _ = jit_compute(kind, x, HP)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=kind.value)
    assert np.all(np.isfinite(got))


def test_only_dense_rewards_give_nonzero_advantages():
  zeros = np.zeros_like(R)
  dense = np.zeros_like(M)
  dense[0, 0] = 1.0  # one token reward in row 0 (group 0), nothing else anywhere
  x = inputs(rewards=zeros, token_rewards=dense, values=np.zeros_like(M))
  for kind in (E.GAE, E.REINFORCE_PP, E.GRPO):
    adv, _ = jit_compute(kind, x, HP, whiten=False)
    assert np.abs(np.asarray(adv)[0]).sum() > 0, kind.value
  # grpo sees the row sum: row 0 beats row 1 in group 0.
  adv, _ = jit_compute(E.GRPO, x, HP)
  assert adv[0, 0] > 0 > adv[1, 0]
  # Without the dense reward everything is zero.
  x0 = inputs(rewards=zeros, values=np.zeros_like(M))
  for kind in (E.GAE, E.REINFORCE_PP, E.GRPO):
    np.testing.assert_array_equal(jit_compute(kind, x0, HP, whiten=False)[0], 0.0)


def padded(mask_padding_rows: bool):
  """The 6-row batch plus 3 padding rows (row_mask 0, group ids < 0, huge rewards)."""
  extra = 3
  r = np.concatenate([R, np.full(extra, 100.0, np.float32)])
  g = np.concatenate([G, -1 - np.arange(extra)]).astype(np.int32)
  m = np.concatenate([M, np.ones((extra, M.shape[1]), np.float32)])
  if mask_padding_rows:
    m[len(R):] = 0  # what rlx.runtime.rollouts.pad_rows does
  v = np.concatenate([V, np.full((extra, M.shape[1]), 7.0, np.float32)])
  greedy = np.concatenate([GREEDY, np.zeros(extra, np.float32)])
  dense = np.zeros_like(m)
  dense[len(R):] = 50.0
  row_mask = (g >= 0).astype(np.float32)
  return core.AdvantageInputs.create(r, m, group_ids=g, token_rewards=dense, values=v,
                                     greedy_rewards=greedy, row_mask=row_mask)


@pytest.mark.parametrize("mask_padding_rows", [True, False])
@pytest.mark.parametrize("kind,std_scope", [(k, "group") for k in ALL] + [(E.GRPO, "batch")],
                         ids=lambda k: getattr(k, "value", k))
def test_padding_rows_change_nothing(kind, std_scope, mask_padding_rows):
  real_adv, real_ret = jit_compute(kind, inputs(), HP, std_scope=std_scope)
  adv, ret = jit_compute(kind, padded(mask_padding_rows), HP, std_scope=std_scope)
  np.testing.assert_allclose(adv[:len(R)], real_adv, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ret[:len(R)], real_ret, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(adv[len(R):], 0.0)


def test_whitening_functions_already_skip_padding_rows_with_zero_loss_mask():
  """The estimators' own functions whiten over ``mask``; padding rows from ``pad_rows`` have a zero
  loss mask, so they are out of the statistics even without ``row_mask``."""
  x = padded(mask_padding_rows=True)
  for fn, args, real_args in [
      (core.reinforce_pp_advantages, (core.scalar_to_token_rewards(x.rewards, x.mask), x.mask),
       (core.scalar_to_token_rewards(R, M), M)),
      (core.reinforce_pp_baseline_advantages, (x.rewards, x.group_ids, x.mask), (R, G, M)),
  ]:
    np.testing.assert_allclose(fn(*args)[0][:len(R)], fn(*real_args)[0], rtol=1e-5, atol=1e-6)


def test_missing_values_or_greedy_rewards_raise():
  x = core.AdvantageInputs.create(R, M, group_ids=G)
  with pytest.raises(ValueError, match="values"):
    core.compute_advantages("gae", x, HP)
  with pytest.raises(ValueError, match="greedy_rewards"):
    core.compute_advantages(E.REMAX, x, HP)
  adv, _ = core.compute_advantages("grpo", x, HP)  # the others need neither
  assert adv.shape == M.shape


def test_jit_as_documented_and_hyper_parameters_do_not_recompile():
  traces = []

  def counted(kind, x, hp, *, std_scope=core.StdScope.GROUP):
    traces.append(kind)
    return core.compute_advantages(kind, x, hp, std_scope=std_scope)

  run = jax.jit(counted, static_argnums=0, static_argnames="std_scope")
  outs = [run("gae", inputs(), core.AdvantageHyper.create(gamma=g, lam=0.9)) for g in (0.9, 1.0)]
  assert len(traces) == 1
  assert not np.allclose(outs[0][0], outs[1][0])
  plain = jax.jit(core.compute_advantages, static_argnums=0, static_argnames="std_scope")
  for kind in ALL:
    adv, ret = plain(kind, inputs(), HP, std_scope=core.StdScope.BATCH)
    assert adv.shape == ret.shape == M.shape
    assert np.all(np.asarray(adv)[M == 0] == 0)


def test_inputs_and_hyper_are_pytrees():
  x = inputs()
  leaves = jax.tree.leaves(x)
  assert len(leaves) == 6  # row_mask None is no leaf
  y = jax.tree.map(lambda a: a, x)
  assert isinstance(y, core.AdvantageInputs) and y.row_mask is None
  assert x.group_ids.dtype == jnp.int32 and x.token_rewards.shape == M.shape
  assert len(jax.tree.leaves(HP)) == 3


def test_grad_through_rewards():
  g = jax.grad(lambda r: jnp.sum(core.compute_advantages(
      "rloo", core.AdvantageInputs.create(r, M, group_ids=G), HP)[0] * M))(jnp.asarray(R))
  assert np.all(np.isfinite(g))
