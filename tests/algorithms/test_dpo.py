"""DPO-family update: sequence sums over completion tokens, masks, padding rows, the spec's
formulas on fixed inputs, micro-batched = full batch (KTO's z_ref included), every loss trains."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx import core
from rlx import models
from rlx.algorithms import dpo, learner
from rlx.data import SyntheticPreferenceSource, UnpairedView, load_task_tokenizer
from rlx.data import preference as pref_data
from rlx.optim import init_train_state, make_optimizer

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)
TOK = load_task_tokenizer()
Loss = core.PreferenceLoss


# The persistent compilation cache (JAX's own) for these modules: reruns and repeated identical
# programs (several runs of one config) skip XLA compilation. Restored afterwards.
@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(jax_cache_dir):
  from jax.experimental.compilation_cache import compilation_cache as cc
  settings = {"jax_compilation_cache_dir": jax_cache_dir,
              "jax_persistent_cache_min_compile_time_secs": 0.0}
  old = {k: getattr(jax.config, k) for k in settings}
  for k, v in settings.items():
    jax.config.update(k, v)
  cc.reset_cache()
  yield jax_cache_dir
  for k, v in old.items():
    jax.config.update(k, v)
  cc.reset_cache()


def pair_batch(n=3, rows=4, seed=0, width=40):
  """``n`` real pairs of different lengths (+ padding rows), reference log-probs fixed."""
  src = SyntheticPreferenceSource("calculation", size=64, seed=seed, difficulty=(1, 2),
                                  margins=True)
  arrays = pref_data.make_pair_batch([src[i] for i in range(n)], TOK, max_len=width, rows=rows)
  rng = np.random.default_rng(seed)
  return arrays, dpo.PairBatch.create(arrays, -60 + rng.normal(size=rows),
                                      -61 + rng.normal(size=rows))


@jax.jit
def direct_logps(params, tokens, mask, loss_mask):
  """Σ over completion tokens of log softmax(full logits)[next token], the obvious way."""
  tokens, mask = jnp.asarray(tokens), jnp.asarray(mask)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
  logits, _ = models.apply(GRAPHDEF, params, tokens, positions, mask)
  logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
  tok = jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
  return jnp.sum(tok * jnp.asarray(loss_mask)[:, 1:], axis=1)


GRAPHDEF, PARAMS = models.init_params(CONFIG, 0)


def preference_gradients(params, batch, hp, spec):
  """``(grads, metrics)`` of one batch: the learner with the spec's preference objective."""
  return learner.minibatch_gradients(dpo.PreferenceObjective(GRAPHDEF, CONFIG, spec), params,
                                     batch, hp, spec.micro_batch_size)


def log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def test_pair_logps_are_sums_over_completion_tokens():
  arrays, batch = pair_batch()
  pc, pr, lc, lr = jax.jit(lambda p: dpo.pair_logps(GRAPHDEF, p, CONFIG, batch))(PARAMS)
  np.testing.assert_allclose(pc, direct_logps(PARAMS, arrays["chosen_tokens"],
                                              arrays["chosen_mask"], arrays["chosen_loss_mask"]),
                             rtol=1e-5)
  np.testing.assert_allclose(pr, direct_logps(PARAMS, arrays["rejected_tokens"],
                                              arrays["rejected_mask"],
                                              arrays["rejected_loss_mask"]), rtol=1e-5)
  np.testing.assert_array_equal(lc, arrays["chosen_loss_mask"].sum(1))
  np.testing.assert_array_equal(lr, arrays["rejected_loss_mask"].sum(1))


