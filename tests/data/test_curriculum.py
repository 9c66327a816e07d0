"""CurriculumIterator: serves the current stage's difficulty, promotes by steps or by the pass-rate
EMA, and resumes exactly; prompt_iterator builds it from the config (or the plain iterator)."""

import json

import numpy as np
import pytest

from rlx import config as rlx_config
from rlx.data import CurriculumIterator, ExampleIterator, StagedCurriculum, TaskSource
from rlx.runtime.checkpoint import from_json, to_json
from rlx.runtime.sources import prompt_iterator


def task_stage(stage):
  return TaskSource("calculation", size=16, seed=3, difficulty=stage)


def make(curriculum, **kw):
  return CurriculumIterator(curriculum, task_stage, batch_size=kw.pop("batch_size", 4),
                            seed=kw.pop("seed", 7), **kw)


def difficulties(batch):
  return {ex.difficulty for ex in batch}


def test_promotes_every_steps_per_stage_and_serves_the_current_difficulty():
  it = make(StagedCurriculum(stages=(1, 2, 3), steps_per_stage=2))
  seen = []
  for _ in range(7):
    batch = next(it)
    seen.append(difficulties(batch))
    it.record(0.0)  # the pass rate plays no part with steps_per_stage
  assert seen == [{1}, {1}, {2}, {2}, {3}, {3}, {3}]  # the last stage is kept
  assert it.stage == 2 and it.difficulty == 3


def test_promotes_when_the_pass_rate_ema_reaches_promote_at_after_min_steps():
  it = make(StagedCurriculum(stages=(1, 2, 3), promote_at=0.8, min_steps=2, decay=0.5))
  metrics = []
  for rate in (0.9, 0.9, 0.5, 0.9, 0.9):
    next(it)
    metrics.append(it.record(rate))
  # Stage 0: EMA 0.9 (min_steps not reached), 0.9 -> promote. Stage 1: EMA 0.5, 0.7, 0.8 -> promote.
  assert [m["curriculum/stage"] for m in metrics] == [0, 0, 1, 1, 1]
  assert [m["curriculum/promoted"] for m in metrics] == [0, 1, 0, 0, 1]
  np.testing.assert_allclose([m["curriculum/pass_ema"] for m in metrics],
                             [0.9, 0.9, 0.5, 0.7, 0.8])
  assert it.stage == 2 and difficulties(next(it)) == {3}


def test_a_stage_of_several_difficulties_draws_from_them():
  it = make(StagedCurriculum(stages=((4, 5), 6), steps_per_stage=1), batch_size=16)
  assert difficulties(next(it)) == {4, 5}
  it.record(1.0)
  assert difficulties(next(it)) == {6}


def test_stage_batches_are_an_example_iterator_over_the_stage_source():
  it = make(StagedCurriculum(stages=(1, 2), steps_per_stage=3), seed=11)
  ref = [ExampleIterator(task_stage(d), batch_size=4, seed=11) for d in (1, 2)]
  for step in range(6):
    stage = it.stage
    assert it.source is it.iterators[stage].source
    assert next(it) == next(ref[stage])
    it.record(0.0)
  assert it.next_indices().tolist() == ref[1].next_indices().tolist()


def test_resume_mid_stage_continues_exactly():
  curriculum = StagedCurriculum(stages=(1, 2, 3), promote_at=0.6, min_steps=2, decay=0.5)
  rates = [0.7, 0.8, 0.2, 0.9, 0.4, 1.0, 1.0, 1.0, 0.3, 0.9, 1.0, 1.0]

  def run(it, rates):
    out = []
    for r in rates:
      out.append((next(it), it.record(r)))
    return out

  uninterrupted = run(make(curriculum, batch_size=6), rates)
  it = make(curriculum, batch_size=6)
  first = run(it, rates[:5])  # stage 1, three steps into it (18 > 16 examples: into epoch 1)
  state = it.get_state()
  assert int(state["curriculum"]["stage"]) == 1 and int(state["curriculum"]["steps_in_stage"]) == 3
  assert len(state["stages"]) == 3 and int(state["stages"][1]["epoch"]) == 1
  saved = json.dumps(to_json(state))  # what the checkpoint's host item stores

  fresh = make(curriculum, batch_size=6, seed=999)  # the seeds come from the state
  fresh.set_state(from_json(json.loads(saved)))
  assert fresh.stage == 1
  resumed = run(fresh, rates[5:])
  assert first + resumed == uninterrupted
  assert {m["curriculum/stage"] for _, m in uninterrupted} == {0.0, 1.0, 2.0}


def test_set_state_rejects_a_state_of_another_iterator():
  it = make(StagedCurriculum(stages=(1, 2)))
  with pytest.raises(ValueError, match="without data.curriculum_stages"):
    it.set_state(ExampleIterator(list(range(4)), batch_size=2).get_state())
  with pytest.raises(ValueError, match="2 stages, this one 3"):
    make(StagedCurriculum(stages=(1, 2, 3))).set_state(it.get_state())


def run_config(**data):
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  cfg.data.train_size = 64
  for k, v in data.items():
    setattr(cfg.data, k, v)
  return rlx_config.validate(cfg)


def test_prompt_iterator_without_stages_is_the_plain_iterator():
  run = run_config()
  train = TaskSource(run.data.task, size=run.data.train_size, seed=run.seed, difficulty=(1, 2))
  it = prompt_iterator(run, train, seed=5, batch_size=4, shuffle=True)
  assert type(it) is ExampleIterator and it.source is train
  assert getattr(it, "record", None) is None
  assert next(it) == next(ExampleIterator(train, batch_size=4, seed=5, shuffle=True))


def test_prompt_iterator_with_stages_builds_one_task_source_per_stage():
  run = run_config(curriculum_stages=(1, (2, 3), (4,)), curriculum_min_steps=1,
                   curriculum_promote_at=0.5, curriculum_decay=0.0)
  it = prompt_iterator(run, None, seed=5, batch_size=4, shuffle=False)
  assert isinstance(it, CurriculumIterator)
  c = it.curriculum
  assert (c.promote_at, c.min_steps, c.decay, c.steps_per_stage) == (0.5, 1, 0.0, None)
  srcs = [i.source for i in it.iterators]
  assert [s.difficulty for s in srcs] == [1, (2, 3), 4]  # (4,) is difficulty 4, as data.difficulty
  assert all((s.task.name, s.size, s.seed) == ("calculation", 64, run.seed) for s in srcs)
  assert next(it) == [srcs[0][i] for i in range(4)]  # shuffle=False: source order
  it.record(0.4)
  assert it.stage == 0
  it.record(0.5)
  assert it.stage == 1 and difficulties(next(it)) <= {2, 3}


def test_prompt_iterator_steps_per_stage():
  run = run_config(curriculum_stages=(1, 2), curriculum_steps_per_stage=3)
  assert prompt_iterator(run, None, seed=0, batch_size=2,
                         shuffle=True).curriculum.steps_per_stage == 3
