"""Gymnasium-style text environments as rlx environments.

Any object with ``reset(seed=..., options=...) -> (observation, info)`` and ``step(action) ->
(observation, reward, terminated, truncated, info)`` over strings (the gymnasium API, e.g. a
``gymnasium.make(...)`` text environment or a hand-written one) plays as an rlx
:class:`Environment`: the first observation becomes the prompt (after the example's prompt,
if any), later observations are appended as observation tokens, ``terminated or truncated``
ends the episode.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from rlx.envs.base import Environment, StepResult, register_env
from rlx.envs.games import example_seed


def _factory(factory: str | Callable[[], Any] | None, gym_id: str | None) -> Callable[[], Any]:
  if callable(factory):
    return factory
  if factory:
    module, _, name = factory.partition(":")
    if not name:
      raise ValueError(f"env.kwargs.factory={factory!r}: expected 'module:callable'")
    return getattr(importlib.import_module(module), name)
  if gym_id:
    import gymnasium  # optional dependency: only for env.kwargs.id
    return lambda: gymnasium.make(gym_id)
  raise ValueError("the gym environment needs env.kwargs.factory ('module:callable') or "
                   "env.kwargs.id (a gymnasium id)")


class GymTextEnv(Environment):
  """Args:
    factory: a callable making a fresh gymnasium-style environment, or ``"module:callable"``.
    id: a ``gymnasium.make`` id (instead of ``factory``).
    observation_format: how observations after the first are shown (``{obs}`` is replaced).
    make_kwargs: keyword arguments of ``factory``.
  Each episode is reset with ``seed`` = the example's ``info["seed"]`` if set, else a hash of
  its prompt (the same example gives the same episode), and ``options={"example": example}``.
  """

  def __init__(self, factory=None, id: str | None = None, *,  # noqa: A002 - gymnasium's name
               observation_format: str = "{obs}", make_kwargs: dict | None = None):
    self.make = _factory(factory, id)
    self.make_kwargs = dict(make_kwargs or {})
    self.observation_format = observation_format
    self.env = None

  def reset(self, example) -> str:
    self.env = self.make(**self.make_kwargs)
    prompt = example["prompt"] if isinstance(example, dict) else getattr(example, "prompt", "")
    obs, _ = self.env.reset(seed=example_seed(example), options={"example": example})
    return f"{prompt}\n{obs}" if prompt else str(obs)

  def step(self, action: str) -> StepResult:
    obs, reward, terminated, truncated, info = self.env.step(action)
    done = bool(terminated or truncated)
    numeric = {k: v for k, v in (info or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if truncated and not terminated:
      numeric["truncated"] = 1
    return StepResult(observation="" if done else self.observation_format.format(obs=obs),
                      reward=float(reward), done=done, info=numeric)

  def close(self) -> None:
    if self.env is not None and hasattr(self.env, "close"):
      self.env.close()


register_env("gym", GymTextEnv)
