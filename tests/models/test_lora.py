"""LoRA and quantised-base LoRA: the model, the quantisers, what trains, and the config."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rlx import config as rlx_config
from rlx import models
from rlx.algorithms import sft
from rlx.models import lora, quant
from rlx.models.config import LoRASpec
from rlx.optim import frozen_copy, init_train_state, make_optimizer

FAMILIES = sorted(models.TINY)


def _inputs(b=2, s=7, vocab=64, seed=0):
  tokens = jax.random.randint(jax.random.PRNGKey(seed), (b, s), 0, vocab)
  mask = jnp.ones((b, s), jnp.int32).at[0, :2].set(0)  # one left-padded row
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
  return tokens, positions, mask


def _logits(graphdef, params, inputs):
  return models.apply(graphdef, params, *inputs)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_init_lora_equals_base_exactly(family):
  config = models.TINY[family]
  graphdef, base = models.init_params(config, 0)
  inputs = _inputs(vocab=config.vocab_size)
  lcfg = config.replace(lora=LoRASpec(rank=4, alpha=8.0))
  lgraphdef, params = lora.attach(lcfg, base, seed=1)
  np.testing.assert_array_equal(_logits(lgraphdef, params, inputs),
                                _logits(graphdef, base, inputs))
  # A random LoRA model built directly has the same base as the plain one (adapter keys are
  # drawn apart from the base's stream).
  direct_graphdef, direct = models.init_params(lcfg, 0)
  np.testing.assert_array_equal(_logits(direct_graphdef, direct, inputs),
                                _logits(graphdef, base, inputs))


def test_adapter_shapes_targets_and_scale():
  config = models.TINY["llama"]
  spec = LoRASpec(rank=3, alpha=6.0, targets=("q_proj", r"layers\.1\.mlp\..*"))
  _, params = models.init_params(config.replace(lora=spec), 0)
  pure = nnx_pure(params)
  layer0, layer1 = pure["layers"][0], pure["layers"][1]
  d, h, e = config.d_model, config.n_heads, config.head_dim
  assert layer0["attn"]["q_proj"]["lora_a"].shape == (d, 3)
  assert layer0["attn"]["q_proj"]["lora_b"].shape == (3, h, e)
  assert "lora_a" not in layer0["attn"]["k_proj"] and "lora_a" not in layer0["mlp"]["up_proj"]
  assert layer1["mlp"]["down_proj"]["lora_a"].shape == (config.d_ff, 3)
  assert np.all(np.asarray(layer0["attn"]["q_proj"]["lora_b"]) == 0)
  bound = 1 / np.sqrt(d)  # Kaiming-uniform A
  a = np.asarray(layer0["attn"]["q_proj"]["lora_a"])
  assert np.abs(a).max() <= bound and a.std() > bound / 4
  assert spec.scale == 2.0 and dataclasses.replace(spec, rslora=True).scale == 6.0 / np.sqrt(3)


def nnx_pure(params):
  return nnx.to_pure_dict(params)


def _perturbed(params, seed=0, scale=0.1):
  trainable, frozen = lora.partition(params)
  leaves, treedef = jax.tree.flatten(trainable)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  leaves = [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
  return lora.combine(jax.tree.unflatten(treedef, leaves), frozen)


@pytest.mark.parametrize("quantize", ["", "int8", "nf4"])
def test_lora_forward_matches_hand_computed_projection(quantize):
  """y = x·W + s·(x·A)·B on one projection, W the dequantised base."""
  config = models.TINY["llama"].replace(
      lora=LoRASpec(rank=2, alpha=5.0, targets=("o_proj",), quantize=quantize, group_size=8))
  graphdef, params = models.init_params(config, 0)
  params = _perturbed(params)
  model = nnx.merge(graphdef, params)
  proj = model.layers[0].attn.o_proj
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 3, config.n_heads, config.head_dim))
  w = np.asarray(proj.weight(jnp.float32))
  a, b = np.asarray(proj.lora_a[...]), np.asarray(proj.lora_b[...])
  xn = np.asarray(x)
  expect = np.einsum("bshk,hkd->bsd", xn, w) + 2.5 * np.einsum(
      "bshk,hkr,rd->bsd", xn, a, b)
  np.testing.assert_allclose(np.asarray(proj(x)), expect, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(proj.merged_kernel()),
                             w + 2.5 * np.einsum("hkr,rd->hkd", a, b), rtol=1e-6, atol=1e-6)


def test_int8_quantisation_is_per_output_channel_and_tight():
  w = jax.random.normal(jax.random.PRNGKey(0), (16, 4, 8)) * jnp.arange(1, 9)  # [D, H, E]
  codes, scale = quant.quantize(w, "int8", (0,))
  assert codes.dtype == jnp.int8 and scale.shape == (1, 4, 8)
  np.testing.assert_allclose(scale[0], jnp.max(jnp.abs(w), axis=0) / 127, rtol=1e-6)
  back = quant.dequantize(codes, scale, "int8", (0,))
  assert float(jnp.max(jnp.abs(back - w) / scale)) <= 0.5 + 1e-5  # half a step at most


def test_nf4_codes_are_the_nearest_level_and_packed_two_per_byte():
  w = jax.random.normal(jax.random.PRNGKey(1), (4, 32))  # a [F, D] kernel, contracting F
  codes, scale = quant.quantize(w, "nf4", (0,), group_size=2)
  assert codes.dtype == jnp.uint8 and codes.shape == (2, 32) and scale.shape == (2, 32)
  back = np.asarray(quant.dequantize(codes, scale, "nf4", (0,)))
  wn = np.asarray(w)
  blocks = wn.reshape(2, 2, 32)
  absmax = np.abs(blocks).max(axis=1, keepdims=True)
  nearest = quant.NF4_LEVELS[np.abs(blocks[..., None] / absmax[..., None]
                                    - quant.NF4_LEVELS).argmin(-1)]
  np.testing.assert_allclose(back, (nearest * absmax).reshape(4, 32), rtol=1e-6, atol=1e-7)
  # Larger blocks along the last contracting axis of an [H, E, D] kernel.
  k = jax.random.normal(jax.random.PRNGKey(2), (2, 16, 8))
  c, s = quant.quantize(k, "nf4", (0, 1), group_size=8)
  assert c.shape == (2, 8, 8) and s.shape == (2, 2, 8)
  err = np.abs(np.asarray(quant.dequantize(c, s, "nf4", (0, 1))) - np.asarray(k))
  assert err.max() <= 0.21 * np.abs(np.asarray(k)).max()  # the widest NF4 gap / 2 of absmax
  with pytest.raises(ValueError, match="group_size"):
    quant.quantize(jnp.ones((6, 4)), "nf4", (0,), group_size=4)


def _sft_batch(config, b=4, s=9):
  tokens = np.asarray(jax.random.randint(jax.random.PRNGKey(5), (b, s), 0, config.vocab_size))
  mask = np.ones((b, s), np.float32)
  loss_mask = mask.copy()
  loss_mask[:, :3] = 0
  return sft.sft_batch(tokens, mask, loss_mask)


def _hp(lr=1e-2):
  return sft.SFTHyper(lr=jnp.asarray(lr, jnp.float32))


@pytest.mark.parametrize("quantize", ["", "nf4"])
def test_update_trains_adapters_only(quantize):
  """The learner differentiates and optimises only the adapters: optimizer state is adapter
  sized, the base leaves come back as the very same arrays, adapters move."""
  config = models.TINY["llama"].replace(
      lora=LoRASpec(rank=4, quantize=quantize, group_size=8))
  graphdef, params = models.init_params(config, 0)
  run = rlx_config.validate(rlx_config.default_config())
  opt = make_optimizer(run.optim, 10)
  state = init_train_state(opt, params, 0)
  adapters = lora.trainable_count(params)
  assert adapters < models.count_params(config.replace(lora=None)) / 4
  mu_sizes = sum(x.size for x in jax.tree.leaves(state.opt_state) if x.ndim > 0)
  assert mu_sizes == 2 * adapters  # Adam's two moments, adapters only
  update = sft.make_sft_update(graphdef, config, opt, micro_batch_size=0)
  base_before = jax.tree.leaves(lora.partition(params)[1])
  base_values = [np.asarray(x) for x in base_before]
  train_before = [np.asarray(x) for x in jax.tree.leaves(lora.partition(params)[0])]
  new, metrics = update(state, _sft_batch(config), _hp())
  # Step 1 moves only B (dL/dA = 0 while B = 0, as in the LoRA paper); step 2 moves A too.
  new, metrics = update(new, _sft_batch(config), _hp())
  assert np.isfinite(float(metrics["loss"]))
  base_after = jax.tree.leaves(lora.partition(new.params)[1])
  assert all(a is b for a, b in zip(base_after, base_before))  # not donated, not copied
  for a, b in zip(base_after, base_values):
    np.testing.assert_array_equal(np.asarray(a), b)
  moved = [not np.array_equal(np.asarray(a), b)
           for a, b in zip(jax.tree.leaves(lora.partition(new.params)[0]), train_before)]
  assert all(moved)


def test_reference_shares_the_base_and_survives_updates():
  config = models.TINY["llama"].replace(lora=LoRASpec(rank=4))
  graphdef, params = models.init_params(config, 0)
  ref = frozen_copy(params)
  ref_base = jax.tree.leaves(lora.partition(ref)[1])
  assert all(a is b for a, b in zip(ref_base, jax.tree.leaves(lora.partition(params)[1])))
  run = rlx_config.validate(rlx_config.default_config())
  opt = make_optimizer(run.optim, 10)
  state = init_train_state(opt, params, 0)
  update = sft.make_sft_update(graphdef, config, opt, micro_batch_size=0)
  inputs = _inputs(vocab=config.vocab_size)
  before = _logits(graphdef, ref, inputs)
  for _ in range(2):
    state, _ = update(state, _sft_batch(config), _hp())
  np.testing.assert_array_equal(_logits(graphdef, ref, inputs), before)  # still valid
  assert not np.allclose(_logits(graphdef, state.params, inputs), before)


def test_dropout_only_in_updates_and_keyed_by_the_state():
  config = models.TINY["llama"].replace(lora=LoRASpec(rank=4, dropout=0.5))
  graphdef, params = models.init_params(config, 0)
  params = _perturbed(params, scale=0.5)
  inputs = _inputs(vocab=config.vocab_size)
  plain = models.TINY["llama"].replace(lora=LoRASpec(rank=4))
  # Forward passes outside an update (sampling, log-probs) never drop.
  np.testing.assert_array_equal(_logits(graphdef, params, inputs),
                                _logits(models.abstract(plain)[0], params, inputs))
  run = rlx_config.validate(rlx_config.default_config())
  opt = make_optimizer(run.optim, 10)
  hp = _hp()
  update = sft.make_sft_update(graphdef, config, opt, micro_batch_size=0)
  no_drop = sft.make_sft_update(models.abstract(plain)[0], plain, opt, micro_batch_size=0)
  losses = {}
  for name, fn, seed in (("a", update, 0), ("a2", update, 0), ("b", update, 1),
                         ("none", no_drop, 0)):
    state = init_train_state(opt, jax.tree.map(jnp.copy, params), seed)
    losses[name] = float(fn(state, _sft_batch(config), hp)[1]["loss"])
  assert losses["a"] == losses["a2"]  # same state RNG, same masks
  assert losses["a"] != losses["b"] and losses["a"] != losses["none"]


def _cfg(**lora_fields):
  cfg = rlx_config.default_config()
  for k, v in lora_fields.items():
    cfg.lora[k] = v
  return cfg


@pytest.mark.parametrize("fields,message", [
    ({"rank": -1}, "config.lora.rank=-1: must be an integer >= 0"),
    ({"rank": 4, "dropout": 1.5}, "config.lora.dropout=1.5: must be in [0, 1)"),
    ({"rank": 4, "quantize": "int4"}, "config.lora.quantize='int4': allowed values: '', "
                                      "'int8', 'nf4'"),
    ({"rank": 4, "targets": ("qproj",)}, "config.lora.targets='qproj': matches no projection"),
    ({"rank": 4, "targets": ("q_proj", "(")}, "config.lora.targets: '(' is not a valid regular"),
    ({"rank": 4, "quantize": "nf4", "group_size": 48}, "config.lora.group_size=48: nf4 blocks"),
    ({"rank": 4, "alpha": 0.0}, "config.lora.alpha=0.0: must be > 0"),
    ({"rank": 4, "rnak": 3}, "config.lora.rnak: unknown field"),
    ({"quantize": "nf4"}, "config.lora.quantize='nf4': a quantised base needs adapters"),
])
def test_invalid_lora_config_names_the_field(fields, message):
  with pytest.raises(rlx_config.ConfigError) as e:
    rlx_config.validate(_cfg(**fields))
  assert str(e.value).startswith(message), str(e.value)


def test_lora_config_builds_the_spec():
  run = rlx_config.validate(_cfg(rank=8, alpha=32.0, targets=("q_proj", "v_proj"), rslora=True,
                                 quantize="nf4", group_size=16))
  spec = run.lora.spec()
  assert spec == LoRASpec(rank=8, alpha=32.0, targets=("q_proj", "v_proj"), rslora=True,
                          quantize="nf4", group_size=16)
  assert rlx_config.validate(rlx_config.default_config()).lora.spec() is None


@pytest.mark.parametrize("quantize", ["int8", "nf4"])
def test_backward_pass_keeps_no_dequantised_kernel(quantize):
  """The gradient w.r.t. the adapters needs x·W's input gradient, hence W: a quantised kernel is
  dequantised again in the backward pass rather than saved (a full-precision copy of every
  kernel would undo the quantisation's memory saving)."""
  config = models.TINY["llama"].replace(
      lora=LoRASpec(rank=4, quantize=quantize, group_size=8))
  graphdef, params = models.init_params(config, 0)
  trainable, frozen = lora.partition(params)
  tokens, positions, mask = _inputs(b=3, s=5, vocab=config.vocab_size)

  def loss(t):
    logits = models.apply(graphdef, lora.combine(t, frozen), tokens, positions, mask)[0]
    return jnp.mean(logits ** 2)

  c = config
  d, h, k, e, f = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff
  kernels = {(d, h, e), (d, k, e), (h, e, d), (d, f), (f, d)}  # the projections' kernels
  from jax._src.ad_checkpoint import saved_residuals  # public: print_saved_residuals only
  saved = [r for r, _ in saved_residuals(loss, trainable)]
  assert any(r.dtype in (jnp.int8, jnp.uint8) for r in saved)  # the codes are what is kept
  float_kernels = [r for r in saved if r.shape in kernels and jnp.issubdtype(r.dtype, jnp.floating)]
  assert not float_kernels, float_kernels


def test_lora_checks_use_the_checkpoint_architecture(tmp_path):
  """With model.path, targets and NF4 blocks are checked against its config.json (here 40
  layers and d_ff 96, where the preset's defaults have 2 layers and d_ff 128)."""
  one_layer = models.TINY["llama"].replace(n_layers=1, d_ff=96)
  models.save_hf(str(tmp_path), one_layer, models.init_params(one_layer, 0)[1])
  with open(tmp_path / "config.json") as f:
    hf = json.load(f)
  hf["num_hidden_layers"] = 40
  with open(tmp_path / "config.json", "w") as f:
    json.dump(hf, f)
  cfg = _cfg(rank=4, targets=(r"layers\.3[0-9]\.attn\..*",))
  cfg.model.path = str(tmp_path)
  rlx_config.validate(cfg)  # layers 30-39 exist in the checkpoint's architecture
  cfg.lora.quantize, cfg.lora.group_size = "nf4", 64
  with pytest.raises(rlx_config.ConfigError, match="d_ff=96"):
    rlx_config.validate(cfg)


def test_config_projection_names_are_the_models():
  assert rlx_config.PROJECTIONS == models.config.LORA_TARGETS


def test_lora_plus_scales_the_b_step_only():
  """optim.lora_plus_ratio = λ: with SGD, one step moves every B by λ times what plain LoRA
  moves it (the gradients are the same at the same parameters), and the A step is unchanged."""
  config = models.TINY["llama"].replace(lora=LoRASpec(rank=4))
  graphdef, params = models.init_params(config, 0)
  # B is zero at init (dL/dA = 0): give B a value so that A has a gradient too.
  params = jax.tree_util.tree_map_with_path(
      lambda p, x: x + 0.01 if any(getattr(k, "key", None) == "lora_b" for k in p) else x, params)
  start = jax.tree.map(np.asarray, params)
  moves = {}
  for ratio in (1.0, 4.0):
    cfg = rlx_config.default_config()
    cfg.optim.name, cfg.optim.lora_plus_ratio, cfg.optim.max_grad_norm = "sgd", ratio, 0.0
    opt = make_optimizer(rlx_config.validate(cfg).optim, 10)
    update = sft.make_sft_update(graphdef, config, opt, micro_batch_size=0)
    new, _ = update(init_train_state(opt, jax.tree.map(jnp.array, start), 0), _sft_batch(config),
                    _hp())
    moves[ratio] = {jax.tree_util.keystr(p): np.asarray(a) - b for (p, a), b in zip(
        jax.tree_util.tree_leaves_with_path(lora.partition(new.params)[0]),
        jax.tree.leaves(lora.partition(jax.tree.map(jnp.asarray, start))[0]))}
  assert any("lora_b" in k for k in moves[1.0]) and any("lora_a" in k for k in moves[1.0])
  for k, d1 in moves[1.0].items():
    want = 4.0 * d1 if "lora_b" in k else d1
    np.testing.assert_allclose(moves[4.0][k], want, rtol=1e-4, atol=5e-8)  # float32 p + u - p
    assert np.abs(d1).max() > 0, k
