"""The environment protocol and registry."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable


@dataclasses.dataclass
class StepResult:
  """What an environment answers to one action.

  observation: text the model reads next (its tokens get loss mask 0); "" for none; None
    (multi-agent episodes): the episode waits for other players, and ``Environment.poll``
    gives the observation once it may act again.
  reward: this turn's reward. The last turn's is the episode's outcome reward; earlier turns'
    are dense rewards on their turn's last action token.
  done: the episode ends after this turn.
  info: counters and details (e.g. ``tool``, ``tool_error``) summed into the episode's metrics.
  """

  observation: str | None = ""
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
    """Releases what the episode holds (processes, files); called once when the episode ends."""

  # Multi-agent episodes (a seat of a :class:`Game`): single-agent environments keep these.
  num_players: int = 1

  def waiting(self) -> bool:
    """After ``reset``: whether the episode waits for other players before its first action."""
    return False

  def poll(self) -> StepResult | None:
    """A waiting episode (after ``reset`` with ``waiting()``, or a step answered with
    ``observation=None``): None while other players act, else the result to go on with (its
    observation is appended, or ``done`` ends the episode with its reward)."""
    raise NotImplementedError(f"{type(self).__name__} does not wait for other players")


class Game(abc.ABC):
  """A turn-based game of ``num_players`` seats, for self-play: :func:`seats` makes one
  :class:`Environment` per seat (one episode row each, all played by the same policy), and
  :class:`Versus` one where the other seats are played by a fixed opponent."""

  num_players: int = 2

  @abc.abstractmethod
  def reset(self, example) -> None:
    """Starts a game on ``example`` (a data source row)."""

  @abc.abstractmethod
  def to_move(self) -> int:
    """The seat whose move it is (while not ``over()``)."""

  @abc.abstractmethod
  def observe(self, player: int) -> str:
    """The text ``player`` has not read yet (the first call: its prompt); reading drains it.
    Excludes the player's own actions (they are already in its context)."""

  @abc.abstractmethod
  def act(self, action: str) -> dict:
    """The current seat's move ``action``; returns numeric info (e.g. ``invalid_move``)."""

  @abc.abstractmethod
  def over(self) -> bool:
    """Whether the game has ended."""

  @abc.abstractmethod
  def rewards(self) -> list[float]:
    """Each seat's final reward (once ``over()``)."""

  def close(self) -> None:
    """Releases what the game holds."""


class _Table:
  """One game shared by its seats' episodes: started by the first seat's reset, closed by the
  last seat's close; a seat ending before the game does (a turn or token budget, an error)
  aborts it for the others."""

  def __init__(self, game: Game):
    self.game, self.started, self.aborted, self.open = game, False, False, game.num_players


class Seat(Environment):
  """Seat ``player`` of a shared game (see :func:`seats`)."""

  def __init__(self, table: _Table, player: int):
    self.table, self.player = table, player
    self.num_players = table.game.num_players
    self.closed = False

  @property
  def game(self) -> Game:
    return self.table.game

  def reset(self, example) -> str:
    if not self.table.started:
      self.game.reset(example)
      self.table.started = True
    return self.game.observe(self.player)

  def waiting(self) -> bool:
    return not self.game.over() and self.game.to_move() != self.player

  def _result(self, info: dict) -> StepResult:
    if self.game.over():
      return StepResult(reward=float(self.game.rewards()[self.player]), done=True, info=info)
    if self.game.to_move() == self.player:  # e.g. a retry after an invalid move
      return StepResult(observation=self.game.observe(self.player), info=info)
    return StepResult(observation=None, info=info)

  def step(self, action: str) -> StepResult:
    return self._result(dict(self.game.act(action)))

  def poll(self) -> StepResult | None:
    if self.table.aborted:
      return StepResult(done=True, info={"game_aborted": 1})
    if not self.game.over() and self.game.to_move() != self.player:
      return None
    return self._result({})

  def close(self) -> None:
    if self.closed:
      return
    self.closed = True
    if not self.game.over():
      self.table.aborted = True
    self.table.open -= 1
    if self.table.open == 0:
      self.game.close()


def seats(game: Game) -> list[Seat]:
  """One episode per seat of ``game`` (seat order); every seat is played by the policy."""
  table = _Table(game)
  return [Seat(table, p) for p in range(game.num_players)]


class Versus(Environment):
  """Seat ``player`` of ``game`` against a fixed opponent: ``opponent(game, observation) ->
  action`` plays every other seat (its observation is that seat's unread text). A single-agent
  episode: the opponent's moves happen inside ``reset`` and ``step``."""

  def __init__(self, game: Game, opponent: Callable[[Game, str], str], player: int = 0):
    self.game, self.opponent, self.player = game, opponent, player
    self.info: dict = {}

  def _play_others(self) -> None:
    while not self.game.over() and self.game.to_move() != self.player:
      seat = self.game.to_move()
      self.game.act(self.opponent(self.game, self.game.observe(seat)))

  def reset(self, example) -> str:
    self.game.reset(example)
    prompt = self.game.observe(self.player)
    self._play_others()
    return prompt + (self.game.observe(self.player) if not self.game.over() else "")

  def step(self, action: str) -> StepResult:
    info = dict(self.game.act(action))
    self._play_others()
    if self.game.over():
      return StepResult(reward=float(self.game.rewards()[self.player]), done=True, info=info)
    return StepResult(observation=self.game.observe(self.player), info=info)

  def close(self) -> None:
    self.game.close()


class Registry:
  """Named factories of one kind (environments, games). ``env.name`` looks up both kinds, so a
  name belongs to one kind only."""

  _kinds: dict[str, str] = {}  # every registered name -> its kind

  def __init__(self, kind: str):
    self.kind, self.factories = kind, {}

  def register(self, name: str, factory: Callable, overwrite: bool = False) -> None:
    other = Registry._kinds.get(name, self.kind)
    if other != self.kind:
      raise ValueError(f"{name!r} is already registered, as a name of kind {other!r}")
    if name in self.factories and not overwrite:
      raise ValueError(f"{self.kind} {name!r} is already registered (pass overwrite=True)")
    self.factories[name] = factory
    Registry._kinds[name] = self.kind

  def names(self) -> list[str]:
    return sorted(self.factories)

  def make(self, name: str, **kwargs):
    if name not in self.factories:
      raise ValueError(f"env.name={name!r}: unknown {self.kind}; allowed values: {self.names()}")
    return self.factories[name](**kwargs)


ENVS = Registry("environment")


def register_env(name: str, factory: Callable[..., Environment], *, overwrite: bool = False):
  """Registers ``factory(**kwargs) -> Environment`` under ``name`` (``env.name`` in a config)."""
  ENVS.register(name, factory, overwrite)


def env_names() -> list[str]:
  return ENVS.names()


def make_env(name: str, **kwargs) -> Environment:
  """A fresh episode of environment ``name``."""
  return ENVS.make(name, **kwargs)
