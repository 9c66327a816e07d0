"""A fake ``Scorer`` for tests and notebooks: a character tokenizer and a numpy bigram "model".

``p(y_t | x, y_<t) = softmax(W[y_{t-1}])`` where the token before the first completion token is
the last prompt token (BOS for an empty prompt). Every quantity is checkable by hand.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np

from rlx.rewards.base import pad_ragged

BOS, EOS, UNK = 0, 1, 2
_CHARS = " " + string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,=+-*/(){}\\<>:!?$#_^'\"\n"


def _log_softmax(z: np.ndarray) -> np.ndarray:
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


class BigramScorer:
  """Implements ``rlx.rewards.Scorer`` with bigram logit tables (float64 math, float32 outputs).

  Args:
    seed: seeds the policy table ``W`` and the hidden-state table.
    scale: logit scale; larger is more peaked.
    reference_shift: the reference table is ``W − reference_shift · R`` (R another random table),
      so ``model="reference"`` differs from the policy unless the shift is 0.
    hidden_dim: width of ``last_hidden``.
  """

  def __init__(self, seed: int = 0, scale: float = 2.0, reference_shift: float = 0.5,
               hidden_dim: int = 8):
    rng = np.random.default_rng(seed)
    self.chars = _CHARS
    self.vocab_size = 3 + len(_CHARS)
    self.eos_id = EOS
    self.bos_id = BOS
    self.tables = {"policy": rng.normal(size=(self.vocab_size, self.vocab_size)) * scale}
    self.tables["reference"] = self.tables["policy"] - reference_shift * rng.normal(
        size=(self.vocab_size, self.vocab_size))
    self.hidden = rng.normal(size=(self.vocab_size, hidden_dim))
    self.calls = 0

  # tokenizer
  def encode(self, text: str) -> np.ndarray:
    idx = {c: i + 3 for i, c in enumerate(self.chars)}
    return np.array([idx.get(c, UNK) for c in text], np.int32)

  def decode(self, ids: Sequence[int]) -> str:
    return "".join(self.chars[i - 3] if i >= 3 else "" for i in ids)

  def batch_encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return pad_ragged([self.encode(t) for t in texts])

  # model
  def _prev(self, prompt_ids, completion_ids):
    b, t = completion_ids.shape
    first = np.array([p[-1] if len(p) else BOS for p in prompt_ids], np.int64)
    return np.concatenate([first[:, None], completion_ids[:, :-1]], 1) if t else first[:, None][:, :0]

  def logits(self, prompt_ids, completion_ids, *, model: str = "policy") -> np.ndarray:
    """[B, T, V] float64 next-token logits at every completion position."""
    completion_ids = np.asarray(completion_ids)
    return self.tables[model][self._prev(prompt_ids, completion_ids)]

  def token_logprobs(self, prompt_ids, completion_ids, completion_mask, *, model="policy"):
    self.calls += 1
    completion_ids = np.asarray(completion_ids)
    lp = _log_softmax(self.logits(prompt_ids, completion_ids, model=model))
    out = np.take_along_axis(lp, completion_ids[..., None].astype(np.int64), -1)[..., 0]
    return (out * np.asarray(completion_mask)).astype(np.float32)

  def logits_stats(self, prompt_ids, completion_ids, completion_mask, *, model="policy"):
    self.calls += 1
    lp = _log_softmax(self.logits(prompt_ids, completion_ids, model=model))
    v = lp.shape[-1]
    sc = -np.log(v) - lp.mean(-1)
    ent = -(np.exp(lp) * lp).sum(-1)
    m = np.asarray(completion_mask)
    return {"self_certainty": (sc * m).astype(np.float32), "entropy": (ent * m).astype(np.float32)}

  def last_hidden(self, prompt_ids, completion_ids, completion_mask, *, model="policy"):
    self.calls += 1
    h = self.hidden[np.asarray(completion_ids)]
    return (h * np.asarray(completion_mask)[..., None]).astype(np.float32)

  def sequence_logprob(self, prompt: str, continuation: str, model: str = "policy") -> np.ndarray:
    """[len(continuation)] float64 log-probs of ``continuation`` after ``prompt`` (for tests)."""
    ids = self.encode(continuation)[None]
    lp = _log_softmax(self.logits([self.encode(prompt)], ids, model=model))
    return np.take_along_axis(lp, ids[..., None].astype(np.int64), -1)[0, :, 0]


def make_batch(prompts, completions, *, scorer: BigramScorer | None = None, answers=None,
               group_ids=None, finish_reasons=None, metadata=None, step: int = 0):
  """A ``RewardInput`` with token ids from the fake tokenizer (for tests and notebooks)."""
  from rlx.rewards.base import RewardInput
  scorer = scorer or BigramScorer()
  ids, mask = scorer.batch_encode(completions)
  meta = metadata or [{} for _ in completions]
  if answers is not None:
    meta = [dict(m, answer=a) for m, a in zip(meta, answers)]
  return RewardInput(
      prompts=list(prompts), completions=list(completions), completion_ids=ids,
      completion_mask=mask, finish_reasons=finish_reasons or ["stop"] * len(completions),
      group_ids=None if group_ids is None else np.asarray(group_ids),
      metadata=meta, prompt_ids=[scorer.encode(p) for p in prompts], step=step)
