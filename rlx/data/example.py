"""The record every prompt source yields."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class Example:
  """One prompt with what is needed to verify or imitate an answer.

  Attributes:
    prompt: the question text (unformatted; see ``rlx.data.formatting``).
    answer: the reference final answer as a string ("" when unknown).
    task: task / dataset name, e.g. ``"arithmetic"`` or ``"gsm8k"``.
    difficulty: integer difficulty (digits, steps, list length, MATH level); -1 when unknown.
    pair_id: stable identifier of the example within its source (for grouping / bookkeeping).
    solution: a worked solution ending in the answer (SFT demonstrations); "" when absent.
    info: task-specific, JSON-serialisable data the verifier or a reference solver may use.
  """

  prompt: str
  answer: str = ""
  task: str = ""
  difficulty: int = -1
  pair_id: str = ""
  solution: str = ""
  info: dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_record(self) -> dict[str, Any]:
    """A flat dict of strings/ints (``info`` as JSON) for TFDS / JSONL storage."""
    record = dataclasses.asdict(self)
    record["info"] = json.dumps(self.info, sort_keys=True)
    return record

  @classmethod
  def from_record(cls, record: dict[str, Any]) -> Example:
    """Inverse of :meth:`to_record`; ``bytes`` values (as TFDS returns text) are decoded."""
    def text(v):
      return v.decode("utf-8") if isinstance(v, bytes) else str(v)
    info = record.get("info", "{}")
    info = json.loads(text(info)) if isinstance(info, (str, bytes)) else dict(info)
    return cls(prompt=text(record["prompt"]), answer=text(record.get("answer", "")),
               task=text(record.get("task", "")), difficulty=int(record.get("difficulty", -1)),
               pair_id=text(record.get("pair_id", "")), solution=text(record.get("solution", "")),
               info=info)
