"""The one phase driver: every phase of a run (SFT, RL / PPO, offline preference, iterative DPO,
reward-model training, rejection-sampling SFT) is a :class:`Phase`, and :func:`run_phase` owns
what they share — stepping, preemption, the evaluation and checkpoint schedules, the evaluation
history, metrics (pushed one step late) and the checkpoint layout.

A phase's own code only says how to build its state, how to take one step, what to checkpoint
and how to evaluate; see ``rlx/runtime/phases/``.

Checkpoints: ``{name: pytree}`` items from :meth:`Phase.checkpoint_items` (the train state,
frozen reference parameters ...) plus a host item ``{"phase", "phase_step", "evals",
"config", **Phase.host_state()}`` (data cursors, filter and reward state; ``config``: the
:data:`RUN_FIELDS` a resume must match). The global step counts updates
across phases (``step_offset``), so a restarted run resumes in the right phase and step.

Non-finite guard (``checkpoint.on_nonfinite="stop"``): every step's loss scalar (``loss/total``
or ``loss``) is checked one step late, when it is ready anyway, and synchronously before any
checkpoint; a NaN / inf loss raises :class:`NonFiniteLossError` naming the step, and no
checkpoint is written after it, so the last good one survives rotation.
"""

from __future__ import annotations

import enum
import math
import os
import sys
from typing import Any

import jax

from rlx.runtime.metrics import loss_scalar

EVAL_KEY = 2**31 - 1  # evaluation samples with fold_in(PRNGKey(seed), EVAL_KEY)
# Config fields every checkpoint records (host item "config") and a resume must match
# (rlx.runtime.run): the algorithm, the optimizer and the model's architecture. Others (steps,
# learning rate, logging, evaluation, mesh ...) may change between a run and its resume.
RUN_FIELDS = ("algo.name", "optim.name", "model.preset", "model.family", "model.vocab_size",
              "model.d_model", "model.n_layers", "model.n_heads", "model.n_kv_heads",
              "model.head_dim", "model.d_ff", "model.tie_embeddings", "model.qkv_bias",
              "model.value_head")


def run_fields(run) -> dict[str, Any]:
  """``{field: value}`` of :data:`RUN_FIELDS` in ``run`` (a ``RunConfig``; enums by value)."""
  out = {}
  for field in RUN_FIELDS:
    value = run
    for part in field.split("."):
      value = getattr(value, part)
    out[field] = value.value if isinstance(value, enum.Enum) else value
  return out


def _announce_stop(setup, step: int) -> None:
  """After the forced checkpoint of a SIGTERM / SIGINT: wait until it is on disk and verified,
  then say (process 0) where it is."""
  ckpt = setup.checkpointer
  ckpt.wait()
  if jax.process_index() == 0:
    print(f"rlx: {setup.guard.signal_name or 'stop requested'}: checkpointed step {step} to "
          f"{os.path.join(ckpt.directory, str(step))}; run the same command again to resume",
          file=sys.stderr, flush=True)


class NonFiniteLossError(FloatingPointError):
  """A step's loss was NaN or infinite; the run stopped without checkpointing that step."""


class Phase:
  """A phase of a run. Subclasses set ``name`` and ``num_steps`` and implement :meth:`step`;
  the rest has defaults (no evaluation, checkpoint every ``checkpoint.every_steps``)."""

  name: str = "phase"
  num_steps: int = 0
  step_offset: int = 0  # global steps before this phase (set by run_phase)

  def __init__(self, setup):
    self.setup = setup
    self.run = setup.run
    self.name = self.phase_name(setup.run)

  @classmethod
  def phase_name(cls, run) -> str:
    """The name checkpoints record for this phase of ``run``."""
    return cls.name

  # --- state ---------------------------------------------------------------------------------
  def checkpoint_items(self) -> dict[str, Any]:
    """Device pytrees a resume needs (restored in place of these, same structure)."""
    return {"train": self.state}

  def host_state(self) -> dict[str, Any]:
    """Host values a resume needs (JSON / numpy)."""
    return {}

  def restore(self, items: dict[str, Any], host: dict[str, Any]) -> None:
    self.state = items["train"]

  def params(self):
    """The parameters the phase hands to the next one (the policy)."""
    return self.state.params

  # --- stepping ------------------------------------------------------------------------------
  def step(self, step: int) -> tuple[dict, dict]:
    """One update at phase step ``step`` (0-based): ``(device metrics, host metrics)``."""
    raise NotImplementedError

  def evaluate(self, step: int) -> dict | None:
    """Held-out metrics at ``step`` (None: this phase does not evaluate)."""
    return None

  # --- schedules -----------------------------------------------------------------------------
  def eval_due(self, step: int) -> bool:
    """Evaluate after update ``step`` (1-based count; the last step always evaluates)."""
    every = self.run.eval.every_steps
    return bool(every) and step % every == 0

  def save_due(self, step: int) -> bool:
    return step % self.run.checkpoint.every_steps == 0


