"""Host-side pieces of the RL step: prompts → rollout → texts → rewards, filters, evaluation.

Everything here is numpy and Python (decoding, reward calls, group filtering, padding to the
step's static batch); the math lives in ``rlx.core`` and the compiled functions in
``rlx.algorithms``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from rlx import config as rlx_config
from rlx.data import (BalancedDifficulty, DynamicSampling, ScoredGroups, StdEMA, GroupFilter,
                      make_prompt_batch, verify)
from rlx.sampling import LENGTH, SamplingParams, sample


def sampling_params(run: rlx_config.RunConfig, tokenizer, *, n: int, greedy: bool = False,
                    temperature: float | None = None) -> SamplingParams:
  s = run.sampling
  stop = (tokenizer.eos_id,) if s.stop_at_eos and tokenizer.eos_id is not None else ()
  return SamplingParams(temperature=s.temperature if temperature is None else temperature,
                        top_k=s.top_k, top_p=s.top_p, min_p=s.min_p, greedy=greedy,
                        max_new_tokens=s.max_new_tokens, stop_token_ids=stop, n=n)


def decode(tokenizer, completion_tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
  return [tokenizer.decode(row[:int(n)].tolist()) for row, n in zip(completion_tokens, lengths)]


class RewardFn:
  """The config's reward: the synthetic task verifier or a ``rlx.rewards`` registry reward, plus
  DAPO's soft overlong penalty and overlong filtering."""

  def __init__(self, run: rlx_config.RunConfig):
    self.run = run
    self.reward = None
    if run.rewards.name != rlx_config.TASK_REWARD:
      from rlx.rewards import get_reward
      self.reward = get_reward(run.rewards.name, **dict(run.rewards.kwargs))

  def __call__(self, examples, texts, rollout: dict, step: int, *, shaped: bool = True):
    """Returns ``(scores [R], sample_mask [R], metrics)`` for rollout rows over ``examples``.

    ``shaped=False`` returns the reward without DAPO's length penalty (evaluation counts a
    correct long answer as correct)."""
    finish = rollout["finish_reason"]
    if self.reward is None:
      scores = np.array([verify(ex.task, t, ex.answer) for ex, t in zip(examples, texts)],
                        np.float32)
      sample_mask = np.ones_like(scores)
    else:
      from rlx.rewards import FINISH_LENGTH, FINISH_STOP, RewardInput
      out = self.reward(RewardInput(
          prompts=[ex.prompt for ex in examples], completions=texts,
          completion_ids=rollout["completion_tokens"], completion_mask=rollout["completion_mask"],
          finish_reasons=[FINISH_LENGTH if f == LENGTH else FINISH_STOP for f in finish],
          group_ids=rollout["group_ids"],
          metadata=[{"answer": ex.answer, "task": ex.task, **(ex.info or {})} for ex in examples],
          step=step), None)
      scores = np.asarray(out.scores, np.float32)
      sample_mask = np.ones_like(scores) if out.sample_mask is None else np.asarray(
          out.sample_mask, np.float32)
    metrics = {"reward/correct": float(np.mean(scores))}
    r = self.run.rewards
    if r.overlong_buffer > 0 and shaped:
      from rlx.rewards import dapo_overlong_penalty
      penalty = dapo_overlong_penalty(rollout["lengths"], self.run.sampling.max_new_tokens,
                                      r.overlong_buffer)
      scores = scores + penalty
      metrics["reward/overlong_penalty"] = float(np.mean(penalty))
    if r.overlong_filter:
      sample_mask = sample_mask * (finish != LENGTH)
    metrics["rollout/truncated"] = float(np.mean(finish == LENGTH))
    metrics["rollout/length"] = float(np.mean(rollout["lengths"]))
    return scores, sample_mask, metrics


def make_group_filter(algo: rlx_config.AlgoSection) -> GroupFilter:
  kind = algo.filter
  if kind is rlx_config.FilterKind.DYNAMIC_SAMPLING:
    return DynamicSampling()
  if kind is rlx_config.FilterKind.BALANCED:
    return BalancedDifficulty(lo=algo.filter_lo, hi=algo.filter_hi)
  if kind is rlx_config.FilterKind.STD_EMA:
    return StdEMA()
  return GroupFilter()


def rollout_to_host(rollout) -> dict[str, np.ndarray]:
  """The step's one planned device→host transfer."""
  fields = ("prompt_tokens", "prompt_mask", "completion_tokens", "completion_mask", "logprobs",
            "lengths", "finish_reason", "group_ids")
  return dict(zip(fields, jax.device_get(tuple(getattr(rollout, f) for f in fields))))


