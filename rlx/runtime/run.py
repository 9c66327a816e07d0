"""A training run from a config: build, restore, run the phases, checkpoint, log.

``train(cfg, workdir)`` is what ``python -m rlx.train`` calls. A run has up to two phases:
SFT (the whole run for ``algo.name="sft"``, or the warm start of an RL run) and RL. The global
step counts updates across phases; every checkpoint records the phase, so a restarted run resumes
in the right one with the same data order, optimizer state and RNG.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from rlx import config as rlx_config
from rlx import models
from rlx.algorithms import sft
from rlx.data import (ChatFormat, ExampleIterator, JsonlSource, PlainFormat, TaskSource,
                      load_task_tokenizer, make_sft_batch)
from rlx.runtime import distributed
from rlx.runtime import mesh as mesh_lib
from rlx.runtime.checkpoint import Checkpointer, restore_params
from rlx.runtime.metrics import MetricsWriter
from rlx.runtime.plots import plot_learning_curves
from rlx.runtime.preemption import PreemptionGuard
from rlx.optim import create_train_state, make_optimizer

log = logging.getLogger("rlx")

EVAL_SEED_OFFSET = 1_000_003  # held-out task examples come from a different stream seed


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
  checkpointer: Checkpointer
  writer: MetricsWriter
  guard: PreemptionGuard
  layout: Any = None  # rlx.runtime.mesh.Layout on a multi-device mesh, None on one device


def _tokenizer(run):
  if run.data.tokenizer == "task":
    return load_task_tokenizer()
  from rlx.tokenizers import load_tokenizer
  return load_tokenizer(run.data.tokenizer)


class _Slice(collections.abc.Sequence):
  """Records ``[start, stop)`` of a source (a held-out tail, or the training part before it)."""

  def __init__(self, source, start: int, stop: int):
    self.source, self.start, self.stop = source, start, stop

  def __len__(self):
    return self.stop - self.start

  def __getitem__(self, i):
    if not 0 <= i < len(self):
      raise IndexError(i)
    return self.source[self.start + i]


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
  if d.source == "task":
    difficulty = d.difficulty if len(d.difficulty) > 1 else d.difficulty[0]
    return (TaskSource(d.task, size=d.train_size, seed=run.seed, difficulty=difficulty),
            TaskSource(d.task, size=max(d.eval_size, 1), seed=run.seed + EVAL_SEED_OFFSET,
                       difficulty=difficulty))
  return file_splits(d, lambda path: _file_source(run, path))


def file_splits(d: rlx_config.DataSection, make):
  """``(train, held-out)`` sources of a file: ``make(data.eval_path)`` if set, else the last
  ``data.eval_size`` records of ``make(data.path)`` (at least one record stays for training)."""
  src = make(d.path)
  if d.eval_path:
    return src, make(d.eval_path)
  held = min(d.eval_size, len(src) - 1)
  if held < 1:
    raise rlx_config.ConfigError(
        f"config.data.path={d.path!r}: {len(src)} record(s) leave none to hold out for "
        "evaluation; set data.eval_path or add records")
  return _Slice(src, 0, len(src) - held), _Slice(src, len(src) - held, len(src))


def build(cfg, workdir: str) -> Setup:
  """Validate the config and build model, tokenizer, data sources, checkpointer and writer."""
  run = cfg if isinstance(cfg, rlx_config.RunConfig) else rlx_config.validate(cfg)
  distributed.initialize(run.mesh)  # before anything touches a device
  layout = mesh_lib.layout_from_config(run.mesh)
  _check_batch_rows(run, layout)
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
  if run.checkpoint.init_from:
    params = restore_params(run.checkpoint.init_from, params)
    if layout is not None:
      params = layout.put_tree(params)
  tokenizer = _tokenizer(run)
  formatter = ChatFormat(tokenizer) if run.data.prompt_format is rlx_config.PromptFormat.CHAT \
      else PlainFormat()
  train_source, eval_source = _sources(run)
  return Setup(
      run=run, workdir=workdir, model_config=model_config, graphdef=graphdef, init_params=params,
      tokenizer=tokenizer, formatter=formatter, train_source=train_source,
      eval_source=eval_source,
      checkpointer=Checkpointer(os.path.join(workdir, "checkpoints"), keep=run.checkpoint.keep),
      writer=MetricsWriter(workdir, stdout=run.logging.stdout, tensorboard=run.logging.tensorboard,
                           every_steps=run.logging.every_steps),
      guard=PreemptionGuard(), layout=layout)


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


# ---------------------------------------------------------------------------------------------
# SFT phase.


@dataclasses.dataclass(frozen=True)
class SFTPhase:
  steps: int
  learning_rate: float
  batch_size: int
  micro_batch_size: int


def sft_phase_of(run: rlx_config.RunConfig) -> SFTPhase | None:
  if run.algo.name is rlx_config.Algorithm.SFT:
    return SFTPhase(run.num_steps, run.optim.learning_rate, run.algo.batch_size,
                    run.algo.micro_batch)
  if run.warm_start.sft_steps > 0:
    return SFTPhase(run.warm_start.sft_steps, run.warm_start.learning_rate,
                    run.warm_start.batch_size, run.warm_start.batch_size)
  return None


def run_sft(setup: Setup, phase: SFTPhase, params, resume: dict | None, step_offset: int = 0):
  """SFT updates ``resume['phase_step'] .. phase.steps``; returns ``(params, preempted)``."""
  run = setup.run
  opt = make_optimizer(run.optim, phase.steps)
  state = create_train_state(opt, params, run.seed, layout=setup.layout)
  # Each host loads its block of every global batch; the blocks are gathered into the batch.
  if phase.batch_size % jax.process_count():
    raise rlx_config.ConfigError(
        f"SFT batch size {phase.batch_size} must be a multiple of the {jax.process_count()} "
        "processes (algo.batch_size / warm_start.batch_size)")
  examples = ExampleIterator(setup.train_source, batch_size=phase.batch_size // jax.process_count(),
                             seed=run.seed, shuffle=run.data.shuffle,
                             process_index=jax.process_index(), process_count=jax.process_count())
  if resume is not None:
    restored, host = setup.checkpointer.restore(resume["step"], {"train": state})
    state = restored["train"]
    examples.set_state(host["data"])
  update = sft.make_sft_update(setup.graphdef, setup.model_config, opt,
                               micro_batch_size=phase.micro_batch_size,
                               chunk_size=run.model.logprob_chunk, layout=setup.layout)
  hparams = {"lr": jnp.float32(phase.learning_rate)}
  step = int(state.step)

  def save(force=False):
    setup.checkpointer.save(step_offset + step, {"train": state},
                            {"phase": "sft", "phase_step": step, "data": examples.get_state()},
                            force=force)

  while step < phase.steps:
    b = make_sft_batch(next(examples), setup.tokenizer, formatter=setup.formatter,
                       max_len=run.data.max_seq_len, truncate=True)
    batch = sft.sft_batch(*(distributed.gather_rows(b[k]) for k in ("tokens", "mask",
                                                                     "loss_mask")))
    state, metrics = update(state, batch, hparams)
    step += 1
    setup.writer.push(step_offset + step, metrics, {"phase": "sft"})
    if setup.guard.stop_requested():
      save(force=True)
      return state.params, True
    if step % run.checkpoint.every_steps == 0 or step == phase.steps:
      save()
  setup.writer.flush()
  return state.params, False


def eval_table(evals: list[dict]) -> str:
  """Held-out metrics at the start and the end of the RL phase, as a text table."""
  if not evals:
    return ""
  first, last = evals[0], evals[-1]
  keys = [k for k in first if k.startswith("eval/") and isinstance(first[k], (int, float))]
  rows = [f"{'metric':<24} {'before RL':>10} {'after RL':>10}"]
  rows += [f"{k[5:]:<24} {first[k]:>10.3f} {last.get(k, float('nan')):>10.3f}" for k in keys]
  return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# The run.


def export(cfg: ml_collections.ConfigDict | rlx_config.RunConfig, workdir: str, out: str,
           step: int | None = None) -> str:
  """Write the policy of ``workdir``'s checkpoint (the latest, or ``step``) as a Hugging Face
  checkpoint directory ``out`` (config.json + safetensors), loadable by transformers and by
  ``rlx.models.load_hf``. ``cfg`` is the run's config (it defines the architecture)."""
  setup = build(cfg, os.path.join(workdir, ".export"))
  params = restore_params(os.path.join(workdir, "checkpoints"), setup.init_params, step=step)
  models.save_hf(out, setup.model_config, params)
  setup.checkpointer.close()
  return out


