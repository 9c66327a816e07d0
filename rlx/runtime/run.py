"""A training run from a config: build, restore, run the phases, checkpoint, log.

``train(cfg, workdir)`` is what ``python -m rlx.train`` calls. A run is a plan of phases
(:func:`phase_plan`): an SFT warm start (or the whole run for ``algo.name="sft"``), then the
algorithm's main phase (``rlx.runtime.phases``), each run by the one driver
(``rlx.runtime.phase.run_phase``). The global step counts updates across phases; every
checkpoint records the phase, so a restarted run resumes in the right one with the same data
order, optimizer state and RNG.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any

import jax
import ml_collections

from rlx import config as rlx_config
from rlx import models
from rlx.models import lora
from rlx.data import ChatFormat, JsonlSource, PlainFormat, TaskSource, load_task_tokenizer
from rlx.data.tasks import get_task
from rlx.runtime import distributed
from rlx.runtime import mesh as mesh_lib
from rlx.runtime import phases, preference, warm_start
from rlx.runtime.checkpoint import (Checkpointer, StepVerifier, checkpoint_host,
                                    restore_params)
from rlx.runtime.metrics import MetricsWriter
from rlx.runtime.plots import plot_learning_curves
from rlx.runtime.phase import run_fields, run_phase
from rlx.runtime.sources import (EVAL_SEED_OFFSET, LIBRARY_SOURCES, file_splits,
                                 library_sources)
from rlx.runtime.preemption import PreemptionGuard

log = logging.getLogger("rlx")



@dataclasses.dataclass
class Setup:
  """What every phase of a run shares (built once)."""

  run: rlx_config.RunConfig
  workdir: str
  model_config: models.ModelConfig
  graphdef: Any
  init_params: Any
  tokenizer: Any
  formatter: Any
  train_source: Any
  eval_source: Any
  checkpointer: Checkpointer | None  # None: built for an export (writes nothing)
  writer: MetricsWriter
  guard: PreemptionGuard
  layout: Any = None  # rlx.runtime.mesh.Layout on a multi-device mesh, None on one device
  lora_base: str = ""  # LoRA runs: what the frozen base is built from (checked on resume)
  base_init_from: str = ""  # checkpoint.init_from when it replaced the base (a full checkpoint)
  base_init_step: int | None = None  # ... and the step of it that was restored
  sampling_graphdef: Any = None  # sampling.dtype set: the model at that dtype (None: graphdef)


def _tokenizer(run):
  if run.data.tokenizer == "task":
    return load_task_tokenizer()
  from rlx.tokenizers import load_tokenizer
  return load_tokenizer(run.data.tokenizer)


def _file_source(run, path):
  from rlx.data import ColumnMapping, ParquetSource, gsm8k_answer, last_boxed
  d = run.data
  # Offline preference files (dpo, rm) hold pairs / KTO examples, not problems with answers:
  # their prompt view only serves an SFT warm start (data.solution_key="chosen").
  pairs = run.algo.name in (rlx_config.Algorithm.DPO, rlx_config.Algorithm.RM)
  mapping = ColumnMapping(prompt=d.prompt_key, answer=None if pairs else d.answer_key or None,
                          solution=d.solution_key or None,
                          answer_fn={"": None, "gsm8k": gsm8k_answer, "boxed": last_boxed}[
                              d.answer_fn])
  return (ParquetSource if d.source == "parquet" else JsonlSource)(path, mapping)


def _sources(run):
  """``(train, held-out)`` sources. A file source without ``data.eval_path`` holds out its last
  ``data.eval_size`` records (never trained on)."""
  d = run.data
  if d.source in LIBRARY_SOURCES:  # reasoning-gym generators, code-problem files
    return library_sources(run)
  if d.source == "task":
    difficulty = d.difficulty if len(d.difficulty) > 1 else d.difficulty[0]
    task = get_task(d.task)  # a task split by item (``lookup``) holds its held-out items back
    held_out = task.held_out_task() if hasattr(task, "held_out_task") else task
    return (TaskSource(task, size=d.train_size, seed=run.seed, difficulty=difficulty),
            TaskSource(held_out, size=max(d.eval_size, 1), seed=run.seed + EVAL_SEED_OFFSET,
                       difficulty=difficulty))
  return file_splits(d, lambda path: _file_source(run, path))


def build(cfg, workdir: str | None) -> Setup:
  """Validate the config and build model, tokenizer, data sources, checkpointer and writer.
  ``workdir=None`` (an export) writes nothing: no checkpointer, a writer without files."""
  run = cfg if isinstance(cfg, rlx_config.RunConfig) else rlx_config.validate(cfg)
  distributed.initialize(run.mesh)  # before anything touches a device
  layout = mesh_lib.layout_from_config(run.mesh)
  _check_batch_rows(run, layout)
  if workdir is not None:
    os.makedirs(workdir, exist_ok=True)
  param_dtype = run.mesh.param_dtype or run.model.dtype
  place = {} if layout is None else {"mesh": layout.mesh, "rules": layout.rules}
  if run.model.path:
    model_config, params = models.load_hf(run.model.path, dtype=param_dtype, **place)
    model_config = model_config.replace(dtype=run.model.dtype)
    graphdef, _ = models.abstract(model_config)
  else:
    model_config = run.model.model_config().replace(param_dtype=param_dtype)
    graphdef, params = models.init_params(model_config, run.seed, **place)
  # checkpoint.init_from: a full checkpoint replaces the base; a LoRA one (adapters only)
  # supplies the adapters over this config's base.
  adapters_from = _adapter_checkpoint(run)
  base_init = "" if adapters_from else run.checkpoint.init_from
  # The step is pinned (and recorded): a LoRA resume rebuilds its base from that very step.
  base_step = StepVerifier(base_init).usable(None) if base_init else None
  if base_init:
    params = restore_params(base_init, params, step=base_step)
    if layout is not None:
      params = layout.put_tree(params)
  if run.lora.enabled:  # adapters over the (frozen, maybe quantised) base built above
    model_config = model_config.replace(lora=run.lora.spec())
    graphdef, params = lora.attach(model_config, params, run.seed, donate=True, **place)
  if adapters_from:
    params = restore_params(adapters_from, params)
  sampling_graphdef = None
  if run.sampling.dtype and run.sampling.dtype != model_config.dtype:
    sampling_graphdef, _ = models.abstract(model_config.replace(dtype=run.sampling.dtype,
                                                                param_dtype=run.sampling.dtype))
  tokenizer = _tokenizer(run)
  formatter = ChatFormat(tokenizer) if run.data.prompt_format is rlx_config.PromptFormat.CHAT \
      else PlainFormat()
  train_source, eval_source = _sources(run)
  return Setup(
      run=run, workdir=workdir, model_config=model_config, graphdef=graphdef, init_params=params,
      sampling_graphdef=sampling_graphdef,
      tokenizer=tokenizer, formatter=formatter, train_source=train_source,
      eval_source=eval_source,
      checkpointer=None if workdir is None else Checkpointer(os.path.join(workdir, "checkpoints"),
                                                             keep=run.checkpoint.keep),
      writer=MetricsWriter(workdir, stdout=run.logging.stdout, tensorboard=run.logging.tensorboard,
                           every_steps=run.logging.every_steps),
      guard=PreemptionGuard(), layout=layout, lora_base=_lora_base(run, base_init, base_step),
      base_init_from=base_init, base_init_step=base_step)


def _lora_base(run, base_init: str = "", base_step: int | None = None) -> str:
  """A LoRA checkpoint holds adapters only: the base it needs, as the config builds it, and the
  adapters' own settings (all but dropout), so a resume or an ``init_from`` that would combine
  adapters with other weights or another scale is refused."""
  if not run.lora.enabled:
    return ""
  source = f"model.path={os.path.abspath(run.model.path)}" if run.model.path else (
      f"random init (model.preset={run.model.preset}, seed={run.seed})")
  init = f", checkpoint.init_from={base_init} step {base_step}" if base_init else ""
  lo = run.lora
  return (f"{source}{init}, dtype={run.mesh.param_dtype or run.model.dtype}, "
          f"lora.quantize={lo.quantize!r}"
          + (f", lora.group_size={lo.group_size}" if lo.quantize == "nf4" else "")
          + f"; adapters rank={lo.rank}, alpha={lo.alpha}, rslora={lo.rslora}, "
            f"targets={tuple(lo.targets)}")


def _adapter_checkpoint(run) -> str:
  """``checkpoint.init_from`` when it holds LoRA adapters only (checked against this config's
  base), else ""."""
  path = run.checkpoint.init_from
  if not path:
    return ""
  saved = checkpoint_host(path).get("lora_base", "")
  if not saved:
    return ""
  if not run.lora.enabled:
    raise rlx_config.ConfigError(
        f"config.checkpoint.init_from={path!r}: holds LoRA adapters only (base: {saved}); "
        f"set the same config.lora, or export the merged model (python -m rlx.export) and point "
        f"config.model.path at it")
  builds = _lora_base(run)
  if saved != builds:
    raise rlx_config.ConfigError(
        f"config.checkpoint.init_from={path!r}: its adapters were trained over {saved}; this "
        f"config builds {builds}")
  return path


def _check_lora_base(setup: Setup, host: dict) -> None:
  saved = host.get("lora_base", "")
  if saved != setup.lora_base:
    raise rlx_config.ConfigError(
        f"config.lora: the checkpoints in {setup.checkpointer.directory} were written by a run "
        f"whose frozen base was {saved or 'full fine-tuning (no adapters)'}; this config builds "
        f"{setup.lora_base or 'full fine-tuning (no adapters)'}. Resume with the same base, or "
        f"use a new workdir")


def _check_resumable(setup: Setup, host: dict, plan) -> None:
  """The workdir's checkpoints resume only under a config that builds the same run: the
  algorithm, the optimizer, the model architecture (``rlx.runtime.phase.RUN_FIELDS``, recorded
  in every checkpoint) and the phases. Anything else (steps, logging, evaluation ...) may
  change."""
  where = setup.checkpointer.directory
  fix = "resume with the config that wrote them or use a new workdir"
  saved, here = host.get("config") or {}, run_fields(setup.run)
  for field, value in here.items():
    if field in saved and saved[field] != value:
      raise rlx_config.ConfigError(
          f"config.{field}={value!r}: the checkpoints in {where} were written with "
          f"{field}={saved[field]!r}; {fix}")
  names = [name for name, _, _ in plan]
  if host["phase"] not in names:
    raise rlx_config.ConfigError(
        f"the checkpoints in {where} were written by another config (in phase "
        f"{host['phase']!r}; this config runs {', '.join(map(repr, names))}); {fix}")


def _check_batch_rows(run: rlx_config.RunConfig, layout) -> None:
  """Batch rows are split over data × fsdp: every batch size must be a multiple of it."""
  if layout is None:
    return
  rows = layout.batch_divisor
  sizes = [("algo.batch_size", run.algo.batch_size)]
  if run.warm_start.sft_steps > 0:
    sizes.append(("warm_start.batch_size", run.warm_start.batch_size))
  for field, size in sizes:
    if size % rows:
      raise rlx_config.ConfigError(
          f"config.{field}={size}: must be a multiple of mesh data × fsdp = {rows} (the "
          f"{layout.size} devices of mesh {dict(layout.mesh.shape)} split batch rows over it)")


def eval_table(evals: list[dict], phase: str = "RL") -> str:
  """Held-out metrics at the start and the end of the main phase, as a text table."""
  if not evals:
    return ""
  first, last = evals[0], evals[-1]
  keys = [k for k in first if k.startswith("eval/") and isinstance(first[k], (int, float))]
  before, after = f"before {phase}", f"after {phase}"
  rows = [f"{'metric':<24} {before:>14} {after:>14}"]
  rows += [f"{k[5:]:<24} {first[k]:>14.3f} {last.get(k, float('nan')):>14.3f}" for k in keys]
  return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# The run.


def export(cfg: ml_collections.ConfigDict | rlx_config.RunConfig, workdir: str, out: str,
           step: int | None = None) -> str:
  """Write the policy of ``workdir``'s checkpoint (the latest, or ``step``) as a Hugging Face
  checkpoint directory ``out`` (config.json + safetensors), loadable by transformers and by
  ``rlx.models.load_hf``. ``cfg`` is the run's config (it defines the architecture).

  A LoRA run writes the merged model (W + s·A·B, base dequantised) to ``out`` and, separately,
  its adapters in PEFT format to ``out/adapter`` (``peft.PeftModel.from_pretrained`` loads them
  onto the base ``model.path``)."""
  setup = build(cfg, None)  # writes nothing: only ``out`` is written
  params = restore_params(os.path.join(workdir, "checkpoints"), setup.init_params, step=step)
  config = setup.model_config
  if config.lora is not None:
    lora.save_peft(os.path.join(out, "adapter"), config, params, base_model=setup.run.model.path)
    config, params = lora.merge(config, params)
  models.save_hf(out, config, params)
  return out


def phase_plan(setup: Setup) -> list[tuple[str, int, Any]]:
  """The run's phases in order: ``(name, steps, make(params) -> Phase)``. An SFT warm start (or
  the whole run for ``algo.name="sft"``), then the main phase of the algorithm."""
  run = setup.run
  plan = []
  schedule = phases.sft_schedule(run)
  if schedule is not None:
    plan.append(("sft", schedule.steps, lambda p: phases.SFTPhase(setup, p, schedule)))
  if run.is_rl:
    make = phases.MAIN_PHASES[run.algo.name]
    plan.append((make.phase_name(run), run.num_steps, lambda p: make(setup, p)))
  return plan


def train(cfg: ml_collections.ConfigDict | rlx_config.RunConfig, workdir: str) -> dict:
  """Run (or resume) the config's training in ``workdir``; returns a summary dict.

  Returns early with ``{"preempted": True}`` after a SIGTERM/SIGINT (the checkpoint is written).
  Every checkpoint names its phase and step within it, so a restart resumes in the right phase;
  a phase that had finished hands its final parameters (from the checkpoint) to the next.
  """
  setup = build(cfg, workdir)
  run, ckpt = setup.run, setup.checkpointer
  latest = ckpt.latest_step()
  host = ckpt.restore_host(latest) if latest is not None else None
  if host is not None:
    _check_lora_base(setup, host)
  summary: dict[str, Any] = {"workdir": workdir, "resumed_from": latest, "preempted": False}
  plan = phase_plan(setup)
  setup.writer.total_steps = sum(steps for _, steps, _ in plan)
  offsets = [sum(steps for _, steps, _ in plan[:i]) for i in range(len(plan))]
  params, start, resume = setup.init_params, 0, None
  if host is not None:
    _check_resumable(setup, host, plan)
    start = [name for name, _, _ in plan].index(host["phase"])
    if host["phase_step"] >= plan[start][1]:  # that phase had finished: its params go on
      start += 1
      params = restore_params(ckpt.directory, params, step=latest)
    else:
      resume = {"step": latest, "phase_step": host["phase_step"]}
    if jax.process_index() == 0:
      print(f"rlx: resuming from step {latest}, checkpoint "
            f"{os.path.join(ckpt.directory, str(latest))} (phase {host['phase']} at its step "
            f"{host['phase_step']})", file=sys.stderr, flush=True)
  # warm_start.cache_dir: a warm start another run already trained is loaded, not retrained.
  cache = warm_start.cache_entry(run) if plan[0][0] == "sft" else None
  cached = warm_start.load(cache, params) if cache and host is None else None
  if cached is not None:
    params, start = cached, 1
  with setup.guard:
    try:
      for (name, steps, make), offset in list(zip(plan, offsets))[start:]:
        params, preempted, phase_summary = run_phase(setup, make(params), resume,
                                                     step_offset=offset)
        resume = None
        if cache and name == "sft" and not preempted:
          ckpt.wait()  # its final checkpoint is on disk, verified, before it is copied
          warm_start.store(cache, ckpt.directory, offset + steps)
        summary.update(phase_summary)
        if preempted:
          summary["preempted"] = True
          return summary
      if jax.process_index() == 0 and run.logging.stdout and summary.get("evals"):
        label = run.algo.name.value if run.algo.name in rlx_config.PREFERENCE_ALGORITHMS | {
            rlx_config.Algorithm.REJECTION_SFT, rlx_config.Algorithm.SFT} else "RL"
        print(eval_table(summary["evals"], label), flush=True)
      summary["params"] = params
      if jax.process_index() == 0:
        setup.writer.flush()
        summary["plots"] = plot_learning_curves(os.path.join(workdir, "metrics.jsonl"),
                                                os.path.join(workdir, "plots", "learning_curves.png"))
        if run.algo.name in rlx_config.PREFERENCE_ALGORITHMS:
          summary["preference_plot"] = preference.plot_preference(workdir)
        if summary["plots"] and run.logging.stdout:
          print(f"plots: {summary['plots']}", flush=True)
      return summary
    finally:
      setup.writer.flush()
      ckpt.close()
