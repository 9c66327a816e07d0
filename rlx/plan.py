r"""Memory plan of a config on its mesh: ``python -m rlx.plan --config configs/x.py``.

    python -m rlx.plan --config configs/grpo.py --config.model.preset=llama-3.1-8b \
        --config.model.dtype=bfloat16 --config.mesh.fsdp=2 --config.mesh.tensor=4 --devices=8

Nothing is allocated: the model, train state and batch are ``jax.eval_shape`` structures, laid
out by the mesh's rule table (``rlx.runtime.mesh``). Two figures per device:

- **planned** (arithmetic): bytes of every shard of the train state (parameters, optimizer
  state, value network), the frozen reference, a sampling copy of the parameters when
  ``mesh.sampling_rules`` differs from the training table, the update's batch, and the
  sampler's KV cache;
- **compiled**: the update ahead-of-time lowered and compiled for the mesh
  (``jax.jit(...).lower(abstract args).compile().memory_analysis()``): its arguments (what the
  planned state + batch must match), outputs, temporaries (activations, gradients, optimizer
  temporaries) and the peak ``arguments + outputs − aliased (donated) + temporaries``.

A LoRA run (``lora.rank > 0``, docs/lora.md) is planned as it trains: the model carries its
adapters (and, with ``lora.quantize``, int8 / NF4 base kernels plus float32 scales), optimizer
state exists for the adapters only, the reference copies the adapters only (it shares the
frozen base, ``rlx.optim.frozen_copy``), and the update is compiled through the learner's
``Update.lower`` (the frozen base an argument that is neither donated nor returned). The
checkpoint figure is the whole (unsharded) size of what a checkpoint stores: the trainable part
of the train state and of the reference (``rlx.runtime.checkpoint``).

``--compare_lora`` plans the same config four times: full fine-tuning, LoRA, LoRA over an int8
base and LoRA over an NF4 base (rank ``lora.rank``, or 16 when the config has none), and prints
one table of per-device memory (:func:`lora_comparison`).

``--devices=N`` plans on N simulated CPU devices (a TPU pod slice or GPU node can be planned
from a laptop; compile times grow with the model). ``--nocompile`` prints the arithmetic only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np

GIB = 2**30
COMPARE_RANK = 16  # the rank --compare_lora uses when the config's lora.rank is 0


def _nbytes(shape, dtype) -> int:
  return math.prod(shape) * np.dtype(dtype).itemsize


def _total_bytes(tree) -> int:
  """Unsharded bytes of every leaf of ``tree`` (what a checkpoint of it writes)."""
  import jax
  return sum(_nbytes(x.shape, x.dtype) for x in jax.tree.leaves(tree))


def _model(run):
  """``(model config, parameter dtype)`` of ``run``: its adapters set for a LoRA run."""
  param_dtype = run.mesh.param_dtype or run.model.dtype
  config = run.model.model_config().replace(param_dtype=param_dtype, lora=run.lora.spec())
  return config, param_dtype


def _reference(run, params, param_dtype):
  """The frozen reference (abstract), or None: a full copy in ``mesh.reference_dtype``; a LoRA
  model's reference is its adapters only (cast likewise), the base being shared."""
  import jax
  from rlx.algorithms import grpo
  from rlx.config import Algorithm
  from rlx.models import lora

  if run.algo.name is Algorithm.SFT or not grpo.PrepareSpec.from_config(run.algo).use_reference:
    return None
  if lora.has_adapters(params):
    tree, dtype = lora.trainable_only(params), run.mesh.reference_dtype
  else:
    tree, dtype = params, run.mesh.reference_dtype or param_dtype
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, dtype or x.dtype), tree)