def train(cfg: ml_collections.ConfigDict | rlx_config.RunConfig, workdir: str) -> dict:
  """Run (or resume) the config's training in ``workdir``; returns a summary dict.

  Returns early with ``{"preempted": True}`` after a SIGTERM/SIGINT (the checkpoint is written).
  """
  setup = build(cfg, workdir)
  run = setup.run
  ckpt = setup.checkpointer
  latest = ckpt.latest_step()
  host = ckpt.restore_host(latest) if latest is not None else None
  summary: dict[str, Any] = {"workdir": workdir, "resumed_from": latest, "preempted": False}
  params = setup.init_params
  sft_phase = sft_phase_of(run)
  setup.writer.total_steps = (sft_phase.steps if sft_phase is not None else 0) + (
      run.num_steps if run.is_rl else 0)
  with setup.guard:
    try:
      sft_done = sft_phase is None or (host is not None and (
          host["phase"] != "sft" or host["phase_step"] >= sft_phase.steps))
      if not sft_done:
        resume = None if host is None else {"step": latest}
        params, preempted = run_sft(setup, sft_phase, params, resume)
        if preempted:
          summary["preempted"] = True
          return summary
      if run.is_rl:
        from rlx.runtime import loop  # needs rlx.sampling
        rl_host = host if host is not None and host["phase"] != "sft" else None
        offset = sft_phase.steps if sft_phase is not None else 0
        if sft_done and rl_host is None and sft_phase is not None and host is not None:
          # Resuming right after a finished warm start: its final params are in the checkpoint.
          params = restore_params(ckpt.directory, params, step=latest)
        main_phase = loop.run_rl
        if run.algo.name in rlx_config.PREFERENCE_ALGORITHMS:  # dpo, rm, iterative_dpo
          from rlx.runtime.preference import run_preference
          main_phase = run_preference
        params, preempted, rl_summary = main_phase(
            setup, params,
            None if rl_host is None else {"step": latest, "phase_step": rl_host["phase_step"]},
            step_offset=offset)
        summary.update(rl_summary)
        summary["preempted"] = preempted
        if preempted:
          return summary
        if jax.process_index() == 0 and run.logging.stdout:
          print(eval_table(summary.get("evals", [])), flush=True)
      elif sft_done and host is not None:
        params = restore_params(ckpt.directory, params, step=latest)
      summary["params"] = params
      if jax.process_index() == 0:
        setup.writer.flush()
        summary["plots"] = plot_learning_curves(os.path.join(workdir, "metrics.jsonl"),
                                                os.path.join(workdir, "plots", "learning_curves.png"))
        if summary["plots"] and run.logging.stdout:
          print(f"plots: {summary['plots']}", flush=True)
      return summary
    finally:
      setup.writer.flush()
      ckpt.close()
