"""Supervised fine-tuning as a phase: the whole run for ``algo.name="sft"``, or the warm start of
an RL / preference run (``warm_start.sft_steps``). Each host loads its block of every global
batch; the blocks are gathered into the batch."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rlx import config as rlx_config
from rlx.algorithms import sft
from rlx.data import ExampleIterator, make_sft_batch
from rlx.optim import create_train_state, make_optimizer
from rlx.runtime import distributed, rollouts
from rlx.runtime.phase import EVAL_KEY, Phase
from rlx.runtime.phases.rl import sampling_params
from rlx.runtime.sources import Slice


@dataclasses.dataclass(frozen=True)
class SFTSchedule:
  steps: int
  learning_rate: float
  batch_size: int
  micro_batch_size: int
  optim: rlx_config.OptimSection  # the optimizer and its schedule (the warm start's may differ)
  num_examples: int = 0  # train on the first N examples of the source only (0 = all)


def sft_schedule(run: rlx_config.RunConfig) -> SFTSchedule | None:
  """The run's SFT phase: the main phase of ``algo.name="sft"``, else the warm start (None if
  there is none)."""
  if run.algo.name is rlx_config.Algorithm.SFT:
    return SFTSchedule(run.num_steps, run.optim.learning_rate, run.algo.batch_size,
                       run.algo.micro_batch, run.optim)
  w = run.warm_start
  if w.sft_steps > 0:
    optim = run.optim if w.schedule is None else dataclasses.replace(
        run.optim, schedule=w.schedule, end_lr_factor=w.end_lr_factor)
    return SFTSchedule(w.sft_steps, w.learning_rate, w.batch_size, w.batch_size, optim,
                       w.num_examples)
  return None


class SFTPhase(Phase):
  name = "sft"

  def __init__(self, setup, params, schedule: SFTSchedule):
    super().__init__(setup)
    run = self.run
    self.num_steps = schedule.steps
    opt = make_optimizer(schedule.optim, schedule.steps)
    self.state = create_train_state(opt, params, run.seed, layout=setup.layout)
    if schedule.batch_size % jax.process_count():
      raise rlx_config.ConfigError(
          f"SFT batch size {schedule.batch_size} must be a multiple of the "
          f"{jax.process_count()} processes (algo.batch_size / warm_start.batch_size)")
    source = setup.train_source
    if 0 < schedule.num_examples < len(source):  # a demonstration budget: epochs over N
      source = Slice(source, 0, schedule.num_examples)
    self.examples = ExampleIterator(
        source, batch_size=schedule.batch_size // jax.process_count(),
        seed=run.seed, shuffle=run.data.shuffle, process_index=jax.process_index(),
        process_count=jax.process_count())
    self.update = sft.make_sft_update(setup.graphdef, setup.model_config, opt,
                                      micro_batch_size=schedule.micro_batch_size,
                                      chunk_size=run.model.logprob_chunk, layout=setup.layout)
    self.hp = sft.SFTHyper(lr=jnp.float32(schedule.learning_rate))

  def host_state(self):
    return {"data": self.examples.get_state()}

  def evaluate(self, step: int):
    """``algo.name="sft"``: held-out accuracy as the RL phases measure it (greedy, pass@k,
    maj@k), where a reward can judge it (``eval.reward``; a file source needs a registry reward
    such as ``math_answer``). A warm start is measured by the phase after it."""
    run = self.run
    if (run.algo.name is not rlx_config.Algorithm.SFT or run.eval.num_examples == 0
        or not len(self.setup.eval_source) or rollouts.eval_reward_name(run) is None):
      return None
    return rollouts.evaluate(self.setup, sampling_params(self.setup, self.state.params),
                             jax.random.fold_in(jax.random.PRNGKey(run.seed), EVAL_KEY))

  def restore(self, items, host):
    super().restore(items, host)
    self.examples.set_state(host["data"])

  def step(self, step: int):
    examples, kwargs = next(self.examples), {}
    if self.run.env.enabled:  # the warm start of an episode run: demonstrations are episodes
      examples, kwargs = episode_demonstrations(self.setup, examples)
    b = make_sft_batch(examples, self.setup.tokenizer, formatter=self.setup.formatter,
                       max_len=self.run.data.max_seq_len, truncate=True, **kwargs)
    batch = sft.sft_batch(*(distributed.gather_rows(b[k]) for k in ("tokens", "mask",
                                                                     "loss_mask")))
    self.state, metrics = self.update(self.state, batch, self.hp)
    return metrics, {}


def episode_demonstrations(setup, examples) -> tuple[list, dict]:
  """``(examples, make_sft_batch keyword arguments)`` of an episode run's warm start: each
  example's prompt is the text its environment's ``reset`` returns, and its ``info["episode"]``
  demonstration is rendered as ``rlx.runtime.rollouts.sample_episodes`` renders episodes (with
  ``data.prompt_format="chat"``, the chat renderer's prompt, observations and end of turn), so
  that it is token for token the episode of the same texts (an observation keeps its first
  ``env.max_obs_tokens`` tokens, as there). A game's demonstrations are its games played by
  random legal moves (:func:`game_demonstrations`); an ``env.name`` that is neither a
  ``register_env`` nor a game name keeps the examples' prompts."""
  from rlx.envs import env_names, make_env
  from rlx.envs.chat import episode_renderer
  run = setup.run
  kwargs: dict = {"episodes": True}
  if run.env.game:
    return game_demonstrations(run, examples), kwargs
  if run.env.name not in env_names():
    return list(examples), kwargs
  envs = [make_env(run.env.name, **run.env.make_kwargs()) for _ in examples]
  try:
    examples = [dataclasses.replace(ex, prompt=env.reset(ex)) for env, ex in zip(envs, examples)]
    chat = episode_renderer(setup, envs)
  finally:
    for env in envs:
      env.close()
  encode = setup.tokenizer.encode if chat is None else chat.observation_ids
  kwargs["encode_observation"] = lambda text: list(encode(text))[:run.env.max_obs_tokens]
  if chat is not None:
    kwargs.update(render=lambda ex: chat.render(ex, ex.prompt),
                  end_of_turn=setup.tokenizer.encode(chat.end_token))
  return examples, kwargs


def game_demonstrations(run: rlx_config.RunConfig, examples) -> list:
  """The warm start of a game run: each example's game played with uniformly random legal
  moves in every seat (``rlx.envs.games.play_demonstrations``, the random opponent seeded by
  the run's seed and the example), example ``i`` demonstrating seat ``i mod seats`` (the seat's
  prompt and its episode: its moves trained, what it read between them not). Teaches the format
  of a legal move, not how to win."""
  import zlib

  from rlx.data.tasks import EPISODE
  from rlx.envs import make_game, random_opponent
  from rlx.envs.games import play_demonstrations
  out = []
  for i, ex in enumerate(examples):
    seed = zlib.crc32(f"{run.seed}:{ex.prompt}".encode())
    played = play_demonstrations(make_game(run.env.name, **run.env.make_kwargs()), ex,
                                 random_opponent(seed))
    seat, prompt, texts = played[i % len(played)]
    out.append(dataclasses.replace(ex, prompt=prompt, info={**(ex.info or {}), EPISODE: texts,
                                                            "seat": seat}))
  return out
