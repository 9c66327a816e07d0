"""LoRA and quantised-base LoRA (QLoRA) over the decoder family (docs/lora.md).

A LoRA model is the same module tree with ``config.lora`` set (``rlx.models.LoRASpec``): every
targeted ``Projection`` gains two ``Adapter`` parameters (A [in…, r], B [r, out…]) and, with
``lora.quantize``, stores its base kernel as int8 / NF4 codes. Everything that applies a model
(``nnx.merge(graphdef, params)``) works unchanged; what differs is which leaves train:

- :func:`partition` splits a parameter tree (or a train state) into the ``Adapter`` leaves and
  the frozen rest; the learner differentiates and optimises only the former, and the frozen
  base is passed into the compiled update without being donated, so the reference model can
  hold the very same base arrays (one copy of the base in memory; :func:`frozen_view`);
- checkpoints store the trainable part only (:func:`trainable_only`); a restore fills the
  frozen leaves back from the base the run was built from (:func:`fill_frozen`);
- :func:`attach` turns base parameters (a random init or a Hugging Face checkpoint) into LoRA
  parameters: base copied (or quantised), A Kaiming-uniform, B zero (the base model exactly);
- :func:`merge` folds the adapters into float kernels (W + s·A·B) for a Hugging Face export, and
  :func:`save_peft` writes them as a PEFT adapter directory.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rlx.models import quant
from rlx.models.config import ModelConfig
from rlx.models.layers import Adapter, Projection

PyTree = Any


def _is_var(x) -> bool:
  return isinstance(x, nnx.Variable)


def _is_slot(x) -> bool:
  return x is None or isinstance(x, nnx.Variable)


def has_adapters(tree: PyTree) -> bool:
  """Whether ``tree`` holds any ``Adapter`` parameter (then only those train)."""
  return any(isinstance(x, Adapter) for x in jax.tree.leaves(tree, is_leaf=_is_var))


def _frozen_leaf(x) -> bool:
  return isinstance(x, nnx.Variable) and not isinstance(x, Adapter)


def partition(tree: PyTree) -> tuple[PyTree, PyTree]:
  """``(trainable, frozen)``: the same structure twice, each with ``None`` where the other has a
  leaf. Parameter leaves (``nnx.Variable``) that are not ``Adapter`` are frozen when the tree
  holds an adapter; every other leaf (optimizer counts, step, RNG) is trainable. A tree without
  adapters is all trainable: ``(tree, None)``."""
  if not has_adapters(tree):
    return tree, None
  leaves, treedef = jax.tree.flatten(tree, is_leaf=_is_slot)
  train = [None if _frozen_leaf(x) else x for x in leaves]
  frozen = [x if _frozen_leaf(x) else None for x in leaves]
  return treedef.unflatten(train), treedef.unflatten(frozen)


def combine(trainable: PyTree, frozen: PyTree) -> PyTree:
  """Inverse of :func:`partition`."""
  if frozen is None:
    return trainable
  return jax.tree.map(lambda t, f: t if f is None else f, trainable, frozen, is_leaf=_is_slot)


def trainable_only(tree: PyTree) -> PyTree:
  """``tree`` with its frozen base leaves replaced by ``None`` (what a checkpoint stores)."""
  return partition(tree)[0]


def fill_frozen(restored: PyTree, like: PyTree) -> PyTree:
  """A restored :func:`trainable_only` tree completed with ``like``'s frozen leaves."""
  return combine(restored, partition(like)[1])


def frozen_view(params: PyTree, copy=None) -> PyTree:
  """A frozen snapshot of a LoRA model (the reference / initial policy) sharing the base
  arrays: only the adapters are copied (``copy``, default ``jnp.copy``). Valid for as long as
  the base is never donated (the learner does not donate it)."""
  copy = copy or jnp.copy
  trainable, frozen = partition(params)
  return combine(jax.tree.map(copy, trainable), frozen)


def trainable_count(params: PyTree) -> int:
  """Number of trained parameters (every parameter without adapters)."""
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(trainable_only(params)))


# ---------------------------------------------------------------------------------------------
# Building and exporting.


def attach(config: ModelConfig, base_params: nnx.State, seed: int = 0, cls=None, *, mesh=None,
           rules=None, donate: bool = False) -> tuple[nnx.GraphDef, nnx.State]:
  """``(graphdef, params)`` of ``cls(config)`` (``config.lora`` set) from the parameters of the
  same architecture without adapters: base leaves copied (kernels quantised with
  ``lora.quantize``), adapters freshly initialised (B = 0: the base model exactly).

  One compiled function; the random base of the LoRA model it builds is dead code (every base
  leaf is replaced). With ``mesh`` the outputs are placed by the logical axes and ``rules``.
  ``donate``: ``base_params`` is not used afterwards (its buffers may hold the outputs, so
  building never needs two copies of the base).
  """
  from rlx.models import sharding
  from rlx.models.transformer import Transformer, abstract
  if config.lora is None:
    raise ValueError("attach: config.lora is None (nothing to attach)")
  cls = cls or Transformer
  graphdef, abs_params = abstract(config, cls)

  def build(base):
    model = cls(config, rngs=nnx.Rngs(seed))
    source = nnx.to_pure_dict(base)
    for path, node in nnx.iter_graph(model):
      if isinstance(node, Projection):
        src = _at(source, path)
        if node.kernel_scale is not None:
          codes, scale = quant.quantize(src["kernel"], node.quantize, node.contract,
                                        config.lora.group_size)
          node.kernel[...] = codes
          node.kernel_scale[...] = scale
          src = {k: v for k, v in src.items() if k != "kernel"}
        for name, value in src.items():
          var = getattr(node, name)
          var[...] = jnp.asarray(value, var[...].dtype)
    params = nnx.split(model, nnx.Param)[1]
    target = nnx.to_pure_dict(params)
    _fill_rest(target, source)
    nnx.replace_by_pure_dict(params, target)
    return params

  out = None if mesh is None else sharding.param_shardings(abs_params, mesh,
                                                            rules or sharding.DEFAULT_RULES)
  with warnings.catch_warnings():  # quantised kernels' float buffers cannot hold int codes
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    return graphdef, jax.jit(build, out_shardings=out,
                             donate_argnums=0 if donate else ())(base_params)


