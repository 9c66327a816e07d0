"""Label-based rewards (docs/algorithms.md §8): math answer, exact match, multiple choice, format
regexes, and length shaping (ThinkPrune cap, DAPO soft overlong penalty, overlong filtering)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlx.rewards.base import Reward, RewardInput, RewardOutput, Scorer
from rlx.rewards.math_verify import extract_answer, math_equal
from rlx.rewards.safety import PerSampleReward

DEFAULT_FORMAT = r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$"


def _reference(meta: Mapping[str, Any], key: str = "answer"):
  ref = meta.get(key)
  if isinstance(ref, (list, tuple)):  # several acceptable answers
    return [str(r) for r in ref]
  return None if ref is None else [str(ref)]


def math_answer_score(completion: str, meta: Mapping[str, Any], prompt: str = "", *,
                      answer_key: str = "answer", correct: float = 1.0, wrong: float = 0.0,
                      percent_as_fraction: bool = False, sympy_timeout: float = 2.0,
                      use_sympy: bool = True):
  """Per-sample math reward: ``correct`` if the extracted answer equals a reference, else
  ``wrong``. Returns ``(score, {"has_answer": 0/1})``."""
  pred = extract_answer(completion)
  refs = _reference(meta, answer_key) or []
  ok = pred is not None and any(
      math_equal(pred, extract_answer(r) if "\\boxed" in r else r,
                 percent_as_fraction=percent_as_fraction, use_sympy=use_sympy,
                 sympy_timeout=sympy_timeout) for r in refs)
  return (correct if ok else wrong), {"has_answer": float(pred is not None)}


def math_answer(*, answer_key: str = "answer", correct: float = 1.0, wrong: float = 0.0,
                percent_as_fraction: bool = False, sympy_timeout: float = 2.0,
                use_sympy: bool = True, timeout: float | None = None, max_workers: int = 8,
                executor: str = "thread") -> Reward:
  """Math answer reward: 1 if the completion's final answer equals ``meta[answer_key]``
  (a list of references accepts any). The symbolic comparison (math-verify) stops after
  ``sympy_timeout`` s of the sample thread's CPU time (``math_verify.call_with_cpu_limit``), so
  its verdict does not depend on load. Each sample also has a wall-clock ``timeout`` in a thread
  (or a killable worker process with ``executor="process"``), a backstop only: by default
  ``max(10, 2 · max_workers · sympy_timeout)`` s, so threads sharing the interpreter's lock
  cannot turn a comparison within its CPU budget into a wall-clock timeout."""
  if timeout is None:
    timeout = max(10.0, 2.0 * max_workers * sympy_timeout)
  fn = functools.partial(math_answer_score, answer_key=answer_key, correct=correct, wrong=wrong,
                         percent_as_fraction=percent_as_fraction, sympy_timeout=sympy_timeout,
                         use_sympy=use_sympy)
  return PerSampleReward(fn, "math_answer", timeout=timeout, max_workers=max_workers,
                         executor=executor)


def _answer_tag(text: str) -> str:
  m = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
  return m[-1] if m else text


def _norm_text(s: str) -> str:
  return re.sub(r"\s+", " ", s.strip().strip(".").lower())


def exact_match_score(completion: str, meta: Mapping[str, Any], prompt: str = "", *,
                      answer_key: str = "answer", use_answer_tag: bool = True):
  pred = _norm_text(_answer_tag(completion) if use_answer_tag else completion)
  refs = _reference(meta, answer_key) or []
  return float(bool(pred) and any(pred == _norm_text(r) for r in refs))


def exact_match(*, answer_key: str = "answer", use_answer_tag: bool = True,
                timeout: float = 10.0) -> Reward:
  """1 if the (``<answer>``-tagged, else whole) completion equals the reference after
  whitespace/case/trailing-period normalisation."""
  fn = functools.partial(exact_match_score, answer_key=answer_key, use_answer_tag=use_answer_tag)
  return PerSampleReward(fn, "exact_match", timeout=timeout)


_LETTERS = "ABCDEFGHIJ"


def extract_choice(text: str, choices: Sequence[str] | None = None) -> str | None:
  """The chosen letter (A–J): ``\\boxed{B}``, "answer is (B)", "Answer: B", ``(B)``, in that
  order of precedence (the last match of a pattern wins); else, when ``choices`` are given, the
  choice whose text occurs last in the completion."""
  if not text:
    return None
  for pat in (r"\\boxed\{\s*\(?([A-J])\)?\s*\}", r"answer(?: is|:)\s*\(?([A-J])\)?(?![a-zA-Z])",
              r"\(([A-J])\)", r"(?<![a-zA-Z])([A-J])(?:[.)]|\s*$)"):
    m = re.findall(pat, text, re.IGNORECASE if "answer" in pat else 0)
    if m:
      return m[-1].upper()
  if choices:  # the choice whose text occurs last in the completion
    low = _norm_text(text)
    best, best_pos = None, -1
    for k, c in enumerate(choices):
      hits = [m.start() for m in re.finditer(r"(?<!\w)" + re.escape(_norm_text(str(c))) + r"(?!\w)",
                                             low)]
      if hits and hits[-1] > best_pos:
        best, best_pos = _LETTERS[k], hits[-1]
    return best
  return None


def multiple_choice_score(completion: str, meta: Mapping[str, Any], prompt: str = "", *,
                          answer_key: str = "answer"):
  ref = meta.get(answer_key)
  if isinstance(ref, (int, np.integer)):
    ref = _LETTERS[int(ref)]
  pred = extract_choice(completion, meta.get("choices"))
  return float(pred is not None and ref is not None and pred == str(ref).strip("() ").upper())


def multiple_choice(*, answer_key: str = "answer", timeout: float = 10.0) -> Reward:
  """1 if the chosen letter equals ``meta[answer_key]`` (a letter or a 0-based index)."""
  return PerSampleReward(functools.partial(multiple_choice_score, answer_key=answer_key),
                         "multiple_choice", timeout=timeout)


def format_score(completion: str, meta: Mapping[str, Any] | None = None, prompt: str = "", *,
                 pattern: str = DEFAULT_FORMAT, match: float = 1.0, mismatch: float = 0.0):
  return match if re.search(pattern, completion, re.DOTALL) else mismatch


def format_regex(*, pattern: str = DEFAULT_FORMAT, match: float = 1.0, mismatch: float = 0.0,
                 timeout: float = 5.0) -> Reward:
  """``match`` if ``re.search(pattern, completion, DOTALL)``, else ``mismatch`` ({0,1} or ±1).
  Default pattern: ``<think>…</think><answer>…</answer>``."""
  fn = functools.partial(format_score, pattern=pattern, match=match, mismatch=mismatch)
  return PerSampleReward(fn, "format", timeout=timeout)


# ----- length shaping -----

class ThinkPruneCap:
  """ThinkPrune length cap: the inner reward, except 0 where the completion was truncated
  (finish reason ``length``)."""

  def __init__(self, inner: Reward, truncated_score: float = 0.0):
    self.inner = inner
    self.name = "thinkprune"
    self.truncated_score = truncated_score

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    out = self.inner(batch, scorer)
    fin = batch.finished()
    scores = np.where(fin, out.scores, self.truncated_score).astype(np.float32)
    extras = dict(out.extras, truncated=(~fin).astype(np.float32))
    return RewardOutput(scores, out.token_scores, extras, out.sample_mask, out.aux, out.failures)


def dapo_overlong_penalty(lengths: np.ndarray, max_length: int, buffer: int) -> np.ndarray:
  """DAPO soft overlong punishment, [B] float32 in [−1, 0].

  ``L_exp = L_max − L_buf``; ``penalty = clip(min(−(|y| − L_exp)/L_buf, 0), −1, 0)``.
  """
  lengths = np.asarray(lengths, np.float64)
  expected = max_length - buffer
  pen = np.minimum(-(lengths - expected) / max(buffer, 1e-8), 0.0)
  return np.clip(pen, -1.0, 0.0).astype(np.float32)


def overlong_filter_mask(finish_reasons: Sequence[str]) -> np.ndarray:
  """DAPO overlong filtering: [B] float32, 0 for truncated samples (finish reason ``length``)."""
  return np.array([r != "length" for r in finish_reasons], np.float32)


class DapoOverlong:
  """The DAPO soft overlong penalty as a reward (add it to the correctness reward with weight 1).
  With ``filter_truncated`` it also sets ``sample_mask = 0`` on truncated samples."""

  def __init__(self, max_length: int, buffer: int, filter_truncated: bool = False):
    self.name = "dapo_overlong"
    self.max_length, self.buffer, self.filter_truncated = max_length, buffer, filter_truncated

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    pen = dapo_overlong_penalty(batch.lengths(), self.max_length, self.buffer)
    fin = batch.finished()
    mask = fin.astype(np.float32) if self.filter_truncated else None
    return RewardOutput(pen, extras={"truncated": (~fin).astype(np.float32)}, sample_mask=mask)


class OverlongFilter:
  """Scores 0 everywhere and sets ``sample_mask = 0`` for truncated samples."""

  name = "overlong_filter"

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    fin = batch.finished()
    return RewardOutput(np.zeros(batch.batch_size, np.float32), sample_mask=fin.astype(np.float32),
                        extras={"truncated": (~fin).astype(np.float32)})
