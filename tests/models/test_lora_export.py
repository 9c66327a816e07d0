"""LoRA export: the merged model equals the adapted one, the PEFT adapter loads in
``peft.PeftModel`` with the same logits (torch CPU, float32, left-padded batches), and
``rlx.runtime.run.export`` writes both for a trained LoRA run."""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

import rlx.models as M
from rlx.models import lora
from rlx.models.config import LoRASpec
from rlx.models.layers import Projection
from tests.models.hf_helpers import left_padded_batch, random_params

LENGTHS = (12, 9, 4)  # left padding of 0, 3 and 8 tokens
SEQ = 12
_forward = jax.jit(M.apply, static_argnums=0)

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
ATTN_LAYER0 = (r"layers\.0\.attn\..*",)


def _strip_adapters(config, params):
  """The base parameters of a LoRA model (every leaf but the adapters)."""
  _, abs_base = M.abstract(lora.base_config(config))
  source = nnx.to_pure_dict(params)

  def strip(d):
    return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items()
            if k not in ("lora_a", "lora_b")}

  out = jax.tree.map(lambda x: x, abs_base)
  nnx.replace_by_pure_dict(out, strip(source))
  return out


def _lora_model(family: str, seed: int = 0, **spec):
  """(LoRA config, params, base params) of TINY[family]: every leaf N(0, 0.2²) (norm scales
  around identity), adapters included, so every adapter changes the logits. Built on the host
  (no compilation; ``lora.attach`` is tested on its own below)."""
  config = M.TINY[family].replace(lora=LoRASpec(rank=4, alpha=8.0, **spec))
  _, params = random_params(config, seed=seed)
  assert lora.has_adapters(params)
  return config, params, _strip_adapters(config, params)


def _logits(config, params, tokens, positions, mask):
  logits, _ = _forward(M.abstract(config)[0], params, tokens, positions, mask)
  return np.asarray(logits)


def _projections(config, params):
  model = nnx.merge(M.abstract(config)[0], params)
  return [(".".join(map(str, p)), n) for p, n in nnx.iter_graph(model)
          if isinstance(n, Projection)]


def _adapted_paths(config, params):
  return {p for p, n in _projections(config, params) if n.lora_a is not None}


def _batch(config, seed):
  tokens, positions, mask = left_padded_batch(config.vocab_size, LENGTHS, SEQ, seed=seed)
  return (tokens, positions, mask), mask.astype(bool)


# ---------------------------------------------------------------------------------------------
# attach and merge


def test_attach_then_merge():
  """attach copies the base (B = 0: the base logits exactly); with random adapters set through
  partition / combine, merge gives a plain model with the adapted logits."""
  config = M.TINY["qwen2"].replace(lora=LoRASpec(rank=4, alpha=8.0, targets=ATTN_LAYER0 + (
      "down_proj",)))
  base = lora.base_config(config)
  _, base_params = random_params(base, seed=5)
  _, params = lora.attach(config, base_params, seed=0)
  batch, valid = _batch(config, seed=1)
  base_logits = _logits(base, base_params, *batch)
  np.testing.assert_array_equal(_logits(config, params, *batch), base_logits)

  trainable, frozen = lora.partition(params)
  leaves, treedef = jax.tree.flatten(trainable)
  assert len(leaves) == 2 * (4 + base.n_layers)
  rng = np.random.default_rng(0)
  leaves = [np.asarray(0.2 * rng.standard_normal(x.shape), x.dtype) for x in leaves]
  params = lora.combine(jax.tree.unflatten(treedef, leaves), frozen)
  adapted = _logits(config, params, *batch)
  merged_config, merged = lora.merge(config, params)
  assert merged_config == base and not lora.has_adapters(merged)
  assert np.abs(adapted[valid] - base_logits[valid]).max() > 1e-2
  assert np.abs(adapted[valid] - _logits(base, merged, *batch)[valid]).max() <= 1e-5


@pytest.mark.parametrize("family,spec", [
    ("llama", {}),
    ("qwen2", {}),
    ("qwen3", {}),
    ("gemma2", {}),
    ("llama", {"rslora": True}),
    ("qwen3", {"targets": ATTN_LAYER0}),
    ("gemma2", {"rslora": True, "targets": ATTN_LAYER0 + (r"layers\.2\.mlp\.up_proj",)}),
], ids=["llama", "qwen2", "qwen3", "gemma2", "llama-rslora", "qwen3-regex",
        "gemma2-rslora-regex"])
