"""Sampling parameters and shape buckets."""

from __future__ import annotations

import dataclasses
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """How to sample completions.

  Float knobs (temperature, top_p, min_p) and the values of ``top_k`` and the stop ids are traced:
  changing them never recompiles. What changes the compiled program: ``greedy``, whether any
  top-k/top-p/min-p filter is on, the number of stop ids (padded to a multiple of 4), the
  ``return_*`` flags, and the ``max_new_tokens`` bucket.
  """

  temperature: float = 1.0  # log-probs are reported under softmax(logits / temperature)
  top_k: int = 0  # keep the k most likely tokens (0 = off)
  top_p: float = 1.0  # nucleus: smallest set with mass >= top_p (1.0 = off)
  min_p: float = 0.0  # drop tokens with p < min_p * p_max (0 = off)
  greedy: bool = False  # argmax instead of sampling (log-probs still use `temperature`)
  max_new_tokens: int = 64  # completion budget per row
  stop_token_ids: tuple[int, ...] = ()  # a row stops after emitting one of these (EOS included)
  n: int = 1  # samples per prompt; rows are prompt-major (row i*n + j = sample j of prompt i)
  return_entropy: bool = False  # per-token entropy of the temperature-scaled distribution
  return_self_certainty: bool = False  # per-token logsumexp(z) − mean(z), z = logits / temperature

  def __post_init__(self):
    errors = []
    if not self.temperature > 0:
      errors.append(f"temperature={self.temperature}: must be > 0 (use greedy=True for argmax)")
    if self.top_k < 0:
      errors.append(f"top_k={self.top_k}: must be >= 0 (0 disables top-k)")
    if not 0 < self.top_p <= 1:
      errors.append(f"top_p={self.top_p}: must be in (0, 1]")
    if not 0 <= self.min_p < 1:
      errors.append(f"min_p={self.min_p}: must be in [0, 1)")
    if self.max_new_tokens < 1:
      errors.append(f"max_new_tokens={self.max_new_tokens}: must be >= 1")
    if self.n < 1:
      errors.append(f"n={self.n}: must be >= 1")
    if errors:
      raise ValueError("invalid SamplingParams: " + "; ".join(errors))
    object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))

  @property
  def filtered(self) -> bool:
    return self.top_k > 0 or self.top_p < 1.0 or self.min_p > 0.0


def _powers_of_two(lo: int, hi: int) -> tuple[int, ...]:
  out, x = [], lo
  while x < hi:
    out.append(x)
    x *= 2
  out.append(hi)
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class Buckets:
  """Allowed compiled shapes. A call is padded up to the smallest bucket that fits, so a run
  compiles at most ``len(prompt_lengths) × len(batch_sizes) × len(new_tokens)`` decode programs.
  """

  prompt_lengths: Sequence[int] = _powers_of_two(16, 8192)
  batch_sizes: Sequence[int] = _powers_of_two(1, 4096)
  new_tokens: Sequence[int] = _powers_of_two(16, 32768)

  @staticmethod
  def pick(buckets: Sequence[int], size: int, what: str) -> int:
    for b in sorted(buckets):
      if b >= size:
        return b
    raise ValueError(f"{what}={size} exceeds the largest bucket {max(buckets)}; add a bucket")
