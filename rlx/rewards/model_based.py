"""Model-based rewards: a learned scalar reward model and an LLM-as-judge.

Both reach the models through callables supplied by the caller (the models/sampler side):
``score_fn(prompt_ids, completion_ids, completion_mask) -> [B]`` for the reward model (default:
``scorer.sequence_scores``), and ``generate(prompts: list[str]) -> list[str]`` for the judge
(default: ``scorer.generate``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from rlx.rewards.base import RewardInput, RewardOutput, Scorer

DEFAULT_JUDGE_TEMPLATE = (
    "Rate the response to the question on a scale of 0 to 10.\n"
    "Question: {prompt}\nReference answer: {answer}\nResponse: {completion}\n"
    "Reply with 'Score: <number>'.")


class RewardModelReward:
  """Scalar scores of a learned reward model (Bradley–Terry head), optionally standardised
  (``normalize=True``: ``(s − mean)/(std + 1e-6)`` over the batch).

  ``checkpoint``: an rlx reward-model run's checkpoint directory (or its workdir), so a config
  can name it: ``rewards.name="reward_model"``, ``rewards.kwargs={"checkpoint": DIR}``. The
  rewards layer loads no model itself: the scorer does, ``scorer.reward_model(DIR)`` (the
  training runtime's scorers implement it with ``rlx.runtime.scorer.load_reward_model``); in a
  notebook pass ``score_fn=load_reward_model(DIR).sequence_scores`` or
  ``scorer=rlx.runtime.scorer.ModelLoader()``.
  """

  def __init__(self, score_fn: Callable[..., np.ndarray] | None = None, normalize: bool = False,
               checkpoint: str = ""):
    self.name, self.score_fn, self.normalize = "reward_model", score_fn, normalize
    self.checkpoint = checkpoint

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    if self.score_fn is None and self.checkpoint:
      loader = getattr(scorer, "reward_model", None)
      if loader is None:
        raise ValueError(f"reward_model(checkpoint={self.checkpoint!r}) needs a scorer with "
                         "reward_model(directory) (rlx.runtime.scorer.ModelLoader), or score_fn")
      self.score_fn = loader(self.checkpoint).sequence_scores
    fn = self.score_fn or getattr(scorer, "sequence_scores", None)
    if fn is None:
      raise ValueError("reward_model needs score_fn or a scorer with sequence_scores")
    pids = batch.prompt_ids if batch.prompt_ids is not None else [
        scorer.encode(p) for p in batch.prompts]
    s = np.asarray(fn(pids, batch.completion_ids, batch.completion_mask), np.float64)
    if self.normalize:
      s = (s - s.mean()) / (s.std() + 1e-6)
    return RewardOutput(s.astype(np.float32))


def parse_judge_score(text: str, max_score: float = 10.0) -> float | None:
  """The last ``Score: x`` (or ``Rating: x``, ``x/10``) in a judgement, divided by ``max_score``;
  None when absent or out of range."""
  m = re.findall(r"(?:score|rating)\s*[:=]?\s*(-?\d+(?:\.\d+)?)", text or "", re.IGNORECASE)
  m = m or re.findall(r"(-?\d+(?:\.\d+)?)\s*/\s*" + re.escape(f"{max_score:g}"), text or "")
  if not m:
    return None
  v = float(m[-1])
  return v / max_score if 0 <= v <= max_score else None


class LLMJudge:
  """LLM-as-judge: fills ``template`` (fields ``prompt``, ``completion``, ``answer``), generates
  judgements with ``generate``, parses a score in [0, 1]. An unparsable judgement scores 0 and is
  counted in ``failures`` (metric ``reward/llm_judge/failures``)."""

  def __init__(self, generate: Callable[[Sequence[str]], Sequence[str]] | None = None,
               template: str = DEFAULT_JUDGE_TEMPLATE, max_score: float = 10.0):
    self.name, self.generate, self.template, self.max_score = (
        "llm_judge", generate, template, max_score)

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    gen = self.generate or getattr(scorer, "generate", None)
    if gen is None:
      raise ValueError("llm_judge needs generate= or a scorer with generate")
    prompts = [self.template.format(prompt=p, completion=c, answer=batch.meta(i).get("answer", ""))
               for i, (p, c) in enumerate(zip(batch.prompts, batch.completions))]
    texts = list(gen(prompts))
    if len(texts) != batch.batch_size:
      raise ValueError(f"judge returned {len(texts)} texts for {batch.batch_size} prompts")
    parsed = [parse_judge_score(t, self.max_score) for t in texts]
    failed = np.array([p is None for p in parsed], np.int32)
    scores = np.array([0.0 if p is None else p for p in parsed], np.float32)
    return RewardOutput(scores, extras={"parse_failures": failed.astype(np.float32)},
                        failures=failed)
