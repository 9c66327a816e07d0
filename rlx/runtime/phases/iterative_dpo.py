"""Iterative on-policy DPO as a phase (``algo.name="iterative_dpo"``).

Rounds of: sample ``algo.group_size`` completions for ``pref.round_prompts`` prompts with the
current policy (in the sampling layout, ``mesh.sampling_rules``), score them with the run's
reward (``rewards.name``: task verifier, reward model, self-certainty, ``llm_judge`` with the
policy as its own judge (``rlx.runtime.preference.PolicyJudge``) ...), pair best vs worst
(``pref.pair_rule``), compute the round reference's log-probs once, and train
``num_steps / pref.rounds`` DPO updates on the pairs.

Each round's pairs are written to ``WORKDIR/rounds/round_RRR.npz`` before its updates, so a run
stopped mid-round resumes on the same pairs in the same order. Round statistics go to the
metrics as ``round/*`` at the round's first step. Evaluation (held-out prompts, sampled and
verified) runs before the first round, after every round and every ``eval.every_steps`` updates
(0: after rounds only); checkpoints every ``checkpoint.every_steps`` updates and after every
round. Checkpoints: ``{"train": TrainState, "initial": frozen initial policy | None}`` and the
host keys ``round``, ``prompts``, ``pairs`` (the round's pair iterator) and ``reward``.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from rlx.algorithms import dpo
from rlx.data import ExampleIterator
from rlx.data import preference as pref_data
from rlx.optim import create_train_state, frozen_copy, make_optimizer
from rlx.runtime import preference, rollouts
from rlx.runtime.phase import EVAL_KEY, Phase
from rlx.runtime.phases.rl import needs_scorer, sampling_params
from rlx.runtime.scorer import PolicyScorer


def _ids(tokens: np.ndarray, mask: np.ndarray, row: int) -> list[int]:
  return tokens[row][np.asarray(mask[row]) > 0].tolist()


def pair_arrays(pairs, data: dict, rejected: dict, *, group_size: int, pad_id: int,
                max_len: int) -> dict[str, np.ndarray]:
  """The round's pairs (``best_worst_pairs``) as ``pair_arrays`` rows: prompt and chosen
  completion from the policy's samples ``data``, the rejected completion from ``rejected`` (the
  same samples, or the initial policy's when anchored). No pair: one dummy row of weight 0, so
  the round's updates leave the parameters unchanged."""
  g = group_size
  prompt_ids = [_ids(data["prompt_tokens"], data["prompt_mask"], p * g) for p, *_ in pairs]
  chosen = [_ids(data["completion_tokens"], data["completion_mask"], p * g + c)
            for p, c, *_ in pairs]
  rej = [_ids(rejected["completion_tokens"], rejected["completion_mask"], p * g + j)
         for p, _, j, *_ in pairs]
  if not pairs:
    prompt_ids, chosen, rej = [[pad_id]], [[pad_id]], [[pad_id]]
  arrays = pref_data.pair_arrays(prompt_ids, chosen, rej, pad_id=pad_id, max_len=max_len)
  if not pairs:
    arrays["weight"][:] = 0
  return arrays


def round_stats(r: int, pairs, num_prompts: int, scores, valid, data, texts) -> dict:
  """The ``round/*`` metrics of round ``r``."""
  rc = np.array([x[3] for x in pairs], np.float32)
  rr = np.array([x[4] for x in pairs], np.float32)
  some = len(pairs) > 0
  return {"round/index": r, "round/pairs": len(pairs),
          "round/pair_fraction": len(pairs) / max(num_prompts, 1),
          "round/reward_mean": float(np.mean(scores[valid])) if valid.any() else 0.0,
          "round/chosen_reward": float(rc.mean()) if some else 0.0,
          "round/rejected_reward": float(rr.mean()) if some else 0.0,
          "round/reward_gap": float((rc - rr).mean()) if some else 0.0,
          "round/rollout_length": float(np.mean(data["lengths"])),
          "round/sample": texts[0]}