def run_phase(setup, phase: Phase, resume: dict | None, *, step_offset: int = 0):
  """Run (or resume) ``phase``; returns ``(params, preempted, {"evals": [...]})``.

  ``resume``: ``{"step": global checkpoint step, "phase_step": step within the phase}`` to
  restore from, or None to start. Evaluates before the first update, on ``phase.eval_due`` and
  after the last; checkpoints on ``phase.save_due``, after the last update and, forced, on a
  preemption request (SIGTERM / SIGINT), then returns ``preempted=True``.
  """
  writer, ckpt = setup.writer, setup.checkpointer
  phase.step_offset = step_offset
  evals: list[dict] = []
  step = 0
  if resume is not None:
    items, host = ckpt.restore(resume["step"], phase.checkpoint_items())
    phase.restore(items, host)
    evals = list(host.get("evals", []))
    step = int(resume["phase_step"])
  # Records after the step this phase starts from were written by a run killed after its last
  # checkpoint: they are written again now, so drop them (no step twice in metrics.jsonl). A
  # phase starting afresh also drops an opening evaluation a killed attempt already wrote.
  writer.truncate_after(step_offset + step, evals_at_step=resume is not None)

  def do_eval():
    writer.flush()
    result = phase.evaluate(step)
    if result:
      evals.append({"step": step, **{k: v for k, v in result.items()
                                      if not isinstance(v, str)}})
      writer.write_now(step_offset + step, result)

  def save(force=False):
    writer.flush()  # the metrics file holds every step up to the checkpoint
    base = {"lora_base": setup.lora_base} if getattr(setup, "lora_base", "") else {}
    ckpt.save(step_offset + step, phase.checkpoint_items(),
              {"phase": phase.name, "phase_step": step, "evals": evals,
               "config": run_fields(phase.run), **base, **phase.host_state()}, force=force)

  unchecked = None  # (global step, loss scalar on device) not yet checked for finiteness

  def check_finite():
    """Raise if the unchecked step's loss is not finite (its one scalar is fetched)."""
    nonlocal unchecked
    if unchecked is None:
      return
    (at, (key, value)), unchecked = unchecked, None
    value = float(jax.device_get(value))
    if not math.isfinite(value):
      writer.flush()
      ckpt.wait()
      last_good = ckpt.latest_step()
      raise NonFiniteLossError(
          f"non-finite {key}={value} at step {at} (phase {phase.name}); stopped without "
          f"checkpointing it (checkpoint.on_nonfinite='stop'). Last good checkpoint: "
          f"{'none' if last_good is None else f'step {last_good}'} in {ckpt.directory}")

  if step == 0:
    do_eval()
  while step < phase.num_steps:
    metrics, host_metrics = phase.step(step)
    check_finite()  # the previous step: ready by now, so this does not stall the device
    step += 1
    loss = loss_scalar(metrics)
    unchecked = None if loss is None else (step_offset + step, loss)
    writer.push(step_offset + step, metrics, {"phase": phase.name, **host_metrics})
    ckpt.poll()
    if setup.guard.stop_requested():
      check_finite()
      save(force=True)
      _announce_stop(setup, step_offset + step)
      return phase.params(), True, {"evals": evals}
    last = step == phase.num_steps
    if last or phase.eval_due(step):
      do_eval()
    if last or phase.save_due(step):
      check_finite()  # never checkpoint a step with a non-finite loss
      save()
  check_finite()
  writer.flush()
  return phase.params(), False, {"evals": evals}
