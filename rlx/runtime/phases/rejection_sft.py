"""Rejection-sampling SFT (RFT, expert iteration, STaR): sample, keep the verified, SFT on them.

Each step samples ``algo.group_size`` completions for each of ``algo.num_prompts`` prompts, scores
them with the run's reward and keeps the verified ones: score ≥ 1 (after length shaping;
``rewards.overlong_filter`` also drops truncated ones), each distinct completion of a prompt once
— so at most ``k = algo.group_size`` per prompt, and a prompt solved one way does not fill the
batch with copies. One SFT step then trains on ``algo.batch_size`` rows of prompt + completion
(``data.max_prompt_len + sampling.max_new_tokens`` tokens), loss on the kept completions only;
the other rows are padding. Nothing kept: the learner skips the optimizer step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlx.algorithms import sft
from rlx.algorithms.trajectory import take_rows
from rlx.optim import create_train_state, frozen_copy, make_optimizer
from rlx.runtime import rollouts
from rlx.runtime.phase import EVAL_KEY, Phase
from rlx.runtime.phases.rl import RL_DATA_SEED_OFFSET, needs_scorer, sampling_params
from rlx.runtime.scorer import PolicyScorer
from rlx.runtime.sources import prompt_iterator


def keep_verified(traj, scored) -> np.ndarray:
  """``[R]`` bool: score ≥ 1, not masked by the reward, and the first of its group with its
  completion tokens."""
  ok = (scored.scores >= 1.0) & (scored.sample_mask > 0)
  keep, seen = np.zeros_like(ok), set()
  for r in np.flatnonzero(ok):
    key = (int(traj.group_ids[r]), traj.completion_tokens[r][traj.completion_mask[r] > 0].tobytes())
    keep[r] = key not in seen
    seen.add(key)
  return keep


def sft_rows(traj, keep: np.ndarray, batch_size: int) -> sft.SFTBatch:
  """The kept rows first, as ``batch_size`` rows of prompt + completion tokens with the loss on
  the kept completion tokens; the rest are padding rows (loss mask 0)."""
  traj = traj.replace(loss_mask=traj.loss_mask * keep[:, None])
  t = take_rows(traj, np.argsort(~keep, kind="stable")).pad_to(batch_size)
  cat = lambda a, b: np.concatenate([a, b], axis=1)
  return sft.sft_batch(cat(t.prompt_tokens, t.completion_tokens),
                       cat(t.prompt_mask, t.completion_mask),
                       cat(np.zeros_like(t.prompt_mask), t.loss_mask))


class RejectionSFTPhase(Phase):
  name = "rejection_sft"

  def __init__(self, setup, params):
    super().__init__(setup)
    run, algo = self.run, self.run.algo
    self.num_steps = run.num_steps
    opt = make_optimizer(run.optim, run.num_steps)
    self.state = create_train_state(opt, params, run.seed, layout=setup.layout)
    self.update = sft.make_sft_update(setup.graphdef, setup.model_config, opt,
                                      micro_batch_size=algo.micro_batch,
                                      chunk_size=run.model.logprob_chunk, layout=setup.layout)
    self.hp = sft.SFTHyper(lr=jnp.float32(run.optim.learning_rate))
    self.examples = prompt_iterator(run, setup.train_source, seed=run.seed + RL_DATA_SEED_OFFSET,
                                    batch_size=algo.num_prompts, shuffle=run.data.shuffle)
    # Model-based rewards score with the policy and the frozen initial one (as in the RL phase).
    self.ref_params = frozen_copy(params, run.mesh.reference_dtype) if needs_scorer(run) else None
    self.scorer = None if self.ref_params is None else PolicyScorer(
        setup.graphdef, setup.model_config, setup.tokenizer, self.ref_params,
        run.model.logprob_chunk)
    self.reward_fn = rollouts.RewardFn(run, self.scorer, decode=setup.tokenizer.decode)
    self.base_key = jax.random.PRNGKey(run.seed)

  def checkpoint_items(self):
    return {"train": self.state, "ref": self.ref_params}

  def host_state(self):
    return {"data": self.examples.get_state(), "reward": self.reward_fn.state_dict()}

  def restore(self, items, host):
    self.state, self.ref_params = items["train"], items["ref"]
    if self.scorer is not None:
      self.scorer.reference_params = self.ref_params
    self.examples.set_state(host["data"])
    self.reward_fn.load_state_dict(host.get("reward"))

  def step(self, step: int):
    algo = self.run.algo
    if self.scorer is not None:
      self.scorer.bind(self.state.params)
    examples = next(self.examples)
    traj, scored, texts = rollouts.score_groups(
        self.setup, sampling_params(self.setup, self.state.params), examples,
        self.reward_fn, jax.random.fold_in(self.base_key, self.step_offset + step), step,
        n=algo.group_size)
    keep = keep_verified(traj, scored)
    host = {**scored.metrics, "sample/text": rollouts.sample_text(examples[0].prompt, texts[0]),
            "rs/kept": int(keep.sum()),
            "rs/kept_fraction": float(keep.mean()),
            "rs/solved_prompts": len({int(g) for g in traj.group_ids[keep]}) / algo.num_prompts}
    record = getattr(self.examples, "record", None)  # a staged curriculum advances
    if record is not None:
      host.update(record(float(np.mean(scored.scores >= 1.0))))
    self.state, metrics = self.update(self.state, sft_rows(traj, keep, algo.batch_size), self.hp)
    return metrics, host

  def evaluate(self, step: int):
    if self.run.eval.num_examples == 0:
      return None
    return rollouts.evaluate(self.setup, sampling_params(self.setup, self.state.params),
                             jax.random.fold_in(self.base_key, EVAL_KEY), self.scorer)
