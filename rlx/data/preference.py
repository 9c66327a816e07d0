"""Preference data: pairs (prompt, chosen, rejected[, margin]), unpaired labelled completions
(KTO), a synthetic separable preference task, and padding of pairs into right-padded buckets.

Sources are random-access sequences (``len`` and integer indexing), like the prompt sources of
``rlx.data.sources``, so ``ExampleIterator`` shuffles, shards and resumes over them:

- :class:`PreferenceJsonlSource`: ``{"prompt", "chosen", "rejected"[, "margin"]}`` per line.
- :class:`UnpairedJsonlSource`: ``{"prompt", "completion", "label"}`` per line (KTO).
- :class:`SyntheticPreferenceSource`: pairs from a synthetic task of ``rlx.data.tasks``; the
  chosen completion is the task's worked solution, the rejected one a corruption of it.
- :class:`UnpairedView`: the pairs of a paired source as KTO examples (chosen desirable,
  rejected undesirable).

Conversational records are accepted too: a field holding a list of ``{"role", "content"}``
messages stands for its last message's content (the prompt: the last user message), so the
run's formatter (``PlainFormat`` or ``ChatFormat``) applies to every record alike.

Batches (:func:`make_pair_batch`, :func:`make_unpaired_batch`, :func:`pair_arrays`) are numpy
and right-padded: row ``b`` is ``prompt + completion`` followed by padding, ``mask`` marks real
tokens and ``loss_mask`` the completion tokens (the targets whose log-probs are summed).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlx.data.batching import Formatter, PlainFormat, bucket_size
from rlx.data.example import Example
from rlx.data.sources import TaskSource, read_jsonl
from rlx.data.tasks import Task


@dataclasses.dataclass(frozen=True)
class PreferencePair:
  """One comparison: ``chosen`` is preferred to ``rejected`` as a completion of ``prompt``.

  Attributes:
    prompt: the question (unformatted; the run's formatter applies).
    chosen, rejected: completion texts.
    margin: per-pair preference strength (margin-aware DPO, reward-model margin); 0 = none.
    pair_id: a stable identifier within the source.
    answer: the reference answer when known ("" otherwise).
  """

  prompt: str
  chosen: str
  rejected: str
  margin: float = 0.0
  pair_id: str = ""
  answer: str = ""


@dataclasses.dataclass(frozen=True)
class LabeledCompletion:
  """One unpaired example (KTO): ``completion`` of ``prompt`` is desirable or not."""

  prompt: str
  completion: str
  desirable: bool
  pair_id: str = ""


# --- sources ---------------------------------------------------------------------------------
def _text(value: Any, role: str | None = None) -> str:
  """A field's text: a string, or the content of the last (``role``) message of a message list."""
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, str):
    return value
  if isinstance(value, (list, tuple)) and value and all(isinstance(m, Mapping) for m in value):
    messages = [m for m in value if role is None or m.get("role") == role] or list(value)
    return str(messages[-1]["content"])
  raise ValueError(f"expected a string or a list of messages, got {type(value).__name__}")


def _label(value: Any) -> bool:
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, float)) and value in (0, 1):
    return bool(value)
  if isinstance(value, str) and value.lower() in ("true", "false", "desirable", "undesirable"):
    return value.lower() in ("true", "desirable")
  raise ValueError(f"label must be a bool, 0/1 or 'desirable'/'undesirable', got {value!r}")


class _JsonlRecords(Sequence):
  """JSON-lines records parsed by ``parse(record, default_id)`` (errors name ``path:line``)."""

  def __init__(self, path: str | os.PathLike, parse, *, on_error: str = "raise"):
    path = os.fspath(path)
    self.path = path
    name = os.path.basename(path)
    kept = [0]  # default ids number the kept records: "<file>/<index>"

    def one(record, _where):
      item = parse(record, f"{name}/{kept[0]}")
      kept[0] += 1
      return item

    self.items, self.skipped = read_jsonl(path, one, on_error=on_error)

  def __len__(self) -> int:
    return len(self.items)

  def __getitem__(self, i):
    return self.items[i]


