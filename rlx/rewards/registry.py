"""Reward registry: configs name rewards, ``get_reward(name, **kwargs)`` builds them.

Every reward from ``get_reward`` is wrapped in ``SafeReward`` (contained: never raises) unless
``safe=False``. Nested rewards (``inner``, ``verifier``) may be given as a name, a dict
``{"name": ..., **kwargs}``, or a reward object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rlx.rewards import code as code_lib
from rlx.rewards import intrinsic, label_free, model_based, process, spurious, verifiable
from rlx.rewards import reasoning_gym as reasoning_gym_lib
from rlx.rewards.safety import SafeReward

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_reward(name: str, factory: Callable[..., Any] | None = None, *,
                    overwrite: bool = False):
  """Registers ``factory(**kwargs) -> reward`` under ``name`` (usable as a decorator)."""
  def add(f):
    if name in _REGISTRY and not overwrite:
      raise ValueError(f"reward {name!r} is already registered")
    _REGISTRY[name] = f
    return f
  return add(factory) if factory is not None else add


def list_rewards() -> list[str]:
  """The registered reward names, sorted."""
  return sorted(_REGISTRY)


def get_reward(name: str, *, safe: bool = True, call_timeout: float | None = 60.0,
               default: float = 0.0, **kwargs) -> Any:
  """Builds the reward registered as ``name`` with ``kwargs``.

  Args:
    safe: wrap in ``SafeReward`` (exceptions, timeouts, malformed output → ``default``, counted).
    call_timeout: seconds for one whole-batch call (per-sample timeouts are reward kwargs).
  Raises:
    KeyError: unknown name (the message lists the known names).
  """
  if name not in _REGISTRY:
    raise KeyError(f"unknown reward {name!r}; known rewards: {', '.join(list_rewards())}")
  reward = _REGISTRY[name](**kwargs)
  return SafeReward(reward, timeout=call_timeout, default=default) if safe else reward


def resolve_reward(spec: Any, **defaults) -> Any:
  """A reward object from a name, a ``{"name": ..., **kwargs}`` dict, or a reward (returned as is);
  nested rewards are built unwrapped (the outer reward is the one contained)."""
  if isinstance(spec, str):
    return get_reward(spec, safe=False, **defaults)
  if isinstance(spec, Mapping) or (hasattr(spec, "keys") and hasattr(spec, "__getitem__")):
    kw = dict(defaults, **{k: spec[k] for k in spec.keys()})  # dicts and ConfigDicts
    return get_reward(kw.pop("name"), safe=False, **kw)
  return spec


def _with_inner(cls, key="inner"):
  def factory(**kw):
    kw[key] = resolve_reward(kw[key]) if kw.get(key) is not None else kw.get(key)
    return cls(**kw)
  return factory


register_reward("math_answer", verifiable.math_answer)
register_reward("exact_match", verifiable.exact_match)
register_reward("multiple_choice", verifiable.multiple_choice)
register_reward("format", verifiable.format_regex)
register_reward("code", code_lib.code_tests)
register_reward("reasoning_gym", reasoning_gym_lib.reasoning_gym_reward)
register_reward("thinkprune", lambda inner="math_answer", truncated_score=0.0:
                verifiable.ThinkPruneCap(resolve_reward(inner), truncated_score))
register_reward("dapo_overlong", verifiable.DapoOverlong)
register_reward("overlong_filter", verifiable.OverlongFilter)
register_reward("self_certainty", label_free.SelfCertainty)
register_reward("borda_vote", label_free.BordaVote)
register_reward("majority_vote", label_free.MajorityVote)
register_reward("semantic_entropy", label_free.SemanticEntropy)
register_reward("co_reward", label_free.CoReward)
register_reward("rlpr", label_free.RLPRProbability)
register_reward("laser", _with_inner(label_free.LaSeR, "verifier"))
register_reward("self_aligned", label_free.SelfAlignedReward)
register_reward("answer_confidence", label_free.AnswerConfidence)
register_reward("episodic_memory", _with_inner(intrinsic.EpisodicMemory, "verifier"))
register_reward("reward_model", model_based.RewardModelReward)
register_reward("llm_judge", model_based.LLMJudge)
register_reward("random", spurious.RandomReward)
register_reward("inverted", lambda inner="math_answer", mode="one_minus":
                spurious.InvertedReward(resolve_reward(inner), mode))
register_reward("format_only", spurious.FormatOnlyReward)
register_reward("incorrect_label", spurious.IncorrectLabelReward)


@register_reward("process_reward")
def _process_reward(step_fn, delimiter="\n\n", aggregate="none", outcome=None, **kw):
  """``step_fn``: ``"package.module:function"`` (or the function) scoring ``(prompt, steps,
  metadata) -> [score per step]``; ``outcome``: a nested reward (name, dict or object)."""
  fn = process.import_callable(step_fn) if isinstance(step_fn, str) else step_fn
  return process.ProcessReward(fn, delimiter=delimiter, aggregate=aggregate,
                               outcome=None if outcome is None else resolve_reward(outcome), **kw)
