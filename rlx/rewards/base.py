"""Reward protocol: what a reward receives, what it returns, and what model access it may use.

A reward is any object with a ``name`` and ``__call__(batch: RewardInput, scorer: Scorer | None)
-> RewardOutput``. Rewards run on the host, on numpy arrays and decoded text (docs/architecture.md, step 3).
Model-based rewards call back into compiled scoring functions through a ``Scorer``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

FINISH_STOP = "stop"
FINISH_LENGTH = "length"


@dataclasses.dataclass(frozen=True)
class RewardInput:
  """One scored batch of B completions (host side, numpy).

  Attributes:
    prompts: B prompt texts.
    completions: B completion texts (detokenized, special tokens removed).
    completion_ids: [B, T] int32 completion token ids, right-padded.
    completion_mask: [B, T] {0,1} valid completion tokens.
    finish_reasons: B strings, ``"stop"`` (EOS or stop string) or ``"length"`` (hit the cap).
    group_ids: [B] int prompt (group) id; the G samples of one prompt share it.
    metadata: B dicts of dataset fields (``answer``, ``tests``, ``pair_id``, ``choices`` ...).
    prompt_ids: optional B 1-D int arrays (ragged prompt token ids) for model-based rewards.
    step: the trainer step (for stateful rewards and seeded randomness).
    decode: optional ``decode(ids: list[int]) -> str``, the policy tokenizer's decoder (special
      tokens dropped), used to map text positions to completion tokens (process rewards,
      ``rlx.rewards.process``). The runtime passes ``decode=tokenizer.decode``.
  """

  prompts: Sequence[str]
  completions: Sequence[str]
  completion_ids: np.ndarray | None = None
  completion_mask: np.ndarray | None = None
  finish_reasons: Sequence[str] | None = None
  group_ids: np.ndarray | None = None
  metadata: Sequence[Mapping[str, Any]] | None = None
  prompt_ids: Sequence[np.ndarray] | None = None
  step: int = 0
  decode: Callable[[list[int]], str] | None = None

  def __post_init__(self):
    b = len(self.completions)
    if len(self.prompts) != b:
      raise ValueError(f"prompts has {len(self.prompts)} entries, completions {b}")
    for name in ("finish_reasons", "metadata", "prompt_ids"):
      v = getattr(self, name)
      if v is not None and len(v) != b:
        raise ValueError(f"{name} has {len(v)} entries, completions {b}")
    for name in ("completion_ids", "completion_mask"):
      v = getattr(self, name)
      if v is not None and (np.ndim(v) != 2 or np.shape(v)[0] != b):
        raise ValueError(f"{name} must be [B={b}, T], got shape {np.shape(v)}")
    if self.group_ids is not None and np.shape(self.group_ids) != (b,):
      raise ValueError(f"group_ids must be [B={b}], got shape {np.shape(self.group_ids)}")

  @property
  def batch_size(self) -> int:
    return len(self.completions)

  # Defaults that keep simple rewards simple.
  def meta(self, i: int) -> Mapping[str, Any]:
    return self.metadata[i] if self.metadata is not None else {}

  def groups(self) -> np.ndarray:
    """[B] group ids; every sample is its own group when none were given."""
    if self.group_ids is None:
      return np.arange(self.batch_size)
    return np.asarray(self.group_ids)

  def finished(self) -> np.ndarray:
    """[B] bool, True where the completion ended by itself (finish reason ``stop``)."""
    if self.finish_reasons is None:
      return np.ones(self.batch_size, bool)
    return np.array([r != FINISH_LENGTH for r in self.finish_reasons], bool)

  def lengths(self) -> np.ndarray:
    """[B] completion lengths in tokens (Σ_t m); character counts when no mask was given."""
    if self.completion_mask is not None:
      return np.asarray(self.completion_mask).sum(-1).astype(np.int64)
    return np.array([len(c) for c in self.completions], np.int64)

  def select(self, idx: Sequence[int]) -> "RewardInput":
    """A sub-batch with the rows ``idx`` (used to score groups or single samples)."""
    idx = list(idx)
    pick = lambda seq: None if seq is None else [seq[i] for i in idx]
    arr = lambda a: None if a is None else np.asarray(a)[idx]
    return RewardInput(
        prompts=pick(self.prompts), completions=pick(self.completions),
        completion_ids=arr(self.completion_ids), completion_mask=arr(self.completion_mask),
        finish_reasons=pick(self.finish_reasons), group_ids=arr(self.group_ids),
        metadata=pick(self.metadata), prompt_ids=pick(self.prompt_ids), step=self.step,
        decode=self.decode)


@dataclasses.dataclass
class RewardOutput:
  """What a reward returns.

  Attributes:
    scores: [B] float32 scalar rewards.
    token_scores: optional [B, T] float32 dense rewards (process rewards), 0 outside the mask.
    extras: per-sample diagnostics, each [B] (logged as ``reward/<name>/<key>`` means).
    sample_mask: optional [B] {0,1}; 0 removes a sample from the loss (DAPO overlong filtering,
      TTRL samples beyond N_train). Composition multiplies the masks of its parts.
    aux: optional inputs of auxiliary loss terms for the trainer (e.g. LaSeR), arrays or scalars.
    failures: [B] int, samples whose score is a default because the reward failed on them.
  """

  scores: np.ndarray
  token_scores: np.ndarray | None = None
  extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  sample_mask: np.ndarray | None = None
  aux: dict[str, Any] = dataclasses.field(default_factory=dict)
  failures: np.ndarray | None = None


@runtime_checkable
class Scorer(Protocol):
  """Compiled scoring functions of the current policy (and reference), seen from the host.

  Implemented by the models/sampler side; ``rlx.rewards.testing.BigramScorer`` is a numpy fake.
  Prompts are ragged (a list of 1-D int arrays); completions are [B, T] right-padded with a mask.
  ``model`` picks ``"policy"`` (current parameters) or ``"reference"`` (the initial policy).
  """

  vocab_size: int
  eos_id: int

  def encode(self, text: str) -> np.ndarray:
    """Token ids of ``text`` (no special tokens)."""

  def token_logprobs(self, prompt_ids: Sequence[np.ndarray], completion_ids: np.ndarray,
                     completion_mask: np.ndarray, *, model: str = "policy") -> np.ndarray:
    """[B, T] float32 log p(y_t | x, y_<t), 0 outside the mask."""

  def logits_stats(self, prompt_ids: Sequence[np.ndarray], completion_ids: np.ndarray,
                   completion_mask: np.ndarray, *, model: str = "policy") -> dict[str, np.ndarray]:
    """Per-token statistics of the next-token distributions, each [B, T] float32:
    ``self_certainty`` (KL(U ‖ p_t) = −log V − mean_v log p_t(v)) and ``entropy``."""

  def last_hidden(self, prompt_ids: Sequence[np.ndarray], completion_ids: np.ndarray,
                  completion_mask: np.ndarray, *, model: str = "policy") -> np.ndarray:
    """[B, T, D] float32 final hidden states over the completion positions."""


class Reward(Protocol):
  """A reward: ``name`` and ``__call__(batch, scorer=None) -> RewardOutput``.

  Stateful rewards (caches, memories, RNGs) also implement ``state_dict()`` and
  ``load_state_dict(state)`` so that a resumed run continues exactly.
  """

  name: str

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    ...


class BatchReward:
  """A reward from a function ``fn(batch, scorer) -> RewardOutput | array[B]`` over the batch."""

  def __init__(self, fn: Callable[..., Any], name: str | None = None):
    self.fn = fn
    self.name = name or getattr(fn, "__name__", "reward")

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    out = self.fn(batch, scorer)
    return out if isinstance(out, RewardOutput) else RewardOutput(scores=np.asarray(out))

  def __repr__(self):
    return f"BatchReward({self.name})"


def pad_ragged(seqs: Sequence[Sequence[int]], pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Right-pads ragged int sequences: returns ([N, L] int32 ids, [N, L] int32 mask), L ≥ 1."""
  width = max([len(s) for s in seqs] + [1])
  ids = np.full((len(seqs), width), pad, np.int32)
  mask = np.zeros((len(seqs), width), np.int32)
  for i, s in enumerate(seqs):
    ids[i, :len(s)] = np.asarray(s, np.int32)
    mask[i, :len(s)] = 1
  return ids, mask


def masked_mean_rows(x: np.ndarray, m: np.ndarray) -> np.ndarray:
  """[B] Σ_t x·m / (Σ_t m + 1e-8), with values outside the mask ignored (even NaN)."""
  m = np.asarray(m, np.float64)
  x = np.where(m > 0, np.asarray(x, np.float64), 0.0)
  return (x * m).sum(-1) / (m.sum(-1) + 1e-8)
