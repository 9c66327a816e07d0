"""Offline preference training as a phase: the DPO family on fixed pairs (or KTO examples),
``algo.name="dpo"``, and Bradley–Terry reward-model training, ``algo.name="rm"``.

The host side reads the whole global batch on every process (it runs replicated); the compiled
update and held-out metrics are ``rlx.algorithms.dpo`` / ``rlx.algorithms.rm``. Reference
log-probs are precomputed once and cached (``pref.reference="precompute"``) or computed for every
batch from a frozen copy of the initial policy (``"online"``); see ``rlx.runtime.preference``.

Checkpoints: ``{"train": TrainState, "ref": frozen reference | None}`` and the host keys
``data`` (the pair iterator), ``reference_cache`` (the cached tables' paths, precompute) and
``reward_model`` (the architecture ``rlx.runtime.scorer.load_reward_model`` rebuilds, rm).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from rlx.algorithms import dpo, rm
from rlx.config import Algorithm
from rlx.data import ExampleIterator
from rlx.optim import create_train_state, frozen_copy, make_optimizer
from rlx.runtime import preference, rollouts
from rlx.runtime.phase import EVAL_KEY, Phase
from rlx.runtime.phases.rl import sampling_params


class OfflinePreferencePhase(Phase):
  """``dpo`` / ``rm``: one update per batch of ``algo.batch_size`` pairs; evaluation is the
  held-out preference metrics (``eval/…``; plus ``rollouts.evaluate`` with
  ``pref.eval_generation``), none when there are no held-out examples. For ``rm``,
  :meth:`params` is the reward model's."""

  name = "dpo"

  @classmethod
  def phase_name(cls, run) -> str:
    return preference.PHASES[run.algo.name]

  def __init__(self, setup, params):
    super().__init__(setup)
    run = self.run
    self.num_steps = run.num_steps
    self.is_rm = run.algo.name is Algorithm.RM
    self.spec = (dpo.PrefSpec(loss=dpo.Loss.DPO, micro_batch_size=run.algo.micro_batch_size)
                 if self.is_rm else dpo.PrefSpec.from_config(run))
    self.hp = dpo.PrefHyper.from_config(run.pref, run.optim.learning_rate)
    self.rows = run.algo.batch_size
    train_src, eval_src = preference.preference_sources(run)
    self.batchers = {split: preference.Batcher(setup, src, paired=self.spec.paired,
                                               rows=self.rows)
                     for split, src in (("train", train_src), ("eval", eval_src))}
    self.n_eval = min(run.eval.num_examples, len(eval_src))
    uses_reference = self.spec.uses_reference and not self.is_rm
    self.online = uses_reference and run.pref.reference == "online"
    self.precompute = uses_reference and not self.online
    opt = make_optimizer(run.optim, run.num_steps)
    train_params = self._build_steps(opt, params)
    self.ref_params = frozen_copy(params, run.mesh.reference_dtype) if self.online else None
    # precompute: the initial policy, until its tables are loaded or computed (first batch);
    # a resume drops it (the checkpoint names the cached tables).
    self._initial = params if self.precompute else None
    self.cache_paths: dict[str, str] | None = None
    self.tables: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    self.state = create_train_state(opt, train_params, run.seed, layout=setup.layout)
    # Every process reads the whole global batch (the host side runs replicated).
    self.examples = ExampleIterator(train_src, batch_size=self.rows, seed=run.seed,
                                    shuffle=run.data.shuffle)

  def _build_steps(self, opt, params):
    """The compiled update, held-out metrics and reference log-probs; returns the parameters
    the train state starts from (rm: a reward model with the policy's backbone)."""
    s, layout, run = self.setup, self.setup.layout, self.run
    self.ref_fn = dpo.make_reference_logps(s.graphdef, s.model_config, self.spec.chunk_size,
                                           layout)
    if not self.is_rm:
      self.update = dpo.make_preference_update(s.graphdef, s.model_config, opt, self.spec,
                                               layout=layout)
      self.metrics_fn = dpo.make_preference_metrics(s.graphdef, s.model_config, self.spec,
                                                    layout=layout)
      return params
    place = {} if layout is None else {"mesh": layout.mesh, "rules": layout.rules}
    graphdef, rm_params = rm.init_reward_model(s.model_config, params, run.seed, **place)
    self.update = rm.make_rm_update(graphdef, opt, micro_batch_size=run.algo.micro_batch_size,
                                    layout=layout)
    self.metrics_fn = rm.make_rm_metrics(graphdef, layout=layout)
    return rm_params

  # --- checkpoint ----------------------------------------------------------------------------
  def checkpoint_items(self):
    return {"train": self.state, "ref": self.ref_params}

  def host_state(self) -> dict[str, Any]:
    host: dict[str, Any] = {"data": self.examples.get_state()}
    if self.precompute:
      host["reference_cache"] = self.cache_paths
    if self.is_rm:
      host["reward_model"] = {"model_config": rm.model_config_to_json(self.setup.model_config),
                              "pad_id": self.setup.tokenizer.pad_id}
      if self.setup.model_config.lora is not None:  # adapters only: how to rebuild the base
        run = self.run
        path = os.path.abspath(run.model.path) if run.model.path else ""
        host["reward_model"]["base"] = {"path": path, "seed": run.seed,
                                        "init_from": self.setup.base_init_from,
                                        "init_step": self.setup.base_init_step}
    return host

  def restore(self, items, host):
    self.state, self.ref_params = items["train"], items["ref"]
    self.examples.set_state(host["data"])
    if self.precompute:
      self._initial = None  # not the run's reference (a resume starts from the init params)
      self.cache_paths = host.get("reference_cache")
      if self.cache_paths is None:
        raise ValueError("the checkpoint does not name the run's precomputed reference "
                         "log-probs (host item 'reference_cache'); restart the run in a fresh "
                         "workdir")

  # --- reference log-probs -------------------------------------------------------------------
  def _reference_tables(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (ℓ_a, ℓ_b)}`` of every training and held-out item, computed once with the
    initial policy (or loaded from the cache)."""
    if self.tables is not None:
      return self.tables
    ref_params = None
    if self._initial is not None:
      ref_params = frozen_copy(self._initial, self.run.mesh.reference_dtype)
      sizes = {"train": len(self.batchers["train"].source)}
      if self.n_eval:
        sizes["eval"] = self.n_eval
      self.cache_paths = preference.reference_cache_paths(self.run, ref_params,
                                                          self.setup.workdir, sizes)
    self.tables = {split: self._table(split, path, ref_params)
                   for split, path in self.cache_paths.items()}
    self._initial = None  # the reference parameters are not kept
    return self.tables

  def _table(self, split: str, path: str, ref_params) -> tuple[np.ndarray, np.ndarray]:
    if ref_params is None and not os.path.exists(path):
      raise FileNotFoundError(
          f"the run resumes with the precomputed reference log-probs {path}, which are gone; "
          "restore the file or restart the run in a fresh workdir")
    n = None if split == "train" else self.n_eval
    return preference.cached_reference(path, lambda: preference.precompute_reference(
        self.ref_fn, ref_params, self.batchers[split], self.spec, n))

  def _batch(self, split: str, idx: np.ndarray):
    """The batch of items ``idx`` of ``split`` with its reference log-probs."""
    arrays = self.batchers[split].arrays(idx)
    if self.precompute:
      a, b = self._reference_tables()[split]
      pad = np.zeros(self.rows - len(idx), np.float32)
      return preference.batch_struct(self.spec, arrays, np.concatenate([a[idx], pad]),
                                     np.concatenate([b[idx], pad]))
    batch = preference.batch_struct(self.spec, arrays)
    if self.online:
      a, b = self.ref_fn(self.ref_params, batch)
      batch = batch.replace(**dict(zip(preference.ref_fields(self.spec), (a, b))))
    return batch

  # --- stepping ------------------------------------------------------------------------------
  def step(self, step: int):
    batch = self._batch("train", self.examples.next_indices())
    self.state, metrics = self.update(self.state, batch, self.hp)
    return metrics, {}

  def evaluate(self, step: int):
    """Held-out preference metrics over the first ``eval.num_examples`` items (None if none)."""
    if not self.n_eval:
      return None
    sums: dict[str, float] = {}
    for lo in range(0, self.n_eval, self.rows):
      idx = np.arange(lo, min(lo + self.rows, self.n_eval))
      out = jax.device_get(self.metrics_fn(self.state.params, self._batch("eval", idx), self.hp))
      for k, v in out.items():
        sums[k] = sums.get(k, 0.0) + float(v)
    result = {f"eval/{k}": float(v)
              for k, v in dpo.finalize_metrics(sums, self.spec.paired).items()}
    if self.run.pref.eval_generation:  # held-out prompts of the task, sampled and verified
      result.update(rollouts.evaluate(
          self.setup, sampling_params(self.setup, self.state.params),
          jax.random.fold_in(jax.random.PRNGKey(self.run.seed), EVAL_KEY)))
    return result
