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

``--devices=N`` plans on N simulated CPU devices (a TPU pod slice or GPU node can be planned
from a laptop; compile times grow with the model). ``--nocompile`` prints the arithmetic only.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

GIB = 2**30


def _nbytes(shape, dtype) -> int:
  return math.prod(shape) * np.dtype(dtype).itemsize


def plan(run, *, compile: bool = True) -> dict:
  """Per-device memory of ``run`` (a validated ``RunConfig``) on the current devices; a dict of
  byte counts (see the module docstring) plus the mesh and model description."""
  import jax
  import jax.numpy as jnp

  from rlx import models
  from rlx.algorithms import grpo, ppo, sft
  from rlx.config import Algorithm
  from rlx.runtime import mesh as mesh_lib
  from rlx.optim import init_train_state, make_optimizer

  m = run.mesh
  mesh = mesh_lib.make_mesh(m.data, m.fsdp, m.tensor)
  layout = mesh_lib.Layout.create(mesh, m.rules, m.sampling_rules, m.remat)
  param_dtype = m.param_dtype or run.model.dtype
  config = run.model.model_config().replace(param_dtype=param_dtype)
  algo = run.algo
  is_sft, is_ppo = algo.name is Algorithm.SFT, algo.name is Algorithm.PPO
  graphdef, params = models.abstract(config)
  value_graphdef = value_params = None
  if is_ppo:
    value_graphdef, value_params = models.abstract(config, models.ValueModel)
  opt = make_optimizer(run.optim, max(run.num_steps, 1))
  state = jax.eval_shape(lambda p, v: init_train_state(opt, p, run.seed, v), params, value_params)
  state_sh = layout.tree_shardings(state)
  per = lambda tree, sh: mesh_lib.planned_bytes_per_device(tree, sh)

  out: dict = {
      "mesh": dict(mesh.shape), "devices": mesh.size, "processes": jax.process_count(),
      "rules": m.rules, "sampling_rules": m.sampling_rules, "remat": m.remat,
      "model": run.model.preset, "params": sum(math.prod(x.shape) for x in jax.tree.leaves(params)),
      "param_dtype": param_dtype, "compute_dtype": run.model.dtype,
      "batch_rows": algo.batch_size, "micro_batch_rows": algo.micro_batch,
  }
  out["policy_params"] = per(state.params, state_sh.params)
  out["optimizer_state"] = per(state.opt_state, state_sh.opt_state) + (
      per(state.value_opt_state, state_sh.value_opt_state) if is_ppo else 0)
  out["value_params"] = per(state.value_params, state_sh.value_params) if is_ppo else 0
  out["train_state"] = per(state, state_sh)

  prep_spec = grpo.PrepareSpec.from_config(algo)
  ref = 0
  if not is_sft and prep_spec.use_reference:
    ref_dtype = m.reference_dtype or param_dtype
    ref_params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, ref_dtype), params)
    ref = per(ref_params, layout.tree_shardings(ref_params))
  out["reference_params"] = ref
  sampling_copy = 0
  if not is_sft and layout.sampling_rules is not None:
    sampling_copy = per(params, layout.sampling_shardings(params))
  out["sampling_params_copy"] = sampling_copy

  # The update's batch: the typed struct the update takes (its rows fields split over
  # data × fsdp, as ``Layout.shardings_for`` reads them).
  b, t = algo.batch_size, run.sampling.max_new_tokens
  s = (run.data.max_seq_len if is_sft else run.data.max_prompt_len + t)
  sds = jax.ShapeDtypeStruct
  spec = grpo.GRPOSpec.from_config(algo, run.model.logprob_chunk, config.vocab_size)
  if is_sft:
    batch = sft.SFTBatch(tokens=sds((b, s), jnp.int32), mask=sds((b, s), jnp.float32),
                         loss_mask=sds((b, s), jnp.float32))
  else:
    f = lambda: sds((b, t), jnp.float32)
    # Auxiliary-loss plug-ins read the per-row inputs they declare (each [B]).
    aux = {k: sds((b,), jnp.float32) for a in spec.aux for k in a.inputs}
    batch = grpo.TrainBatch(tokens=sds((b, s), jnp.int32), attention_mask=sds((b, s), jnp.float32),
                            loss_mask=f(), old_logprobs=f(), ref_logprobs=f(), advantages=f(),
                            importance_weights=f(), aux=aux)
    if is_ppo:
      batch = ppo.PPOBatch(policy=batch, old_values=f(), returns=f())
  out["batch"] = per(batch, layout.shardings_for(batch))
  out["planned_update_arguments"] = out["train_state"] + out["batch"]

  # Sampler KV cache: rows split over data × fsdp, kv heads over tensor (float32 cache).
  if not is_sft:
    rows = b // layout.batch_divisor if b % layout.batch_divisor == 0 else b
    tp = mesh.shape["tensor"]
    kv = config.n_kv_heads // tp if config.n_kv_heads % tp == 0 else config.n_kv_heads
    slots = run.data.max_prompt_len + t
    out["kv_cache"] = config.n_layers * 2 * rows * kv * slots * config.head_dim * 4
  else:
    out["kv_cache"] = 0
  out["planned_total_persistent"] = (out["train_state"] + ref + sampling_copy + out["batch"])

  if compile:
    if is_sft:
      update = sft.make_sft_update(graphdef, config, opt, micro_batch_size=algo.micro_batch,
                                   chunk_size=run.model.logprob_chunk, layout=layout)
      hp = sft.SFTHyper(lr=jnp.float32(run.optim.learning_rate))
    elif is_ppo:
      update = ppo.make_ppo_update(graphdef, value_graphdef, config, opt, spec, layout=layout)
      hp = grpo.hyper_from_config(algo, run.optim.learning_rate, run.sampling.temperature)
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
  return out