class PreferenceJsonlSource(_JsonlRecords):
  """Pairs from a JSON-lines file: ``prompt``, ``chosen``, ``rejected`` and an optional
  ``margin`` (missing → 0) column; ``pair_id`` is taken from an ``id`` column when present.

  Raises :class:`~rlx.data.sources.DataFormatError` naming ``path:line`` on a malformed record
  (``on_error="skip"`` drops and counts it instead).
  """

  def __init__(self, path: str | os.PathLike, *, prompt_key: str = "prompt",
               chosen_key: str = "chosen", rejected_key: str = "rejected",
               margin_key: str = "margin", on_error: str = "raise"):
    def parse(record, default_id):
      missing = [k for k in (prompt_key, chosen_key, rejected_key) if k not in record]
      if missing:
        raise KeyError(f"missing column(s) {missing}; record has {sorted(record)}")
      margin = record.get(margin_key, 0.0) if margin_key else 0.0
      return PreferencePair(prompt=_text(record[prompt_key], "user"),
                            chosen=_text(record[chosen_key], "assistant"),
                            rejected=_text(record[rejected_key], "assistant"),
                            margin=float(0.0 if margin is None else margin),
                            pair_id=str(record.get("id", default_id)),
                            answer=str(record.get("answer", "")))
    super().__init__(path, parse, on_error=on_error)


class UnpairedJsonlSource(_JsonlRecords):
  """KTO examples from a JSON-lines file: ``prompt``, ``completion`` and a boolean ``label``
  (True / 1 / "desirable" for a desirable completion)."""

  def __init__(self, path: str | os.PathLike, *, prompt_key: str = "prompt",
               completion_key: str = "completion", label_key: str = "label",
               on_error: str = "raise"):
    def parse(record, default_id):
      missing = [k for k in (prompt_key, completion_key, label_key) if k not in record]
      if missing:
        raise KeyError(f"missing column(s) {missing}; record has {sorted(record)}")
      return LabeledCompletion(prompt=_text(record[prompt_key], "user"),
                               completion=_text(record[completion_key], "assistant"),
                               desirable=_label(record[label_key]),
                               pair_id=str(record.get("id", default_id)))
    super().__init__(path, parse, on_error=on_error)


CORRUPTIONS = ("answer", "guess")


def _wrong_answer(answer: str, rng: np.random.Generator) -> str:
  """A different answer: an integer answer plus a nonzero offset in [-9, 9]; other answers
  (lists, expressions) with two neighbouring characters swapped or a digit changed."""
  try:
    return str(int(answer) + int(rng.choice([-1, 1])) * int(rng.integers(1, 10)))
  except ValueError:
    pass
  digits = [i for i, ch in enumerate(answer) if ch.isdigit()]
  if not digits:
    return answer + " 0"
  i = digits[int(rng.integers(len(digits)))]
  new = str((int(answer[i]) + int(rng.integers(1, 10))) % 10)
  return answer[:i] + new + answer[i + 1:]


class SyntheticPreferenceSource(Sequence):
  """``size`` pairs over a synthetic task; pair ``i`` depends only on ``(seed, i)``.

  The chosen completion is the worked solution of example ``i`` of the task stream
  ``(task, seed)`` (it ends in ``Answer: <correct>``). The rejected one (``corruption``):

  - ``"answer"``: the same solution with a wrong final answer (``Answer: <correct ± k>``,
    ``1 ≤ k ≤ 9``); the steps still show the correct result, so the pairs are separable by
    checking that the answer repeats the last step's result.
  - ``"guess"``: a bare ``Answer: <guess>`` of the task's guessing solver (no steps).

  ``margins=True`` sets ``margin = k / 10`` for ``"answer"`` (bigger errors, stronger
  preference; 1 for ``"guess"``), else margins are 0.
  """

  def __init__(self, task: str | Task, *, size: int, seed: int,
               difficulty: int | Sequence[int], corruption: str = "answer",
               margins: bool = False):
    if corruption not in CORRUPTIONS:
      raise ValueError(f"corruption={corruption!r}: allowed values: {', '.join(CORRUPTIONS)}")
    self.examples = TaskSource(task, size=size, seed=seed, difficulty=difficulty)
    self.task, self.seed = self.examples.task, self.examples.seed
    self.corruption, self.margins = corruption, bool(margins)

  def __len__(self) -> int:
    return len(self.examples)

  def __getitem__(self, i: int) -> PreferencePair:
    i = int(i)
    ex = self.examples[i]  # bounds-checked
    rng = np.random.default_rng([self.seed, i, 1])  # apart from the example's own stream
    if self.corruption == "answer":
      wrong = _wrong_answer(ex.answer, rng)
      head = ex.solution.rsplit("Answer:", 1)[0]
      rejected = f"{head}Answer: {wrong}"
      try:
        margin = min(abs(int(wrong) - int(ex.answer)), 10) / 10.0
      except ValueError:
        margin = 1.0
    else:
      guess = self.task.guess(ex, rng)
      if self.task.verify(f"Answer: {guess}", ex.answer):  # a lucky guess is not worse
        guess = _wrong_answer(ex.answer, rng)
      rejected, margin = f"Answer: {guess}", 1.0
    return PreferencePair(prompt=ex.prompt, chosen=ex.solution, rejected=rejected,
                          margin=margin if self.margins else 0.0, pair_id=ex.pair_id,
                          answer=ex.answer)