def _update_batch(run, config, spec):
  """The update's batch as the typed struct of ``jax.ShapeDtypeStruct`` the update takes."""
  import jax
  import jax.numpy as jnp
  from rlx.algorithms import grpo, ppo, sft
  from rlx.config import Algorithm

  algo = run.algo
  is_sft = algo.name is Algorithm.SFT
  b, t = algo.batch_size, run.sampling.max_new_tokens
  s = (run.data.max_seq_len if is_sft else run.data.max_prompt_len + t)
  sds = jax.ShapeDtypeStruct
  if is_sft:
    return sft.SFTBatch(tokens=sds((b, s), jnp.int32), mask=sds((b, s), jnp.float32),
                        loss_mask=sds((b, s), jnp.float32))
  f = lambda: sds((b, t), jnp.float32)
  # Auxiliary-loss plug-ins read the per-row inputs they declare (each [B]).
  aux = {k: sds((b,), jnp.float32) for a in spec.aux for k in a.inputs}
  batch = grpo.TrainBatch(tokens=sds((b, s), jnp.int32), attention_mask=sds((b, s), jnp.float32),
                          loss_mask=f(), old_logprobs=f(), ref_logprobs=f(), advantages=f(),
                          importance_weights=f(), aux=aux)
  if algo.name is Algorithm.PPO:
    batch = ppo.PPOBatch(policy=batch, old_values=f(), returns=f())
  return batch


def _kv_cache(run, config, layout) -> int:
  """Sampler KV cache per device: rows split over data × fsdp, kv heads over tensor (float32)."""
  from rlx.config import Algorithm
  if run.algo.name is Algorithm.SFT:
    return 0
  b, t = run.algo.batch_size, run.sampling.max_new_tokens
  rows = b // layout.batch_divisor if b % layout.batch_divisor == 0 else b
  tp = layout.mesh.shape["tensor"]
  kv = config.n_kv_heads // tp if config.n_kv_heads % tp == 0 else config.n_kv_heads
  slots = run.data.max_prompt_len + t
  return config.n_layers * 2 * rows * kv * slots * config.head_dim * 4


def _describe(run, mesh, config, params, param_dtype) -> dict:
  """The mesh, model and LoRA header of a plan."""
  import jax
  from rlx import models
  from rlx.models import lora

  m, algo = run.mesh, run.algo
  spec = config.lora
  trained = lora.trainable_count(params)
  # Parameters of the architecture (a quantised kernel's codes and scales are not its count).
  n = trained if spec is None else models.count_params(lora.base_config(config))
  return {
      "mesh": dict(mesh.shape), "devices": mesh.size, "processes": jax.process_count(),
      "rules": m.rules, "sampling_rules": m.sampling_rules, "remat": m.remat,
      "model": run.model.preset, "params": n, "param_dtype": param_dtype,
      "compute_dtype": run.model.dtype, "batch_rows": algo.batch_size,
      "micro_batch_rows": algo.micro_batch,
      "lora": None if spec is None else dataclasses.asdict(spec), "trainable_params": trained,
  }


