"""The RL phase (GRPO family and PPO): sample → reward → filter/refill → prepare → update.

Short Python with no math in it: the host pieces are ``rlx.runtime.rollouts``, the compiled ones
``rlx.algorithms.grpo`` / ``ppo`` (batch preparation from a ``Trajectory``) and the one learner.
A reward's dense ``token_scores`` travel in ``Trajectory.token_rewards`` to every estimator.

On a mesh (``setup.layout``) the train state, the reference parameters and every compiled step
are sharded. On a multi-host run the host side (prompts, rewards, filters) runs replicated:
every process reads the whole global batch of prompts and scores every sample, so all hosts feed
the same global values to the compiled steps (docs/scaling.md).
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np

from rlx import core
from rlx import models
from rlx.algorithms import grpo, laser, ppo
from rlx.config import Algorithm
from rlx.optim import create_train_state, frozen_copy, make_optimizer
from rlx.runtime import rollouts
from rlx.runtime.phase import EVAL_KEY, Phase
from rlx.runtime.scorer import PolicyScorer
from rlx.runtime.sources import prompt_iterator

RL_DATA_SEED_OFFSET = 1  # the RL prompt stream is shuffled apart from the warm start's


def sampling_params(setup, params):
  """The policy in the sampling layout (no copy with ``mesh.sampling_rules="train"``). The
  sampler splits rows over ``data × fsdp``; on several processes every host then receives all
  rows (``rollouts.rollout_to_host``)."""
  if setup.layout is None or setup.layout.sampling_rules is None:
    return params
  return setup.layout.put_tree(params, setup.layout.sampling_rules)


def needs_scorer(run) -> bool:
  """Model-based rewards score with the sampling policy and the frozen initial one."""
  return bool({run.rewards.name, run.eval.reward} & rollouts.SCORER_REWARDS)


class RLPhase(Phase):
  name = "rl"

  def __init__(self, setup, params):
    super().__init__(setup)
    run, algo = self.run, self.run.algo
    self.num_steps = run.num_steps
    opt = make_optimizer(run.optim, run.num_steps * algo.epochs * algo.minibatches)
    chunk, vocab = run.model.logprob_chunk, setup.model_config.vocab_size
    mc = setup.model_config
    exact = (jnp.dtype(mc.dtype) == jnp.float32 and jnp.dtype(mc.param_dtype) == jnp.float32
             and getattr(setup, "sampling_graphdef", None) is None)  # bf16 sampling is not exact
    self.prep_spec = grpo.PrepareSpec.from_config(algo, chunk, exact_sampler=exact)
    self.laser = laser.aux_from_config(algo, chunk, vocab)
    keep_ref = self.prep_spec.use_reference or needs_scorer(run) or (
        self.laser is not None and self.laser.ref_baseline)
    self.ref_params = frozen_copy(params, run.mesh.reference_dtype) if keep_ref else None
    self.state = create_train_state(opt, params, run.seed, value_params=self._critic(params),
                                    layout=setup.layout)
    self._build_steps(opt, grpo.GRPOSpec.from_config(algo, chunk, vocab))
    self.examples = prompt_iterator(run, setup.train_source, seed=run.seed + RL_DATA_SEED_OFFSET,
                                    batch_size=algo.num_prompts, shuffle=run.data.shuffle)
    self.group_filter = rollouts.make_group_filter(algo)
    self.filter_state = self.group_filter.init_state()
    self.kl_state = core.adaptive_kl_init(algo.beta)
    self.scorer = PolicyScorer(setup.graphdef, setup.model_config, setup.tokenizer,
                               self.ref_params, chunk) if needs_scorer(run) else None
    self.reward_fn = rollouts.RewardFn(run, self.scorer, decode=setup.tokenizer.decode)
    self.base_key = jax.random.PRNGKey(run.seed)
    self.pending = None  # (Collected, host metrics) of the next step, drawn ahead
    self._before_pending = None

  def _critic(self, params):
    """PPO's value network, initialised from the policy's backbone (None for the GRPO family).
    On a LoRA policy it shares the policy's frozen base arrays (one copy in memory) and trains
    its own adapters and head."""
    if self.run.algo.name is not Algorithm.PPO:
      return None
    layout = self.setup.layout
    place = {} if layout is None else {"mesh": layout.mesh, "rules": layout.rules}
    self.value_graphdef, value_params = models.init_params(
        self.setup.model_config, self.run.seed, cls=models.ValueModel, **place)
    # Own buffers; on a LoRA policy its own adapters and head over the policy's shared base.
    return frozen_copy(models.init_from_policy(value_params, params))

  def _build_steps(self, opt, spec: grpo.GRPOSpec):
    s, layout = self.setup, self.setup.layout
    if self.run.algo.name is Algorithm.PPO:
      self.update = ppo.make_ppo_update(s.graphdef, self.value_graphdef, s.model_config, opt,
                                        spec, layout=layout)
      prep = ppo.make_ppo_prepare(s.graphdef, self.value_graphdef, s.model_config,
                                  self.prep_spec, layout=layout)
      self.prepare = lambda st, ref, traj, hp: prep(st.params, ref, st.value_params, traj, hp)
    else:
      self.update = grpo.make_grpo_update(s.graphdef, s.model_config, opt, spec, layout=layout)
      prep = grpo.make_prepare(s.graphdef, s.model_config, self.prep_spec, layout=layout)
      self.prepare = lambda st, ref, traj, hp: prep(st.params, ref, traj, hp)
    if self.laser is not None:
      self.laser_prepare = laser.make_laser_prepare(s.graphdef, s.model_config, self.laser)

  # --- checkpoint ----------------------------------------------------------------------------
  def checkpoint_items(self):
    return {"train": self.state, "ref": self.ref_params}

  def _drawn_state(self):
    """The host state the prompt stream, the filter and the reward have consumed up to."""
    return {"data": self.examples.get_state(), "filter": self.filter_state,
            "reward": self.reward_fn.state_dict()}

  def host_state(self):
    # A batch drawn ahead (max_staleness=1) is not trained on yet: a checkpoint records the
    # stream as it was before it, and a resume draws it again (with the restored policy).
    drawn = self._before_pending if self.pending is not None else self._drawn_state()
    return {**drawn, "kl_beta": np.asarray(self.kl_state.beta)}

  def restore(self, items, host):
    self.pending = None
    self.state, self.ref_params = items["train"], items["ref"]
    if self.scorer is not None:
      self.scorer.reference_params = self.ref_params
    self.examples.set_state(host["data"])
    self.filter_state = host["filter"]
    self.kl_state = core.AdaptiveKLState(beta=jnp.asarray(host["kl_beta"], jnp.float32))
    self.reward_fn.load_state_dict(host.get("reward"))

  # --- stepping ------------------------------------------------------------------------------
  def _collect(self, params, step: int, on_sampled=None):
    """Sample, score, filter and refill step ``step``'s batch with ``params``."""
    key = jax.random.fold_in(self.base_key, self.step_offset + step)
    if self.scorer is not None:
      self.scorer.bind(params)
    got = rollouts.collect(self.setup, sampling_params(self.setup, params), self.examples,
                           self.reward_fn, self.group_filter, self.filter_state, key, step,
                           on_sampled=on_sampled)
    self.filter_state = got.filter_state
    host_metrics = got.metrics
    record = getattr(self.examples, "record", None)  # a staged curriculum advances
    if record is not None:
      host_metrics = {**host_metrics, **record(got.metrics.get("filter/mean_p", 0.0))}
    return got, host_metrics

  def _draw_ahead(self, step: int) -> bool:
    """max_staleness=1: draw step ``step + 1``'s batch now, unless a checkpoint (or the end)
    follows this step, so that every scheduled checkpoint has nothing drawn ahead."""
    nxt = step + 1
    return bool(self.run.algo.max_staleness) and nxt < self.num_steps and not self.save_due(nxt)

  def step(self, step: int):
    if self.pending is not None:  # drawn during the previous step (max_staleness=1)
      (got, host_metrics), self.pending = self.pending, None
    else:
      got, host_metrics = self._collect(self.state.params, step)
    if got.empty:  # the filter kept no group even after refills: no update
      return {}, host_metrics
    if not self._draw_ahead(step):
      return self.train(got.traj), host_metrics
    # Bounded staleness 1: the next batch is sampled by this step's policy (a snapshot: the
    # update donates the state), and this batch's update is dispatched as soon as those samples
    # reach the host, so the device runs the update while the host scores them. The sampler's
    # log-probs are the behaviour policy's: the ratio (old_logprobs="sampler") or TIS corrects.
    done = {}

    def dispatch():
      if "metrics" not in done:
        done["metrics"] = self.train(got.traj)

    self._before_pending = copy.deepcopy(self._drawn_state())  # (a reward may return its own)
    self.pending = self._collect(frozen_copy(self.state.params), step + 1, on_sampled=dispatch)
    dispatch()  # (a no-op when the hook already ran)
    return done["metrics"], host_metrics

  def train(self, traj):
    """Prepare (old/ref log-probs, KL, advantages), LaSeR's inputs, the update (compiled)."""
    run, algo = self.run, self.run.algo
    hp = grpo.PrepareHyper.create(beta=self.kl_state.beta, temperature=run.sampling.temperature,
                                  adv_eps=algo.adv_eps, gamma=algo.gamma, lam=algo.lam,
                                  tis_cap=algo.tis_cap or 2.0)
    batch, metrics = self.prepare(self.state, self.ref_params, traj, hp)
    if self.laser is not None:
      laser_hp = laser.LaserHyper.create(beta_v=algo.laser_beta, c_ref=algo.laser_c_ref,
                                         tau=algo.laser_tau, adv_eps=algo.adv_eps)
      policy = getattr(batch, "policy", batch)
      policy, laser_metrics = self.laser_prepare(
          self.state.params, self.ref_params, policy, traj.aux["verifier_rewards"],
          traj.finished * traj.sample_mask, traj.group_ids, laser_hp)
      batch = policy
      metrics = {**metrics, **laser_metrics}
    update_hp = grpo.hyper_from_config(algo, run.optim.learning_rate, run.sampling.temperature)
    self.state, update_metrics = self.update(self.state, batch,
                                             update_hp.replace(beta=self.kl_state.beta))
    if algo.adaptive_kl:
      self.kl_state = core.adaptive_kl_update(self.kl_state, metrics["kl/rollout"],
                                              algo.batch_size, algo.kl_target, algo.kl_horizon)
    return {**update_metrics, **metrics, "kl/beta": self.kl_state.beta}

  def evaluate(self, step: int):
    if self.run.eval.num_examples == 0:
      return None
    return rollouts.evaluate(self.setup, sampling_params(self.setup, self.state.params),
                             jax.random.fold_in(self.base_key, EVAL_KEY), self.scorer)