class IterativeDPOPhase(Phase):
  name = "iterative_dpo"

  def __init__(self, setup, params):
    super().__init__(setup)
    run, pref = self.run, self.run.pref
    self.num_steps = run.num_steps
    self.per_round = run.num_steps // pref.rounds
    self.spec = dpo.PrefSpec.from_config(run)
    self.hp = dpo.PrefHyper.from_config(pref, run.optim.learning_rate)
    self.anchored = pref.pair_rule == "anchored"
    keep_initial = needs_scorer(run) or self.anchored or (
        self.spec.uses_reference and pref.round_reference == "initial")
    self.initial = frozen_copy(params, run.mesh.reference_dtype) if keep_initial else None
    opt = make_optimizer(run.optim, run.num_steps)
    self.state = create_train_state(opt, params, run.seed, layout=setup.layout)
    self.prompts = ExampleIterator(setup.train_source, batch_size=pref.round_prompts,
                                   seed=run.seed + preference.PROMPT_SEED_OFFSET,
                                   shuffle=run.data.shuffle)
    self.policy_scorer = PolicyScorer(
        setup.graphdef, setup.model_config, setup.tokenizer, self.initial,
        run.model.logprob_chunk) if needs_scorer(run) else None
    self.scorer = self.policy_scorer
    if run.rewards.name == "llm_judge":  # the policy judges its own samples
      self.scorer = preference.PolicyJudge(setup, self.policy_scorer,
                                           place=lambda p: sampling_params(setup, p))
    self.reward_fn = rollouts.RewardFn(run, self.scorer, decode=setup.tokenizer.decode)
    self.update = dpo.make_preference_update(setup.graphdef, setup.model_config, opt, self.spec,
                                             layout=setup.layout)
    self.ref_fn = dpo.make_reference_logps(setup.graphdef, setup.model_config,
                                           run.model.logprob_chunk, setup.layout)
    self.base_key = jax.random.PRNGKey(run.seed)
    self.rounds_dir = os.path.join(setup.workdir, "rounds")
    self.round_data: dict[str, np.ndarray] | None = None
    self.pairs_iter: ExampleIterator | None = None
    self.done = 0  # updates taken (the step a checkpoint records)

  # --- checkpoint ----------------------------------------------------------------------------
  def checkpoint_items(self):
    return {"train": self.state, "initial": self.initial}

  def host_state(self):
    return {"round": self.done // self.per_round, "prompts": self.prompts.get_state(),
            "pairs": None if self.pairs_iter is None else self.pairs_iter.get_state(),
            "reward": self.reward_fn.state_dict()}

  def restore(self, items, host):
    self.state, self.initial = items["train"], items["initial"]
    if self.policy_scorer is not None:
      self.policy_scorer.reference_params = self.initial
    self.prompts.set_state(host["prompts"])
    self.reward_fn.load_state_dict(host.get("reward"))
    self.done = int(host["phase_step"])
    if self.done < self.num_steps and self.done % self.per_round:  # mid-round: same pairs
      r = self.done // self.per_round
      self.round_data = self._load_round(r)
      self.pairs_iter = self._pair_iterator(r, len(self.round_data["weight"]))
      self.pairs_iter.set_state(host["pairs"])

  # --- rounds --------------------------------------------------------------------------------
  def _round_path(self, r: int) -> str:
    return os.path.join(self.rounds_dir, f"round_{r:03d}.npz")

  def _load_round(self, r: int) -> dict[str, np.ndarray]:
    with np.load(self._round_path(r)) as z:
      return {k: z[k] for k in z.files}

  def _pair_iterator(self, r: int, n: int) -> ExampleIterator:
    run = self.run
    return ExampleIterator(range(n), batch_size=run.algo.batch_size,
                           seed=run.seed + preference.ROUND_DATA_SEED_OFFSET + r,
                           shuffle=run.data.shuffle)

  def _sample_and_score(self, params, examples, key, step: int):
    """``G`` samples per prompt with ``params`` (placed in the sampling layout) and their
    scores: ``(rollout, scores [P,G], valid [P,G], texts)``."""
    g = self.run.algo.group_size
    data = rollouts.sample_groups(self.setup, sampling_params(self.setup, params), examples,
                                  key, n=g)
    texts = rollouts.decode(self.setup.tokenizer, data["completion_tokens"], data["lengths"])
    scored = self.reward_fn([ex for ex in examples for _ in range(g)], texts, data, step)
    return data, scored.scores.reshape(-1, g), (scored.sample_mask > 0).reshape(-1, g), texts

  def _reference_logps(self, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """Reference log-probs of the round's pairs: the policy at the round's start
    (``pref.round_reference="round"``) or the initial one; zeros for reference-free losses."""
    n, rows = len(arrays["weight"]), self.run.algo.batch_size
    if not self.spec.uses_reference:
      return np.zeros((n,), np.float32), np.zeros((n,), np.float32)
    ref_params = self.state.params if self.run.pref.round_reference == "round" else self.initial
    outs_a, outs_b = [], []
    for lo in range(0, n, rows):
      sub = pref_data.pad_batch_rows({k: v[lo:lo + rows] for k, v in arrays.items()}, rows)
      a, b = jax.device_get(self.ref_fn(ref_params, dpo.PairBatch.create(sub)))
      m = min(rows, n - lo)
      outs_a.append(np.asarray(a)[:m])
      outs_b.append(np.asarray(b)[:m])
    return np.concatenate(outs_a), np.concatenate(outs_b)

  def build_round(self, r: int, step: int) -> dict[str, np.ndarray]:
    """Sample, score, pair; the pairs' arrays with their reference log-probs and statistics."""
    run, pref = self.run, self.run.pref
    examples = next(self.prompts)
    key = jax.random.fold_in(self.base_key, r)
    if self.scorer is not None:
      self.scorer.bind(self.state.params)
    key_step = self.step_offset + step
    data, scores, valid, texts = self._sample_and_score(self.state.params, examples, key,
                                                        key_step)
    anchor, anchor_scores, anchor_valid = data, None, None
    if self.anchored:
      anchor, anchor_scores, anchor_valid, _ = self._sample_and_score(
          self.initial, examples, jax.random.fold_in(key, 1), key_step)
    pairs = preference.best_worst_pairs(scores, valid, anchor_scores=anchor_scores,
                                        anchor_valid=anchor_valid, min_gap=pref.min_gap)
    arrays = pair_arrays(pairs, data, anchor, group_size=run.algo.group_size,
                         pad_id=self.setup.tokenizer.pad_id,
                         max_len=run.data.max_prompt_len + run.sampling.max_new_tokens)
    ref_a, ref_b = self._reference_logps(arrays)
    stats = round_stats(r, pairs, len(examples), scores, valid, data, texts)
    if self.anchored:
      stats["round/anchor_reward_mean"] = float(np.mean(anchor_scores[anchor_valid])) \
          if anchor_valid.any() else 0.0
    return {**arrays, "ref_chosen": ref_a, "ref_rejected": ref_b,
            "stats": np.asarray(json.dumps(stats))}

  def _start_round(self, r: int, step: int) -> None:
    """Build round ``r``, write it (process 0) before its updates, log its statistics."""
    self.round_data = self.build_round(r, step)
    if jax.process_index() == 0:
      os.makedirs(self.rounds_dir, exist_ok=True)
      path = self._round_path(r)
      tmp = path + ".tmp.npz"
      np.savez(tmp, **self.round_data)
      os.replace(tmp, path)
    self.setup.writer.write_now(self.step_offset + step,
                                json.loads(str(self.round_data["stats"])))
    self.pairs_iter = self._pair_iterator(r, len(self.round_data["weight"]))

  # --- stepping ------------------------------------------------------------------------------
  def step(self, step: int):
    r = step // self.per_round
    if step % self.per_round == 0:
      self._start_round(r, step)
    idx = self.pairs_iter.next_indices()
    arrays = {k: v[idx] for k, v in self.round_data.items() if k != "stats"}
    batch = dpo.PairBatch.create(arrays, arrays["ref_chosen"], arrays["ref_rejected"])
    self.state, metrics = self.update(self.state, batch, self.hp)
    self.done = step + 1
    return metrics, {"round": r}

  def evaluate(self, step: int):
    if self.run.eval.num_examples == 0:
      return None
    return rollouts.evaluate(self.setup, sampling_params(self.setup, self.state.params),
                             jax.random.fold_in(self.base_key, EVAL_KEY), self.scorer)

  # --- schedules -----------------------------------------------------------------------------
  def eval_due(self, step: int) -> bool:
    """After every round and every ``eval.every_steps`` updates."""
    return step % self.per_round == 0 or super().eval_due(step)

  def save_due(self, step: int) -> bool:
    return step % self.per_round == 0 or super().save_due(step)
