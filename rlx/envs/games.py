"""Two-player games for self-play, and the game registry.

A :class:`~rlx.envs.base.Game` is played by the policy in every seat (``seats(game)``: one
episode row per seat, the opponent's moves arriving as observations) or against a fixed
opponent (``Versus``). ``env.name`` may name a registered game; ``env.self_play`` picks which.

Built in: ``nim`` (one pile, take 1 to ``max_take`` stones a move, taking the last stone wins:
a position is lost for the player to move exactly when the pile is a multiple of
``max_take + 1``) and ``textarena`` (any textarena game by id: ``rlx.envs.textarena``).
"""

from __future__ import annotations

import importlib
import random
import re
import zlib
from typing import Callable

from rlx.envs.base import Game, Registry

GAMES = Registry("game")


def register_game(name: str, factory: Callable[..., Game], *, overwrite: bool = False):
  """Registers ``factory(**kwargs) -> Game`` under ``name`` (``env.name`` in a config)."""
  GAMES.register(name, factory, overwrite)


def game_names() -> list[str]:
  return GAMES.names()


def make_game(name: str, **kwargs) -> Game:
  """A fresh game ``name`` (one per played game: its seats share it)."""
  return GAMES.make(name, **kwargs)


def example_seed(example) -> int:
  """An episode's seed (a game's, a gymnasium environment's): the example's ``info["seed"]``,
  else a hash of its prompt (the same example gives the same episode)."""
  info = example.get("info") if isinstance(example, dict) else getattr(example, "info", None)
  seed = (info or {}).get("seed")
  if seed is None:
    prompt = example.get("prompt", "") if isinstance(example, dict) else getattr(
        example, "prompt", "")
    seed = zlib.crc32(str(prompt).encode())
  return int(seed)


# ----- fixed opponents -----

def random_opponent(seed: int = 0) -> Callable[[Game, str], str]:
  """Plays a uniformly random legal move (the game's ``legal_moves()``), from its own stream."""
  rng = random.Random(seed)

  def play(game: Game, observation: str) -> str:
    moves = getattr(game, "legal_moves", None)
    if moves is None:
      raise ValueError(f"{type(game).__name__} lists no legal_moves(): the random opponent "
                       "needs them (pass env.opponent = 'module:callable')")
    return rng.choice(list(moves()))
  return play


def optimal_nim_opponent(game: Game, observation: str) -> str:
  """Nim's winning move (leave a multiple of ``max_take + 1``), else take one stone."""
  k = game.pile % (game.max_take + 1)
  return str(k if k else 1)


OPPONENTS: dict[str, Callable[[int], Callable[[Game, str], str]]] = {
    "random": random_opponent,
    "nim_optimal": lambda seed=0: optimal_nim_opponent,
}


def make_opponent(spec: str, seed: int = 0) -> Callable[[Game, str], str]:
  """``env.opponent``: a name of ``OPPONENTS`` or ``"module:callable"`` (a callable of the
  seed returning ``opponent(game, observation) -> action``)."""
  if spec in OPPONENTS:
    return OPPONENTS[spec](seed)
  module, _, name = spec.partition(":")
  if not name:
    raise ValueError(f"env.opponent={spec!r}: allowed values: {sorted(OPPONENTS)} or "
                     "'module:callable'")
  return getattr(importlib.import_module(module), name)(seed)


def play_demonstrations(game: Game, example, policy: Callable[[Game, str], str]
                        ) -> list[tuple[int, str, list]]:
  """One game of ``example`` with ``policy`` in every seat, as each seat's episode would hold
  it in self-play (``seats``): ``[(seat, prompt, texts)]``, ``texts`` alternating action and
  observation from the seat's first action; a seat whose first move is not its own (it waits)
  starts with ``None`` then its first observation. Seats that never moved are left out. For an
  SFT warm start of a game run (the format of moves, e.g. from random legal moves)."""
  game.reset(example)
  prompts = [game.observe(p) for p in range(game.num_players)]
  first = game.to_move()
  texts: list[list] = [[] if p == first else [None] for p in range(game.num_players)]
  moved = [False] * game.num_players
  while not game.over():
    p = game.to_move()
    if moved[p] or p != first:
      texts[p].append(game.observe(p))
    action = policy(game, "")
    texts[p].append(action)
    moved[p] = True
    game.act(action)
  return [(p, prompts[p], texts[p]) for p in range(game.num_players) if moved[p]]


