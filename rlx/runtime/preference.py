"""The preference phases of a run: offline DPO-family training, reward-model training and
iterative on-policy DPO rounds (``algo.name`` = ``dpo``, ``rm``, ``iterative_dpo``).

Each is a phase like SFT and RL (``rlx.runtime.run``): it may follow an SFT warm start, counts
global steps from ``step_offset``, checkpoints ``{"train": TrainState, ...}`` with a host item
naming the phase, and resumes exactly after SIGTERM. Short Python with no math in it: the
compiled pieces are ``rlx.algorithms.dpo`` and ``rlx.algorithms.rm``.

Reference log-probs (reference-based losses) are either

- ``pref.reference="precompute"``: computed once with the initial policy over the training and
  held-out pairs and cached as ``.npz`` files (``pref.cache_dir``, default ``WORKDIR/reference``)
  named by a hash of the data and of the reference parameters, so a rerun or a run over the same
  data with the same initial model reuses them; the reference parameters are then dropped; or
- ``pref.reference="online"``: computed for every batch from a frozen copy of the initial policy
  (checkpointed with the run).

Both call the same compiled function on the same padded shapes, so they give the same training
trajectory. Iterative DPO precomputes per round (the round's pairs are its dataset).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as rlx_config
from rlx.algorithms import dpo, rm
from rlx.data import ExampleIterator
from rlx.data import preference as pref_data
from rlx.runtime.scorer import ModelLoader
from rlx.optim import create_train_state, frozen_copy, make_optimizer

Algorithm = rlx_config.Algorithm
PHASES = {Algorithm.DPO: "dpo", Algorithm.RM: "rm", Algorithm.ITERATIVE_DPO: "iterative_dpo"}
ROUND_DATA_SEED_OFFSET = 1000  # the pair order of round r is shuffled with seed + 1000 + r
PROMPT_SEED_OFFSET = 1  # the round prompt stream is shuffled apart from the warm start's
JUDGE_PROMPT_OVERHEAD = 64  # tokens of a judge template and reference answer beyond Q and A

# (metric key, panel title) of plots/preference.png.
PREFERENCE_CURVES = (
    ("loss", "preference loss (train batch)"),
    ("rewards/accuracy", "preference accuracy (train batch)"),
    ("rewards/margin", "reward margin (train batch)"),
    ("eval/rewards/accuracy", "held-out preference accuracy"),
    ("eval/rewards/margin", "held-out reward margin"),
    ("eval/logps/chosen", "held-out log p(chosen)"),
    ("eval/logps/rejected", "held-out log p(rejected)"),
    ("round/reward_gap", "round: chosen − rejected reward"),
    ("round/chosen_reward", "round: chosen reward"),
    ("round/rejected_reward", "round: rejected reward"),
    ("round/pairs", "round: pairs"),
    ("eval/greedy_accuracy", "held-out accuracy (greedy)"),
)


def run_preference(setup, params, resume: dict | None, *, step_offset: int = 0):
  """The run's preference phase; returns ``(params, preempted, summary)`` like ``run_rl``.

  ``params`` is the initial policy (random, loaded, or the warm start's result). For ``rm`` the
  returned params are the reward model's.
  """
  name = setup.run.algo.name
  if name is Algorithm.ITERATIVE_DPO:
    out = run_iterative_dpo(setup, params, resume, step_offset=step_offset)
  else:
    out = run_offline(setup, params, resume, step_offset=step_offset)
  if jax.process_index() == 0:
    setup.writer.flush()
    out[2]["preference_plot"] = plot_preference(setup.workdir)
  return out


def plot_preference(workdir: str) -> str | None:
  """``WORKDIR/plots/preference.png`` from the run's metrics (None when it has none of them)."""
  from rlx.runtime.plots import plot_learning_curves
  return plot_learning_curves(os.path.join(workdir, "metrics.jsonl"),
                              os.path.join(workdir, "plots", "preference.png"),
                              curves=PREFERENCE_CURVES)


# ---------------------------------------------------------------------------------------------
# Data.


def preference_sources(run: rlx_config.RunConfig):
  """``(train, held-out)`` sources of pairs, or of KTO examples for ``pref.loss="kto"``.

  ``data.source="task"``: synthetic pairs over ``data.task`` (the held-out ones from the seed
  ``seed + EVAL_SEED_OFFSET``, as the held-out prompts of RL runs). ``"jsonl"``: ``data.path``
  (and ``data.eval_path``, or the last ``data.eval_size`` records held out).
  """
  from rlx.runtime.run import EVAL_SEED_OFFSET, file_splits
  d, p = run.data, run.pref
  kto = p.loss is rlx_config.core.PreferenceLoss.KTO and run.algo.name is Algorithm.DPO
  if d.source == "task":
    difficulty = d.difficulty if len(d.difficulty) > 1 else d.difficulty[0]
    make = lambda size, seed: pref_data.SyntheticPreferenceSource(
        d.task, size=size, seed=seed, difficulty=difficulty, corruption=p.corruption,
        margins=p.margins)
    train, held = make(d.train_size, run.seed), make(max(d.eval_size, 1),
                                                     run.seed + EVAL_SEED_OFFSET)
    return (pref_data.UnpairedView(train), pref_data.UnpairedView(held)) if kto else (train, held)
  if kto:
    make = lambda path: pref_data.UnpairedJsonlSource(
        path, prompt_key=d.prompt_key, completion_key=p.completion_key, label_key=p.label_key)
  else:
    make = lambda path: pref_data.PreferenceJsonlSource(
        path, prompt_key=d.prompt_key, chosen_key=p.chosen_key, rejected_key=p.rejected_key,
        margin_key=p.margin_key)
  return file_splits(d, make)


class Batcher:
  """Source items → padded host arrays of ``rows`` rows (pairs, or KTO examples)."""

  def __init__(self, setup, source, *, paired: bool, rows: int):
    run = setup.run
    self.setup, self.source, self.paired, self.rows = setup, source, paired, rows
    self.kwargs = dict(formatter=setup.formatter, max_len=run.data.max_seq_len,
                       length_buckets=run.pref.length_buckets or None)

  def arrays(self, indices) -> dict[str, np.ndarray]:
    items = [self.source[int(i)] for i in indices]
    if self.paired:
      return pref_data.make_pair_batch(items, self.setup.tokenizer, rows=self.rows, **self.kwargs)
    # KTO's mismatched completion of item i is item (i + N/2) mod N's: fixed per item, so its
    # reference log-prob can be precomputed (and N/2 apart keeps the halves of a pair apart).
    n = len(self.source)
    partners = [self.source[(int(i) + max(n // 2, 1)) % n] for i in indices]
    return pref_data.make_unpaired_batch(items, self.setup.tokenizer, rows=self.rows,
                                         mismatched=partners, **self.kwargs)

  def chunks(self, n: int | None = None):
    """``(indices, arrays)`` over the first ``n`` items (all by default), in order."""
    n = len(self.source) if n is None else n
    for lo in range(0, n, self.rows):
      idx = np.arange(lo, min(lo + self.rows, n))
      yield idx, self.arrays(idx)


def _struct(spec: dpo.PrefSpec, arrays, ref_a=None, ref_b=None):
  return dpo.batch_type(spec).create(arrays, ref_a, ref_b)


# ---------------------------------------------------------------------------------------------
# Reference log-probs.


def params_fingerprint(params) -> str:
  """A hash of a parameter tree's values (device-side reductions, no host copy of the weights):
  per leaf ``Σ x`` and ``Σ x·cos(i)`` over the flat index ``i``."""
  @jax.jit
  def stats(tree):
    def one(x):
      x = x.astype(jnp.float32).reshape(-1)
      return jnp.stack([jnp.sum(x), jnp.sum(x * jnp.cos(jnp.arange(x.size, dtype=jnp.float32)))])
    return jnp.stack([one(x) for x in jax.tree.leaves(tree)])
  values = np.asarray(jax.device_get(stats(params)))
  shapes = [tuple(x.shape) for x in jax.tree.leaves(params)]
  return hashlib.blake2b(values.tobytes() + repr(shapes).encode(), digest_size=16).hexdigest()


def data_fingerprint(run: rlx_config.RunConfig, split: str, n: int) -> dict[str, Any]:
  """What determines the padded token rows of a split's first ``n`` items (the cache key's data
  half)."""
  d, p = run.data, run.pref
  key = {"split": split, "n": n, "source": d.source, "tokenizer": d.tokenizer,
         "format": d.prompt_format.value, "max_seq_len": d.max_seq_len,
         "buckets": list(p.length_buckets), "rows": run.algo.batch_size,
         "kto": p.loss.value == "kto",
         # the parameter fingerprint does not see the precision the log-probs are computed at
         "compute_dtype": run.model.dtype, "logprob_chunk": run.model.logprob_chunk}
  if d.source == "task":
    key.update(task=d.task, difficulty=list(d.difficulty), seed=run.seed,
               size=d.train_size if split == "train" else d.eval_size,
               corruption=p.corruption, margins=p.margins)
  else:
    for name in ("path", "eval_path"):
      path = getattr(d, name)
      if path:
        with open(path, "rb") as f:
          key[name] = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
    key.update(eval_size=d.eval_size, prompt_key=d.prompt_key, chosen=p.chosen_key,
               rejected=p.rejected_key, margin=p.margin_key, completion=p.completion_key,
               label=p.label_key)
  return key


def precompute_reference(ref_fn, ref_params, batcher: Batcher, spec, n: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
  """Reference log-probs of the first ``n`` items of ``batcher``'s source, in order:
  ``(ℓ_a [n], ℓ_b [n])`` (chosen/rejected, or example/mismatched for KTO)."""
  out_a, out_b = [], []
  for idx, arrays in batcher.chunks(n):
    batch = _struct(spec, arrays)
    a, b = jax.device_get(ref_fn(ref_params, batch))
    out_a.append(np.asarray(a)[:len(idx)])
    out_b.append(np.asarray(b)[:len(idx)])
  return np.concatenate(out_a), np.concatenate(out_b)


def cached_reference(path: str, compute) -> tuple[np.ndarray, np.ndarray]:
  """Load ``path`` (``.npz`` with ``a``, ``b``) or compute, write (process 0) and return it."""
  if os.path.exists(path):
    with np.load(path) as z:
      return z["a"], z["b"]
  a, b = compute()
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, a=a, b=b)
    os.replace(tmp, path)
  return a, b


# ---------------------------------------------------------------------------------------------
# Offline phases: DPO family and reward model.


def run_offline(setup, params, resume: dict | None, *, step_offset: int = 0):
  """Offline preference optimisation (``dpo``) or reward-model training (``rm``)."""
  run = setup.run
  is_rm = run.algo.name is Algorithm.RM
  phase = PHASES[run.algo.name]
  spec = dpo.PrefSpec.from_config(run)
  if is_rm:
    spec = dpo.PrefSpec(loss=dpo.Loss.DPO, micro_batch_size=run.algo.micro_batch_size)
  hp = dpo.PrefHyper.from_config(run.pref, run.optim.learning_rate)
  train_src, eval_src = preference_sources(run)
  rows = run.algo.batch_size
  train_batcher = Batcher(setup, train_src, paired=spec.paired, rows=rows)
  eval_batcher = Batcher(setup, eval_src, paired=spec.paired, rows=rows)
  n_eval = min(run.eval.num_examples, len(eval_src))
  opt = make_optimizer(run.optim, run.num_steps)
  layout = setup.layout
  place = {} if layout is None else {"mesh": layout.mesh, "rules": layout.rules}

  host_extra: dict[str, Any] = {}
  ref_params = None
  if is_rm:
    graphdef, train_params = rm.init_reward_model(setup.model_config, params, run.seed, **place)
    update = rm.make_rm_update(graphdef, opt, micro_batch_size=run.algo.micro_batch_size,
                               layout=layout)
    metrics_fn = rm.make_rm_metrics(graphdef, layout=layout)
    host_extra["reward_model"] = {"model_config": rm.model_config_to_json(setup.model_config),
                                  "pad_id": setup.tokenizer.pad_id}
  else:
    train_params = params
    update = dpo.make_preference_update(setup.graphdef, setup.model_config, opt, spec,
                                        layout=layout)
    metrics_fn = dpo.make_preference_metrics(setup.graphdef, setup.model_config, spec,
                                             layout=layout)
    if spec.uses_reference and (run.pref.reference == "online" or resume is None):
      ref_params = frozen_copy(params, run.mesh.reference_dtype)
  state = create_train_state(opt, train_params, run.seed, layout=layout)
  # Every process reads the whole global batch (the host side runs replicated).
  examples = ExampleIterator(train_src, batch_size=rows, seed=run.seed, shuffle=run.data.shuffle)
  evals: list[dict] = []
  ref_fn = dpo.make_reference_logps(setup.graphdef, setup.model_config, spec.chunk_size, layout)
  online = spec.uses_reference and not is_rm and run.pref.reference == "online"
  if resume is not None:
    like = {"train": state, "ref": ref_params if online else None}
    restored, host = setup.checkpointer.restore(resume["step"], like)
    state, ref_params = restored["train"], restored["ref"]
    examples.set_state(host["data"])
    evals = host.get("evals", [])
    host_extra["reference_cache"] = host.get("reference_cache")

  # Reference log-probs of every training and held-out item, computed once (cached).
  tables = None
  if spec.uses_reference and not is_rm and not online:
    paths = host_extra.get("reference_cache")
    if paths is None:
      fp = params_fingerprint(ref_params)
      cache_dir = run.pref.cache_dir or os.path.join(setup.workdir, "reference")
      paths = {}
      for split, n in (("train", len(train_src)), ("eval", n_eval)):
        key = json.dumps({"params": fp, **data_fingerprint(run, split, n)}, sort_keys=True)
        digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
        paths[split] = os.path.join(cache_dir, f"{split}-{digest}.npz")
    host_extra["reference_cache"] = paths
    tables = {}
    for split, batcher, n in (("train", train_batcher, None), ("eval", eval_batcher, n_eval)):
      if ref_params is None and not os.path.exists(paths[split]):
        raise FileNotFoundError(
            f"the run resumes with the precomputed reference log-probs {paths[split]}, which are "
            "gone; restore the file or restart the run in a fresh workdir")
      tables[split] = cached_reference(
          paths[split], lambda: precompute_reference(ref_fn, ref_params, batcher, spec, n))
    ref_params = None  # not needed any more

  def batch_of(batcher, idx, split):
    arrays = batcher.arrays(idx)
    if tables is not None:
      a, b = tables[split]
      pad = rows - len(idx)
      batch = _struct(spec, arrays, np.concatenate([a[idx], np.zeros(pad, np.float32)]),
                      np.concatenate([b[idx], np.zeros(pad, np.float32)]))
    else:
      batch = _struct(spec, arrays)
    if online:
      a, b = ref_fn(ref_params, batch)
      batch = batch.replace(**dict(zip(_ref_fields(spec), (a, b))))
    return batch

  def evaluate(step):
    sums: dict[str, float] = {}
    for lo in range(0, n_eval, rows):
      idx = np.arange(lo, min(lo + rows, n_eval))
      out = jax.device_get(metrics_fn(state.params, batch_of(eval_batcher, idx, "eval"), hp))
      for k, v in out.items():
        sums[k] = sums.get(k, 0.0) + float(v)
    result = {f"eval/{k}": float(v) for k, v in dpo.finalize_metrics(sums, spec.paired).items()}
    if run.pref.eval_generation:  # held-out prompts of the task, sampled and verified
      from rlx.runtime import rollouts
      result.update(rollouts.evaluate(setup, state.params,
                                      jax.random.fold_in(jax.random.PRNGKey(run.seed), 2**31 - 1)))
    evals.append({"step": step, **{k: v for k, v in result.items() if not isinstance(v, str)}})
    setup.writer.write_now(step_offset + step, result)

  step = int(state.step)

  def save(force=False):
    setup.checkpointer.save(
        step_offset + step, {"train": state, "ref": ref_params if online else None},
        {"phase": phase, "phase_step": step, "data": examples.get_state(), "evals": evals,
         **host_extra}, force=force)

  if step == 0 and n_eval:
    evaluate(0)
  while step < run.num_steps:
    idx = examples.next_indices()
    state, metrics = update(state, batch_of(train_batcher, idx, "train"), hp)
    step += 1
    setup.writer.push(step_offset + step, metrics, {"phase": phase})
    if setup.guard.stop_requested():
      save(force=True)
      return state.params, True, {"evals": evals}
    if run.eval.every_steps and step % run.eval.every_steps == 0 and step < run.num_steps \
        and n_eval:
      evaluate(step)
    if step % run.checkpoint.every_steps == 0 or step == run.num_steps:
      if step == run.num_steps:
        setup.writer.flush()
        if n_eval:
          evaluate(step)
      save()
  setup.writer.flush()
  return state.params, False, {"evals": evals}


def _ref_fields(spec: dpo.PrefSpec) -> tuple[str, str]:
  return ("ref_chosen", "ref_rejected") if spec.paired else ("ref", "ref_kl")


# ---------------------------------------------------------------------------------------------
# Iterative on-policy DPO.


def best_worst_pairs(scores: np.ndarray, valid: np.ndarray, *, anchor_scores=None,
                     anchor_valid=None, min_gap: float = 0.0) -> list[tuple[int, int, int, float,
                                                                             float]]:
  """Pairs of one round by the best-vs-worst rule.

  Args:
    scores, valid: ``[P,G]`` rewards of the current policy's samples and which may be used.
    anchor_scores, anchor_valid: ``[P,G]`` of the initial policy's samples; when given the
      rejected sample is the worst of these (rejection anchored to the initial model).
    min_gap: a prompt yields a pair only if ``r_chosen − r_rejected > min_gap``.

  Returns:
    ``(prompt p, chosen sample g, rejected sample g', r_chosen, r_rejected)`` per pair, the
    rejected index into the anchor samples when anchored. Ties go to the first sample.
  """
  pairs = []
  rej_scores = scores if anchor_scores is None else anchor_scores
  rej_valid = valid if anchor_valid is None else anchor_valid
  for p in range(scores.shape[0]):
    if not valid[p].any() or not rej_valid[p].any():
      continue
    c = int(np.argmax(np.where(valid[p], scores[p], -np.inf)))
    r = int(np.argmin(np.where(rej_valid[p], rej_scores[p], np.inf)))
    rc, rr = float(scores[p, c]), float(rej_scores[p, r])
    if rc - rr > min_gap:
      pairs.append((p, c, r, rc, rr))
  return pairs


class PolicyJudge(ModelLoader):
  """``scorer.generate`` for the ``llm_judge`` reward: the policy judges its own samples (greedy
  completions of the judge prompts, with the parameters bound by :meth:`bind`), as in
  self-rewarding language models. Every other scorer method is ``inner``'s (a
  ``rlx.runtime.scorer.PolicyScorer``), when there is one."""

  def __init__(self, setup, inner=None):
    self.setup, self.inner, self.params = setup, inner, None

  def bind(self, params) -> "PolicyJudge":
    self.params = params
    if self.inner is not None:
      self.inner.bind(params)
    return self

  def __getattr__(self, name):
    inner = self.__dict__.get("inner")
    if inner is None:
      raise AttributeError(name)
    return getattr(inner, name)

  def generate(self, prompts) -> list[str]:
    from rlx.data import Example
    from rlx.runtime import rollouts
    if self.params is None:
      raise ValueError("PolicyJudge: call bind(params) first")
    # A judge prompt holds the template, the question, the answer and a whole completion:
    # beyond data.max_prompt_len, so it gets its own buckets (two programs at most).
    run = self.setup.run
    wide = run.data.max_prompt_len + run.sampling.max_new_tokens + JUDGE_PROMPT_OVERHEAD
    data = rollouts.sample_groups(self.setup, self.params, [Example(prompt=p) for p in prompts],
                                  jax.random.PRNGKey(0), n=1, greedy=True,
                                  prompt_buckets=(wide, 2 * wide))
    return rollouts.decode(self.setup.tokenizer, data["completion_tokens"], data["lengths"])


def _ids(tokens: np.ndarray, mask: np.ndarray, row: int) -> list[int]:
  return tokens[row][np.asarray(mask[row]) > 0].tolist()


def run_iterative_dpo(setup, params, resume: dict | None, *, step_offset: int = 0):
  """Rounds of: sample ``G`` completions for ``pref.round_prompts`` prompts with the current
  policy, score them with the run's reward (``rewards.name``: task verifier, reward model,
  self-certainty, ``llm_judge`` with the policy as its own judge (:class:`PolicyJudge`) ...),
  pair best vs worst (``pref.pair_rule``), compute the round
  reference's log-probs once, and train ``num_steps / pref.rounds`` DPO updates on the pairs.

  Each round's pairs are written to ``WORKDIR/rounds/round_RRR.npz`` before its updates, so a run
  stopped mid-round resumes on the same pairs; the host checkpoint item holds the prompt and pair
  iterators. Round statistics go to the metrics as ``round/*`` at the round's first step.
  Evaluation runs before the first round, after every round and every ``eval.every_steps``
  updates (0: after rounds only).
  """
  from rlx.runtime import rollouts
  from rlx.runtime.scorer import PolicyScorer
  run, pref, algo = setup.run, setup.run.pref, setup.run.algo
  per_round = run.num_steps // pref.rounds
  spec = dpo.PrefSpec.from_config(run)
  hp = dpo.PrefHyper.from_config(pref, run.optim.learning_rate)
  opt = make_optimizer(run.optim, run.num_steps)
  chunk = run.model.logprob_chunk
  g = algo.group_size
  rows = algo.batch_size
  width = run.data.max_prompt_len + run.sampling.max_new_tokens
  needs_scorer = bool({run.rewards.name, run.eval.reward} & rollouts.SCORER_REWARDS)
  anchored = pref.pair_rule == "anchored"
  keep_initial = needs_scorer or anchored or (spec.uses_reference
                                              and pref.round_reference == "initial")
  initial = frozen_copy(params, run.mesh.reference_dtype) if keep_initial else None
  state = create_train_state(opt, params, run.seed, layout=setup.layout)
  prompts = ExampleIterator(setup.train_source, batch_size=pref.round_prompts,
                            seed=run.seed + PROMPT_SEED_OFFSET, shuffle=run.data.shuffle)
  evals: list[dict] = []
  host: dict = {}
  if resume is not None:
    restored, host = setup.checkpointer.restore(resume["step"],
                                                {"train": state, "initial": initial})
    state, initial = restored["train"], restored["initial"]
    prompts.set_state(host["prompts"])
    evals = host.get("evals", [])
  scorer = PolicyScorer(setup.graphdef, setup.model_config, setup.tokenizer, initial,
                        chunk) if needs_scorer else None
  if run.rewards.name == "llm_judge":  # the policy judges its own samples
    scorer = PolicyJudge(setup, scorer)
  reward_fn = rollouts.RewardFn(run, scorer)
  if host.get("reward") is not None:
    reward_fn.load_state_dict(host["reward"])
  update = dpo.make_preference_update(setup.graphdef, setup.model_config, opt, spec,
                                      layout=setup.layout)
  ref_fn = dpo.make_reference_logps(setup.graphdef, setup.model_config, chunk, setup.layout)
  base_key = jax.random.PRNGKey(run.seed)
  rounds_dir = os.path.join(setup.workdir, "rounds")
  step = int(state.step)
  pad_id = setup.tokenizer.pad_id

  def do_eval():
    if run.eval.num_examples == 0:
      return
    result = rollouts.evaluate(setup, state.params, jax.random.fold_in(base_key, 2**31 - 1),
                               scorer)
    evals.append({"step": step, **{k: v for k, v in result.items() if not isinstance(v, str)}})
    setup.writer.write_now(step_offset + step, result)

  def score(examples, data, key_step):
    texts = rollouts.decode(setup.tokenizer, data["completion_tokens"], data["lengths"])
    rows_examples = [ex for ex in examples for _ in range(g)]
    scores, sample_mask, metrics = reward_fn(rows_examples, texts, data, key_step)
    return scores.reshape(-1, g), (sample_mask > 0).reshape(-1, g), metrics, texts

  def build_round(r: int) -> dict[str, np.ndarray]:
    """Sample, score, pair; the pairs' arrays with their reference log-probs and statistics."""
    examples = next(prompts)
    key = jax.random.fold_in(base_key, r)
    if scorer is not None:
      scorer.bind(state.params)
    data = rollouts.sample_groups(setup, state.params, examples, key, n=g)
    scores, valid, metrics, texts = score(examples, data, step_offset + step)
    anchor = anchor_scores = anchor_valid = None
    if anchored:
      anchor = rollouts.sample_groups(setup, initial, examples, jax.random.fold_in(key, 1), n=g)
      anchor_scores, anchor_valid, _, _ = score(examples, anchor, step_offset + step)
    pairs = best_worst_pairs(scores, valid, anchor_scores=anchor_scores,
                             anchor_valid=anchor_valid, min_gap=pref.min_gap)
    rej = data if anchor is None else anchor
    prompt_ids = [_ids(data["prompt_tokens"], data["prompt_mask"], p * g) for p, *_ in pairs]
    chosen = [_ids(data["completion_tokens"], data["completion_mask"], p * g + c)
              for p, c, *_ in pairs]
    rejected = [_ids(rej["completion_tokens"], rej["completion_mask"], p * g + j)
                for p, _, j, *_ in pairs]
    if not pairs:  # one dummy row of weight 0: the round's updates leave the params unchanged
      prompt_ids, chosen, rejected = [[pad_id]], [[pad_id]], [[pad_id]]
    arrays = pref_data.pair_arrays(prompt_ids, chosen, rejected, pad_id=pad_id, max_len=width)
    if not pairs:
      arrays["weight"][:] = 0
    n = len(prompt_ids)
    ref_a = ref_b = np.zeros((n,), np.float32)
    if spec.uses_reference:
      ref_params = state.params if pref.round_reference == "round" else initial
      outs = [[], []]
      for lo in range(0, n, rows):
        sub = {k: v[lo:lo + rows] for k, v in arrays.items()}
        sub = pref_data.pad_batch_rows(sub, rows)
        a, b = jax.device_get(ref_fn(ref_params, dpo.PairBatch.create(sub)))
        m = min(rows, n - lo)
        outs[0].append(np.asarray(a)[:m])
        outs[1].append(np.asarray(b)[:m])
      ref_a, ref_b = np.concatenate(outs[0]), np.concatenate(outs[1])
    rc = np.array([x[3] for x in pairs], np.float32)
    rr = np.array([x[4] for x in pairs], np.float32)
    stats = {"round/index": r, "round/pairs": len(pairs),
             "round/pair_fraction": len(pairs) / max(len(examples), 1),
             "round/reward_mean": float(np.mean(scores[valid])) if valid.any() else 0.0,
             "round/chosen_reward": float(rc.mean()) if len(pairs) else 0.0,
             "round/rejected_reward": float(rr.mean()) if len(pairs) else 0.0,
             "round/reward_gap": float((rc - rr).mean()) if len(pairs) else 0.0,
             "round/rollout_length": float(np.mean(data["lengths"])),
             "round/sample": texts[0]}
    if anchored:
      stats["round/anchor_reward_mean"] = float(np.mean(anchor_scores[anchor_valid])) \
          if anchor_valid.any() else 0.0
    return {**arrays, "ref_chosen": ref_a, "ref_rejected": ref_b,
            "stats": np.asarray(json.dumps(stats))}

  def round_path(r):
    return os.path.join(rounds_dir, f"round_{r:03d}.npz")

  def load_round(r):
    with np.load(round_path(r)) as z:
      return {k: z[k] for k in z.files}

  def pair_iterator(r, n):
    return ExampleIterator(range(n), batch_size=rows, seed=run.seed + ROUND_DATA_SEED_OFFSET + r,
                           shuffle=run.data.shuffle)

  r = step // per_round
  pairs_iter, round_data = None, None
  if step < run.num_steps and step % per_round:  # resumed mid-round: same pairs, same order
    round_data = load_round(r)
    pairs_iter = pair_iterator(r, len(round_data["weight"]))
    pairs_iter.set_state(host["pairs"])

  def save(force=False):
    setup.checkpointer.save(
        step_offset + step, {"train": state, "initial": initial},
        {"phase": "iterative_dpo", "phase_step": step, "round": step // per_round,
         "prompts": prompts.get_state(),
         "pairs": None if pairs_iter is None else pairs_iter.get_state(), "evals": evals,
         "reward": reward_fn.state_dict()}, force=force)

  if step == 0:
    do_eval()
  while step < run.num_steps:
    r = step // per_round
    if step % per_round == 0:
      round_data = build_round(r)
      if jax.process_index() == 0:
        os.makedirs(rounds_dir, exist_ok=True)
        tmp = round_path(r) + ".tmp.npz"
        np.savez(tmp, **round_data)
        os.replace(tmp, round_path(r))
      stats = json.loads(str(round_data["stats"]))
      setup.writer.write_now(step_offset + step, stats)
      pairs_iter = pair_iterator(r, len(round_data["weight"]))
    idx = pairs_iter.next_indices()
    arrays = {k: v[idx] for k, v in round_data.items() if k != "stats"}
    batch = dpo.PairBatch.create(arrays, arrays["ref_chosen"], arrays["ref_rejected"])
    state, metrics = update(state, batch, hp)
    step += 1
    setup.writer.push(step_offset + step, metrics, {"phase": "iterative_dpo", "round": r})
    if setup.guard.stop_requested():
      save(force=True)
      return state.params, True, {"evals": evals}
    round_end = step % per_round == 0
    if round_end or (run.eval.every_steps and step % run.eval.every_steps == 0):
      setup.writer.flush()
      do_eval()
    if step % run.checkpoint.every_steps == 0 or round_end:
      save()
  setup.writer.flush()
  return state.params, False, {"evals": evals}