def _at(tree: dict, path: tuple):
  for k in path:
    tree = tree[k]
  return tree


def _fill_rest(target: dict, source: dict) -> None:
  """Copy every leaf of ``source`` into ``target`` except projections (already set)."""
  for k, v in source.items():
    if isinstance(v, dict):
      if "lora_a" in target[k] or "kernel_scale" in target[k]:
        continue
      _fill_rest(target[k], v)
    elif k in target and not isinstance(target[k], dict):
      target[k] = jnp.asarray(v, target[k].dtype)


def base_config(config: ModelConfig) -> ModelConfig:
  """The architecture without adapters (what a merged export writes)."""
  return config.replace(lora=None)


def merge(config: ModelConfig, params: nnx.State, cls=None,
          dtype: str | None = None) -> tuple[ModelConfig, nnx.State]:
  """``(base config, params)`` with every adapter folded in: W' = W + s·A·B (base kernels
  dequantised), in ``dtype`` (default the config's ``param_dtype``); equal to the adapted
  model up to float rounding. Runs on the host's default device."""
  from rlx.models.transformer import Transformer, abstract
  cls = cls or Transformer
  graphdef, _ = abstract(config, cls)
  model = nnx.merge(graphdef, params)
  base = base_config(config)
  dtype = dtype or base.param_dtype
  _, base_abs = abstract(base, cls)
  target = nnx.to_pure_dict(base_abs)
  source = nnx.to_pure_dict(params)
  merged = {path: node.merged_kernel().astype(dtype) for path, node in nnx.iter_graph(model)
            if isinstance(node, Projection)}

  def fill(tgt, src, path):
    for k in tgt:
      if isinstance(tgt[k], dict):
        fill(tgt[k], src[k], path + (k,))
      elif path in merged and k == "kernel":
        tgt[k] = merged[path]
      else:
        tgt[k] = jnp.asarray(src[k], dtype)

  fill(target, source, ())
  out = jax.tree.map(lambda x: x, base_abs)
  nnx.replace_by_pure_dict(out, target)
  return base, out


_HF_MODULES = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
               "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj",
               "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
               "down_proj": "mlp.down_proj"}


def peft_tensors(config: ModelConfig, params: nnx.State) -> dict[str, np.ndarray]:
  """The adapters as PEFT ``lora_A.weight`` [r, in] / ``lora_B.weight`` [out, r] tensors
  under Hugging Face module names (``base_model.model.model.layers.i.self_attn.q_proj…``)."""
  from rlx.models.transformer import abstract
  graphdef, _ = abstract(config)
  model = nnx.merge(graphdef, params)
  out = {}
  for path, node in nnx.iter_graph(model):
    if not isinstance(node, Projection) or node.lora_a is None:
      continue
    layer, name = path[1], path[-1]
    prefix = f"base_model.model.model.layers.{layer}.{_HF_MODULES[name]}"
    a = np.asarray(jax.device_get(node.lora_a[...]), np.float32)
    b = np.asarray(jax.device_get(node.lora_b[...]), np.float32)
    out[f"{prefix}.lora_A.weight"] = np.ascontiguousarray(a.reshape(-1, a.shape[-1]).T)
    out[f"{prefix}.lora_B.weight"] = np.ascontiguousarray(b.reshape(b.shape[0], -1).T)
  return out


def save_peft(out_dir: str, config: ModelConfig, params: nnx.State,
              base_model: str = "") -> str:
  """Write a PEFT LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``) that
  ``peft.PeftModel.from_pretrained(hf_model, out_dir)`` loads onto the base model. The base
  must be the unquantised one (a quantised base's codes round the weights the adapters were
  trained against: the merged export is then the faithful artefact)."""
  from rlx.models.checkpoint import write_safetensors
  spec = config.lora
  tensors = peft_tensors(config, params)
  modules = sorted({k[len("base_model.model."):].rsplit(".lora_", 1)[0] for k in tensors})
  os.makedirs(out_dir, exist_ok=True)
  write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), sorted(tensors.items()))
  cfg = {
      "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": spec.rank,
      "lora_alpha": spec.alpha, "lora_dropout": spec.dropout, "use_rslora": spec.rslora,
      "target_modules": modules, "bias": "none", "fan_in_fan_out": False,
      "init_lora_weights": True, "inference_mode": True, "modules_to_save": None,
      "base_model_name_or_path": base_model or None,
  }
  with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
  return out_dir
