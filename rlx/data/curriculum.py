"""A checkpointable prompt iterator that follows a :class:`~rlx.data.filters.StagedCurriculum`.

:class:`CurriculumIterator` holds one :class:`~rlx.data.iterator.ExampleIterator` per stage, each
over ``make_source(stage)`` (e.g. a ``TaskSource`` of that stage's difficulty), and serves the
current stage's batches. The RL loop calls :meth:`CurriculumIterator.record` once per step with
the step's mean pass rate; that advances the curriculum (by step count or by the pass-rate EMA),
and the next batch comes from the new stage. Each stage's iterator keeps its own position, so a
stage's stream never repeats or skips examples.

The state is ``{"curriculum": {"stage", "steps_in_stage", "pass_ema"}, "stages": [state of stage
0's iterator, ...]}`` (0-d numpy arrays in a dict and a list: checkpointable like
``ExampleIterator``'s), so a restored iterator continues exactly: same stage, same EMA, same
following batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rlx.data.example import Example
from rlx.data.filters import StagedCurriculum
from rlx.data.iterator import ExampleIterator


class CurriculumIterator(Iterator[list[Example]]):
  """Yields the current curriculum stage's ``batch_size`` examples per step.

  Args:
    curriculum: the stages and the promotion rule (its ``stages`` are passed to ``make_source``).
    make_source: ``make_source(stage) -> source`` (anything ``ExampleIterator`` accepts), called
      once per stage at construction.
    batch_size, seed, shuffle, process_index, process_count: as for ``ExampleIterator``; every
      stage's iterator gets the same values (its order depends on its own source and position).
  """

  def __init__(self, curriculum: StagedCurriculum, make_source: Callable[[Any], Sequence[Any]],
               *, batch_size: int, seed: int = 0, shuffle: bool = True, process_index: int = 0,
               process_count: int = 1):
    if not curriculum.stages:
      raise ValueError("a curriculum needs at least one stage")
    self.curriculum = curriculum
    self.iterators = [
        ExampleIterator(make_source(stage), batch_size=batch_size, seed=seed, shuffle=shuffle,
                        process_index=process_index, process_count=process_count)
        for stage in curriculum.stages]
    self._state = curriculum.init_state()

  # --- the curriculum --------------------------------------------------------------------------
  @property
  def stage(self) -> int:
    """Index of the current stage (the one the next batch comes from)."""
    return int(self._state["stage"])

  @property
  def difficulty(self) -> Any:
    """The current stage's difficulty setting (``curriculum.stages[stage]``)."""
    return self.curriculum.current(self._state)

  @property
  def source(self) -> Sequence[Any]:
    """The current stage's source (what :meth:`next_indices` indexes)."""
    return self.iterators[self.stage].source

  def record(self, mean_pass_rate: float) -> dict[str, float]:
    """Records one RL step's mean pass rate (call once per step, after its rewards) and advances
    the curriculum. Returns that step's metrics: ``curriculum/stage`` (the stage its batch came
    from), ``curriculum/pass_ema`` (the stage's EMA including this step) and
    ``curriculum/promoted`` (1.0 if the next batch comes from the next stage)."""
    stage, old = self.stage, self._state
    self._state = self.curriculum.update(old, float(mean_pass_rate))
    promoted = int(self._state["stage"]) != stage
    ema = float(self._state["pass_ema"])
    if promoted:  # the new stage's EMA starts afresh: report the EMA that promoted
      steps = int(old["steps_in_stage"]) + 1
      ema = float(mean_pass_rate) if steps == 1 else (
          self.curriculum.decay * float(old["pass_ema"])
          + (1 - self.curriculum.decay) * float(mean_pass_rate))
    return {"curriculum/stage": float(stage), "curriculum/pass_ema": ema,
            "curriculum/promoted": float(promoted)}

  # --- state -----------------------------------------------------------------------------------
  def get_state(self) -> dict[str, Any]:
    """``{"curriculum": {...}, "stages": [...]}`` of 0-d numpy arrays (see module docstring)."""
    return {"curriculum": {k: np.asarray(v).copy() for k, v in self._state.items()},
            "stages": [it.get_state() for it in self.iterators]}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Restores a state from :meth:`get_state` (numpy/JAX scalars or python numbers, e.g. after a
    JSON round trip)."""
    if "curriculum" not in state or "stages" not in state:
      raise ValueError(
          f"not a curriculum iterator state (keys {sorted(state)}): the checkpoint was written "
          "without data.curriculum_stages; resume with the config it was written with")
    stages = list(state["stages"])
    if len(stages) != len(self.iterators):
      raise ValueError(f"the checkpoint's curriculum has {len(stages)} stages, this one "
                       f"{len(self.iterators)}: resume with the same data.curriculum_stages")
    c = state["curriculum"]
    stage = int(np.asarray(c["stage"]))
    if not 0 <= stage < len(self.iterators):
      raise ValueError(f"curriculum stage {stage} outside [0, {len(self.iterators)})")
    for it, s in zip(self.iterators, stages):
      it.set_state(s)
    self._state = {"stage": np.asarray(stage, np.int64),
                   "steps_in_stage": np.asarray(int(np.asarray(c["steps_in_stage"])), np.int64),
                   "pass_ema": np.asarray(float(np.asarray(c["pass_ema"])), np.float64)}

  # --- iteration -------------------------------------------------------------------------------
  def next_indices(self) -> np.ndarray:
    """Advances the current stage's iterator one step; returns its ``[batch_size]`` indices into
    :attr:`source` (the current stage's source)."""
    return self.iterators[self.stage].next_indices()

  def __next__(self) -> list[Example]:
    return next(self.iterators[self.stage])

  def __iter__(self):
    return self