# ----- Nim -----

_DIGITS = re.compile(r"\d+")


class Nim(Game):
  """One pile of stones; players alternate taking 1 to ``max_take``; taking the last stone
  wins (+1, the other seat -1). A move is the first number in the action; anything else (no
  number, out of range, more than the pile) loses at once (``invalid_move``). Info also counts
  the moves made where a winning move existed (``winnable``) and those that took it
  (``winning_moves``: leaving a multiple of ``max_take + 1``).

  The pile is the example's ``info["pile"]``, else drawn from ``[min_pile, max_pile]`` by the
  example's seed. Seat ``p`` first reads the rules and the pile; on each of its turns after
  that, ``<obs>N left</obs>`` (the pile after the other seat's move)."""

  num_players = 2

  def __init__(self, min_pile: int = 5, max_pile: int = 20, max_take: int = 3):
    if not 1 <= min_pile <= max_pile or max_take < 1:
      raise ValueError(f"nim: need 1 <= min_pile <= max_pile and max_take >= 1, got "
                       f"{min_pile}, {max_pile}, {max_take}")
    self.min_pile, self.max_pile, self.max_take = min_pile, max_pile, max_take
    self.pile, self.player, self.winner = 0, 0, None
    self.unread: list[list[str]] = [[], []]

  def initial_pile(self, example) -> int:
    info = example.get("info") if isinstance(example, dict) else getattr(example, "info", None)
    pile = (info or {}).get("pile")
    if pile is None:
      pile = random.Random(example_seed(example)).randint(self.min_pile, self.max_pile)
    return int(pile)

  def reset(self, example) -> None:
    self.pile, self.player, self.winner = self.initial_pile(example), 0, None
    rules = (f"Nim, {self.pile} stones: take 1 to {self.max_take}, the last stone wins. "
             "Player {p}.")
    self.unread = [[rules.format(p=p) + (" Move:" if p == 0 else "")] for p in range(2)]

  def to_move(self) -> int:
    return self.player

  def legal_moves(self) -> list[str]:
    return [str(k) for k in range(1, min(self.max_take, self.pile) + 1)]

  def observe(self, player: int) -> str:
    text, self.unread[player] = "".join(self.unread[player]), []
    return text

  def act(self, action: str) -> dict:
    m = _DIGITS.search(action)
    take = int(m.group()) if m else 0
    me, other = self.player, 1 - self.player
    winnable = int(self.pile % (self.max_take + 1) != 0)  # a winning move exists
    if not 1 <= take <= min(self.max_take, self.pile):
      self.winner = other
      return {"invalid_move": 1, "winnable": winnable, "winning_moves": 0}
    self.pile -= take
    won = int(winnable and self.pile % (self.max_take + 1) == 0)
    if self.pile == 0:
      self.winner = me
    else:
      self.unread[other].append(f"<obs>{self.pile} left</obs>")
      self.player = other
    return {"invalid_move": 0, "winnable": winnable, "winning_moves": won}

  def over(self) -> bool:
    return self.winner is not None

  def rewards(self) -> list[float]:
    return [1.0 if p == self.winner else -1.0 for p in range(2)]


register_game("nim", Nim)


def _textarena(**kwargs) -> Game:
  from rlx.envs.textarena import TextArenaGame
  return TextArenaGame(**kwargs)


register_game("textarena", _textarena)