def spec_losses(kind, pc, pr, rc, rr, lc, lr, m, beta, eps, gamma, lam, length_normalize=False):
  """docs/algorithms.md §7, written out in numpy."""
  c, j = pc - rc, pr - rr
  z = beta * (c - j) - m
  if kind is Loss.DPO:
    return -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z)
  if kind is Loss.ROBUST:
    return (-(1 - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) / (1 - 2 * eps)
  if kind is Loss.IPO:
    if length_normalize:
      c, j = c / lc, j / lr
    return (c - j - 1 / (2 * beta)) ** 2
  if kind is Loss.HINGE:
    return np.maximum(1 - z, 0)
  if kind is Loss.SIMPO:
    return -log_sigmoid(beta * (pc / lc - pr / lr) - (gamma + m))
  if kind is Loss.ORPO:
    mc, mr = pc / lc, pr / lr
    odds = lambda p: p - np.log1p(-np.exp(p))
    return -mc - lam * log_sigmoid(odds(mc) - odds(mr))
  raise ValueError(kind)


@pytest.mark.parametrize("kind,length_normalize", [
    (Loss.DPO, False), (Loss.ROBUST, False), (Loss.IPO, False), (Loss.IPO, True),
    (Loss.HINGE, False), (Loss.SIMPO, False), (Loss.ORPO, False)])
def test_losses_on_fixed_inputs_equal_the_spec(kind, length_normalize):
  pc = np.array([-12.0, -30.5, -8.25, -20.0])
  pr = np.array([-14.0, -29.0, -9.5, -26.0])
  rc = np.array([-13.0, -30.0, -8.0, -21.0])
  rr = np.array([-13.5, -29.5, -9.0, -25.0])
  lc, lr = np.array([6.0, 15, 4, 9]), np.array([7.0, 14, 5, 12])
  m = np.array([0.0, 0.3, 0.1, 0.0])
  hp = dpo.PrefHyper.create(lr=1.0, beta=0.5, label_smoothing=0.1, gamma=0.4, orpo_lambda=0.2)
  spec = dpo.PrefSpec(loss=kind, length_normalize=length_normalize)
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  loss, metrics = dpo.pair_losses(spec, hp, *map(f32, (pc, pr, rc, rr, lc, lr, m)))
  margin = m if kind in (Loss.DPO, Loss.ROBUST, Loss.HINGE, Loss.SIMPO) else 0 * m
  expected = spec_losses(kind, pc, pr, rc, rr, lc, lr, margin, 0.5, 0.1, 0.4, 0.2,
                         length_normalize)
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
  assert metrics["rewards/accuracy"].shape == (4,)


def test_dpo_gradient_equals_spec_and_is_exact_over_micro_batches():
  """Loss = mean over the 3 real pairs of the spec's DPO loss on the model's completion sums
  (the 4th row is padding, weight 0); micro-batches of 2 give the full-batch gradient."""
  arrays, batch = pair_batch(n=3, rows=4)
  hp = dpo.PrefHyper.create(lr=1.0, beta=0.5, label_smoothing=0.1, margin_coef=2.0)

  def direct(p):
    pc = direct_logps(p, arrays["chosen_tokens"], arrays["chosen_mask"],
                      arrays["chosen_loss_mask"])
    pr = direct_logps(p, arrays["rejected_tokens"], arrays["rejected_mask"],
                      arrays["rejected_loss_mask"])
    z = 0.5 * ((pc - batch.ref_chosen) - (pr - batch.ref_rejected)) - 2.0 * batch.margin
    loss = -0.9 * jax.nn.log_sigmoid(z) - 0.1 * jax.nn.log_sigmoid(-z)
    return jnp.sum(loss * batch.weight) / 3.0, (pc, pr)

  (loss, (pc, pr)), ref_grads = jax.jit(jax.value_and_grad(direct, has_aux=True))(PARAMS)
  grads = {}
  for micro in (4, 2):
    spec = dpo.PrefSpec(loss=Loss.DPO, micro_batch_size=micro)
    grads[micro], metrics = jax.jit(lambda p: preference_gradients(p, batch, hp, spec))(PARAMS)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["logps/chosen"], np.mean(pc[:3]), rtol=1e-5)
    c, j = pc[:3] - batch.ref_chosen[:3], pr[:3] - batch.ref_rejected[:3]
    np.testing.assert_allclose(metrics["rewards/margin"], np.mean(0.5 * (c - j)), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(metrics["rewards/accuracy"], np.mean(c > j))
    for a, b in zip(jax.tree.leaves(grads[micro]), jax.tree.leaves(ref_grads)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  for a, b in zip(jax.tree.leaves(grads[4]), jax.tree.leaves(grads[2])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_kto_reference_point_is_over_the_whole_batch():
  pairs = SyntheticPreferenceSource("calculation", size=8, seed=1, difficulty=1)
  view = UnpairedView(pairs)
  arrays = pref_data.make_unpaired_batch([view[i] for i in range(4)], TOK, max_len=40)
  ref = np.array([-50.0, -55.0, -48.0, -60.0])
  ref_kl = np.array([-200.0, -210.0, -190.0, -205.0])  # far below: z_ref > 0
  batch = dpo.UnpairedBatch.create(arrays, ref, ref_kl)
  hp = dpo.PrefHyper.create(lr=1.0, beta=0.1, desirable_weight=1.0, undesirable_weight=1.5)
  out = {}
  for micro in (4, 2):
    spec = dpo.PrefSpec(loss=Loss.KTO, micro_batch_size=micro)
    out[micro] = jax.jit(lambda p: preference_gradients(p, batch, hp, spec))(PARAMS)
  logps = direct_logps(PARAMS, arrays["tokens"], arrays["mask"], arrays["loss_mask"])
  kl = direct_logps(PARAMS, arrays["kl_tokens"], arrays["kl_mask"], arrays["kl_loss_mask"])
  z_ref = max(float(np.mean(kl - ref_kl)), 0.0)
  r = np.asarray(logps) - ref
  d = arrays["desirable"] > 0
  sig = lambda x: 1 / (1 + np.exp(-x))
  expected = np.where(d, 1 - sig(0.1 * (r - z_ref)), 1.5 * (1 - sig(0.1 * (z_ref - r))))
  for micro in (4, 2):
    grads, metrics = out[micro]
    np.testing.assert_allclose(metrics["kl"], z_ref, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["rewards/chosen"], np.mean(0.1 * r[d]), rtol=1e-4)
  for a, b in zip(jax.tree.leaves(out[4][0]), jax.tree.leaves(out[2][0])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,length_normalize", [(Loss.DPO, False)] + [
    pytest.param(k, n, marks=pytest.mark.slow)  # one compilation each (~5-15 s on a CPU)
    for k, n in ((Loss.ROBUST, False), (Loss.IPO, False), (Loss.IPO, True), (Loss.HINGE, False),
                 (Loss.SIMPO, False), (Loss.ORPO, False), (Loss.KTO, False))])
def test_every_loss_runs_two_finite_steps(kind, length_normalize):
  run = rlx_config.validate(rlx_config.default_config())
  opt = make_optimizer(run.optim, 10)
  spec = dpo.PrefSpec(loss=kind, length_normalize=length_normalize, micro_batch_size=2)
  if kind is Loss.KTO:
    view = UnpairedView(SyntheticPreferenceSource("calculation", size=8, seed=0, difficulty=1))
    arrays = pref_data.make_unpaired_batch([view[i] for i in range(4)], TOK, max_len=40)
    batch = dpo.UnpairedBatch.create(arrays, np.full(4, -60.0), np.full(4, -90.0))
  else:
    _, batch = pair_batch(n=4, rows=4)
  state = init_train_state(opt, jax.tree.map(jnp.copy, PARAMS), 0)
  update = dpo.make_preference_update(GRAPHDEF, CONFIG, opt, spec)
  before = jax.tree.map(np.asarray, state.params)
  for beta in (0.1, 0.2):  # a new β is a traced value: no recompilation
    state, metrics = update(state, batch, dpo.PrefHyper.create(lr=1e-3, beta=beta))
    assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values()), metrics
  assert update._cache_size() == 1
  assert int(state.step) == 2 and float(metrics["grad_norm"]) > 0
  assert any(np.abs(a - np.asarray(b)).max() > 0 for a, b in zip(jax.tree.leaves(before),
                                                                  jax.tree.leaves(state.params)))
