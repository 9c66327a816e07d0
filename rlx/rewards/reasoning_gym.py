"""The ``reasoning_gym`` reward: a reasoning-gym generator's own ``score_answer`` as the verifier.

Examples from ``rlx.data.reasoning_gym.ReasoningGymSource`` carry ``meta["reasoning_gym"] =
{"name", "config", "seed", "size", "entry"}``. The reward extracts the completion's final answer
(:func:`extract_final_answer`) and returns ``dataset.score_answer(answer, entry)`` of the dataset
that generated the entry (built once per process and config). Scores are the generator's: 1.0 for
a correct answer, partial credit in [0, 1) where the generator gives it (held-out accuracy counts
scores >= 1 only). ``reasoning_gym`` is imported on first use.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from rlx.data.reasoning_gym import create
from rlx.rewards.base import Reward
from rlx.rewards.math_verify import last_boxed_content
from rlx.rewards.safety import PerSampleReward


_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ANSWER_LINE = re.compile(r"(?:^|\n)[ \t]*(?:final )?answer[ \t]*:[ \t]*([^\n]*)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"answer is[:\s]*", re.IGNORECASE)


def extract_final_answer(text: str | None, *, last_line: bool = True) -> str | None:
  """The final answer of a completion, by the first of these that matches (the last occurrence of
  it wins): ``<answer>…</answer>`` (reasoning-gym's own format; may span lines), ``\\boxed{…}``,
  a line ``Answer: …`` (rlx's synthetic-task format; ``Final answer:`` too), ``… answer is …``
  (to the end of its line, trailing period dropped); else, with ``last_line``, the last non-blank
  line. Stripped; None when nothing is found."""
  if not text:
    return None
  found = _TAG.findall(text)
  if found:
    return found[-1].strip()
  boxed = last_boxed_content(text)
  if boxed is not None:
    return boxed.strip()
  found = _ANSWER_LINE.findall(text)
  if found:
    return found[-1].strip()
  m = list(_ANSWER_IS.finditer(text))
  if m:
    tail = re.sub(r"[.\s]+$", "", text[m[-1].end():].split("\n")[0])
    if tail.strip():
      return tail.strip()
  if last_line:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else None
  return None


_LOCK = threading.Lock()


@functools.lru_cache(maxsize=32)
def _dataset(name: str, config_json: str, size: int, seed: int):
  return create(name, json.loads(config_json), size=size, seed=seed)


def dataset_for(spec: Mapping[str, Any]):
  """The reasoning-gym dataset described by ``meta["reasoning_gym"]`` (cached)."""
  key = (str(spec["name"]), json.dumps(dict(spec.get("config") or {}), sort_keys=True),
         int(spec.get("size", 1)), int(spec.get("seed", 0)))
  with _LOCK:  # one construction per key even when samples are scored in threads
    return _dataset(*key)


def reasoning_gym_score(completion: str, meta: Mapping[str, Any], prompt: str = "", *,
                        last_line: bool = True, binary: bool = False):
  """Per-sample score: ``score_answer(extract_final_answer(completion), entry)`` of the entry's
  own dataset (``binary``: 1.0 if that is >= 1, else 0.0). Returns ``(score, {"has_answer":
  0/1})``; a sample without ``meta["reasoning_gym"]`` raises ``KeyError`` (it did not come from a
  reasoning-gym source)."""
  spec = meta.get("reasoning_gym")
  if not isinstance(spec, Mapping):
    raise KeyError("meta['reasoning_gym'] is missing: the reasoning_gym reward scores examples of "
                   "data.source='reasoning_gym' (rlx.data.reasoning_gym.ReasoningGymSource)")
  answer = extract_final_answer(completion, last_line=last_line)
  score = float(dataset_for(spec).score_answer(answer, dict(spec["entry"])))
  if binary:
    score = float(score >= 1.0)
  return score, {"has_answer": float(answer is not None)}


def reasoning_gym_reward(*, last_line: bool = True, binary: bool = False, timeout: float = 10.0,
                         max_workers: int = 8, executor: str = "thread") -> Reward:
  """The ``reasoning_gym`` reward (see the module docstring). ``last_line``: fall back to the
  completion's last non-blank line when it has no answer marker; ``binary``: drop the
  generator's partial credit (1 for a full score, else 0); ``timeout``: seconds per sample
  (``executor="process"`` makes a hung scorer killable)."""
  fn = functools.partial(reasoning_gym_score, last_line=last_line, binary=binary)
  return PerSampleReward(fn, "reasoning_gym", timeout=timeout, max_workers=max_workers,
                         executor=executor)
