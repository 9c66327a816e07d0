"""``reasoning-gym`` generators as a prompt source (``pip install 'rlx[tasks]'``).

`reasoning-gym <https://github.com/open-thought/reasoning-gym>`_ ships about a hundred procedural
reasoning tasks, each a ``ProceduralDataset`` whose item ``i`` is a pure function of ``(seed, i)``
and whose ``score_answer(answer, entry)`` is its verifier. :class:`ReasoningGymSource` serves any
of them by name: the generator's own config fields (``min_terms``, ``max_digits`` ...) set the
difficulty; item ``i`` becomes an :class:`~rlx.data.example.Example` whose ``info`` keeps the
whole entry, so the ``reasoning_gym`` reward (``rlx.rewards.reasoning_gym``) scores a completion
with the generator's own ``score_answer``. The SFT demonstration of an entry is its gold answer in
the form that reward extracts (:func:`demonstration`).

The library is imported on first use: without it, building a source raises ``ImportError``
naming the install command.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rlx.data.example import Example

INSTALL_HINT = "pip install 'rlx[tasks]'  (or: pip install reasoning-gym)"


def import_reasoning_gym():
  """The ``reasoning_gym`` module; ``ImportError`` with the install command when it is absent."""
  try:
    import reasoning_gym
  except ImportError as e:
    raise ImportError(f"the reasoning-gym data source needs the reasoning-gym package: "
                      f"{INSTALL_HINT}") from e
  return reasoning_gym


def generator_names() -> list[str]:
  """Every registered reasoning-gym generator, sorted."""
  return sorted(import_reasoning_gym().factory.DATASETS)


def config_fields(name: str) -> list[str]:
  """The config fields of generator ``name`` that a config may set (``seed`` and ``size`` are
  the source's own)."""
  import dataclasses
  _, config_cls = import_reasoning_gym().factory.DATASETS[name]
  return [f.name for f in dataclasses.fields(config_cls) if f.name not in ("seed", "size")]


def create(name: str, config: Mapping[str, Any] | None, *, size: int, seed: int):
  """``reasoning_gym.create_dataset(name, size=size, seed=seed, **config)``, with a ``ValueError``
  naming the generator and its fields when the name or a field is unknown or the config is
  invalid (reasoning-gym checks configs with ``assert``)."""
  rg = import_reasoning_gym()
  if name not in rg.factory.DATASETS:
    raise ValueError(f"unknown reasoning-gym generator {name!r}; known: "
                     f"{', '.join(sorted(rg.factory.DATASETS))}")
  config = dict(config or {})
  unknown = sorted(set(config) - set(config_fields(name)))
  if unknown:
    raise ValueError(f"{name}: unknown config field(s) {unknown}; fields: "
                     f"{', '.join(config_fields(name))}")
  # Config values from ml_collections / JSON arrive as lists where the generator may want tuples;
  # both are sequences to every generator we know of.
  try:
    return rg.create_dataset(name, size=int(size), seed=int(seed), **config)
  except (AssertionError, TypeError, ValueError) as e:
    raise ValueError(f"{name}: invalid config {config}: {e or type(e).__name__}") from None


def demonstration(answer: str) -> str:
  """The SFT target for a gold ``answer``: ``Answer: <answer>`` (one line), or
  ``<answer>...</answer>`` around a multi-line answer; both are what the ``reasoning_gym``
  reward extracts."""
  return f"<answer>\n{answer}\n</answer>" if "\n" in answer else f"Answer: {answer}"


HELD_OUT_FRACTION = 0.1  # of the question space (by a hash of the question text)


def held_out_question(question: str, fraction: float = HELD_OUT_FRACTION) -> bool:
  """Whether a question belongs to the held-out part of its generator's question space: a fixed
  hash of its text, so a question is held out in every run, whatever its item index."""
  bucket = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:4], "big")
  return bucket % 10_000 < fraction * 10_000


class ReasoningGymSource(Sequence):
  """``size`` items of a reasoning-gym generator, starting at item ``start``.

  Without ``split``, example ``i`` is the generator's item ``start + i`` (a pure function of
  ``(seed, start + i)``). With ``split="train"`` / ``"held_out"`` the source keeps, in item
  order from ``start``, only the items whose question :func:`held_out_question` puts on that
  side: the two splits never share a question, even for generators whose question space is
  small enough that items repeat questions (``basic_arithmetic`` with one-digit terms has about
  5,500 questions).

  Args:
    name: the generator's registered name (``reasoning_gym.factory.DATASETS``), e.g.
      ``"basic_arithmetic"``.
    size: examples in this source.
    seed: the generator's seed.
    config: the generator's config fields (its difficulty), e.g. ``{"max_terms": 3}``.
    start: index of the first item.
    split: None, ``"train"`` or ``"held_out"``.

  Each example has ``prompt`` = the question, ``answer`` = the gold answer ("" when the generator
  has none, as for puzzles with many solutions), ``solution`` = :func:`demonstration` of it (""
  without one), ``task = "reasoning_gym/<name>"``, ``difficulty`` = the entry's integer
  ``metadata["difficulty"]`` if it has one (else -1), and ``info["reasoning_gym"]`` = ``{"name",
  "config", "seed", "size", "entry"}`` (the entry is the generator's item, metadata included).
  """

  def __init__(self, name: str, *, size: int, seed: int,
               config: Mapping[str, Any] | None = None, start: int = 0,
               split: str | None = None):
    if split not in (None, "train", "held_out"):
      raise ValueError(f"split must be None, 'train' or 'held_out', got {split!r}")
    self.generator, self.size, self.seed, self.start = name, int(size), int(seed), int(start)
    self.config = json.loads(json.dumps(dict(config or {})))  # plain, JSON-able values
    self.name = f"reasoning_gym/{name}"
    if split is None:
      self.dataset = create(name, self.config, size=self.start + self.size, seed=self.seed)
      self.items = range(self.start, self.start + self.size)
      return
    want = split == "held_out"
    frac = HELD_OUT_FRACTION if want else 1 - HELD_OUT_FRACTION
    total = self.start + int(self.size / frac * 1.2) + 64
    while True:
      self.dataset = create(name, self.config, size=total, seed=self.seed)
      self.items = [j for j in range(self.start, total)
                    if held_out_question(str(self.dataset[j]["question"])) == want][:self.size]
      if len(self.items) == self.size:
        break
      if total > self.start + 50 * self.size / frac:
        raise ValueError(f"{name}: only {len(self.items)} {split} items among {total} generated "
                         f"(its questions repeat too much for {self.size}); lower the size")
      total *= 2

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, i: int) -> Example:
    i = int(i)
    if not 0 <= i < self.size:
      raise IndexError(i)
    j = self.items[i]
    entry = self.dataset[j]
    answer = entry.get("answer")
    answer = "" if answer is None else str(answer)
    level = (entry.get("metadata") or {}).get("difficulty")
    return Example(
        prompt=str(entry["question"]), answer=answer, task=self.name,
        difficulty=level if isinstance(level, int) else -1,
        pair_id=f"{self.name}/{self.seed}/{j}",
        solution=demonstration(answer) if answer else "",
        info={"reasoning_gym": {"name": self.generator, "config": self.config, "seed": self.seed,
                                "size": len(self.dataset), "entry": entry}})
