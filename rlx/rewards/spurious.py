"""Spurious rewards for ablations (Shao et al., "Spurious Rewards"): random(p), inverted,
format-only, incorrect-label."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from rlx.rewards.base import RewardInput, RewardOutput, Scorer
from rlx.rewards.math_verify import extract_answer, math_equal, normalize_answer, parse_number


class RandomReward:
  """``r_i ~ Bernoulli(p)``, seeded by ``(seed, batch.step)``: the same step gives the same
  rewards, so a resumed run continues exactly without extra state."""

  def __init__(self, p: float = 0.5, seed: int = 0):
    self.name, self.p, self.seed = "random", p, seed

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    rng = np.random.default_rng([self.seed, batch.step])
    return RewardOutput((rng.random(batch.batch_size) < self.p).astype(np.float32))


class InvertedReward:
  """``1 − r`` (``mode="one_minus"``, for {0,1} rewards) or ``−r`` (``mode="negate"``)."""

  def __init__(self, inner: Any, mode: str = "one_minus"):
    if mode not in ("one_minus", "negate"):
      raise ValueError(f"mode must be 'one_minus' or 'negate', got {mode!r}")
    self.name, self.inner, self.mode = "inverted", inner, mode

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    out = self.inner(batch, scorer)
    s = np.asarray(out.scores, np.float32)
    return RewardOutput((1.0 - s) if self.mode == "one_minus" else -s,
                        extras={"inner": s}, failures=out.failures)


class FormatOnlyReward:
  """1 if the completion has an answer in the expected format (``pattern``, default a
  ``\\boxed{…}``), regardless of correctness."""

  def __init__(self, pattern: str = r"\\boxed\{.+?\}"):
    self.name, self.pattern = "format_only", pattern

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    return RewardOutput(np.array([bool(re.search(self.pattern, c, re.DOTALL))
                                  for c in batch.completions], np.float32))


def incorrect_label(reference: Any) -> str | None:
  """A deterministic wrong label: the reference + 1 for numbers, None otherwise."""
  v = parse_number(normalize_answer(None if reference is None else str(reference)))
  if v is None:
    return None
  w = v + 1
  return str(w.numerator) if getattr(w, "denominator", 2) == 1 else str(float(w))


class IncorrectLabelReward:
  """1 if the answer equals a wrong label: ``meta['incorrect_answer']`` when given, else the
  reference + 1 (numeric references only; extra ``no_label`` marks samples without one)."""

  def __init__(self, answer_key: str = "answer", incorrect_key: str = "incorrect_answer"):
    self.name, self.answer_key, self.incorrect_key = "incorrect_label", answer_key, incorrect_key

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    b = batch.batch_size
    scores, no_label = np.zeros(b, np.float32), np.zeros(b, np.float32)
    for i in range(b):
      meta = batch.meta(i)
      wrong = meta.get(self.incorrect_key)
      wrong = incorrect_label(meta.get(self.answer_key)) if wrong is None else str(wrong)
      if wrong is None:
        no_label[i] = 1.0
        continue
      pred = extract_answer(batch.completions[i])
      scores[i] = float(pred is not None and math_equal(pred, wrong, use_sympy=False))
    return RewardOutput(scores, extras={"no_label": no_label})
