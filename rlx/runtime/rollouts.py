"""Host-side pieces of the RL step: prompts → rollout → texts → rewards, filters, evaluation.

Everything here is numpy and Python (decoding, reward calls, group filtering, padding to the
step's static batch); the math lives in ``rlx.core`` and the compiled functions in
``rlx.algorithms``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as rlx_config
from rlx.data import (BalancedDifficulty, DynamicSampling, GroupFilter, ScoredGroups, StdEMA,
                      fill_batch, make_prompt_batch, verify)
from rlx.data import extract_answer as extract_task_answer
from rlx.rewards import (FINISH_LENGTH, FINISH_STOP, RewardInput, dapo_overlong_penalty,
                         get_reward)
from rlx.rewards.math_verify import extract_answer, normalize_answer
from rlx.rewards.reasoning_gym import extract_final_answer
from rlx.algorithms.trajectory import Trajectory
from rlx.runtime import distributed
from rlx.runtime.scorer import ModelLoader
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


# Registry rewards that read the policy (or the frozen initial policy) through a Scorer; a run
# with one of them keeps a reference copy of the initial parameters for ``model="reference"``.
SCORER_REWARDS = frozenset({"self_certainty", "borda_vote", "rlpr", "laser", "self_aligned",
                            "answer_confidence"})


class RewardFn:
  """The config's reward: the synthetic task verifier or a ``rlx.rewards`` registry reward, plus
  ThinkPrune's length cap, DAPO's soft overlong penalty and overlong filtering."""

  def __init__(self, run: rlx_config.RunConfig, scorer=None, *, name: str | None = None,
               kwargs: dict | None = None, decode=None):
    """``scorer``: the ``rlx.rewards.Scorer`` model-based rewards call (``rlx.runtime.scorer``);
    ``name``/``kwargs`` override ``run.rewards`` (evaluation's reward)."""
    self.run = run
    self.scorer = ModelLoader() if scorer is None else scorer  # loads reward_model checkpoints
    self.decode = decode  # token ids -> text (process rewards map steps to tokens with it)
    self.name = run.rewards.name if name is None else name
    self.reward = None
    if self.name != rlx_config.TASK_REWARD:
      self.reward = get_reward(self.name, **dict(run.rewards.kwargs if kwargs is None
                                                 else kwargs))

  def state_dict(self):
    """The reward's own state (episodic memory, RLPR's cache ...), or None if it has none."""
    return self.reward.state_dict() if hasattr(self.reward, "state_dict") else None

  def load_state_dict(self, state) -> None:
    if state is not None:
      self.reward.load_state_dict(state)

  def __call__(self, examples, texts, rollout: dict, step: int, *,
               shaped: bool = True) -> "Scored":
    """Scores of rollout rows over ``examples`` (see :class:`Scored`).

    ``shaped=False`` returns the reward without length shaping (DAPO's penalty, ThinkPrune's
    cap): evaluation counts a correct answer as correct whatever its length."""
    finish = rollout["finish_reason"]
    token_scores = None
    if self.reward is None:
      scores = np.array([verify(ex.task, t, ex.answer) for ex, t in zip(examples, texts)],
                        np.float32)
      sample_mask = np.ones_like(scores)
    else:
      out = self.reward(self.reward_input(examples, texts, rollout, step), self.scorer)
      scores = np.asarray(out.scores, np.float32)
      sample_mask = np.ones_like(scores) if out.sample_mask is None else np.asarray(
          out.sample_mask, np.float32)
      if out.token_scores is not None:
        token_scores = np.asarray(out.token_scores, np.float32)
    metrics = {"reward/correct": float(np.mean(scores))}
    raw = scores
    r = self.run.rewards
    if r.length_cap and shaped:
      capped = finish == LENGTH
      scores = np.where(capped, np.float32(r.truncated_score), scores).astype(np.float32)
      metrics["reward/length_capped"] = float(np.mean(capped))
    if r.overlong_buffer > 0 and shaped:
      penalty = dapo_overlong_penalty(rollout["lengths"], self.run.sampling.max_new_tokens,
                                      r.overlong_buffer)
      scores = scores + penalty
      metrics["reward/overlong_penalty"] = float(np.mean(penalty))
    if r.overlong_filter:
      sample_mask = sample_mask * (finish != LENGTH)
    metrics["rollout/truncated"] = float(np.mean(finish == LENGTH))
    metrics["rollout/length"] = float(np.mean(rollout["lengths"]))
    return Scored(scores, sample_mask, token_scores, metrics, raw)

  def reward_input(self, examples, texts, rollout: dict, step: int):
    prompt_ids = None
    if "prompt_tokens" in rollout:  # the formatted prompts the policy saw
      prompt_ids = [row[m > 0] for row, m in zip(rollout["prompt_tokens"],
                                                 rollout["prompt_mask"])]
    return RewardInput(
        prompts=[ex.prompt for ex in examples], completions=texts,
        completion_ids=rollout["completion_tokens"], completion_mask=rollout["completion_mask"],
        finish_reasons=[FINISH_LENGTH if f == LENGTH else FINISH_STOP
                        for f in rollout["finish_reason"]],
        group_ids=rollout["group_ids"],
        metadata=[{"answer": ex.answer, "task": ex.task, **(ex.info or {})} for ex in examples],
        prompt_ids=prompt_ids, step=step, decode=self.decode)


@dataclasses.dataclass
class Scored:
  """A reward's verdict on rollout rows: ``scores [R]`` (length-shaped), ``sample_mask [R]``
  (0 drops a sample from the loss), ``token_scores [R,T] | None`` (dense / process rewards),
  ``metrics`` and ``raw [R]`` (the scores before length shaping: LaSeR's verifier target)."""

  scores: np.ndarray
  sample_mask: np.ndarray
  token_scores: np.ndarray | None
  metrics: dict
  raw: np.ndarray


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
  # to_host: on a multi-host mesh the rows are spread over the hosts; every host gets them all.
  return dict(zip(fields, distributed.to_host(tuple(getattr(rollout, f) for f in fields))))


def sampler_model(setup, params):
  """``(graphdef, params)`` the sampler runs: the policy, or with ``sampling.dtype`` set (e.g.
  bfloat16 decoding of a float32 trainer) the model at that dtype with its floating-point
  parameters cast (quantised codes stay as they are)."""
  graphdef = getattr(setup, "sampling_graphdef", None)
  if graphdef is None:
    return setup.graphdef, params
  dtype = jnp.dtype(setup.run.sampling.dtype)
  cast = lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
  return graphdef, jax.tree.map(cast, params)


def sample_groups(setup, params, examples, key, *, n: int, greedy: bool = False,
                  temperature: float | None = None,
                  prompt_buckets: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
  """Sample ``n`` completions of each example; host arrays, rows prompt-major. Prompts are
  padded to the smallest of ``prompt_buckets`` (default ``(data.max_prompt_len,)``) that fits;
  a longer one keeps its last tokens."""
  run = setup.run
  batch = make_prompt_batch(examples, setup.tokenizer, formatter=setup.formatter, group_size=1,
                            length_buckets=prompt_buckets or (run.data.max_prompt_len,),
                            truncate=True)
  k = len(examples)
  layout = getattr(setup, "layout", None)
  mesh = None if layout is None else layout.mesh  # rows over data × fsdp
  graphdef, params = sampler_model(setup, params)
  rollout = sample(graphdef, params, batch.prompt_tokens[:k], batch.prompt_mask[:k],
                   sampling_params(run, setup.tokenizer, n=n, greedy=greedy,
                                   temperature=temperature), key, pad_id=setup.tokenizer.pad_id,
                   mesh=mesh, decode_slots=run.sampling.decode_slots)
  return rollout_to_host(rollout)


def sample_episodes(setup, params, examples, key, *, n: int, greedy: bool = False,
                    temperature: float | None = None, versus: bool = False) -> dict:
  """``n`` episodes of ``env.name`` per example (rlx.runtime.episodes), rows prompt-major; host
  arrays like :func:`sample_groups` plus the loss mask, dense and final rewards and counters.
  A game with self-play plays ``n / seats`` games per example, grouped by (example, seat);
  ``versus``: every seat of a game against ``env.opponent`` instead (``n`` episodes per
  example and seat, the policy's seat in ``data["seat"]``)."""
  from rlx.runtime.episodes import run_episodes
  run, tok, fmt = setup.run, setup.tokenizer, setup.formatter
  rows, envs, seat_of, group_size = _episode_envs(run.env, examples, n, versus=versus)

  def render(example, text):
    ex = dataclasses.replace(example, prompt=text) if dataclasses.is_dataclass(example) else example
    return tok.encode(fmt(ex), add_bos=fmt.add_bos)

  from rlx.envs.chat import episode_renderer
  chat = episode_renderer(setup, envs)  # data.prompt_format="chat": the template's turns
  graphdef, params = sampler_model(setup, params)
  data = run_episodes(graphdef, params, tok, envs, rows,
                      sampling_params(run, tok, n=1, greedy=greedy, temperature=temperature), key,
                      max_turns=run.env.max_turns, max_obs_tokens=run.env.max_obs_tokens,
                      max_episode_tokens=run.env.max_episode_tokens,
                      render=chat.render if chat else render,
                      encode_observation=chat.observation_ids if chat else None,
                      end_of_turn=tok.encode(chat.end_token) if chat else (),
                      group_size=group_size,
                      prompt_width=run.data.max_prompt_len,
                      completion_width=run.env.completion_width(run.sampling.max_new_tokens))
  data["seat"] = np.array(seat_of, np.int32)
  return data


def _episode_envs(env, examples, n: int, *, versus: bool = False
                  ) -> tuple[list, list, list[int], int]:
  """Each episode row's example, environment and seat (-1: not a game), and the rows per
  group: ``n`` rows of
  ``make_env`` per example; a game with self-play: ``n / seats`` games per example, rows
  ordered (example, seat, game) so that groups are (example, seat) (a baseline per role);
  a game against ``env.opponent`` (``versus`` or no self-play): one ``Versus`` per row, in
  ``env.seat`` (-1: the seats in turn within each group; ``versus``: every seat, groups
  (example, seat))."""
  from rlx import envs as rlx_envs
  rows, envs, seat_of = [], [], []
  if not env.game:
    for ex in examples:
      rows += [ex] * n
      envs += [rlx_envs.make_env(env.name, **env.make_kwargs()) for _ in range(n)]
    return rows, envs, [-1] * len(rows), n
  make = lambda: rlx_envs.make_game(env.name, **env.make_kwargs())  # noqa: E731
  if env.self_play and not versus:
    per = n // env.seats
    for ex in examples:
      tables = [rlx_envs.seats(make()) for _ in range(per)]
      for seat in range(env.seats):
        rows += [ex] * per
        envs += [table[seat] for table in tables]
        seat_of += [seat] * per
    return rows, envs, seat_of, per
  for ex in examples:
    for seat in (range(env.players) if versus else [env.seat]):
      for j in range(n):  # each row its own opponent stream, seeded by the row: reproducible
        s = seat if seat >= 0 else j % env.players  # env.seat = -1: the seats in turn
        envs.append(rlx_envs.Versus(make(), rlx_envs.make_opponent(env.opponent, seed=len(rows)),
                                    player=s))
        rows.append(ex)
        seat_of.append(s)
  return rows, envs, seat_of, n


def episode_metrics(data: dict) -> dict[str, float]:
  """Per-step means of the episode counters (``env/...``) and the finish reasons' shares."""
  from rlx.runtime.episodes import EPISODE_FINISH
  turn_rewards = [r for rs in data["turn_rewards"] for r in rs]
  out = {f"env/{k}": float(np.mean(data[k])) for k in
         ("turns", "tool_calls", "tool_errors", "obs_tokens", "env_errors")}
  out["env/tool_use_rate"] = float(np.mean(data["tool_calls"] > 0))
  out["env/turn_reward"] = float(np.mean(turn_rewards)) if turn_rewards else 0.0
  seat = data.get("seat")
  if seat is not None and (seat >= 0).any():  # a game: outcomes overall and by seat
    out.update(game_metrics(data["rewards"], seat, data["counters"], "env"))
  for reason in EPISODE_FINISH:
    out[f"env/finish/{reason}"] = float(np.mean([f == reason for f in data["episode_finish"]]))
  return out


def game_metrics(rewards, seat, counters: dict, prefix: str) -> dict[str, float]:
  """Win / draw / loss shares of game episodes (reward > 0, = 0, < 0), by seat too; from the
  episodes' counters, the share of episodes with an invalid move and, for games that count
  them (nim), the share of winnable positions where the winning move was made."""
  rewards, seat = np.asarray(rewards), np.asarray(seat)
  out = {f"{prefix}/win_rate": float(np.mean(rewards > 0)),
         f"{prefix}/draw_rate": float(np.mean(rewards == 0)),
         f"{prefix}/loss_rate": float(np.mean(rewards < 0))}
  for p in np.unique(seat):
    out[f"{prefix}/win_rate/seat{int(p)}"] = float(np.mean(rewards[seat == p] > 0))
  if "invalid_move" in counters:
    out[f"{prefix}/invalid_move_rate"] = float(np.mean(np.asarray(counters["invalid_move"]) > 0))
  if "winnable" in counters and np.sum(counters["winnable"]):
    out[f"{prefix}/winning_move_rate"] = float(np.sum(counters["winning_moves"])
                                               / np.sum(counters["winnable"]))
  return out


@dataclasses.dataclass
class Collected:
  traj: Trajectory | None  # None: the filter kept no group; the caller skips the update
  metrics: dict[str, Any]
  filter_state: Any

  @property
  def empty(self) -> bool:
    return self.traj is None


def score_groups(setup, params, examples, reward_fn: RewardFn, key, step: int, *, n: int,
                 greedy_baseline: bool = False, on_sampled=None, log_episodes: bool = False
                 ) -> tuple[Trajectory, Scored, list[str]]:
  """Sample ``n`` completions per example and score them: ``(trajectory, scored, texts)``.
  ``greedy_baseline``: also score one greedy completion per prompt (ReMax's baseline, in
  ``aux["greedy_rewards"]``). ``on_sampled()`` runs once the samples are on the host, before
  they are scored (the asynchronous loop dispatches the previous batch's update there). With
  ``env.name`` the rows are whole episodes, scored by their environment; ``log_episodes``: they
  are written to the workdir every ``logging.rollouts_every`` steps (rlx.runtime.rollout_log)."""
  if setup.run.env.enabled:
    data = sample_episodes(setup, params, examples, key, n=n)
    if on_sampled is not None:
      on_sampled()
    rewards = data["rewards"]
    metrics = {"reward/mean": float(np.mean(rewards)), **episode_metrics(data)}
    texts = decode(setup.tokenizer, data["completion_tokens"],
                   data["completion_mask"].sum(1).astype(np.int32))
    metrics["sample/text"] = sample_text(data["prompt_texts"][0], texts[0])  # the env's prompt
    every = setup.run.logging.rollouts_every
    if (log_episodes and every and step % every == 0 and setup.workdir
        and jax.process_index() == 0):
      from rlx.runtime.rollout_log import write_episodes
      write_episodes(setup.workdir, step, data, setup.tokenizer)
    scored = Scored(scores=rewards, sample_mask=np.ones_like(rewards), metrics=metrics,
                    token_scores=data["token_rewards"], raw=rewards)
    traj = Trajectory.from_rollout(data, rewards, token_rewards=data["token_rewards"],
                                   aux={"verifier_rewards": rewards})
    return traj, scored, texts
  data = sample_groups(setup, params, examples, key, n=n)
  if greedy_baseline:
    greedy = sample_groups(setup, params, examples, jax.random.fold_in(key, 1000), n=1,
                           greedy=True)
  if on_sampled is not None:
    on_sampled()
  rows_examples = [ex for ex in examples for _ in range(n)]
  texts = decode(setup.tokenizer, data["completion_tokens"], data["lengths"])
  scored = reward_fn(rows_examples, texts, data, step)
  aux = {"verifier_rewards": scored.raw}
  if greedy_baseline:
    g_scored = reward_fn(examples, decode(setup.tokenizer, greedy["completion_tokens"],
                                          greedy["lengths"]), greedy, step)
    aux["greedy_rewards"] = np.repeat(g_scored.scores, n)
  traj = Trajectory.from_rollout(data, scored.scores, token_rewards=scored.token_scores,
                                 sample_mask=scored.sample_mask, aux=aux)
  return traj, scored, texts


def collect(setup, params, example_iter, reward_fn: RewardFn, group_filter: GroupFilter,
            filter_state, key, step: int, on_sampled=None) -> Collected:
  """Sample, score, filter and refill one step's groups (docs/algorithms.md §11); the kept
  groups as a :class:`Trajectory` padded to ``algo.batch_size`` rows. ``on_sampled()``: called
  once, when the first round's samples reach the host (``score_groups``)."""
  algo = setup.run.algo
  metrics: dict[str, Any] = {}
  remax = algo.estimator is rlx_config.core.AdvantageEstimator.REMAX

  def sample_fn(round_index: int) -> ScoredGroups:
    examples = next(example_iter)
    traj, scored, texts = score_groups(setup, params, examples, reward_fn,
                                       jax.random.fold_in(key, round_index), step,
                                       n=algo.group_size, greedy_baseline=remax,
                                       on_sampled=on_sampled if round_index == 0 else None,
                                       log_episodes=round_index == 0)
    if round_index == 0:
      metrics.update(scored.metrics)
      metrics.setdefault("sample/text", sample_text(examples[0].prompt, texts[0]))
    return ScoredGroups(rewards=traj.rewards, group_ids=traj.group_ids, data=traj)

  # (a game with self-play groups each prompt's rows by seat: seats groups a prompt)
  groups = algo.num_prompts * (setup.run.env.seats if setup.run.env.enabled else 1)
  result, filter_state = fill_batch(sample_fn, group_filter, filter_state,
                                    num_groups=groups, max_refills=algo.max_refills)
  metrics.update({k: float(v) for k, v in result.metrics.items()})
  if len(result.rewards) == 0:
    return Collected(None, metrics, filter_state)
  traj = result.data.replace(group_ids=np.asarray(result.group_ids, np.int32))
  return Collected(traj.pad_to(algo.batch_size), metrics, filter_state)


def answer_key(run: rlx_config.RunConfig, text: str) -> str | None:
  """The final answer of a completion, normalised for voting (None when there is none): the
  synthetic tasks' ``Answer:`` line, else the math extraction of ``rlx.rewards``."""
  if run.rewards.name == rlx_config.TASK_REWARD:
    a = extract_task_answer(text)
    return None if not a else " ".join(a.rstrip(".").split())
  if run.data.source == "reasoning_gym":  # free-form answers: compared as written
    a = extract_final_answer(text)
    return None if not a else " ".join(a.split())
  a = extract_answer(text)
  return None if a is None else normalize_answer(a)


def majority_correct(answers: list[str | None], correct: np.ndarray) -> bool:
  """maj@k of one prompt: the most frequent non-empty answer (ties: the first seen) is correct
  (some sample giving it scored 1). No answer at all counts as wrong."""
  counts: dict[str, int] = {}
  for a in answers:
    if a is not None:
      counts[a] = counts.get(a, 0) + 1
  if not counts:
    return False
  best = max(counts, key=lambda a: (counts[a], -answers.index(a)))
  return bool(any(c for a, c in zip(answers, correct) if a == best))


def eval_reward_fn(run: rlx_config.RunConfig, scorer=None, decode=None) -> RewardFn:
  """The reward evaluation judges correctness with: ``eval.reward``, where ``"auto"`` is the
  source's own verifier (the synthetic task's on task data, reasoning-gym's ``score_answer``, the
  code tests of HumanEval / MBPP problems: the ground truth, also when training with a
  label-free reward) and the training reward otherwise."""
  name = eval_reward_name(run)
  kwargs = run.rewards.kwargs if name == run.rewards.name else {}
  return RewardFn(run, scorer, name=name, kwargs=kwargs, decode=decode)


def eval_reward_name(run: rlx_config.RunConfig) -> str | None:
  """The name :func:`eval_reward_fn` scores with; None when nothing can judge held-out answers
  (an offline run on a file source whose reward is still the synthetic task's verifier)."""
  name = run.eval.reward
  if name == "auto":  # the source's own verifier where it has one
    name = rlx_config.TASK_REWARD if run.data.source == "task" else (
        rlx_config.SOURCE_REWARDS.get(run.data.source, run.rewards.name))
  if name == rlx_config.TASK_REWARD and run.data.source != "task":
    return None
  return name


def evaluate(setup, params, key, scorer=None) -> dict[str, float]:
  """Held-out accuracy: greedy, sampled pass@1 (mean over k samples), pass@k, maj@k (majority
  vote over the k answers); mean length and truncation rate of the sampled completions."""
  run = setup.run
  n_eval = min(run.eval.num_examples, len(setup.eval_source))
  examples = [setup.eval_source[i] for i in range(n_eval)]
  if run.env.enabled:
    return _evaluate_episodes(setup, params, examples, key)
  reward_fn = eval_reward_fn(run, None if scorer is None else scorer.bind(params),
                             decode=setup.tokenizer.decode)
  out = {}
  greedy = sample_groups(setup, params, examples, key, n=1, greedy=True)
  texts = decode(setup.tokenizer, greedy["completion_tokens"], greedy["lengths"])
  scores = reward_fn(examples, texts, greedy, 0, shaped=False).scores
  out["eval/greedy_accuracy"] = float(np.mean(scores >= 1.0))
  k = run.eval.num_samples
  sampled = sample_groups(setup, params, examples, jax.random.fold_in(key, 1), n=k,
                          temperature=run.eval.temperature)
  texts = decode(setup.tokenizer, sampled["completion_tokens"], sampled["lengths"])
  scores = reward_fn([ex for ex in examples for _ in range(k)], texts, sampled, 0,
                     shaped=False).scores
  correct = (scores >= 1.0).reshape(n_eval, k)
  out["eval/pass@1"] = float(np.mean(correct))
  out[f"eval/pass@{k}"] = float(np.mean(correct.any(axis=1)))
  answers = [answer_key(run, t) for t in texts]
  out[f"eval/maj@{k}"] = float(np.mean([
      majority_correct(answers[i * k:(i + 1) * k], correct[i]) for i in range(n_eval)]))
  out["eval/mean_length"] = float(np.mean(sampled["lengths"]))
  out["eval/truncation_rate"] = float(np.mean(sampled["finish_reason"] == LENGTH))
  out["eval/sample"] = sample_text(examples[0].prompt, texts[0])
  return out


def _evaluate_episodes(setup, params, examples, key) -> dict[str, float]:
  """Held-out episodes of ``env.name``: greedy and sampled; an episode is correct when its final
  reward is >= 1 (the environment's verdict). A game is played against ``env.opponent`` in
  every seat (``eval/win_rate``, by seat, draws, losses, invalid moves)."""
  k, game = setup.run.eval.num_samples, setup.run.env.game
  greedy = sample_episodes(setup, params, examples, key, n=1, greedy=True, versus=game)
  sampled = sample_episodes(setup, params, examples, jax.random.fold_in(key, 1), n=k,
                            temperature=setup.run.eval.temperature, versus=game)
  correct = (sampled["rewards"] >= 1.0).reshape(-1, k)
  out = {"eval/greedy_accuracy": float(np.mean(greedy["rewards"] >= 1.0)),
         "eval/pass@1": float(np.mean(correct)), f"eval/pass@{k}": float(np.mean(correct.any(1))),
         "eval/mean_length": float(np.mean(sampled["lengths"])),
         "eval/truncation_rate": float(np.mean(sampled["finish_reason"] == LENGTH))}
  out.update({name.replace("env/", "eval/env/"): v
              for name, v in episode_metrics(sampled).items()})
  if game:  # against env.opponent in every seat: greedy outcomes
    out.update(game_metrics(greedy["rewards"], greedy["seat"], greedy["counters"], "eval"))
  texts = decode(setup.tokenizer, greedy["completion_tokens"],
                 greedy["completion_mask"].sum(1).astype(np.int32))
  out["eval/sample"] = sample_text(greedy["prompt_texts"][0], texts[0])
  return out


def sample_text(prompt: str, completion: str) -> str:
  """One logged sample (metrics.jsonl, TensorBoard's text tab): the prompt, then what the
  policy wrote."""
  return f"prompt: {prompt}\ncompletion: {completion}"
