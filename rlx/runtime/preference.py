"""The library of the preference phases (``algo.name`` = ``dpo``, ``rm``, ``iterative_dpo``):
pair / KTO-example sources and batching, reference log-probs and their cache, best-vs-worst
pairing and the policy-as-judge scorer. The phases themselves are
``rlx.runtime.phases.offline.OfflinePreferencePhase`` (``dpo``, ``rm``) and
``rlx.runtime.phases.iterative_dpo.IterativeDPOPhase``, run by ``rlx.runtime.phase.run_phase``;
the compiled pieces are ``rlx.algorithms.dpo`` and ``rlx.algorithms.rm``.

Reference log-probs (reference-based losses) are either

- ``pref.reference="precompute"``: computed once with the initial policy over the training and
  held-out pairs and cached as ``.npz`` files (``pref.cache_dir``, default ``WORKDIR/reference``)
  named by a hash of the data and of the reference parameters (:func:`reference_cache_paths`),
  so a rerun or a run over the same data with the same initial model reuses them; the reference
  parameters are then dropped; or
- ``pref.reference="online"``: computed for every batch from a frozen copy of the initial policy
  (checkpointed with the run).

Both call the same compiled function on the same padded shapes, so they give the same training
trajectory. Iterative DPO computes them per round (the round's pairs are its dataset).
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
from rlx.algorithms import dpo
from rlx.data import Example
from rlx.data import preference as pref_data
from rlx.runtime import rollouts
# Imported as a module: ``run`` drives the phases that use this library (``phase_plan``), so
# its names are read at call time, when both modules are complete.
from rlx.runtime.sources import EVAL_SEED_OFFSET, file_splits
from rlx.runtime.plots import plot_learning_curves
from rlx.runtime.scorer import ModelLoader

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


def plot_preference(workdir: str) -> str | None:
  """``WORKDIR/plots/preference.png`` from the run's metrics (None when it has none of them)."""
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


def batch_struct(spec: dpo.PrefSpec, arrays, ref_a=None, ref_b=None):
  """The compiled functions' batch (``PairBatch``, or ``UnpairedBatch`` for KTO) of host
  ``arrays``, with reference log-probs ``ref_a``, ``ref_b`` (zeros when None)."""
  return dpo.batch_type(spec).create(arrays, ref_a, ref_b)


def ref_fields(spec: dpo.PrefSpec) -> tuple[str, str]:
  """The batch fields of the reference log-probs ``(ℓ_a, ℓ_b)``."""
  return ("ref_chosen", "ref_rejected") if spec.paired else ("ref", "ref_kl")


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
    batch = batch_struct(spec, arrays)
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


def reference_cache_paths(run: rlx_config.RunConfig, ref_params, workdir: str,
                          sizes: dict[str, int]) -> dict[str, str]:
  """``{split: .npz path}`` of the cached reference log-probs of each split's first
  ``sizes[split]`` items: ``pref.cache_dir`` (default ``WORKDIR/reference``) / ``SPLIT-HASH.npz``,
  the hash over :func:`params_fingerprint` of ``ref_params`` and :func:`data_fingerprint`."""
  fp = params_fingerprint(ref_params)
  if run.lora.enabled:  # the adapters' scale is part of the reference model
    fp = f"{fp}/lora-scale={run.lora.spec().scale!r}"
  cache_dir = run.pref.cache_dir or os.path.join(workdir, "reference")
  paths = {}
  for split, n in sizes.items():
    key = json.dumps({"params": fp, **data_fingerprint(run, split, n)}, sort_keys=True)
    digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    paths[split] = os.path.join(cache_dir, f"{split}-{digest}.npz")
  return paths


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

  def __init__(self, setup, inner=None, place=None):
    """``place``: parameters → the parameters the sampler takes (the run's sampling layout,
    ``rlx.runtime.phases.rl.sampling_params``); None samples with the bound ones as they are."""
    self.setup, self.inner, self.place, self.params = setup, inner, place, None
    self._sampling = None

  def bind(self, params) -> "PolicyJudge":
    self.params, self._sampling = params, None
    if self.inner is not None:
      self.inner.bind(params)
    return self

  def __getattr__(self, name):
    inner = self.__dict__.get("inner")
    if inner is None:
      raise AttributeError(name)
    return getattr(inner, name)

  def generate(self, prompts) -> list[str]:
    if self.params is None:
      raise ValueError("PolicyJudge: call bind(params) first")
    if self._sampling is None:  # placed once per bind
      self._sampling = self.params if self.place is None else self.place(self.params)
    # A judge prompt holds the template, the question, the answer and a whole completion:
    # beyond data.max_prompt_len, so it gets its own buckets (two programs at most).
    run = self.setup.run
    wide = run.data.max_prompt_len + run.sampling.max_new_tokens + JUDGE_PROMPT_OVERHEAD
    data = rollouts.sample_groups(self.setup, self._sampling,
                                  [Example(prompt=p) for p in prompts],
                                  jax.random.PRNGKey(0), n=1, greedy=True,
                                  prompt_buckets=(wide, 2 * wide))
    return rollouts.decode(self.setup.tokenizer, data["completion_tokens"], data["lengths"])