def plan(run, *, compile: bool = True) -> dict:
  """Per-device memory of ``run`` (a validated ``RunConfig``) on the current devices; a dict of
  byte counts (see the module docstring) plus the mesh and model description."""
  import jax

  from rlx import models
  from rlx.algorithms import grpo
  from rlx.config import Algorithm
  from rlx.models import lora
  from rlx.runtime import mesh as mesh_lib
  from rlx.optim import init_train_state, make_optimizer

  m = run.mesh
  mesh = mesh_lib.make_mesh(m.data, m.fsdp, m.tensor)
  layout = mesh_lib.Layout.create(mesh, m.rules, m.sampling_rules, m.remat)
  config, param_dtype = _model(run)
  is_sft, is_ppo = run.algo.name is Algorithm.SFT, run.algo.name is Algorithm.PPO
  graphdef, params = models.abstract(config)
  value_graphdef = value_params = None
  if is_ppo:
    value_graphdef, value_params = models.abstract(config, models.ValueModel)
  opt = make_optimizer(run.optim, max(run.num_steps, 1))
  state = jax.eval_shape(lambda p, v: init_train_state(opt, p, run.seed, v), params, value_params)
  state_sh = layout.tree_shardings(state)
  per = lambda tree, sh=None: mesh_lib.planned_bytes_per_device(
      tree, layout.tree_shardings(tree) if sh is None else sh)

  out = _describe(run, mesh, config, params, param_dtype)
  out["policy_params"] = per(state.params, state_sh.params)
  out["trained_params"] = per(lora.trainable_only(state.params))  # = policy_params without LoRA
  out["optimizer_state"] = per(state.opt_state, state_sh.opt_state) + (
      per(state.value_opt_state, state_sh.value_opt_state) if is_ppo else 0)
  out["value_params"] = per(state.value_params, state_sh.value_params) if is_ppo else 0
  out["train_state"] = per(state, state_sh)
  ref_params = _reference(run, params, param_dtype)
  out["reference_params"] = ref = 0 if ref_params is None else per(ref_params)
  sampling_copy = 0
  if not is_sft and layout.sampling_rules is not None:
    sampling_copy = per(params, layout.sampling_shardings(params))
  out["sampling_params_copy"] = sampling_copy
  # What a checkpoint writes (all shards): the trainable part of the state and the reference.
  out["checkpoint"] = _total_bytes(lora.trainable_only(state)) + (
      0 if ref_params is None else _total_bytes(ref_params))

  # The update's batch: its rows fields split over data × fsdp (``Layout.shardings_for``).
  spec = grpo.GRPOSpec.from_config(run.algo, run.model.logprob_chunk, config.vocab_size)
  batch = _update_batch(run, config, spec)
  out["batch"] = per(batch, layout.shardings_for(batch))
  out["planned_update_arguments"] = out["train_state"] + out["batch"]
  out["kv_cache"] = _kv_cache(run, config, layout)
  out["planned_total_persistent"] = out["train_state"] + ref + sampling_copy + out["batch"]
  if compile:
    _compile(out, run, layout, (graphdef, value_graphdef, config), opt, spec, state, batch)
  return out


def _compile(out: dict, run, layout, model, opt, spec, state, batch) -> None:
  """AOT-compile the run's update (``Update.lower``: a LoRA model's frozen base is a separate,
  undonated argument) and record its ``memory_analysis`` in ``out["compiled"]``."""
  import jax.numpy as jnp
  from rlx.algorithms import grpo, ppo, sft
  from rlx.config import Algorithm

  graphdef, value_graphdef, config = model
  algo = run.algo
  if algo.name is Algorithm.SFT:
    update = sft.make_sft_update(graphdef, config, opt, micro_batch_size=algo.micro_batch,
                                 chunk_size=run.model.logprob_chunk, layout=layout)
    hp = sft.SFTHyper(lr=jnp.float32(run.optim.learning_rate))
  else:
    if algo.name is Algorithm.PPO:
      update = ppo.make_ppo_update(graphdef, value_graphdef, config, opt, spec, layout=layout)
    else:
      update = grpo.make_grpo_update(graphdef, config, opt, spec, layout=layout)
    hp = grpo.hyper_from_config(algo, run.optim.learning_rate, run.sampling.temperature)
  t0 = time.perf_counter()
  lowered = update.lower(state, batch, hp)
  out["lower_s"] = round(time.perf_counter() - t0, 1)
  t0 = time.perf_counter()
  compiled = lowered.compile()
  out["compile_s"] = round(time.perf_counter() - t0, 1)
  ma = compiled.memory_analysis()
  c = {k: int(getattr(ma, f"{k}_size_in_bytes", 0) or 0)
       for k in ("argument", "output", "alias", "temp", "generated_code")}
  c["peak"] = c["argument"] + c["output"] - c["alias"] + c["temp"]
  out["compiled"] = c
  out["planned_vs_compiled_arguments"] = out["planned_update_arguments"] / max(c["argument"], 1)


def _unit(biggest: int):
  """``(name, bytes)`` of the unit a table is printed in: GiB, or MiB under 1 GiB."""
  return ("GiB", GIB) if biggest >= GIB else ("MiB", 2**20)


def _lora_line(p: dict) -> list[str]:
  """The header line of a LoRA plan (none for full fine-tuning)."""
  lo = p.get("lora")
  if not lo:
    return []
  base = f"{lo['quantize']} base (group {lo['group_size']})" if lo["quantize"] == "nf4" else (
      f"{lo['quantize'] or p['param_dtype']} base")
  return [f"LoRA rank {lo['rank']} (alpha {lo['alpha']:g}) on {', '.join(lo['targets'])}; "
          f"{base}; {p['trainable_params'] / 1e6:.2f}M trained parameters "
          f"({100 * p['trainable_params'] / max(p['params'], 1):.2f}%)"]