class UnpairedView(Sequence):
  """The pairs of ``pairs`` as KTO examples: item ``2i`` is pair ``i``'s chosen completion
  (desirable), item ``2i + 1`` its rejected one (undesirable)."""

  def __init__(self, pairs: Sequence[PreferencePair]):
    self.pairs = pairs

  def __len__(self) -> int:
    return 2 * len(self.pairs)

  def __getitem__(self, i: int) -> LabeledCompletion:
    i = int(i)
    if not 0 <= i < len(self):
      raise IndexError(i)
    p = self.pairs[i // 2]
    good = i % 2 == 0
    return LabeledCompletion(prompt=p.prompt, completion=p.chosen if good else p.rejected,
                             desirable=good,
                             pair_id=f"{p.pair_id}/{'chosen' if good else 'rejected'}")


# --- batches -----------------------------------------------------------------------------------
def encode_prompt(prompt: str, tokenizer, formatter: Formatter = PlainFormat()) -> list[int]:
  """Token ids of the formatted prompt (bos as the formatter says)."""
  return tokenizer.encode(formatter(Example(prompt=prompt)), add_bos=formatter.add_bos)


def encode_completion(text: str, tokenizer) -> list[int]:
  """Token ids of a completion, ending in eos (as the sampler's stopped completions do)."""
  return tokenizer.encode(text, add_eos=tokenizer.eos_id is not None)


def _fit(prompt: Sequence[int], completion: Sequence[int], width: int):
  """Truncate to ``width`` tokens: the prompt loses its first tokens (at least one is kept),
  then the completion its last ones."""
  prompt, completion = list(prompt), list(completion)
  if len(prompt) + len(completion) <= width:
    return prompt, completion
  keep_prompt = max(1, width - len(completion))
  prompt = prompt[len(prompt) - keep_prompt:]
  return prompt, completion[:width - len(prompt)]


def sequence_arrays(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], *,
                    pad_id: int, width: int) -> dict[str, np.ndarray]:
  """Right-padded ``prompt + completion`` rows of ``width`` tokens.

  Returns ``tokens [B,S] int32``, ``mask [B,S] float32`` (real tokens) and ``loss_mask [B,S]
  float32`` (completion tokens).
  """
  b = len(prompts)
  tokens = np.full((b, width), pad_id, np.int32)
  mask = np.zeros((b, width), np.float32)
  loss_mask = np.zeros((b, width), np.float32)
  for i, (p, c) in enumerate(zip(prompts, completions)):
    p, c = _fit(p, c, width)
    n = len(p) + len(c)
    tokens[i, :n] = p + c
    mask[i, :n] = 1
    loss_mask[i, len(p):n] = 1
  return {"tokens": tokens, "mask": mask, "loss_mask": loss_mask}


def pair_width(lengths: Sequence[int], max_len: int,
               length_buckets: Sequence[int] | None = None) -> int:
  """The padded width ``S``: ``max_len``, or the smallest bucket holding the longest row."""
  if not length_buckets:
    return int(max_len)
  return bucket_size(min(max(lengths, default=1), max_len), sorted(set(length_buckets) | {max_len}))


