"""Multi-turn episodes with the compiled sampler: a batch of environments played turn by turn.

:func:`run_episodes` samples every row's first action from its prompt, hands each action's text
to the row's environment, appends the observation's tokens (loss mask 0) to the rows that go on
and decodes their next action from the same KV cache (``rlx.sampling.continue_sampling``: no
prefill of the history), until every episode is done. Rows that are done stay done; the compiled
programs are those of the shape buckets (one continuation program per append-length bucket).

The result has the fields of ``rollout_to_host`` with the whole episode as the completion:
``completion_tokens[B,T]`` = action 1, observation 1, action 2, ... (right-padded),
``completion_mask`` 1 on all of them, ``loss_mask`` 1 on action tokens only, ``logprobs`` the
sampler's on action tokens (0 on observations), ``token_rewards`` each non-final turn's reward
on that turn's last action token, ``rewards`` the final turn's, plus per-episode counters.

Multi-agent episodes (the seats of a ``rlx.envs.Game``, all played by the policy): a seat
whose move it is not *waits* (``env.waiting()`` after reset: its prompt is prefilled but not
sampled, ``sample(..., hold=...)``; a step answered with ``observation=None``), and is polled
(``env.poll()``) after every round until its turn comes (its observation, the other seats'
moves, is appended and it decodes in the next round) or the game ends. A round decodes the
seats to move; the others keep their cache and pending token. Rounds = ``max_turns`` × seats.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import numpy as np

from rlx.envs.base import Environment, StepResult
from rlx.sampling import LENGTH, STOP, Buckets, SamplingParams, continue_sampling, sample

# Episode finish reasons.
DONE, MAX_TURNS, TOKEN_BUDGET, ENV_ERROR = "done", "max_turns", "token_budget", "env_error"
EPISODE_FINISH = (DONE, MAX_TURNS, TOKEN_BUDGET, ENV_ERROR)


@dataclasses.dataclass
class _Row:
  tokens: list = dataclasses.field(default_factory=list)
  loss: list = dataclasses.field(default_factory=list)
  logprobs: list = dataclasses.field(default_factory=list)
  token_rewards: list = dataclasses.field(default_factory=list)
  reward: float = 0.0
  turns: int = 0
  finish: str = ""
  counters: dict = dataclasses.field(default_factory=dict)
  turn_rewards: list = dataclasses.field(default_factory=list)
  error: str = ""

  def add(self, tokens, logprobs=None):
    self.tokens += list(tokens)
    self.loss += [logprobs is not None] * len(tokens)
    self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(tokens)
    self.token_rewards += [0.0] * len(tokens)


def _call(method, *args) -> tuple[StepResult | None, str]:
  """``env.step(action)`` / ``env.poll()``, an exception contained: ``(result, error text)``."""
  try:
    return method(*args), ""
  except Exception as e:  # noqa: BLE001 - one episode's failure, contained and counted
    return None, f"{type(e).__name__}: {e}"


def run_episodes(graphdef, params, tokenizer, envs: Sequence[Environment], examples: Sequence[Any],
                 sampling_params: SamplingParams, key, *, max_turns: int,
                 max_obs_tokens: int = 256, max_episode_tokens: int = 0,
                 render: Callable[[Any, str], list[int]] | None = None,
                 encode_observation: Callable[[str], list[int]] | None = None,
                 end_of_turn: Sequence[int] = (), group_size: int = 1,
                 prompt_width: int = 0, completion_width: int = 0,
                 buckets: Buckets = Buckets(), pad_id: int | None = None) -> dict:
  """Plays one episode per ``(env, example)`` pair.

  Args:
    envs, examples: one fresh environment per episode and its data row (``env.reset(example)``).
    sampling_params: per-turn sampling (``max_new_tokens`` is the per-turn budget; ``n`` = 1).
    max_turns: model turns per episode (an episode still going after them ends ``max_turns``).
    max_obs_tokens: an observation keeps its first this many tokens.
    max_episode_tokens: > 0: an episode whose completion (actions + observations) could exceed
      this with one more observation and turn ends ``token_budget``.
    render: ``(example, first prompt text) → token ids`` (default
      ``tokenizer.encode(text, add_bos=True)``).
    encode_observation: an observation's text → the token ids appended after the action (default
      ``tokenizer.encode(text)``; a chat renderer wraps it in the template's tool message).
    end_of_turn: ids put before the observation of an action the per-turn budget cut off (one
      that stopped wrote them itself: a chat template's end-of-turn token); loss mask 0.
    group_size: episodes ``i·G .. i·G+G-1`` share a prompt group (``group_ids = row // G``).
    prompt_width, completion_width: pad the returned prompts / completions to at least these
      widths (a trainer keeps one compiled shape: prompts longer than ``prompt_width`` keep
      their last tokens).

  Returns:
    Host arrays ``prompt_tokens``, ``prompt_mask``, ``completion_tokens``, ``completion_mask``,
    ``loss_mask``, ``logprobs``, ``token_rewards``, ``rewards``, ``lengths`` (action tokens),
    ``finish_reason`` (``STOP`` for episodes the environment ended, else ``LENGTH``),
    ``group_ids``, ``turns``, ``obs_tokens``, ``tool_calls``, ``tool_errors``, ``env_errors``;
    ``episode_finish`` (a list of ``EPISODE_FINISH`` names), ``turn_rewards`` and
    ``env_error_messages`` (what a crashed environment raised; "" elsewhere) as lists;
    ``counters``: every numeric ``info`` key summed per episode (``{name: [B] int32}``);
    ``prompt_texts``: each episode's first prompt text (``env.reset``).
  """
  if max_turns < 1:
    raise ValueError(f"max_turns={max_turns}: must be >= 1")
  sp = dataclasses.replace(sampling_params, n=1)
  pad = tokenizer.pad_id if pad_id is None else pad_id
  render = render or (lambda example, text: tokenizer.encode(text, add_bos=True))
  batch = _Batch(envs, tokenizer, encode_observation, list(end_of_turn), max_turns, dict(
      max_obs=max_obs_tokens, max_episode=max_episode_tokens, per_turn=sp.max_new_tokens))
  prompt_texts = [env.reset(ex) for env, ex in zip(envs, examples)]
  prompt_tokens, prompt_mask = _prompts(
      [render(ex, text) for ex, text in zip(examples, prompt_texts)], prompt_width, pad)
  held = [env.waiting() for env in envs]  # game seats whose first move is not theirs
  # Seats of a game act in turn: up to max_turns model turns each over players × as many rounds.
  rounds = max_turns * max(int(getattr(env, "num_players", 1)) for env in envs)
  chunk = Buckets.pick(buckets.prompt_lengths, 1 + max_obs_tokens, "observation length")
  new = Buckets.pick(buckets.new_tokens, sp.max_new_tokens, "max_new_tokens")
  keys = jax.random.split(key, rounds)
  rollout, state = sample(graphdef, params, prompt_tokens, prompt_mask, sp, keys[0],
                          buckets=buckets, pad_id=pad, reserve=(rounds - 1) * (chunk + new),
                          return_state=True, hold=held if any(held) else None)
  acting = [i for i in range(len(envs)) if not held[i]]
  batch.waiting = [i for i in range(len(envs)) if held[i]]
  for rnd in range(rounds):
    append = batch.round(acting, rollout)
    acting = [i for i, a in enumerate(append) if a is not None]
    if not acting or rnd == rounds - 1:
      break
    rollout, state = continue_sampling(graphdef, params, state, append, sp, keys[rnd + 1],
                                       buckets=buckets, pad_id=pad)
  batch.finish(stuck=not acting)
  out = _assemble(batch.rows, prompt_tokens, prompt_mask, pad, group_size, completion_width)
  out["prompt_texts"] = prompt_texts
  return out


class _Batch:
  """The host side of an episode batch: each row's record and environment, the rows waiting
  for other players, and which environments are closed."""

  def __init__(self, envs, tokenizer, encode, end_of_turn: list, max_turns: int, budget: dict):
    self.envs, self.tokenizer, self.max_turns, self.budget = envs, tokenizer, max_turns, budget
    encode = encode or tokenizer.encode
    self.encode = encode
    # an action cut off by the budget is closed before its observation
    self.encode_after_cut = ((lambda text: end_of_turn + list(encode(text))) if end_of_turn
                             else encode)
    self.rows = [_Row() for _ in envs]
    self.waiting: list[int] = []
    self.closed: set[int] = set()

  def round(self, acting: list[int], rollout) -> list:
    """Hands the acting rows' new actions to their environments, then polls the waiting rows;
    returns each row's tokens to append (None: the row does not decode next round)."""
    tokens, logprobs = np.asarray(rollout.completion_tokens), np.asarray(rollout.logprobs)
    lengths, stopped = np.asarray(rollout.lengths), np.asarray(rollout.finish_reason) == STOP
    append: list = [None] * len(self.envs)
    for i in acting:
      n, row = int(lengths[i]), self.rows[i]
      row.add(tokens[i, :n], logprobs[i, :n])
      result, error = _call(self.envs[i].step, self.tokenizer.decode(tokens[i, :n].tolist()))
      out = _after_turn(row, result, error, n,
                        self.encode if stopped[i] else self.encode_after_cut,
                        last=row.turns + 1 >= self.max_turns, **self.budget)
      if out is _WAIT:
        self.waiting.append(i)
      else:
        append[i] = out
      self._close_if_ended(i)
    polled = True
    while polled:  # seats whose turn came or whose game ended (an ended seat may end others')
      polled = False
      for i in list(self.waiting):
        result, error = _call(self.envs[i].poll)
        if result is None and not error:
          continue
        polled = True
        self.waiting.remove(i)
        append[i] = _after_poll(self.rows[i], result, error, self.encode,
                                last=self.rows[i].turns >= self.max_turns, **self.budget)
        self._close_if_ended(i)
    return append

  def _close_if_ended(self, i: int) -> None:
    """An ended episode's environment is closed at once (an ended seat releases or aborts its
    game for the others)."""
    if self.rows[i].finish and i not in self.closed:
      self.closed.add(i)
      _close(self.envs[i])

  def finish(self, stuck: bool) -> None:
    """Ends the rows still going: out of rounds (``max_turns``), or ``stuck`` (only waiting rows
    were left: none of them can act again, an environment error); closes every environment."""
    for i, row in enumerate(self.rows):
      if not row.finish and stuck:
        row.finish, row.error = ENV_ERROR, "waiting for other players, with none left to act"
        row.counters["env_errors"] = row.counters.get("env_errors", 0) + 1
      row.finish = row.finish or MAX_TURNS
      self._close_if_ended(i)


def _close(env: Environment) -> None:
  try:
    env.close()
  except Exception:  # noqa: BLE001 - closing never fails a batch
    pass


def _prompts(ids: list, width: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded ``[B, max(width, longest)]`` prompts; with ``width``, each keeps its last
  ``width`` tokens."""
  ids = [np.asarray(p, np.int32)[-width:] if width else np.asarray(p, np.int32) for p in ids]
  w = max(max(len(p) for p in ids), width)
  tokens, mask = np.full((len(ids), w), pad, np.int32), np.zeros((len(ids), w), np.int32)
  for i, p in enumerate(ids):
    tokens[i, w - len(p):], mask[i, w - len(p):] = p, 1
  return tokens, mask


_WAIT = object()  # _after_turn: the episode waits for other players (Environment.poll)


def _after_turn(row: _Row, result: StepResult | None, error: str, n: int, encode, *,
                last: bool, max_obs: int, max_episode: int, per_turn: int):
  """Records the environment's answer to a row's turn (``n`` action tokens); returns the
  observation tokens to append, ``_WAIT``, or None when the episode ends (its finish reason
  set)."""
  row.turns += 1
  if result is not None:
    row.turn_rewards.append(float(result.reward))
  if _ended(row, result, error):
    return None
  if result.observation is None:  # other players move next (after a last turn: the outcome)
    _dense(row, result.reward, n)
    return _WAIT
  if last:
    row.reward += float(result.reward)
    row.finish = MAX_TURNS
    return None
  _dense(row, result.reward, n)
  return _observe(row, result.observation, encode, max_obs, max_episode, per_turn)


def _after_poll(row: _Row, result: StepResult | None, error: str, encode, *, last: bool,
                max_obs: int, max_episode: int, per_turn: int) -> list | None:
  """A waiting row's turn came (or its game ended): the observation tokens to append, or None
  when the episode ends (``last``: it has no turn left)."""
  if _ended(row, result, error):
    return None
  if last:
    row.reward += float(result.reward)
    row.finish = MAX_TURNS
    return None
  _dense(row, result.reward, len(row.loss) and int(row.loss[-1]))
  return _observe(row, result.observation or "", encode, max_obs, max_episode, per_turn)


def _ended(row: _Row, result: StepResult | None, error: str) -> bool:
  """Counts ``result``'s info; ends the episode on an error (``env_error``) or ``done``."""
  if result is None:
    row.finish = ENV_ERROR
    row.counters["env_errors"] = row.counters.get("env_errors", 0) + 1
    row.error = error
    return True
  for k, v in result.info.items():
    if isinstance(v, (int, float)) and not isinstance(v, bool):
      row.counters[k] = row.counters.get(k, 0) + v
  if result.done:
    row.reward += float(result.reward)  # (plus any reward of an empty action before it)
    row.finish = DONE
  return result.done


def _dense(row: _Row, reward: float, on_token: int) -> None:
  """A non-final reward: on the row's last action token (``on_token``), else added to the
  outcome (an empty action has no token to carry it)."""
  if on_token:
    row.token_rewards[-1] += float(reward)
  else:
    row.reward += float(reward)


def _observe(row: _Row, text: str, encode, max_obs: int, max_episode: int,
             per_turn: int) -> list | None:
  obs = list(encode(text))[:max_obs] if text else []
  if max_episode and len(row.tokens) + len(obs) + per_turn > max_episode:
    row.finish = TOKEN_BUDGET
    return None
  row.add(obs)
  row.counters["obs_tokens"] = row.counters.get("obs_tokens", 0) + len(obs)
  return obs


def _assemble(rows: list[_Row], prompt_tokens, prompt_mask, pad: int, group_size: int,
              completion_width: int) -> dict:
  b = len(rows)
  t = max(1, completion_width, max(len(r.tokens) for r in rows))
  out = {name: np.zeros((b, t), np.float32) for name in
         ("completion_mask", "loss_mask", "logprobs", "token_rewards")}
  out["completion_tokens"] = np.full((b, t), pad, np.int32)
  for i, r in enumerate(rows):
    n = len(r.tokens)
    out["completion_tokens"][i, :n] = r.tokens
    out["completion_mask"][i, :n] = 1.0
    out["loss_mask"][i, :n] = r.loss
    out["logprobs"][i, :n] = r.logprobs
    out["token_rewards"][i, :n] = r.token_rewards
  count = lambda k: np.array([r.counters.get(k, 0) for r in rows], np.int32)  # noqa: E731
  out.update(
      prompt_tokens=prompt_tokens, prompt_mask=prompt_mask,
      rewards=np.array([r.reward for r in rows], np.float32),
      lengths=out["loss_mask"].sum(1).astype(np.int32),
      finish_reason=np.array([STOP if r.finish == DONE else LENGTH for r in rows], np.int32),
      group_ids=(np.arange(b) // group_size).astype(np.int32),
      turns=np.array([r.turns for r in rows], np.int32), obs_tokens=count("obs_tokens"),
      tool_calls=count("tool_calls"), tool_errors=count("tool_error"),
      env_errors=count("env_errors"), episode_finish=[r.finish for r in rows],
      counters={k: count(k) for k in sorted({k for r in rows for k in r.counters})},
      env_error_messages=[r.error for r in rows],
      turn_rewards=[r.turn_rewards for r in rows])
  return out