def sample_groups(setup, params, examples, key, *, n: int, greedy: bool = False,
                  temperature: float | None = None) -> dict[str, np.ndarray]:
  """Sample ``n`` completions of each example; host arrays, rows prompt-major."""
  run = setup.run
  batch = make_prompt_batch(examples, setup.tokenizer, formatter=setup.formatter, group_size=1,
                            length_buckets=(run.data.max_prompt_len,), truncate=True)
  k = len(examples)
  rollout = sample(setup.graphdef, params, batch.prompt_tokens[:k], batch.prompt_mask[:k],
                   sampling_params(run, setup.tokenizer, n=n, greedy=greedy,
                                   temperature=temperature), key, pad_id=setup.tokenizer.pad_id)
  return rollout_to_host(rollout)


def pad_rows(data: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
  """Pad to ``rows`` rows by repeating row 0 with zero loss mask and unique group ids, so the
  update keeps one static shape (padding rows count in no numerator or denominator)."""
  have = len(data["rewards"])
  if have >= rows:
    return {k: v[:rows] for k, v in data.items()}
  extra = rows - have
  out = {}
  for k, v in data.items():
    out[k] = np.concatenate([v, np.repeat(v[:1], extra, axis=0)])
  out["loss_mask"][have:] = 0
  out["group_ids"][have:] = np.max(data["group_ids"]) + 1 + np.arange(extra)
  return out


@dataclasses.dataclass
class Collected:
  data: dict[str, np.ndarray]
  metrics: dict[str, Any]
  filter_state: Any
  empty: bool = False  # the filter kept no group: the caller skips the update


def collect(setup, params, example_iter, reward_fn: RewardFn, group_filter: GroupFilter,
            filter_state, key, step: int) -> Collected:
  """Sample, score, filter and refill one step's groups (ALGORITHMS.md §11)."""
  from rlx.data import fill_batch
  run, algo = setup.run, setup.run.algo
  g = algo.group_size
  metrics: dict[str, Any] = {}

  def sample_fn(round_index: int) -> ScoredGroups:
    examples = next(example_iter)
    data = sample_groups(setup, params, examples, jax.random.fold_in(key, round_index), n=g)
    rows_examples = [ex for ex in examples for _ in range(g)]
    texts = decode(setup.tokenizer, data["completion_tokens"], data["lengths"])
    scores, sample_mask, m = reward_fn(rows_examples, texts, data, step)
    data["greedy_rewards"] = np.zeros_like(scores)
    if algo.estimator.value == "remax":
      greedy = sample_groups(setup, params, examples, jax.random.fold_in(key, 1000 + round_index),
                             n=1, greedy=True)
      greedy_scores, _, _ = reward_fn(examples, decode(setup.tokenizer,
                                                       greedy["completion_tokens"],
                                                       greedy["lengths"]), greedy, step)
      data["greedy_rewards"] = np.repeat(greedy_scores, g)
    data["loss_mask"] = data["completion_mask"] * sample_mask[:, None]
    data["rewards"] = scores
    if round_index == 0:
      metrics.update(m)
      metrics["sample/text"] = texts[0]
    return ScoredGroups(rewards=scores, group_ids=data["group_ids"], data=data)

  result, filter_state = fill_batch(sample_fn, group_filter, filter_state,
                                    num_groups=algo.num_prompts, max_refills=algo.max_refills)
  metrics.update({k: float(v) for k, v in result.metrics.items()})
  if len(result.rewards) == 0:
    return Collected({}, metrics, filter_state, empty=True)
  data = dict(result.data)
  data["rewards"] = np.asarray(result.rewards, np.float32)
  data["group_ids"] = np.asarray(result.group_ids, np.int32)
  return Collected(pad_rows(data, algo.batch_size), metrics, filter_state)


def evaluate(setup, params, key) -> dict[str, float]:
  """Held-out accuracy: greedy, sampled pass@1 (mean over k samples), pass@k; mean length and
  truncation rate of the sampled completions."""
  run = setup.run
  n_eval = min(run.eval.num_examples, len(setup.eval_source))
  examples = [setup.eval_source[i] for i in range(n_eval)]
  reward_fn = RewardFn(run)
  out = {}
  greedy = sample_groups(setup, params, examples, key, n=1, greedy=True)
  texts = decode(setup.tokenizer, greedy["completion_tokens"], greedy["lengths"])
  scores, _, _ = reward_fn(examples, texts, greedy, 0, shaped=False)
  out["eval/greedy_accuracy"] = float(np.mean(scores >= 1.0))
  k = run.eval.num_samples
  sampled = sample_groups(setup, params, examples, jax.random.fold_in(key, 1), n=k,
                          temperature=run.eval.temperature)
  texts = decode(setup.tokenizer, sampled["completion_tokens"], sampled["lengths"])
  scores, _, _ = reward_fn([ex for ex in examples for _ in range(k)], texts, sampled, 0,
                           shaped=False)
  correct = (scores >= 1.0).reshape(n_eval, k)
  out["eval/pass@1"] = float(np.mean(correct))
  out[f"eval/pass@{k}"] = float(np.mean(correct.any(axis=1)))
  out["eval/mean_length"] = float(np.mean(sampled["lengths"]))
  out["eval/truncation_rate"] = float(np.mean(sampled["finish_reason"] == LENGTH))
  out["eval/sample"] = texts[0]
  return out