def test_merged_equals_adapted(family, spec):
  config, params, base_params = _lora_model(family, **spec)
  batch, valid = _batch(config, seed=1)
  adapted = _logits(config, params, *batch)

  merged_config, merged = lora.merge(config, params)
  assert merged_config == config.replace(lora=None)
  assert not lora.has_adapters(merged)
  _, abs_base = M.abstract(merged_config)  # the structure of a plain model
  assert jax.tree.structure(merged) == jax.tree.structure(abs_base)
  for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(abs_base)):
    assert a.shape == b.shape and a.dtype == b.dtype
  plain = _logits(merged_config, merged, *batch)
  base = _logits(merged_config, base_params, *batch)

  assert np.abs(adapted[valid]).max() > 0.5
  assert np.abs(adapted[valid] - base[valid]).max() > 1e-2  # the adapters matter
  assert np.abs(adapted[valid] - plain[valid]).max() <= 1e-5

  # Exactly the adapted kernels changed; every other leaf is copied.
  adapted_paths = _adapted_paths(config, params)
  if "targets" in spec:
    assert adapted_paths == {f"layers.0.attn.{n}" for n in ATTN} | (
        {"layers.2.mlp.up_proj"} if family == "gemma2" else set())
  flat_m = dict(nnx.to_flat_state(merged))
  flat_b = dict(nnx.to_flat_state(base_params))
  assert flat_m.keys() == flat_b.keys()
  changed = {".".join(map(str, k[:-1])) for k in flat_m
             if not np.array_equal(np.asarray(flat_m[k][...]), np.asarray(flat_b[k][...]))}
  assert changed == adapted_paths


# ---------------------------------------------------------------------------------------------
# PEFT


def test_peft_tensor_layout():
  """lora_A [r, in] and lora_B [out, r] with HF's flattening of the head dims: s·B·A is the HF
  [out, in] delta of every projection (o_proj's input is heads × head_dim)."""
  config, params, _ = _lora_model("qwen3")
  tensors = lora.peft_tensors(config, params)
  c, s = config, config.lora.scale
  hf_shape = {"q_proj": (c.n_heads * c.head_dim, c.d_model),
              "k_proj": (c.n_kv_heads * c.head_dim, c.d_model),
              "v_proj": (c.n_kv_heads * c.head_dim, c.d_model),
              "o_proj": (c.d_model, c.n_heads * c.head_dim),
              "gate_proj": (c.d_ff, c.d_model), "up_proj": (c.d_ff, c.d_model),
              "down_proj": (c.d_model, c.d_ff)}
  assert len(tensors) == 2 * len(hf_shape) * c.n_layers
  for path, node in _projections(config, params):
    _, layer, _, name = path.split(".")
    prefix = f"base_model.model.model.layers.{layer}.{lora._HF_MODULES[name]}"
    a, b = tensors[f"{prefix}.lora_A.weight"], tensors[f"{prefix}.lora_B.weight"]
    out_dim, in_dim = hf_shape[name]
    assert a.shape == (c.lora.rank, in_dim) and b.shape == (out_dim, c.lora.rank)
    assert a.dtype == b.dtype == np.float32
    delta = np.asarray(node.merged_kernel()) - np.asarray(node.weight(np.float32))
    # The HF weight [out, in] is the rlx kernel flattened to [in, out] (as save_hf), transposed.
    outs = [i for i in range(delta.ndim) if i not in node.contract]
    hf_delta = np.transpose(delta, list(node.contract) + outs).reshape(in_dim, out_dim).T
    np.testing.assert_allclose(s * b @ a, hf_delta, atol=1e-5)


def _hf_logits(torch, hf_model, tokens, positions, mask):
  with torch.no_grad():
    out = hf_model(input_ids=torch.tensor(tokens, dtype=torch.long),
                   attention_mask=torch.tensor(mask, dtype=torch.long),
                   position_ids=torch.tensor(positions, dtype=torch.long))
  return out.logits.float().numpy()


