"""Synthetic tasks: determinism, verifiers, and the difficulty knob against a reference solver."""

import dataclasses

import numpy as np
import pytest

from rlx.data import TASKS, evaluate_expression, extract_answer, generate_examples, get_task
from rlx.data import verify


def _difficulties(name):
  t = TASKS[name]
  return [t.min_difficulty, (t.min_difficulty + t.max_difficulty) // 2, t.max_difficulty]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_generation_is_deterministic_per_seed(name):
  a = generate_examples(name, 6, seed=3, difficulty=_difficulties(name))
  b = generate_examples(name, 6, seed=3, difficulty=_difficulties(name))
  c = generate_examples(name, 6, seed=4, difficulty=_difficulties(name))
  assert a == b
  assert [e.prompt for e in a] != [e.prompt for e in c]
  # Example i does not depend on which other examples were generated.
  assert generate_examples(name, 2, seed=3, difficulty=_difficulties(name), start=4) == a[4:]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_verifier_accepts_solutions_and_rejects_corruptions(name):
  task = get_task(name)
  rng = np.random.default_rng(0)
  for d in _difficulties(name):
    for ex in generate_examples(name, 5, seed=11, difficulty=d):
      assert ex.difficulty == d and ex.task == name
      assert ex.solution.endswith(f"Answer: {ex.answer}")
      assert verify(name, ex.solution, ex.answer) == 1.0
      if name != "countdown" or d <= 4:  # exhaustive countdown search is slow for 6 numbers
        assert task.verify(f"Answer: {task.solve(ex)}", ex.answer) == 1.0
      # Corruptions: a wrong final answer, no answer, garbage.
      wrong = _corrupt(name, ex, rng)
      assert verify(name, ex.solution + f"\nAnswer: {wrong}", ex.answer) == 0.0, wrong
      assert verify(name, ex.solution.replace("Answer:", "Result:"), ex.answer) == 0.0
      assert verify(name, "Answer: banana", ex.answer) == 0.0


def _corrupt(name, ex, rng):
  if name == "countdown":
    return ex.answer + " + 1"  # right numbers plus an extra one, wrong value
  if name in ("sort", "reverse"):
    items = ex.answer.split(", ")
    return ", ".join(items[:-1] + [str(int(items[-1]) + 1)])
  return str(int(ex.answer) + int(rng.integers(1, 10)))


def test_countdown_verifier_semantics():
  # 3, 5, 3 -> 24: any expression over exactly these numbers with value 24 is accepted.
  ref = "(3 + 5) * 3"
  assert verify("countdown", "Answer: 3 * (5 + 3)", ref) == 1.0
  assert verify("countdown", "Answer: (5 + 3) * 3 = 24", ref) == 1.0
  assert verify("countdown", "Answer: 8 * 3", ref) == 0.0  # not the given numbers
  assert verify("countdown", "Answer: (3 + 5) * 3 + 0", ref) == 0.0  # extra number
  assert verify("countdown", "Answer: 3 * 5 + 3", ref) == 0.0  # wrong value
  assert verify("countdown", "Answer: __import__('os')", ref) == 0.0
  assert verify("countdown", "Answer: 3 / (5 - 5) * 3", ref) == 0.0
  assert evaluate_expression("6 / 4 * 2")[0] == 3  # exact fractions


def test_extract_answer_takes_the_last_answer_line():
  assert extract_answer("Answer: 1\nmore\nAnswer:  42 \nbye") == "42"
  assert extract_answer("no answer here") is None


@pytest.mark.parametrize("name", sorted(TASKS))
def test_difficulty_changes_reference_solver_accuracy(name):
  """Relation under test: the reference solver with capacity c is exact on every example of
  difficulty <= c (accuracy 1.0) and guesses above it, where its accuracy is at most 0.25."""
  task = get_task(name)
  capacity = task.min_difficulty + 1
  rng = np.random.default_rng(0)

  def accuracy(d):
    exs = generate_examples(name, 40, seed=5, difficulty=d)
    return np.mean([task.verify(task.reference_solve(ex, capacity, rng), ex.answer)
                    for ex in exs])

  assert accuracy(task.min_difficulty) == 1.0
  assert accuracy(capacity) == 1.0
  assert accuracy(min(capacity + 3, task.max_difficulty)) <= 0.25


def test_difficulty_out_of_range_is_an_error():
  with pytest.raises(ValueError, match="outside"):
    generate_examples("calculation", 1, seed=0, difficulty=21)
  with pytest.raises(KeyError, match="unknown task"):
    get_task("chess")


def test_calculation_steps_match_difficulty():
  for k in (1, 7, 20):
    ex = generate_examples("calculation", 1, seed=1, difficulty=k)[0]
    assert len(ex.info["ops"]) == k and ex.prompt.count("(") == k - 1
    # The prompt is a valid expression with the answer's value.
    assert evaluate_expression(ex.prompt.removeprefix("Calculate ").rstrip("."))[0] == int(
        ex.answer)


def test_examples_round_trip_through_records():
  from rlx.data import Example
  for ex in generate_examples("countdown", 3, seed=0, difficulty=4):
    assert Example.from_record(ex.to_record()) == ex
    assert Example.from_record({k: v.encode() if isinstance(v, str) else v
                                for k, v in ex.to_record().items()}) == ex
  assert dataclasses.replace(ex, answer="x") != ex
