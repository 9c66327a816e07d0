"""Hugging Face checkpoints: `config.json` + `*.safetensors` in a local directory.

`load_hf` memory-maps the safetensors files (a small reader below, so bfloat16 works without
torch) and builds every parameter from slices of its tensor; with a mesh each parameter is made
with `jax.make_array_from_callback`, so every device reads only its own shard and the host never
holds the whole model. `save_hf` writes a directory that `transformers` loads.

Name mapping (HF weights are [out, in]; rlx kernels are [in, out] with heads split out):

| rlx parameter path                   | Hugging Face tensor                                 |
|--------------------------------------|-----------------------------------------------------|
| embedding [V, D]                     | model.embed_tokens.weight [V, D]                    |
| unembed [D, V]                       | lm_head.weight [V, D] (absent when tied)            |
| final_norm.scale [D]                 | model.norm.weight                                   |
| layers.i.attn_norm.scale             | model.layers.i.input_layernorm.weight               |
| layers.i.mlp_norm.scale              | ….post_attention_layernorm (Gemma 2: pre_feedforward_layernorm) |
| layers.i.post_attn_norm.scale        | ….post_attention_layernorm (Gemma 2 only)           |
| layers.i.post_mlp_norm.scale         | ….post_feedforward_layernorm (Gemma 2 only)         |
| layers.i.attn.q_proj.kernel [D,H,E]  | ….self_attn.q_proj.weight [H·E, D]                  |
| layers.i.attn.{k,v}_proj.kernel [D,K,E] | ….self_attn.{k,v}_proj.weight [K·E, D]           |
| layers.i.attn.{q,k,v}_proj.bias      | ….self_attn.{q,k,v}_proj.bias [H·E] (Qwen2)         |
| layers.i.attn.o_proj.kernel [H,E,D]  | ….self_attn.o_proj.weight [D, H·E]                  |
| layers.i.attn.{q,k}_norm.scale [E]   | ….self_attn.{q,k}_norm.weight (Qwen3)               |
| layers.i.mlp.{gate,up}_proj.kernel [D,F] | ….mlp.{gate,up}_proj.weight [F, D]              |
| layers.i.mlp.down_proj.kernel [F,D]  | ….mlp.down_proj.weight [D, F]                       |
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from rlx.models.config import Activation, Family, ModelConfig, RopeScaling
from rlx.models.sharding import DEFAULT_RULES, Rules, param_shardings
from rlx.models.transformer import Transformer, abstract

# --------------------------------------------------------------------------------------------
# safetensors files

_DTYPES = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


class SafetensorsFile:
  """Memory-mapped safetensors file: `view(name)` is a lazy numpy array (no read until sliced)."""

  def __init__(self, path: str):
    self.path = path
    with open(path, "rb") as f:
      n = int.from_bytes(f.read(8), "little")
      header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    self.header = header
    self._data_start = 8 + n
    self._mmap = np.memmap(path, dtype=np.uint8, mode="r")

  def keys(self):
    return self.header.keys()

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self.header[name]["shape"])

  def view(self, name: str) -> np.ndarray:
    info = self.header[name]
    begin, _ = info["data_offsets"]
    return np.ndarray(tuple(info["shape"]), _DTYPES[info["dtype"]], buffer=self._mmap,
                      offset=self._data_start + begin)


def write_safetensors(path: str, tensors: Sequence[tuple[str, np.ndarray]]) -> None:
  """Write `(name, array)` pairs (numpy, any dtype in `_DTYPES`) with `format: pt` metadata."""
  header: dict = {"__metadata__": {"format": "pt"}}
  offset = 0
  for name, a in tensors:
    header[name] = {"dtype": _DTYPE_NAMES[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + a.nbytes]}
    offset += a.nbytes
  raw = json.dumps(header, separators=(",", ":")).encode()
  raw += b" " * (-len(raw) % 8)
  with open(path, "wb") as f:
    f.write(len(raw).to_bytes(8, "little"))
    f.write(raw)
    for _, a in tensors:
      f.write(np.ascontiguousarray(a).tobytes())


class Checkpoint:
  """All tensors of a checkpoint directory (single file, or sharded with an index json)."""

  def __init__(self, path: str):
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
      with open(index) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    else:
      files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
      raise FileNotFoundError(f"no *.safetensors files in {path}")
    self.files = [SafetensorsFile(os.path.join(path, f)) for f in files]
    self.where = {name: f for f in self.files for name in f.keys()}

  def __contains__(self, name: str) -> bool:
    return name in self.where

  def shape(self, name: str) -> tuple[int, ...]:
    return self.where[name].shape(name)

  def view(self, name: str) -> np.ndarray:
    return self.where[name].view(name)


# --------------------------------------------------------------------------------------------
# config.json

_ARCH = {Family.LLAMA: "LlamaForCausalLM", Family.QWEN2: "Qwen2ForCausalLM",
         Family.QWEN3: "Qwen3ForCausalLM", Family.GEMMA2: "Gemma2ForCausalLM"}


def config_from_hf(d: dict, dtype="float32") -> ModelConfig:
  """`ModelConfig` from a Hugging Face `config.json` dict (transformers 4.x or 5.x layout)."""
  try:
    family = Family(d["model_type"])
  except ValueError:
    raise NotImplementedError(f"model_type {d['model_type']!r} is not supported; "
                              f"supported: {[f.value for f in Family]}") from None
  rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
  theta = rope.get("rope_theta", d.get("rope_theta", 10_000.0))
  rope_type = rope.get("rope_type", rope.get("type", "default"))
  scaling = None
  if rope_type == "llama3":
    scaling = RopeScaling(factor=rope["factor"], low_freq_factor=rope["low_freq_factor"],
                          high_freq_factor=rope["high_freq_factor"],
                          original_max_position_embeddings=rope["original_max_position_embeddings"])
  elif rope_type not in ("default", None):
    raise NotImplementedError(f"rope_type {rope_type!r} is not supported")
  heads = d["num_attention_heads"]
  common = dict(
      family=family, vocab_size=d["vocab_size"], d_model=d["hidden_size"],
      n_layers=d["num_hidden_layers"], n_heads=heads,
      n_kv_heads=d.get("num_key_value_heads") or heads,
      head_dim=d.get("head_dim") or d["hidden_size"] // heads, d_ff=d["intermediate_size"],
      norm_eps=d.get("rms_norm_eps", 1e-6), rope_theta=float(theta), rope_scaling=scaling,
      max_position_embeddings=d.get("max_position_embeddings", 2048), dtype=dtype,
      param_dtype=dtype, init_std=d.get("initializer_range", 0.02))
  act = d.get("hidden_activation") or d.get("hidden_act") or "silu"
  activation = {"silu": Activation.SILU, "gelu_pytorch_tanh": Activation.GELU_TANH,
                "gelu_tanh": Activation.GELU_TANH}.get(act)
  if activation is None:
    raise NotImplementedError(f"activation {act!r} is not supported")
  if family in (Family.QWEN2, Family.QWEN3) and d.get("use_sliding_window"):
    raise NotImplementedError("use_sliding_window=true is not supported for Qwen checkpoints")
  if family == Family.LLAMA and (d.get("attention_bias") or d.get("mlp_bias")):
    raise NotImplementedError("Llama checkpoints with attention_bias/mlp_bias are not supported")
  if family == Family.QWEN3 and d.get("attention_bias"):
    raise NotImplementedError("Qwen3 checkpoints with attention_bias are not supported")
  if family == Family.GEMMA2:
    n = common["n_layers"]
    types = d.get("layer_types") or [
        "sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    return ModelConfig(
        **common, activation=activation, tie_embeddings=d.get("tie_word_embeddings", True),
        norm_plus_one=True, post_norms=True, scale_embeddings=True,
        query_pre_attn_scalar=d.get("query_pre_attn_scalar", 256),
        attn_logit_softcap=d.get("attn_logit_softcapping"),
        final_logit_softcap=d.get("final_logit_softcapping"),
        sliding_window=d.get("sliding_window"),
        sliding_layers=tuple(t == "sliding_attention" for t in types))
  return ModelConfig(
      **common, activation=activation, tie_embeddings=d.get("tie_word_embeddings", False),
      qkv_bias=family == Family.QWEN2, qk_norm=family == Family.QWEN3)


def config_to_hf(config: ModelConfig) -> dict:
  """Hugging Face `config.json` dict for `config` (rope in the 4.x layout, read by 4.x and 5.x)."""
  c = config
  expected = {Family.QWEN2: dict(qkv_bias=True, qk_norm=False),
              Family.QWEN3: dict(qkv_bias=False, qk_norm=True),
              Family.LLAMA: dict(qkv_bias=False, qk_norm=False),
              Family.GEMMA2: dict(qkv_bias=False, qk_norm=False, norm_plus_one=True,
                                  post_norms=True, scale_embeddings=True)}[c.family]
  for key, value in expected.items():
    if getattr(c, key) != value:
      raise ValueError(f"{c.family.value} checkpoints need {key}={value}, got {getattr(c, key)}")
  d = {
      "architectures": [_ARCH[c.family]], "model_type": c.family.value,
      "vocab_size": c.vocab_size, "hidden_size": c.d_model, "intermediate_size": c.d_ff,
      "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
      "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim,
      "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.norm_eps,
      "rope_theta": c.rope_theta, "tie_word_embeddings": c.tie_embeddings,
      "initializer_range": c.init_std, "torch_dtype": c.param_dtype,
      "attention_bias": False, "attention_dropout": 0.0,
  }
  if c.rope_scaling is not None:
    d["rope_scaling"] = {"rope_type": "llama3", **dataclasses.asdict(c.rope_scaling)}
  if c.family == Family.GEMMA2:
    d.update(hidden_activation="gelu_pytorch_tanh", hidden_act="gelu_pytorch_tanh",
             query_pre_attn_scalar=_int_if_whole(c.query_pre_attn_scalar),
             attn_logit_softcapping=c.attn_logit_softcap,
             final_logit_softcapping=c.final_logit_softcap, sliding_window=c.sliding_window,
             layer_types=["sliding_attention" if c.layer_window(i) else "full_attention"
                          for i in range(c.n_layers)])
  else:
    if any(c.sliding_layers):
      raise ValueError(f"sliding-window layers cannot be exported as {c.family.value}")
    d["hidden_act"] = c.activation.value
    if c.activation != Activation.SILU:
      raise ValueError(f"{c.family.value} checkpoints use silu, got {c.activation.value}")
    if c.family in (Family.QWEN2, Family.QWEN3):
      d.update(use_sliding_window=False, sliding_window=None, max_window_layers=c.n_layers)
    if c.family == Family.LLAMA:
      d["mlp_bias"] = False
  return d


def _int_if_whole(x):
  return int(x) if x is not None and float(x).is_integer() else x


# --------------------------------------------------------------------------------------------
# parameter ↔ tensor mapping


@dataclasses.dataclass(frozen=True)
class TensorSpec:
  """How one rlx parameter is stored in a Hugging Face checkpoint.

  rlx value = reshape(transpose?(hf tensor), rlx shape), where `groups` says how many
  consecutive rlx dimensions each (transposed) HF dimension splits into.
  """

  name: str
  transpose: bool
  groups: tuple[int, ...]

  def hf_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
    dims, a = [], 0
    for g in self.groups:
      dims.append(math.prod(shape[a:a + g]))
      a += g
    return tuple(dims[::-1] if self.transpose else dims)


_LAYER_NAMES = {
    ("attn_norm", "scale"): ("input_layernorm.weight", False, (1,)),
    ("post_attn_norm", "scale"): ("post_attention_layernorm.weight", False, (1,)),
    ("post_mlp_norm", "scale"): ("post_feedforward_layernorm.weight", False, (1,)),
    ("attn", "q_proj", "kernel"): ("self_attn.q_proj.weight", True, (1, 2)),
    ("attn", "k_proj", "kernel"): ("self_attn.k_proj.weight", True, (1, 2)),
    ("attn", "v_proj", "kernel"): ("self_attn.v_proj.weight", True, (1, 2)),
    ("attn", "o_proj", "kernel"): ("self_attn.o_proj.weight", True, (2, 1)),
    ("attn", "q_proj", "bias"): ("self_attn.q_proj.bias", False, (2,)),
    ("attn", "k_proj", "bias"): ("self_attn.k_proj.bias", False, (2,)),
    ("attn", "v_proj", "bias"): ("self_attn.v_proj.bias", False, (2,)),
    ("attn", "q_norm", "scale"): ("self_attn.q_norm.weight", False, (1,)),
    ("attn", "k_norm", "scale"): ("self_attn.k_norm.weight", False, (1,)),
    ("mlp", "gate_proj", "kernel"): ("mlp.gate_proj.weight", True, (1, 1)),
    ("mlp", "up_proj", "kernel"): ("mlp.up_proj.weight", True, (1, 1)),
    ("mlp", "down_proj", "kernel"): ("mlp.down_proj.weight", True, (1, 1)),
}


def tensor_spec(config: ModelConfig, path: tuple) -> TensorSpec:
  """The Hugging Face tensor of the `Transformer` parameter at `path` (an `nnx` state path)."""
  path = tuple(path)
  if path == ("embedding",):
    return TensorSpec("model.embed_tokens.weight", False, (1, 1))
  if path == ("unembed",):
    return TensorSpec("lm_head.weight", True, (1, 1))
  if path == ("final_norm", "scale"):
    return TensorSpec("model.norm.weight", False, (1,))
  if path[0] == "layers":
    rest = path[2:]
    if rest == ("mlp_norm", "scale"):
      name = ("pre_feedforward_layernorm.weight" if config.family == Family.GEMMA2
              else "post_attention_layernorm.weight")
      return TensorSpec(f"model.layers.{path[1]}.{name}", False, (1,))
    if rest in _LAYER_NAMES:
      name, transpose, groups = _LAYER_NAMES[rest]
      return TensorSpec(f"model.layers.{path[1]}.{name}", transpose, groups)
  raise KeyError(f"no Hugging Face name for parameter {'.'.join(map(str, path))}")


def _read_block(view: np.ndarray, spec: TensorSpec, shape: Sequence[int], index=None) -> np.ndarray:
  """The rlx-layout block `index` (a tuple of unit-step slices, None = all) of one parameter,
  reading only the rows/columns of the HF tensor that cover it."""
  index = tuple(index) if index is not None else (slice(None),) * len(shape)
  ranges = [index[a].indices(shape[a]) for a in range(len(shape))]
  if any(step != 1 for _, _, step in ranges):
    raise ValueError(f"{spec.name}: strided shard index {index}")
  hf_index, block_shape, rest, a = [], [], [], 0
  for g in spec.groups:
    inner = math.prod(shape[a + 1:a + g])
    lo, hi, _ = ranges[a]
    hf_index.append(slice(lo * inner, hi * inner))
    block_shape += [hi - lo, *shape[a + 1:a + g]]
    rest += [slice(None)] + [slice(*ranges[j][:2]) for j in range(a + 1, a + g)]
    a += g
  if spec.transpose:
    block = np.asarray(view[tuple(hf_index[::-1])]).T
  else:
    block = np.asarray(view[tuple(hf_index)])
  return block.reshape(block_shape)[tuple(rest)]


def _flat(params: nnx.State):
  return [(tuple(path), var) for path, var in nnx.to_flat_state(params)]


def load_hf(path: str, mesh: Mesh | None = None, dtype="float32", rules: Rules = DEFAULT_RULES,
            strict: bool = True) -> tuple[ModelConfig, nnx.State]:
  """Load a Hugging Face causal-LM checkpoint directory.

  Args:
    path: directory with `config.json` and `model.safetensors` or sharded
      `model-XXXXX-of-YYYYY.safetensors` + `model.safetensors.index.json`.
    mesh: optional device mesh; each parameter is then created in its `NamedSharding` (from its
      logical axes and `rules`) with `jax.make_array_from_callback`, every shard read straight
      from the memory-mapped file.
    dtype: parameter and compute dtype of the returned config ("float32", "bfloat16", or a
      jnp dtype).
    rules: logical axis → mesh axis table (`rlx.models.DEFAULT_RULES`).
    strict: raise on tensors of the checkpoint that map to no parameter.

  Returns:
    (config, params): `params` is the `nnx.Param` state of `Transformer(config)`; rebuild the
    module with `nnx.merge(abstract(config)[0], params)` or `rlx.models.from_params`.

  Raises:
    KeyError naming a missing tensor; ValueError naming a misshaped or unexpected tensor.
  """
  dtype = jnp.dtype(dtype).name
  with open(os.path.join(path, "config.json")) as f:
    config = config_from_hf(json.load(f), dtype=dtype)
  ckpt = Checkpoint(path)
  _, abs_params = abstract(config)
  shardings = param_shardings(abs_params, mesh, rules) if mesh is not None else None
  flat_shardings = dict(_flat(shardings)) if shardings is not None else {}
  target = nnx.to_pure_dict(abs_params)
  used = set()
  for p, var in _flat(abs_params):
    spec = tensor_spec(config, p)
    if spec.name not in ckpt:
      raise KeyError(f"tensor {spec.name!r} (for parameter {'.'.join(map(str, p))}) is missing "
                     f"from the checkpoint in {path}")
    want = spec.hf_shape(var.shape)
    if ckpt.shape(spec.name) != want:
      raise ValueError(f"tensor {spec.name!r} has shape {ckpt.shape(spec.name)}, expected {want} "
                       f"for parameter {'.'.join(map(str, p))} {tuple(var.shape)}")
    used.add(spec.name)
    view = ckpt.view(spec.name)
    np_dtype = np.dtype(jnp.dtype(dtype))

    def read(index, view=view, spec=spec, shape=var.shape):
      return _read_block(view, spec, shape, index).astype(np_dtype)

    if mesh is None:
      value = jnp.asarray(read(None))
    else:
      value = jax.make_array_from_callback(tuple(var.shape), flat_shardings[p].get_value(), read)
    node = target
    for key in p[:-1]:
      node = node[key]
    node[p[-1]] = value
  extra = [n for n in ckpt.where if n not in used and not _ignorable(n, config)]
  if strict and extra:
    raise ValueError(f"unexpected tensors in {path}: {', '.join(sorted(extra)[:10])}"
                     + (" ..." if len(extra) > 10 else ""))
  nnx.replace_by_pure_dict(abs_params, target)
  return config, abs_params


def _ignorable(name: str, config: ModelConfig) -> bool:
  return bool(re.search(r"rotary_emb\.inv_freq$", name)) or (
      name == "lm_head.weight" and config.tie_embeddings)


def save_hf(path: str, config: ModelConfig, params: nnx.State,
            max_shard_bytes: int = 5 * 2**30) -> None:
  """Write `config.json` and safetensors (sharded with an index above `max_shard_bytes`).

  Tensors are fetched to the host one at a time; parameters keep their dtype.
  """
  if config.lora is not None:
    raise ValueError("save_hf: the config has LoRA adapters (and maybe a quantised base); write "
                     "rlx.models.lora.merge(config, params) instead, or the adapters with "
                     "rlx.models.lora.save_peft")
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config_to_hf(config), f, indent=2)
  entries = []
  for p, var in _flat(params):
    spec = tensor_spec(config, p)
    entries.append((spec, var))
  shards, current, size = [], [], 0
  for spec, var in entries:
    nbytes = math.prod(var.shape) * np.dtype(var.dtype).itemsize
    if current and size + nbytes > max_shard_bytes:
      shards.append(current)
      current, size = [], 0
    current.append((spec, var))
    size += nbytes
  shards.append(current)

  def host(spec, var):
    a = np.asarray(jax.device_get(var[...]))
    a = a.reshape(spec.hf_shape(a.shape)[::-1] if spec.transpose else spec.hf_shape(a.shape))
    return spec.name, (a.T if spec.transpose else a)

  if len(shards) == 1:
    write_safetensors(os.path.join(path, "model.safetensors"), [host(*e) for e in shards[0]])
    return
  weight_map, total = {}, 0
  for i, shard in enumerate(shards):
    fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    tensors = [host(*e) for e in shard]
    write_safetensors(os.path.join(path, fname), tensors)
    for name, a in tensors:
      weight_map[name] = fname
      total += a.nbytes
  with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def from_params(config: ModelConfig, params: nnx.State) -> Transformer:
  """`Transformer` module holding `params` (e.g. from `load_hf`)."""
  graphdef, _ = abstract(config)
  return nnx.merge(graphdef, params)