def format_plan(p: dict) -> str:
  """The plan as a text table (GiB per device; MiB for plans under 1 GiB)."""
  biggest = max(p["planned_total_persistent"], p.get("compiled", {}).get("peak", 0))
  unit, scale = ("GiB", GIB) if biggest >= GIB else ("MiB", 2**20)
  g = lambda x: f"{x / scale:10.3f}"
  shape = " x ".join(f"{k}={v}" for k, v in p["mesh"].items())
  lines = [
      f"model {p['model']}: {p['params'] / 1e9:.2f}B params, {p['param_dtype']} params, "
      f"{p['compute_dtype']} compute",
      f"mesh {shape} ({p['devices']} devices, {p['processes']} process(es)); rules "
      f"{p['rules']}, sampling {p['sampling_rules']}, remat {p['remat']}; batch "
      f"{p['batch_rows']} rows, micro-batch {p['micro_batch_rows']}",
      "",
      f"{'per device (' + unit + ')':<34} {'planned':>10}",
      f"{'  policy parameters':<34} {g(p['policy_params'])}",
      f"{'  optimizer state':<34} {g(p['optimizer_state'])}",
  ]
  if p["value_params"]:
    lines.append(f"{'  value parameters':<34} {g(p['value_params'])}")
  lines += [
      f"{'  reference parameters':<34} {g(p['reference_params'])}",
      f"{'  sampling copy of the parameters':<34} {g(p['sampling_params_copy'])}",
      f"{'  update batch':<34} {g(p['batch'])}",
      f"{'  persistent total':<34} {g(p['planned_total_persistent'])}",
      f"{'  sampler KV cache (float32)':<34} {g(p['kv_cache'])}",
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
    p = plan(run, compile=do_compile.value)
    if distributed.is_main():
      print(format_plan(p), flush=True)
      if as_json.value:
        print("PLAN_JSON " + json.dumps(p), flush=True)

  app.run(run_main)


if __name__ == "__main__":
  main()