@pytest.mark.parametrize("family,spec", [
    ("llama", {}),
    ("llama", {"rslora": True}),
    ("qwen2", {}),  # qkv bias (stays in the base layer)
    ("qwen2", {"rslora": True, "targets": ATTN}),
], ids=["llama", "llama-rslora", "qwen2", "qwen2-rslora-attn"])
def test_peft_adapter_matches_rlx(tmp_path, family, spec):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  peft = pytest.importorskip("peft")
  config, params, base_params = _lora_model(family, seed=3, **spec)
  base_dir, adapter_dir = str(tmp_path / "base"), str(tmp_path / "adapter")
  M.save_hf(base_dir, lora.base_config(config), base_params)
  lora.save_peft(adapter_dir, config, params, base_model=base_dir)

  with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
    adapter_cfg = json.load(f)
  assert adapter_cfg["r"] == 4 and adapter_cfg["use_rslora"] == bool(spec.get("rslora"))
  assert adapter_cfg["base_model_name_or_path"] == base_dir
  want = set()
  for p in _adapted_paths(config, params):
    _, layer, _, name = p.split(".")
    want.add(f"model.layers.{layer}.{lora._HF_MODULES[name]}")
  assert len(want) == (4 if "targets" in spec else 7) * config.n_layers
  assert set(adapter_cfg["target_modules"]) == want

  hf_model = transformers.AutoModelForCausalLM.from_pretrained(
      base_dir, dtype=torch.float32, attn_implementation="eager").eval()
  batch, valid = _batch(config, seed=2)
  base_ref = _hf_logits(torch, hf_model, *batch)
  peft_model = peft.PeftModel.from_pretrained(hf_model, adapter_dir).eval()
  # Every adapter was loaded onto its layer, with rlx's scale (no silently unmatched tensor).
  layers = {n: m for n, m in peft_model.named_modules()
            if isinstance(getattr(m, "lora_A", None), torch.nn.ModuleDict)}
  assert {n[len("base_model.model."):] for n in layers} == want
  tensors = lora.peft_tensors(config, params)
  for n, m in layers.items():
    assert m.scaling["default"] == pytest.approx(config.lora.scale, rel=1e-12)
    np.testing.assert_array_equal(m.lora_A["default"].weight.detach().numpy(),
                                  tensors[f"{n}.lora_A.weight"])
    np.testing.assert_array_equal(m.lora_B["default"].weight.detach().numpy(),
                                  tensors[f"{n}.lora_B.weight"])
  ref = _hf_logits(torch, peft_model, *batch)
  ours = _logits(config, params, *batch)
  assert np.abs(ref[valid] - base_ref[valid]).max() > 1e-2  # the adapter is applied
  assert np.abs(ours[valid] - ref[valid]).max() <= 1e-4
  # PEFT's own merge agrees as well.
  merged_ref = _hf_logits(torch, peft_model.merge_and_unload(), *batch)
  assert np.abs(ours[valid] - merged_ref[valid]).max() <= 1e-4


# ---------------------------------------------------------------------------------------------
# The export path of a LoRA run


def test_export_of_lora_run(tmp_path):
  from rlx import config as rlx_config
  from rlx.runtime.run import export, train
  from tests.test_train_cli import small_config

  cfg = small_config("sft")
  cfg.num_steps = 2
  cfg.lora.rank = 4
  cfg.optim.warmup_steps = 0  # so that two steps move the adapters off B = 0
  workdir, out = str(tmp_path / "run"), str(tmp_path / "export")
  summary = train(cfg, workdir)
  trained = summary["params"]
  run = rlx_config.validate(cfg)  # the run's model config, as rlx.runtime.run.build makes it
  config = run.model.model_config().replace(param_dtype=run.mesh.param_dtype or run.model.dtype,
                                            lora=run.lora.spec())
  assert config.lora is not None and config.lora.rank == 4
  b = [np.asarray(n.lora_b[...]) for _, n in _projections(config, trained) if n.lora_b is not None]
  assert b and max(np.abs(x).max() for x in b) > 0  # training moved B off zero

  assert export(cfg, workdir, out) == out
  for name in ("config.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors"):
    assert os.path.exists(os.path.join(out, name)), name
  with open(os.path.join(out, "adapter", "adapter_config.json")) as f:
    adapter_cfg = json.load(f)
  assert adapter_cfg["r"] == 4 and adapter_cfg["peft_type"] == "LORA"

  loaded_config, loaded = M.load_hf(out)
  assert loaded_config == lora.base_config(config)
  batch, valid = _batch(config, seed=4)
  ours = _logits(config, trained, *batch)
  exported = _logits(loaded_config, loaded, *batch)
  assert np.abs(ours[valid] - exported[valid]).max() <= 1e-5
