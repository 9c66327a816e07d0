"""The environment protocol and registry."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable


@dataclasses.dataclass
class StepResult:
  """What an environment answers to one action.

  observation: text the model reads next (its tokens get loss mask 0); "" for none.
  reward: this turn's reward. The last turn's is the episode's outcome reward; earlier turns'
    are dense rewards on their turn's last action token.
  done: the episode ends after this turn.
  info: counters and details (e.g. ``tool``, ``tool_error``) summed into the episode's metrics.
  """

  observation: str = ""
  reward: float = 0.0
  done: bool = False
  info: dict[str, Any] = dataclasses.field(default_factory=dict)


class Environment(abc.ABC):
  """One episode's state: an instance is made per episode (``make_env``)."""

  @abc.abstractmethod
  def reset(self, example: dict) -> str:
    """Starts an episode on ``example`` (a data source row); returns the first prompt text."""

  @abc.abstractmethod
  def step(self, action: str) -> StepResult:
    """The model's turn ``action`` (decoded text) → the environment's answer."""

  def close(self) -> None:
    """Releases what the episode holds (processes, files); called once the episode ends."""


_ENVS: dict[str, Callable[..., Environment]] = {}


def register_env(name: str, factory: Callable[..., Environment], *, overwrite: bool = False):
  """Registers ``factory(**kwargs) -> Environment`` under ``name`` (``env.name`` in a config)."""
  if name in _ENVS and not overwrite:
    raise ValueError(f"environment {name!r} is already registered (pass overwrite=True)")
  _ENVS[name] = factory


def env_names() -> list[str]:
  return sorted(_ENVS)


def make_env(name: str, **kwargs) -> Environment:
  """A fresh episode of environment ``name``."""
  if name not in _ENVS:
    raise ValueError(f"env.name={name!r}: unknown environment; allowed values: {env_names()}")
  return _ENVS[name](**kwargs)
