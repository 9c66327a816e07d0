"""The RL phase's prompt iterator: plain, or a staged difficulty curriculum.

:func:`prompt_iterator` returns an :class:`~rlx.data.ExampleIterator` over the training source
when ``data.curriculum_stages`` is empty, else a :class:`~rlx.data.CurriculumIterator` whose stage
``k`` draws from ``TaskSource(data.task, size=data.train_size, seed=seed of the run,
difficulty=data.curriculum_stages[k])``. Both have ``next``, ``next_indices``, ``get_state`` and
``set_state``; only the curriculum has ``record(mean_pass_rate)``, so the RL loop calls
``getattr(it, "record", None)`` once per step after the rewards (see docs/data.md).

:func:`library_sources` builds the ``(train, held-out)`` sources of the task-library sources:
``data.source="reasoning_gym"`` (a reasoning-gym generator) and ``"humaneval"`` / ``"mbpp"``
(code-problem files).
"""

from __future__ import annotations

import collections.abc

from collections.abc import Sequence
from typing import Any

from rlx import config as rlx_config
from rlx.data import CurriculumIterator, ExampleIterator, StagedCurriculum, TaskSource


def curriculum_of(data: rlx_config.DataSection) -> StagedCurriculum | None:
  """The :class:`StagedCurriculum` of ``data.curriculum_*`` (None when the stages are empty)."""
  if not data.curriculum_stages:
    return None
  return StagedCurriculum(stages=tuple(data.curriculum_stages),
                          promote_at=data.curriculum_promote_at,
                          min_steps=data.curriculum_min_steps, decay=data.curriculum_decay,
                          steps_per_stage=data.curriculum_steps_per_stage or None)


def stage_source(run: rlx_config.RunConfig, stage: Any) -> TaskSource:
  """The training ``TaskSource`` of one stage, built like the run's training source (a
  one-element tuple of difficulties is that difficulty, as for ``data.difficulty``)."""
  d = run.data
  difficulty = stage if isinstance(stage, int) or len(stage) > 1 else stage[0]
  return TaskSource(d.task, size=d.train_size, seed=run.seed, difficulty=difficulty)


def prompt_iterator(run: rlx_config.RunConfig, train_source: Sequence[Any], *, seed: int,
                    batch_size: int, shuffle: bool) -> ExampleIterator | CurriculumIterator:
  """The RL phase's prompt iterator (``batch_size`` examples per step, order from ``seed``).

  ``train_source`` serves the run without a curriculum; with ``data.curriculum_stages`` it is
  unused (each stage builds its own source with :func:`stage_source`).
  """
  curriculum = curriculum_of(run.data)
  if curriculum is None:
    return ExampleIterator(train_source, batch_size=batch_size, seed=seed, shuffle=shuffle)
  return CurriculumIterator(curriculum, lambda stage: stage_source(run, stage),
                            batch_size=batch_size, seed=seed, shuffle=shuffle)


EVAL_SEED_OFFSET = 1_000_003  # held-out task examples come from a different stream seed


class Slice(collections.abc.Sequence):
  """Records ``[start, stop)`` of a source (a held-out tail, the training part before it, or a
  warm start's demonstration budget)."""

  def __init__(self, source, start: int, stop: int):
    self.source, self.start, self.stop = source, start, stop

  def __len__(self):
    return self.stop - self.start

  def __getitem__(self, i):
    if not 0 <= i < len(self):
      raise IndexError(i)
    return self.source[self.start + i]


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
  return Slice(src, 0, len(src) - held), Slice(src, len(src) - held, len(src))


LIBRARY_SOURCES = ("reasoning_gym", "humaneval", "mbpp")


def library_sources(run: rlx_config.RunConfig):
  """``(train, held-out)`` sources of ``data.source`` in :data:`LIBRARY_SOURCES`.

  ``reasoning_gym``: ``data.train_size`` items of generator ``data.task`` (config
  ``data.task_config``, seed = the run's seed) for training and ``data.eval_size`` held out, split
  by question (``rlx.data.reasoning_gym.held_out_question``: a held-out question is never
  trained on, however often the generator repeats it). ``humaneval`` / ``mbpp``: the problems of ``data.path``
  (``.jsonl`` or ``.jsonl.gz``) split like every file source (:func:`file_splits`).
  """
  d = run.data
  if d.source == "reasoning_gym":
    from rlx.data.reasoning_gym import ReasoningGymSource
    make = lambda size, split: ReasoningGymSource(d.task, size=size, seed=run.seed,
                                                   config=d.task_config, split=split)
    return make(d.train_size, "train"), make(max(d.eval_size, 1), "held_out")
  from rlx.data.sources import HumanEvalSource, MbppSource
  if d.source == "humaneval":
    return file_splits(d, HumanEvalSource)
  if d.source == "mbpp":
    return file_splits(d, MbppSource)
  raise ValueError(f"data.source={d.source!r} is not a library source {LIBRARY_SOURCES}")
