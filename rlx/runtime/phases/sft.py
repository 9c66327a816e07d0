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
from rlx.runtime import distributed
from rlx.runtime.phase import Phase


@dataclasses.dataclass(frozen=True)
class SFTSchedule:
  steps: int
  learning_rate: float
  batch_size: int
  micro_batch_size: int


def sft_schedule(run: rlx_config.RunConfig) -> SFTSchedule | None:
  """The run's SFT phase: the main phase of ``algo.name="sft"``, else the warm start (None if
  there is none)."""
  if run.algo.name is rlx_config.Algorithm.SFT:
    return SFTSchedule(run.num_steps, run.optim.learning_rate, run.algo.batch_size,
                       run.algo.micro_batch)
  if run.warm_start.sft_steps > 0:
    return SFTSchedule(run.warm_start.sft_steps, run.warm_start.learning_rate,
                       run.warm_start.batch_size, run.warm_start.batch_size)
  return None


class SFTPhase(Phase):
  name = "sft"

  def __init__(self, setup, params, schedule: SFTSchedule):
    super().__init__(setup)
    run = self.run
    self.num_steps = schedule.steps
    opt = make_optimizer(run.optim, schedule.steps)
    self.state = create_train_state(opt, params, run.seed, layout=setup.layout)
    if schedule.batch_size % jax.process_count():
      raise rlx_config.ConfigError(
          f"SFT batch size {schedule.batch_size} must be a multiple of the "
          f"{jax.process_count()} processes (algo.batch_size / warm_start.batch_size)")
    self.examples = ExampleIterator(
        setup.train_source, batch_size=schedule.batch_size // jax.process_count(),
        seed=run.seed, shuffle=run.data.shuffle, process_index=jax.process_index(),
        process_count=jax.process_count())
    self.update = sft.make_sft_update(setup.graphdef, setup.model_config, opt,
                                      micro_batch_size=schedule.micro_batch_size,
                                      chunk_size=run.model.logprob_chunk, layout=setup.layout)
    self.hp = sft.SFTHyper(lr=jnp.float32(schedule.learning_rate))

  def host_state(self):
    return {"data": self.examples.get_state()}

  def restore(self, items, host):
    super().restore(items, host)
    self.examples.set_state(host["data"])

  def step(self, step: int):
    b = make_sft_batch(next(self.examples), self.setup.tokenizer, formatter=self.setup.formatter,
                       max_len=self.run.data.max_seq_len, truncate=True)
    batch = sft.sft_batch(*(distributed.gather_rows(b[k]) for k in ("tokens", "mask",
                                                                     "loss_mask")))
    self.state, metrics = self.update(self.state, batch, self.hp)
    return metrics, {}