def format_plan(p: dict) -> str:
  """The plan as a text table (GiB per device; MiB for plans under 1 GiB)."""
  unit, scale = _unit(max(p["planned_total_persistent"], p.get("compiled", {}).get("peak", 0)))
  g = lambda x: f"{x / scale:10.3f}"
  shape = " x ".join(f"{k}={v}" for k, v in p["mesh"].items())
  lines = [
      f"model {p['model']}: {p['params'] / 1e9:.2f}B params, {p['param_dtype']} params, "
      f"{p['compute_dtype']} compute",
      *_lora_line(p),
      f"mesh {shape} ({p['devices']} devices, {p['processes']} process(es)); rules "
      f"{p['rules']}, sampling {p['sampling_rules']}, remat {p['remat']}; batch "
      f"{p['batch_rows']} rows, micro-batch {p['micro_batch_rows']}",
      "",
      f"{'per device (' + unit + ')':<34} {'planned':>10}",
      f"{'  policy parameters':<34} {g(p['policy_params'])}",
  ]
  if p.get("lora"):
    lines.append(f"{'    of which trained (adapters)':<34} {g(p['trained_params'])}")
  lines.append(f"{'  optimizer state':<34} {g(p['optimizer_state'])}")
  if p["value_params"]:
    lines.append(f"{'  value parameters':<34} {g(p['value_params'])}")
  lines += [
      f"{'  reference parameters':<34} {g(p['reference_params'])}",
      f"{'  sampling copy of the parameters':<34} {g(p['sampling_params_copy'])}",
      f"{'  update batch':<34} {g(p['batch'])}",
      f"{'  persistent total':<34} {g(p['planned_total_persistent'])}",
      f"{'  sampler KV cache (float32)':<34} {g(p['kv_cache'])}",
      f"{'checkpoint, all devices (' + unit + ')':<34} {g(p['checkpoint'])}",
  ]
  c = p.get("compiled")
  if c:
    lines += [
        "",
        f"compiled update (lowered {p['lower_s']}s, compiled {p['compile_s']}s), per device:",
        f"{'  arguments (state + batch)':<34} {g(c['argument'])}   planned "
        f"{g(p['planned_update_arguments']).strip()} "
        f"({100 * (p['planned_vs_compiled_arguments'] - 1):+.1f}%)",
        f"{'  outputs':<34} {g(c['output'])}",
        f"{'  aliased (donated state)':<34} {g(c['alias'])}",
        f"{'  temporaries':<34} {g(c['temp'])}",
        f"{'  peak of the update':<34} {g(c['peak'])}",
        f"{'  peak + reference + sampling copy':<34} "
        f"{g(c['peak'] + p['reference_params'] + p['sampling_params_copy'])}",
    ]
  return "\n".join(lines)


LORA_VARIANTS = (("full", 0, ""), ("LoRA", 1, ""), ("LoRA int8", 1, "int8"),
                 ("LoRA nf4", 1, "nf4"))


def lora_comparison(run, *, compile: bool = False, rank: int = 0) -> list[tuple[str, dict]]:
  """``[(name, plan)]`` of ``run`` as full fine-tuning, LoRA, LoRA over an int8 base and LoRA
  over an NF4 base: rank ``rank``, else ``run.lora.rank``, else :data:`COMPARE_RANK`; the other
  LoRA fields (alpha, targets, group size) from ``run.lora``."""
  rank = rank or run.lora.rank or COMPARE_RANK
  rows = []
  for name, adapted, quantize in LORA_VARIANTS:
    lo = dataclasses.replace(run.lora, rank=rank if adapted else 0, quantize=quantize)
    rows.append((name, plan(dataclasses.replace(run, lora=lo), compile=compile)))
  return rows


