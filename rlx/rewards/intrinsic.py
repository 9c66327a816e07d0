"""Intrinsic rewards: episodic-memory kNN (Memory-R+, docs/algorithms.md §9) and text embedders."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from rlx.rewards.base import RewardInput, RewardOutput, Scorer, pad_ragged


class Embedder(Protocol):
  """Maps texts to L2-normalised vectors: ``__call__(texts) -> [N, D] float32``."""

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    ...


def _l2n(x: np.ndarray) -> np.ndarray:
  return (x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)).astype(np.float32)


class HashedNgramEmbedder:
  """Hashed character n-gram counts (crc32 buckets with a ±1 sign hash), L2-normalised.
  Deterministic across processes and machines; needs no download."""

  def __init__(self, dim: int = 256, ngrams: Sequence[int] = (2, 3, 4), lowercase: bool = True):
    self.dim, self.ngrams, self.lowercase = dim, tuple(ngrams), lowercase

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), self.dim), np.float64)
    for i, t in enumerate(texts):
      t = t.lower() if self.lowercase else t
      for n in self.ngrams:
        for k in range(max(len(t) - n + 1, 0)):
          h = zlib.crc32(t[k:k + n].encode("utf-8", "replace"))
          out[i, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
    return _l2n(out)


class PolicyHiddenEmbedder:
  """The policy's own mean last hidden state over the text's tokens (through a ``Scorer``)."""

  def __init__(self, scorer: Scorer, model: str = "policy"):
    self.scorer, self.model = scorer, model

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    ids, mask = pad_ragged([self.scorer.encode(t) for t in texts])
    empty = [np.zeros(0, np.int32) for _ in texts]
    h = np.asarray(self.scorer.last_hidden(empty, ids, mask, model=self.model), np.float64)
    m = mask[..., None].astype(np.float64)
    return _l2n((h * m).sum(1) / (m.sum(1) + 1e-8))


class EpisodicMemory:
  """Memory-R+ episodic-memory reward (kNN over embeddings of past questions).

  For each sample i with question q_i and completion c_i, the ``k`` most similar past questions
  (cosine) are retrieved; their stored traces split into correct (V_correct) and failed (V_failed).
  - exploit: ``d_i = ‖e(c_i) − mean(V_correct)‖``, min-max normalised over the last ``window``
    distances (this batch included): ``exploit_i = 1 − (d_i − min)/(max − min + 1e-8)``
    (0 without correct neighbours);
  - explore: cosine distance to the closest failed trace, ``1 − max_j cos(e(c_i), v_j)``
    (0 without failed neighbours).
  ``score = w_exploit·exploit + w_explore·explore``, all 0 until the memory holds ``min_entries``.
  After scoring, every sample is written to memory (FIFO up to ``capacity``) with its correctness
  from ``meta[correct_key]`` or, if given, the ``verifier`` reward (> 0 is correct).
  ``state_dict()``/``load_state_dict()`` checkpoint the memory.
  """

  def __init__(self, embedder: Embedder | None = None, k: int = 5, window: int = 100,
               min_entries: int = 500, capacity: int = 10_000, exploit_weight: float = 1.0,
               explore_weight: float = 1.0, correct_key: str = "correct",
               verifier: Callable[..., Any] | None = None):
    self.name = "episodic_memory"
    self.embedder = embedder or HashedNgramEmbedder()
    self.k, self.window, self.min_entries, self.capacity = k, window, min_entries, capacity
    self.exploit_weight, self.explore_weight = exploit_weight, explore_weight
    self.correct_key, self.verifier = correct_key, verifier
    self.questions = np.zeros((0, 0), np.float32)
    self.traces = np.zeros((0, 0), np.float32)
    self.correct = np.zeros(0, bool)
    self.recent_distances: list[float] = []

  def __len__(self):
    return len(self.correct)

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    b = batch.batch_size
    eq = self.embedder(list(batch.prompts))
    ec = self.embedder(list(batch.completions))
    exploit = np.zeros(b, np.float32)
    explore = np.zeros(b, np.float32)
    active = len(self) >= self.min_entries and len(self) > 0
    if active:
      sims = eq @ self.questions.T  # [B, N]
      dist = np.full(b, np.nan)
      for i in range(b):
        nn = np.argsort(-sims[i], kind="stable")[:self.k]
        good, bad = nn[self.correct[nn]], nn[~self.correct[nn]]
        if len(good):
          dist[i] = np.linalg.norm(ec[i] - self.traces[good].mean(0))
        if len(bad):
          explore[i] = 1.0 - float(np.max(self.traces[bad] @ ec[i]))
      have = ~np.isnan(dist)
      self.recent_distances = (self.recent_distances + dist[have].tolist())[-self.window:]
      if have.any():
        lo, hi = min(self.recent_distances), max(self.recent_distances)
        exploit[have] = 1.0 - (dist[have] - lo) / (hi - lo + 1e-8)
    if self.verifier is not None:
      correct = np.asarray(self.verifier(batch, scorer).scores) > 0
    else:
      correct = np.array([bool(batch.meta(i).get(self.correct_key, False)) for i in range(b)])
    self._add(eq, ec, correct)
    scores = self.exploit_weight * exploit + self.explore_weight * explore
    return RewardOutput(scores.astype(np.float32), extras={
        "exploit": exploit, "explore": explore,
        "active": np.full(b, float(active), np.float32)})

  def _add(self, q, t, correct):
    if len(self) == 0:
      self.questions, self.traces = q, t
      self.correct = np.asarray(correct, bool)
    else:
      self.questions = np.concatenate([self.questions, q])[-self.capacity:]
      self.traces = np.concatenate([self.traces, t])[-self.capacity:]
      self.correct = np.concatenate([self.correct, correct])[-self.capacity:]

  def state_dict(self) -> dict[str, Any]:
    return {"questions": self.questions.copy(), "traces": self.traces.copy(),
            "correct": self.correct.copy(),
            "recent_distances": np.asarray(self.recent_distances, np.float64)}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.questions = np.asarray(state["questions"], np.float32)
    self.traces = np.asarray(state["traces"], np.float32)
    self.correct = np.asarray(state["correct"], bool)
    self.recent_distances = [float(x) for x in np.asarray(state["recent_distances"])]