def pair_arrays(prompts: Sequence[Sequence[int]], chosen: Sequence[Sequence[int]],
                rejected: Sequence[Sequence[int]], margins: Sequence[float] | None = None, *,
                pad_id: int, max_len: int, length_buckets: Sequence[int] | None = None,
                rows: int | None = None) -> dict[str, np.ndarray]:
  """Pairs of token ids → the arrays of a pair batch (``rlx.algorithms.dpo.PairBatch``).

  Chosen and rejected rows share one width ``S`` (:func:`pair_width`). With ``rows`` the batch is
  padded to that many rows by repeating row 0 with ``weight`` 0 (it counts in no sum).

  Returns: ``chosen_tokens, chosen_mask, chosen_loss_mask, rejected_* [B,S]``, ``margin [B]``
  float32 and ``weight [B]`` float32 (1 on real pairs).
  """
  n = len(prompts)
  lengths = [len(p) + max(len(c), len(r)) for p, c, r in zip(prompts, chosen, rejected)]
  width = pair_width(lengths, max_len, length_buckets)
  out = {}
  for name, completions in (("chosen", chosen), ("rejected", rejected)):
    for k, v in sequence_arrays(prompts, completions, pad_id=pad_id, width=width).items():
      out[f"{name}_{k}"] = v
  out["margin"] = np.zeros((n,), np.float32) if margins is None else np.asarray(margins,
                                                                                 np.float32)
  out["weight"] = np.ones((n,), np.float32)
  return pad_batch_rows(out, rows) if rows is not None else out


def pad_batch_rows(arrays: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
  """Pad every ``[n, ...]`` array to ``rows`` rows by repeating row 0; ``weight`` of the added
  rows is 0."""
  n = len(arrays["weight"])
  if n > rows:
    raise ValueError(f"{n} rows do not fit a batch of {rows}")
  if n == rows:
    return arrays
  out = {k: np.concatenate([v, np.repeat(v[:1], rows - n, axis=0)]) for k, v in arrays.items()}
  out["weight"][n:] = 0
  return out


def make_pair_batch(pairs: Sequence[PreferencePair], tokenizer, *,
                    formatter: Formatter = PlainFormat(), max_len: int,
                    length_buckets: Sequence[int] | None = None,
                    rows: int | None = None) -> dict[str, np.ndarray]:
  """Formats, tokenizes and right-pads pairs (:func:`pair_arrays`)."""
  prompts = [encode_prompt(p.prompt, tokenizer, formatter) for p in pairs]
  return pair_arrays(prompts, [encode_completion(p.chosen, tokenizer) for p in pairs],
                     [encode_completion(p.rejected, tokenizer) for p in pairs],
                     [p.margin for p in pairs], pad_id=tokenizer.pad_id, max_len=max_len,
                     length_buckets=length_buckets, rows=rows)


def make_unpaired_batch(examples: Sequence[LabeledCompletion], tokenizer, *,
                        formatter: Formatter = PlainFormat(), max_len: int,
                        length_buckets: Sequence[int] | None = None, rows: int | None = None,
                        mismatched: Sequence[LabeledCompletion] | None = None
                        ) -> dict[str, np.ndarray]:
  """KTO batch: the examples, and the *mismatched* rows of KTO's KL reference point: prompt
  ``b`` with the completion of ``mismatched[b]``, by default of example ``(b + 1) mod B`` (as in
  TRL). Precomputed reference log-probs need a partner fixed per example rather than per batch
  (``rlx.runtime.preference`` pairs item ``i`` of a source with item ``(i + N/2) mod N``).

  Returns ``tokens, mask, loss_mask, kl_tokens, kl_mask, kl_loss_mask [B,S]``,
  ``desirable [B]`` and ``weight [B]`` float32.
  """
  prompts = [encode_prompt(e.prompt, tokenizer, formatter) for e in examples]
  completions = [encode_completion(e.completion, tokenizer) for e in examples]
  if mismatched is None:
    shifted = completions[1:] + completions[:1]
  else:
    shifted = [encode_completion(e.completion, tokenizer) for e in mismatched]
  lengths = [len(p) + max(len(c), len(s)) for p, c, s in zip(prompts, completions, shifted)]
  width = pair_width(lengths, max_len, length_buckets)
  out = sequence_arrays(prompts, completions, pad_id=tokenizer.pad_id, width=width)
  for k, v in sequence_arrays(prompts, shifted, pad_id=tokenizer.pad_id, width=width).items():
    out[f"kl_{k}"] = v
  out["desirable"] = np.asarray([e.desirable for e in examples], np.float32)
  out["weight"] = np.ones((len(examples),), np.float32)
  return pad_batch_rows(out, rows) if rows is not None else out