def format_comparison(rows: list[tuple[str, dict]]) -> str:
  """:func:`lora_comparison` as one text table: per-device bytes, one column per variant."""
  first = rows[0][1]
  lora = next((p["lora"] for _, p in rows if p["lora"]), None)
  unit, scale = _unit(max(max(p["planned_total_persistent"], p.get("compiled", {}).get("peak", 0))
                          for _, p in rows))
  shape = " x ".join(f"{k}={v}" for k, v in first["mesh"].items())
  fields = [("trained parameters (millions)", lambda p: p["trainable_params"] / 1e6),
            ("policy parameters", lambda p: p["policy_params"] / scale),
            ("  of which trained", lambda p: p["trained_params"] / scale),
            ("optimizer state", lambda p: p["optimizer_state"] / scale),
            ("value parameters", lambda p: p["value_params"] / scale),
            ("reference parameters", lambda p: p["reference_params"] / scale),
            ("sampling copy of the parameters", lambda p: p["sampling_params_copy"] / scale),
            ("update batch", lambda p: p["batch"] / scale),
            ("persistent total", lambda p: p["planned_total_persistent"] / scale),
            ("sampler KV cache (float32)", lambda p: p["kv_cache"] / scale)]
  if not first["value_params"]:
    fields = [f for f in fields if f[0] != "value parameters"]
  if "compiled" in first:
    fields += [("update peak (compiled)", lambda p: p["compiled"]["peak"] / scale),
               ("peak + reference + sampling copy", lambda p: (
                   p["compiled"]["peak"] + p["reference_params"] + p["sampling_params_copy"])
                / scale)]
  fields.append(("checkpoint, all devices", lambda p: p["checkpoint"] / scale))
  lines = [f"model {first['model']}: {first['params'] / 1e9:.2f}B params, {first['param_dtype']} "
           f"params; LoRA rank {lora['rank'] if lora else '-'} on "
           f"{', '.join(lora['targets']) if lora else '-'}; mesh {shape} ({first['devices']} "
           f"devices); batch {first['batch_rows']} rows",
           "",
           f"{'per device (' + unit + ')':<34}" + "".join(f"{n:>12}" for n, _ in rows)]
  for label, f in fields:
    lines.append(f"{label:<34}" + "".join(f"{f(p):12.3f}" for _, p in rows))
  full = rows[0][1]["planned_total_persistent"]
  lines.append(f"{'persistent total vs full':<34}" + "".join(
      f"{p['planned_total_persistent'] / full:11.2f}x" for _, p in rows))
  return "\n".join(lines)


def main():
  from absl import app, flags
  from ml_collections import config_flags

  config_flag = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                                lock_config=True)
  devices = flags.DEFINE_integer("devices", 0, "Plan on N simulated CPU devices (0: the real "
                                 "devices of this machine).")
  do_compile = flags.DEFINE_bool("compile", True, "AOT-compile the update for its memory "
                                 "analysis (--nocompile: arithmetic only).")
  as_json = flags.DEFINE_bool("json", False, "Also print the plan as one JSON line.")
  compare = flags.DEFINE_bool("compare_lora", False, "Plan full fine-tuning, LoRA, int8-base "
                              "LoRA and NF4-base LoRA of the config and print one table (rank "
                              f"lora.rank, or {COMPARE_RANK} when it is 0).")
  flags.mark_flags_as_required(["config"])

  def run_main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    if devices.value:
      jax.config.update("jax_platforms", "cpu")
      jax.config.update("jax_num_cpu_devices", devices.value)
    from rlx import config as rlx_config
    from rlx.runtime import distributed
    run = rlx_config.validate(config_flag.value, check_paths=False)
    if not devices.value:
      distributed.initialize(run.mesh)
    if compare.value:
      rows = lora_comparison(run, compile=do_compile.value)
      text, p = format_comparison(rows), dict(rows)
    else:
      p = plan(run, compile=do_compile.value)
      text = format_plan(p)
    if distributed.is_main():
      print(text, flush=True)
      if as_json.value:
        print("PLAN_JSON " + json.dumps(p), flush=True)

  app.run(run_main)


if __name__ == "__main__":
  main()
