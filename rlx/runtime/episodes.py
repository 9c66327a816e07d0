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


def _step(env: Environment, action: str) -> tuple[StepResult | None, str]:
  try:
    return env.step(action), ""
  except Exception as e:  # noqa: BLE001 - one episode's failure, contained and counted
    return None, f"{type(e).__name__}: {e}"


def run_episodes(graphdef, params, tokenizer, envs: Sequence[Environment], examples: Sequence[Any],
                 sampling_params: SamplingParams, key, *, max_turns: int,
                 max_obs_tokens: int = 256, max_episode_tokens: int = 0,
                 render: Callable[[Any, str], list[int]] | None = None, group_size: int = 1,
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
    ``env_error_messages`` (what a crashed environment raised; "" elsewhere) as lists.
  """
  if max_turns < 1:
    raise ValueError(f"max_turns={max_turns}: must be >= 1")
  sp = dataclasses.replace(sampling_params, n=1)
  pad = tokenizer.pad_id if pad_id is None else pad_id
  render = render or (lambda example, text: tokenizer.encode(text, add_bos=True))
  rows = [_Row() for _ in envs]
  prompt_tokens, prompt_mask = _prompts(
      [render(ex, env.reset(ex)) for env, ex in zip(envs, examples)], prompt_width, pad)
  chunk = Buckets.pick(buckets.prompt_lengths, 1 + max_obs_tokens, "observation length")
  new = Buckets.pick(buckets.new_tokens, sp.max_new_tokens, "max_new_tokens")
  keys = jax.random.split(key, max_turns)
  rollout, state = sample(graphdef, params, prompt_tokens, prompt_mask, sp, keys[0],
                          buckets=buckets, pad_id=pad, reserve=(max_turns - 1) * (chunk + new),
                          return_state=True)
  active = list(range(len(envs)))
  for turn in range(max_turns):
    tokens, logprobs = np.asarray(rollout.completion_tokens), np.asarray(rollout.logprobs)
    lengths = np.asarray(rollout.lengths)
    append: list = [None] * len(envs)
    for i in active:
      n = int(lengths[i])
      rows[i].add(tokens[i, :n], logprobs[i, :n])
      result, error = _step(envs[i], tokenizer.decode(tokens[i, :n].tolist()))
      budget = dict(last=turn == max_turns - 1, max_obs=max_obs_tokens,
                    max_episode=max_episode_tokens, per_turn=sp.max_new_tokens)
      append[i] = _after_turn(rows[i], result, error, n, tokenizer, **budget)
    active = [i for i in active if append[i] is not None]
    if not active:
      break
    rollout, state = continue_sampling(graphdef, params, state, append, sp, keys[turn + 1],
                                       buckets=buckets, pad_id=pad)
  for env in envs:
    try:
      env.close()
    except Exception:  # noqa: BLE001 - closing never fails a batch
      pass
  return _assemble(rows, prompt_tokens, prompt_mask, pad, group_size, completion_width)


def _prompts(ids: list, width: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded ``[B, max(width, longest)]`` prompts; with ``width``, each keeps its last
  ``width`` tokens."""
  ids = [np.asarray(p, np.int32)[-width:] if width else np.asarray(p, np.int32) for p in ids]
  w = max(max(len(p) for p in ids), width)
  tokens, mask = np.full((len(ids), w), pad, np.int32), np.zeros((len(ids), w), np.int32)
  for i, p in enumerate(ids):
    tokens[i, w - len(p):], mask[i, w - len(p):] = p, 1
  return tokens, mask


def _after_turn(row: _Row, result: StepResult | None, error: str, n: int, tokenizer, *,
                last: bool, max_obs: int, max_episode: int, per_turn: int) -> list | None:
  """Records the environment's answer to a row's turn (``n`` action tokens); returns the
  observation tokens to append, or None when the episode ends (its finish reason set)."""
  row.turns += 1
  if result is None:
    row.finish = ENV_ERROR
    row.counters["env_errors"] = row.counters.get("env_errors", 0) + 1
    row.error = error
    return None
  for k, v in result.info.items():
    if isinstance(v, (int, float)) and not isinstance(v, bool):
      row.counters[k] = row.counters.get(k, 0) + v
  row.turn_rewards.append(float(result.reward))
  if result.done or last:
    row.reward = float(result.reward)
    row.finish = DONE if result.done else MAX_TURNS
    return None
  if n:
    row.token_rewards[-1] += float(result.reward)  # dense: on this turn's last action token
  else:
    row.reward += float(result.reward)  # an empty action has no token to carry it
  obs = list(tokenizer.encode(result.observation))[:max_obs] if result.observation else []
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
      env_error_messages=[r.error for r in rows],
      turn_rewards=[r.turn_rewards for r in rows])
  return out
