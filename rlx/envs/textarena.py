"""textarena games as rlx games (optional dependency: ``pip install textarena``).

``TextArenaGame(id="TicTacToe-v0")`` plays a textarena environment through its raw API
(``textarena.make(id + "-raw")``: no observation wrappers, so each seat's messages arrive once
and the episode's KV cache grows by what is new): ``reset(num_players, seed)``, the current
player's ``step(action)``, and each player's message queue (``env.state.observations``),
drained and formatted like textarena's LLM wrappers (``[GAME] ...``, ``[Player 1] ...``) minus
the reader's own actions, which are already in its context. Rewards are textarena's
(``state.rewards``: e.g. +1 / -1, 0 for a draw). As config: ``env.name = "textarena"``,
``env.kwargs = {"id": "TicTacToe-v0"}``.
"""

from __future__ import annotations

from rlx.envs.base import Game
from rlx.envs.games import example_seed


class TextArenaGame(Game):
  """Args:
    id: a textarena environment id (``"TicTacToe-v0"``, ``"KuhnPoker-v0"``, ...); the ``-raw``
      variant is used.
    num_players: seats (textarena's games fix it; 2 for the two-player ones).
    observation_format: each turn's new messages (``{obs}``) as the reader sees them (the first
      turn's messages are its prompt, unformatted).
    make_kwargs: keyword arguments of ``textarena.make``.
  """

  def __init__(self, id: str = "TicTacToe-v0", num_players: int = 2, *,  # noqa: A002
               observation_format: str = "<obs>{obs}</obs>", make_kwargs: dict | None = None):
    try:
      import textarena
    except ImportError as e:
      raise ImportError("env.name='textarena' needs the textarena package: pip install "
                        "textarena") from e
    raw = id if id.endswith("-raw") else f"{id}-raw"
    self.env = textarena.make(raw, **dict(make_kwargs or {}))
    self.num_players, self.observation_format = num_players, observation_format
    self.started: set[int] = set()

  def reset(self, example) -> None:
    self.env.reset(num_players=self.num_players, seed=example_seed(example))
    self.started = set()

  def to_move(self) -> int:
    return int(self.env.state.current_player_id)

  def observe(self, player: int) -> str:
    queue = self.env.state.observations[player]
    messages = [f"[{'GAME' if sender == -1 else f'Player {sender}'}] {text}"
                for sender, text, *_ in queue if sender != player]
    queue.clear()
    text = "\n".join(messages)
    if player not in self.started:
      self.started.add(player)
      return text
    return self.observation_format.format(obs=text) if text else ""

  def act(self, action: str) -> dict:
    player = self.to_move()
    queue = self.env.state.observations[player]
    seen = len(queue)
    self.env.step(action=action)
    # textarena flags the invalid move that ends a game in game_info; one it lets the player
    # retry is a GAME_ADMIN message to the player ("... attempted an invalid move ...").
    flagged = bool((self.env.state.game_info or {}).get(player, {}).get("invalid_move", False))
    retry = any(getattr(kind, "name", "") == "GAME_ADMIN" and "invalid move" in str(text)
                for _, text, *rest in queue[seen:] for kind in rest[:1])
    return {"invalid_move": int(flagged or retry)}

  def over(self) -> bool:
    return bool(self.env.state.done)

  def rewards(self) -> list[float]:
    rewards = self.env.state.rewards or {}
    return [float(rewards.get(p, 0.0)) for p in range(self.num_players)]
