"""The RL loop: sample → reward → filter/refill → old/ref log-probs → advantages → update → log.

Short Python with no math in it: the host pieces are in ``rlx.runtime.rollouts``, the compiled
ones in ``rlx.algorithms.grpo``. Metrics are pushed one step late; evaluation and checkpoints run
on their schedules; SIGTERM/SIGINT checkpoint and return.

On a mesh (``setup.layout``) the train state, the reference parameters and every compiled step
are sharded (``rlx.runtime.mesh``). On a multi-host run the host side (prompts, rewards,
filters) runs replicated: every process reads the whole global batch of prompts and scores every
sample, so all hosts feed the same global values to the compiled steps (docs/scaling.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlx import core
from rlx import models
from rlx.algorithms import grpo, laser, ppo
from rlx.config import Algorithm
from rlx.data import ExampleIterator
from rlx.runtime import rollouts
from rlx.runtime.scorer import PolicyScorer
from rlx.optim import create_train_state, frozen_copy, make_optimizer

RL_DATA_SEED_OFFSET = 1  # the RL prompt stream is shuffled apart from the warm start's


def run_rl(setup, params, resume: dict | None, *, step_offset: int = 0):
  """RL phase; returns ``(params, preempted, summary)``."""
  run, algo = setup.run, setup.run.algo
  opt = make_optimizer(run.optim, run.num_steps * algo.epochs * algo.minibatches)
  chunk = run.model.logprob_chunk
  prep_spec = grpo.PrepareSpec.from_config(algo, chunk)
  laser_spec = grpo.laser_spec_from_config(algo, chunk, setup.model_config.vocab_size)
  # Model-based rewards score with the sampling policy and the frozen initial one (the scorer).
  needs_scorer = bool({run.rewards.name, run.eval.reward} & rollouts.SCORER_REWARDS)
  keep_ref = prep_spec.use_reference or needs_scorer or (
      laser_spec is not None and laser_spec.ref_baseline)
  ref_params = frozen_copy(params, run.mesh.reference_dtype) if keep_ref else None
  is_ppo = algo.name is Algorithm.PPO
  value_graphdef = value_params = None
  if is_ppo:
    place = {} if setup.layout is None else {"mesh": setup.layout.mesh,
                                              "rules": setup.layout.rules}
    value_graphdef, value_params = models.init_params(setup.model_config, run.seed,
                                                      cls=models.ValueModel, **place)
    value_params = jax.tree.map(jnp.copy, models.init_from_policy(value_params, params))
  state = create_train_state(opt, params, run.seed, value_params=value_params,
                             layout=setup.layout)
  # Every process reads the global batch (the host side runs replicated, see the docstring).
  examples = ExampleIterator(setup.train_source, batch_size=algo.num_prompts,
                             seed=run.seed + RL_DATA_SEED_OFFSET, shuffle=run.data.shuffle)
  group_filter = rollouts.make_group_filter(algo)
  filter_state = group_filter.init_state()
  kl_state = core.adaptive_kl_init(algo.beta)
  evals = []
  reward_state = None
  if resume is not None:
    restored, host = setup.checkpointer.restore(resume["step"],
                                                {"train": state, "ref": ref_params})
    state, ref_params = restored["train"], restored["ref"]
    examples.set_state(host["data"])
    filter_state = host["filter"]
    kl_state = core.AdaptiveKLState(beta=jnp.asarray(host["kl_beta"], jnp.float32))
    evals = host.get("evals", [])
    reward_state = host.get("reward")
  spec = grpo.GRPOSpec.from_config(algo, chunk, setup.model_config.vocab_size)
  if is_ppo:
    update = ppo.make_ppo_update(setup.graphdef, value_graphdef, setup.model_config, opt, spec,
                                 layout=setup.layout)
    ppo_prepare = ppo.make_ppo_prepare(setup.graphdef, value_graphdef, setup.model_config,
                                       prep_spec, layout=setup.layout)
    prepare = lambda p, vp, ref, *arrays, greedy, hp: ppo_prepare(
        p, ref, vp, *arrays[:7], np.zeros_like(arrays[4]), hp, algo.lam)
  else:
    update = grpo.make_grpo_update(setup.graphdef, setup.model_config, opt, spec,
                                   layout=setup.layout)
    grpo_prepare = grpo.make_prepare(setup.graphdef, setup.model_config, prep_spec,
                                     layout=setup.layout)
    prepare = lambda p, vp, ref, *arrays, greedy, hp: grpo_prepare(p, ref, *arrays, greedy, hp)
  scorer = PolicyScorer(setup.graphdef, setup.model_config, setup.tokenizer, ref_params,
                        chunk) if needs_scorer else None
  reward_fn = rollouts.RewardFn(run, scorer)
  if reward_state is not None:
    reward_fn.load_state_dict(reward_state)  # memories and caches of stateful rewards
  if laser_spec is not None:
    laser_prepare = laser.make_laser_prepare(setup.graphdef, setup.model_config, laser_spec)
    laser_hp = laser.LaserHyper.create(beta_v=algo.laser_beta, c_ref=algo.laser_c_ref,
                                       tau=algo.laser_tau, adv_eps=algo.adv_eps)
  base_key = jax.random.PRNGKey(run.seed)
  step = int(resume["phase_step"]) if resume is not None else 0

  def sampling_params():
    """The policy in the sampling layout (no copy with ``mesh.sampling_rules="train"``). The
    sampler splits rows over ``data × fsdp``; on several processes every host then receives all
    rows (``rollouts.rollout_to_host``)."""
    if setup.layout is None or setup.layout.sampling_rules is None:
      return state.params
    return setup.layout.put_tree(state.params, setup.layout.sampling_rules)

  def do_eval():
    result = rollouts.evaluate(setup, sampling_params(), jax.random.fold_in(base_key, 2**31 - 1),
                               scorer)
    evals.append({"step": step, **{k: v for k, v in result.items() if not isinstance(v, str)}})
    setup.writer.write_now(step_offset + step, result)

  def save(force=False):
    setup.checkpointer.save(
        step_offset + step, {"train": state, "ref": ref_params},
        {"phase": "rl", "phase_step": step, "data": examples.get_state(), "filter": filter_state,
         "kl_beta": np.asarray(kl_state.beta), "evals": evals,
         "reward": reward_fn.state_dict()}, force=force)

  def train_step(d):
    """old/ref log-probs and advantages, then the update (all compiled)."""
    prep_hp = grpo.PrepareHyper.create(beta=kl_state.beta, temperature=run.sampling.temperature,
                                       adv_eps=algo.adv_eps, gamma=algo.gamma,
                                       tis_cap=algo.tis_cap or 2.0)
    batch, prep_metrics = prepare(
        state.params, state.value_params, ref_params, d["prompt_tokens"], d["prompt_mask"], d["completion_tokens"],
        d["completion_mask"], d["loss_mask"], d["logprobs"], d["rewards"], d["group_ids"],
        greedy=d["greedy_rewards"], hp=prep_hp)
    if laser_spec is not None:
      batch, laser_metrics = laser_prepare(state.params, ref_params, batch, d["verifier_rewards"],
                                           d["finished"], d["group_ids"], laser_hp)
      prep_metrics = {**prep_metrics, **laser_metrics}
    hp = grpo.hyper_from_config(algo, run.optim.learning_rate, run.sampling.temperature)
    new_state, metrics = update(state, batch, hp.replace(beta=kl_state.beta))
    new_kl = kl_state
    if algo.adaptive_kl:
      new_kl = core.adaptive_kl_update(kl_state, prep_metrics["kl/rollout"], algo.batch_size,
                                       algo.kl_target, algo.kl_horizon)
    return new_state, new_kl, {**metrics, **prep_metrics, "kl/beta": new_kl.beta}

  if step == 0:
    do_eval()
  while step < run.num_steps:
    key = jax.random.fold_in(base_key, step_offset + step)
    if scorer is not None:
      scorer.bind(state.params)
    got = rollouts.collect(setup, sampling_params(), examples, reward_fn, group_filter,
                           filter_state, key, step)
    filter_state = got.filter_state
    metrics = {}
    if not got.empty:  # empty: the filter kept no group even after refills; no update
      state, kl_state, metrics = train_step(got.data)
    step += 1
    setup.writer.push(step_offset + step, metrics, {"phase": "rl", **got.metrics})
    if setup.guard.stop_requested():
      save(force=True)
      return state.params, True, {"evals": evals}
    if run.eval.every_steps and step % run.eval.every_steps == 0 and step < run.num_steps:
      do_eval()
    if step % run.checkpoint.every_steps == 0 or step == run.num_steps:
      if step == run.num_steps:
        setup.writer.flush()
        do_eval()
      save()
  setup.writer.flush()
  return state.params, False, {"evals": evals}
