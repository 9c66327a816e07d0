"""Process rewards: per-step scores placed on the tokens that complete each step.

A completion is split into steps by a delimiter (paragraphs ``"\\n\\n"``, lines ``"\\n"``, or a
regular expression); a user function scores the steps; each step's score lands on the completion
token that completes the step, in ``RewardOutput.token_scores`` ([B, T], 0 elsewhere). The
runtime turns ``token_scores`` into dense per-token rewards (PPO/GAE, REINFORCE++) or sums them per
row (sequence-level estimators).

Text positions are mapped to tokens with the tokenizer's ``decode`` (``RewardInput.decode``, else
``scorer.decode``): ``token_end_offsets`` gives, for each token, the length of the text decoded up
to and including it.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlx.rewards.base import RewardInput, RewardOutput, Scorer
from rlx.rewards.safety import (EXCEPTION, MALFORMED, NONFINITE, SafeReward, failure_extras,
                                run_per_sample)

log = logging.getLogger("rlx.rewards")

_REPLACEMENT = "\ufffd"  # what byte-level decoders print for an incomplete UTF-8 sequence
AGGREGATES = ("none", "min", "mean", "last")


# --- token ↔ character offsets -------------------------------------------------------------------

def _end_offsets_and_text(decode: Callable[[list[int]], str], ids: Sequence[int], *,
                          block: int | None = None, context: int = 4) -> tuple[np.ndarray, str]:
  """``(token_end_offsets(decode, ids), decode(ids))``; see ``token_end_offsets``."""
  ids = [int(i) for i in np.asarray(ids).reshape(-1)]
  n = len(ids)
  text = decode(ids)
  if n == 0:
    return np.zeros(0, np.int64), text
  # Fast path: decoding token by token concatenates to the text (character / word / byte-level
  # BPE without split characters): the offsets are the cumulative piece lengths.
  pieces = [decode([t]) for t in ids]
  if "".join(pieces) == text:
    return np.cumsum([len(p) for p in pieces], dtype=np.int64), text
  # General path: len(decode(ids[:k+1])) for every k, computed in blocks. At each block start
  # ``a`` the prefix is decoded exactly (``base``); inside the block, the growth over ``base`` is
  # measured on a window that starts ``c`` tokens before ``a`` (so that a first piece's
  # leading-space stripping and byte merges see the same left context as in the full text).
  # Cost: O(n·(block/2 + context) + n²/(2·block)) decoded tokens instead of O(n²/2).
  block = max(8, math.isqrt(n)) if block is None else max(1, int(block))
  check_incomplete = _REPLACEMENT not in text
  raw = np.full(n, -1, np.int64)  # -1: the token does not complete a character (yet)
  for a in range(0, n, block):
    base = len(decode(ids[:a])) if a else 0
    c = min(max(context, 1), a)
    head = decode(ids[a - c:a]) if c else ""
    # Widen the window until its text is non-empty and starts on a character boundary.
    while c < a and (head == "" or (check_incomplete and head.startswith(_REPLACEMENT))):
      c = min(2 * c, a)
      head = decode(ids[a - c:a])
    for k in range(a, min(a + block, n)):
      window = decode(ids[a - c:k + 1])
      if check_incomplete and window.endswith(_REPLACEMENT):
        continue  # part of a multi-byte character: it ends where the character is completed
      raw[k] = base + len(window) - len(head)
  ends = np.maximum.accumulate(np.maximum(raw, 0))
  return np.clip(ends, 0, len(text)), text


def token_end_offsets(decode: Callable[[list[int]], str], ids: Sequence[int], *,
                      block: int | None = None, context: int = 4) -> np.ndarray:
  """[n] int64: for each of one completion's ``n`` token ids (1-D, unpadded), the character end
  offset of the token in ``decode(ids)``, i.e. ``len(decode(ids[:k+1]))``.

  Tokenizers whose prefix decodes are not prefixes of the full text are handled: the offsets are
  made monotone (running max) and clipped to ``len(decode(ids))``; a token whose prefix decodes
  to a trailing U+FFFD (part of a multi-byte character split over byte-level tokens) ends where
  the previous token ends, so the character belongs to the token that completes it (skipped when
  the text itself contains U+FFFD). Leading-space stripping of a first SentencePiece piece is
  handled by decoding with left context.

  Cost: when decoding token by token concatenates to the text (character, word and most
  byte-level BPE tokenizers) ``n + 1`` decode calls; otherwise the prefixes are measured in blocks
  of ``block`` tokens (default ⌈√n⌉, at least 8) with ``context`` tokens of left context, about
  ``n·(block/2 + context) + n²/(2·block)`` decoded tokens (≈ 40k for n = 1000, against 500k for
  decoding every prefix). ``block >= n`` decodes every prefix exactly (the reference).
  """
  return _end_offsets_and_text(decode, ids, block=block, context=context)[0]


# --- steps ---------------------------------------------------------------------------------------

def _delimiter_regex(delimiter: str | re.Pattern) -> re.Pattern:
  if isinstance(delimiter, re.Pattern):
    return delimiter
  if not isinstance(delimiter, str) or not delimiter:
    raise ValueError(f"delimiter must be a non-empty string or a compiled regex, got {delimiter!r}")
  if delimiter.startswith("re:"):
    return re.compile(delimiter[3:])
  return re.compile(re.escape(delimiter))


def step_spans(text: str, delimiter: str | re.Pattern = "\n\n", *,
               strip: bool = True) -> list[tuple[int, int]]:
  """Character spans ``(start, end)`` of the steps of ``text``.

  Args:
    delimiter: a literal separator (``"\\n\\n"`` paragraphs, ``"\\n"`` lines, any string), a
      regular expression as ``"re:<pattern>"`` or a compiled ``re.Pattern``. Delimiter matches
      are not part of any step (use a lookahead such as ``"re:(?=Step \\d+:)"`` to keep a
      header in its step).
    strip: trim whitespace around each step (a step's end is then its last non-space character).
  Returns:
    The spans in order; the text after the last delimiter is a step (a truncated final step
    counts); empty (or, with ``strip``, whitespace-only) steps are skipped.
  """
  pattern = _delimiter_regex(delimiter)
  cuts, pos = [], 0
  for m in pattern.finditer(text):
    cuts.append((pos, m.start()))
    pos = m.end()
  cuts.append((pos, len(text)))
  spans = []
  for s, e in cuts:
    if strip:
      while s < e and text[s].isspace():
        s += 1
      while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
      spans.append((s, e))
  return spans


def steps_to_token_scores(step_scores: Sequence[float], step_ends_chars: Sequence[int],
                          token_ends: Sequence[int], length: int) -> np.ndarray:
  """[length] float32: each step's score on the token that completes the step.

  Step ``j`` (ending at character ``step_ends_chars[j]``, exclusive) goes to the first token ``k``
  with ``token_ends[k] >= step_ends_chars[j]``, the token whose text reaches the step's last
  character; steps that end past the last token (text cut by truncation, or a decode mismatch) go
  to the last token. Scores of steps completed by the same token add up. Positions from
  ``len(token_ends)`` to ``length`` stay 0 (padding); with no tokens, nothing is placed.
  """
  step_scores = np.asarray(step_scores, np.float64).reshape(-1)
  step_ends = np.asarray(step_ends_chars, np.int64).reshape(-1)
  token_ends = np.asarray(token_ends, np.int64).reshape(-1)
  if step_scores.shape != step_ends.shape:
    raise ValueError(f"{step_scores.size} step scores for {step_ends.size} step ends")
  n = token_ends.size
  if n > length:
    raise ValueError(f"{n} token offsets do not fit a row of length {length}")
  out = np.zeros(length, np.float64)
  if n and step_scores.size:
    where = np.minimum(np.searchsorted(token_ends, step_ends, side="left"), n - 1)
    np.add.at(out, where, step_scores)
  return out.astype(np.float32)


# --- the reward ----------------------------------------------------------------------------------

def import_callable(path: str) -> Callable[..., Any]:
  """The object named by ``"package.module:attr"`` (or ``"package.module.attr"``)."""
  if ":" in path:
    module, _, attr = path.partition(":")
  else:
    module, _, attr = path.rpartition(".")
  if not module or not attr:
    raise ValueError(f"expected 'module:function', got {path!r}")
  obj = importlib.import_module(module)
  for part in attr.split("."):
    obj = getattr(obj, part)
  if not callable(obj):
    raise TypeError(f"{path!r} is not callable")
  return obj


def _score_row(fn, prompt, steps, meta):
  """Runs the user step function for one sample (module level: picklable for process workers)."""
  return 0.0, [float(x) for x in fn(prompt, list(steps), meta)]


def resolve_decode(batch: RewardInput, scorer: Scorer | None) -> Callable[[list[int]], str]:
  """``batch.decode``, else ``scorer.decode``; raises ValueError when neither exists."""
  decode = getattr(batch, "decode", None)
  if decode is None:
    decode = getattr(scorer, "decode", None) if scorer is not None else None
  if decode is None:
    raise ValueError(
        "process rewards need a token decoder to map steps to tokens: the runtime must pass "
        "RewardInput(decode=tokenizer.decode, ...) (or the scorer must have a decode method)")
  return decode


class ProcessReward:
  """Per-step scores from ``score_steps(prompt, steps, metadata) -> [score per step]``, each placed
  on the token that completes its step (``token_scores`` [B, T], 0 off the completion mask).

  Args:
    score_steps: the step scorer; gets the prompt text, the list of step texts and a copy of the
      sample's metadata; returns one number per step. Contained per sample as in
      ``PerSampleReward`` (an exception, a timeout, a wrong number of scores or a non-finite
      score gives that sample no step scores and counts a failure).
    delimiter: step separator (see ``step_spans``): ``"\\n\\n"``, ``"\\n"``, ``"re:<pattern>"``, a
      compiled regex.
    outcome: optional reward (wrapped in ``SafeReward``) whose ``scores`` become this reward's
      ``scores``; its ``token_scores`` are added, its ``sample_mask`` passed on, its extras
      reported as ``outcome/<key>``.
    aggregate: the scalar ``scores`` when there is no outcome reward: ``"none"`` (0; the step
      scores count once, through ``token_scores``), ``"min"``, ``"mean"`` or ``"last"`` of the
      step scores (0 without steps). Note that a runtime that adds the summed ``token_scores`` to
      ``scores`` then counts the step scores twice.
    strip: trim whitespace around steps.
    timeout, executor, max_workers: per-sample containment (``run_per_sample``); with
      ``executor="process"`` the step function must be picklable (module level).
  Extras (per sample): ``steps`` (number of steps), ``step_score_mean``, ``step_score_min``
  (0 without steps), ``decode_mismatch`` (1 where the decoded tokens do not start with the
  completion text, so the decoded text was split instead).
  """

  def __init__(self, score_steps: Callable[[str, list[str], dict], Sequence[float]], *,
               delimiter: str | re.Pattern = "\n\n", outcome: Any = None,
               aggregate: str = "none", strip: bool = True, name: str | None = None,
               timeout: float = 10.0, executor: str = "thread", max_workers: int = 8):
    if not callable(score_steps):
      raise TypeError(f"score_steps must be callable, got {score_steps!r}")
    if aggregate not in AGGREGATES:
      raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if outcome is not None and aggregate != "none":
      raise ValueError("give either an outcome reward or an aggregate of the step scores as the "
                       f"scalar score, not both (aggregate={aggregate!r})")
    _delimiter_regex(delimiter)  # fail early on a bad delimiter
    self.score_steps = score_steps
    self.delimiter = delimiter
    self.outcome = (outcome if outcome is None or isinstance(outcome, SafeReward)
                    else SafeReward(outcome))
    self.aggregate = aggregate
    self.strip = strip
    self.name = name or "process_reward"
    self.timeout = timeout
    self.executor = executor
    self.max_workers = max_workers

  def __getattr__(self, item):
    # state_dict / load_state_dict exist exactly when the outcome reward is stateful.
    if item in ("state_dict", "load_state_dict"):
      outcome = self.__dict__.get("outcome")
      if outcome is not None and hasattr(outcome, item):
        return getattr(outcome, item)
    raise AttributeError(item)

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    b = batch.batch_size
    if batch.completion_ids is None:
      raise ValueError("ProcessReward needs RewardInput.completion_ids [B, T]")
    ids = np.asarray(batch.completion_ids)
    mask = (np.ones(ids.shape, np.int32) if batch.completion_mask is None
            else np.asarray(batch.completion_mask))
    decode = resolve_decode(batch, scorer)

    positions, ends, spans, steps = [], [], [], []
    mismatch = np.zeros(b, np.float32)
    for i in range(b):
      valid = np.flatnonzero(mask[i] > 0)
      tok_ends, decoded = _end_offsets_and_text(decode, ids[i, valid])
      text = batch.completions[i]
      if not decoded.startswith(text):  # positions must be those of the decoded text
        mismatch[i] = 1.0
        text = decoded
      sp = step_spans(text, self.delimiter, strip=self.strip)
      positions.append(valid)
      ends.append(tok_ends)
      spans.append(sp)
      steps.append([text[s:e] for s, e in sp])

    rows = [i for i in range(b) if steps[i]]
    _, failed, kinds, infos = run_per_sample(
        _score_row, [(self.score_steps, batch.prompts[i], steps[i], dict(batch.meta(i)))
                     for i in rows],
        timeout=self.timeout, executor=self.executor, max_workers=self.max_workers,
        name=self.name, describe=lambda j: batch.completions[rows[j]][:200])
    all_kinds: list[str | None] = [None] * b
    step_scores: list[np.ndarray] = [np.zeros(0)] * b
    for j, i in enumerate(rows):
      if failed[j]:
        all_kinds[i] = kinds[j] or EXCEPTION
        continue
      got = np.asarray(infos[j], np.float64)
      if got.shape != (len(steps[i]),):
        all_kinds[i] = MALFORMED
        log.warning("reward %s: %d scores for %d steps on sample %d", self.name, got.size,
                    len(steps[i]), i)
      elif not np.all(np.isfinite(got)):
        all_kinds[i] = NONFINITE
        log.warning("reward %s: non-finite step score on sample %d", self.name, i)
      else:
        step_scores[i] = got

    token_scores = np.zeros(ids.shape, np.float32)
    for i in range(b):
      if step_scores[i].size:
        token_scores[i, positions[i]] = steps_to_token_scores(
            step_scores[i], [e for _, e in spans[i]], ends[i], len(positions[i]))

    extras = failure_extras(all_kinds)
    extras["steps"] = np.array([len(s) for s in steps], np.float32)
    extras["step_score_mean"] = np.array([s.mean() if s.size else 0.0 for s in step_scores],
                                         np.float32)
    extras["step_score_min"] = np.array([s.min() if s.size else 0.0 for s in step_scores],
                                        np.float32)
    extras["decode_mismatch"] = mismatch
    failures = np.array([k is not None for k in all_kinds], np.int32)
    sample_mask, aux = None, {}
    if self.outcome is not None:
      out = self.outcome(batch, scorer)
      scores = np.asarray(out.scores, np.float32)
      if out.token_scores is not None:
        token_scores = token_scores + np.asarray(out.token_scores, np.float32)
      extras.update({f"outcome/{k}": np.asarray(v) for k, v in out.extras.items()})
      if out.failures is not None:
        failures = np.maximum(failures, np.asarray(out.failures, np.int32))
      sample_mask, aux = out.sample_mask, dict(out.aux)
    else:
      agg = {"none": lambda s: 0.0, "min": np.min, "mean": np.mean, "last": lambda s: s[-1]}
      scores = np.array([float(agg[self.aggregate](s)) if s.size else 0.0 for s in step_scores],
                        np.float32)
    token_scores = np.where(mask > 0, token_scores, 0.0).astype(np.float32)
    return RewardOutput(scores=scores, token_scores=token_scores, extras=extras,
                        sample_mask=sample_mask, aux=aux, failures=failures)

  def __repr__(self):
    fn = getattr(self.score_steps, "__name__", type(self.score_steps).__name__)
    return (f"ProcessReward({fn}, delimiter={self.delimiter!r}, aggregate={self.aggregate!r}, "
            f"outcome={getattr(self.outcome, 'name', None)!r})")
