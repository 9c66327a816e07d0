"""Label-free (self-rewarding) rewards, docs/algorithms.md §9.

Voting rewards (majority vote, Borda, semantic entropy, co-reward) cluster a group's extracted
answers by equivalence. Clustering is greedy in sample order: an answer joins the first cluster
whose representative (first member) it equals, so clusters are numbered by first occurrence.
Empty answers (no answer extracted) belong to no cluster and never win a vote.
Tie-breaking (documented, deterministic): among clusters with equal votes, the one whose first
member comes first in the batch wins.

Model-based ones (self-certainty, RLPR, LaSeR, SAR, answer confidence) use a ``Scorer``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlx.rewards.base import RewardInput, RewardOutput, Scorer, masked_mean_rows, pad_ragged
from rlx.rewards.math_verify import extract_answer, math_equal, normalize_answer

AnswerFn = Callable[[str], "str | None"]
EqualFn = Callable[[str, str], bool]


def default_equal(a: str, b: str) -> bool:
  """Answer equivalence used for voting: math equivalence without sympy (fast, deterministic)."""
  return math_equal(a, b, use_sympy=False)


# ----- pure functions -----

def cluster_answers(answers: Sequence[str | None], equal: EqualFn = default_equal) -> list[int]:
  """Cluster labels (0, 1, … by first occurrence; −1 for empty answers)."""
  reps: list[str] = []
  keys: dict[str, int] = {}
  labels = []
  for a in answers:
    if a is None or not str(a).strip():
      labels.append(-1)
      continue
    key = normalize_answer(a) or a
    if key in keys:
      labels.append(keys[key])
      continue
    for c, r in enumerate(reps):
      if equal(a, r):
        labels.append(c)
        keys[key] = c
        break
    else:
      reps.append(a)
      keys[key] = len(reps) - 1
      labels.append(len(reps) - 1)
  return labels


def majority_vote(answers: Sequence[str | None], equal: EqualFn = default_equal,
                  weights: Sequence[float] | None = None) -> tuple[int, list[int], np.ndarray]:
  """The winning cluster of a vote.

  Returns ``(winner, labels, votes)``: winner is a cluster label (−1 when every answer is empty),
  labels as in ``cluster_answers``, votes[c] the total weight of cluster c. Ties go to the
  cluster whose first member comes first.
  """
  labels = cluster_answers(answers, equal)
  n = max(labels) + 1 if labels else 0
  votes = np.zeros(n, np.float64)
  w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
  for lab, wi in zip(labels, w):
    if lab >= 0:
      votes[lab] += wi
  winner = int(np.argmax(votes)) if n else -1  # argmax returns the first maximum
  return winner, labels, votes


def borda_weights(certainty: Sequence[float], p: float = 0.5) -> np.ndarray:
  """Borda vote weights ``(N − rank + 1)^p``, rank 1 = highest self-certainty (ties: earlier
  sample ranks higher). ``p = 0`` gives majority vote."""
  c = np.asarray(certainty, np.float64)
  n = len(c)
  order = sorted(range(n), key=lambda i: (-c[i], i))
  rank = np.empty(n)
  rank[order] = np.arange(1, n + 1)
  return (n - rank + 1) ** p


def semantic_entropy_rewards(labels: Sequence[int]) -> tuple[np.ndarray, float]:
  """EMPO: ``r_i = |cluster(i)|/G`` and the group's semantic entropy ``−Σ_c p_c log p_c``.
  Empty answers (label −1) score 0 and count as singletons; when every answer is distinct
  (entropy = log G) every sample scores 0."""
  labels = list(labels)
  g = len(labels)
  sizes: dict[int, int] = {}
  for lab in labels:
    if lab >= 0:
      sizes[lab] = sizes.get(lab, 0) + 1
  probs = [s / g for s in sizes.values()] + [1 / g] * labels.count(-1)
  entropy = float(-sum(q * math.log(q) for q in probs))
  if g <= 1 or all(s == 1 for s in sizes.values()):
    return np.zeros(g, np.float32), entropy
  return np.array([sizes[lab] / g if lab >= 0 else 0.0 for lab in labels], np.float32), entropy


def _group_indices(gids: np.ndarray) -> dict[Any, list[int]]:
  out: dict[Any, list[int]] = {}
  for i, g in enumerate(gids.tolist()):
    out.setdefault(g, []).append(i)
  return out


def _answers(batch: RewardInput, answer_fn: AnswerFn) -> list[str | None]:
  return [answer_fn(c) for c in batch.completions]


def _ref_match(answer: str | None, meta, equal: EqualFn) -> tuple[float, float]:
  ref = meta.get("answer") if meta else None
  if ref is None:
    return 0.0, 0.0
  return float(answer is not None and equal(answer, str(ref))), 1.0


# ----- rewards -----

class MajorityVote:
  """TTRL majority-vote reward: ``r_i = 1[ans_i ≡ majority(ans over the group's first N_vote)]``.

  Within each group (samples in batch order), the first ``n_vote`` samples vote (all if None) and
  the first ``n_train`` keep ``sample_mask = 1`` (the rest are masked out of the loss). Extras:
  ``majority_ratio`` (winning votes / voters), ``label_accuracy`` (majority ≡ ``meta['answer']``,
  where known; ``label_known`` says where).
  """

  def __init__(self, n_vote: int | None = None, n_train: int | None = None,
               answer_fn: AnswerFn = extract_answer, equal: EqualFn = default_equal):
    if n_vote is not None and n_train is not None and n_train > n_vote:
      raise ValueError(f"n_train={n_train} must be <= n_vote={n_vote}")
    self.name = "majority_vote"
    self.n_vote, self.n_train, self.answer_fn, self.equal = n_vote, n_train, answer_fn, equal

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    b = batch.batch_size
    answers = _answers(batch, self.answer_fn)
    scores = np.zeros(b, np.float32)
    ratio, acc, known = (np.zeros(b, np.float32) for _ in range(3))
    mask = np.ones(b, np.float32)
    for idx in _group_indices(batch.groups()).values():
      voters = idx[:self.n_vote] if self.n_vote else idx
      winner, labels, votes = majority_vote([answers[i] for i in voters], self.equal)
      if self.n_train is not None:
        mask[idx[self.n_train:]] = 0.0
      if winner < 0:
        continue
      maj = answers[voters[labels.index(winner)]]
      for i in idx:
        scores[i] = float(answers[i] is not None and (
            answers[i] == maj or self.equal(answers[i], maj)))
      ratio[idx] = votes[winner] / len(voters)
      acc[idx], known[idx] = _ref_match(maj, batch.meta(idx[0]), self.equal)
    return RewardOutput(scores, extras={"majority_ratio": ratio, "label_accuracy": acc,
                                        "label_known": known}, sample_mask=mask)


class SemanticEntropy:
  """EMPO: ``r_i = |cluster(i)|/G`` over the group's answer clusters; a group whose answers are
  all distinct (entropy = log G) scores 0. Extra: ``semantic_entropy`` of the sample's group."""

  def __init__(self, answer_fn: AnswerFn = extract_answer, equal: EqualFn = default_equal):
    self.name = "semantic_entropy"
    self.answer_fn, self.equal = answer_fn, equal

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    answers = _answers(batch, self.answer_fn)
    scores = np.zeros(batch.batch_size, np.float32)
    ent = np.zeros(batch.batch_size, np.float32)
    for idx in _group_indices(batch.groups()).values():
      labels = cluster_answers([answers[i] for i in idx], self.equal)
      r, h = semantic_entropy_rewards(labels)
      scores[idx] = r
      ent[idx] = h
    return RewardOutput(scores, extras={"semantic_entropy": ent})


class CoReward:
  """Co-reward: groups come in pairs sharing ``meta['pair_id']``; a rollout of x is rewarded 1 if
  its answer equals the majority answer of the rollouts of its partner x′. Samples without a
  partner (or whose partner has no answer) score 0; extra ``unpaired`` marks them."""

  def __init__(self, pair_key: str = "pair_id", answer_fn: AnswerFn = extract_answer,
               equal: EqualFn = default_equal):
    self.name = "co_reward"
    self.pair_key, self.answer_fn, self.equal = pair_key, answer_fn, equal

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    b = batch.batch_size
    answers = _answers(batch, self.answer_fn)
    groups = _group_indices(batch.groups())
    majority: dict[Any, str | None] = {}
    by_pair: dict[Any, list[Any]] = {}
    for g, idx in groups.items():
      winner, labels, _ = majority_vote([answers[i] for i in idx], self.equal)
      majority[g] = None if winner < 0 else answers[idx[labels.index(winner)]]
      by_pair.setdefault(batch.meta(idx[0]).get(self.pair_key), []).append(g)
    scores = np.zeros(b, np.float32)
    unpaired = np.zeros(b, np.float32)
    for g, idx in groups.items():
      pid = batch.meta(idx[0]).get(self.pair_key)
      partners = [h for h in by_pair.get(pid, []) if h != g] if pid is not None else []
      if len(partners) != 1:
        unpaired[idx] = 1.0
        continue
      target = majority[partners[0]]
      for i in idx:
        scores[i] = float(target is not None and answers[i] is not None and
                          self.equal(answers[i], target))
    return RewardOutput(scores, extras={"unpaired": unpaired})


class SelfCertainty:
  """Intuitor / Kang et al.: ``SC_i = mean_t KL(U ‖ p_t)`` over completion tokens under the
  current policy (needs a scorer with ``logits_stats``)."""

  def __init__(self, model: str = "policy"):
    self.name = "self_certainty"
    self.model = model

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    stats = _require(scorer, self.name).logits_stats(
        _prompt_ids(batch, scorer), batch.completion_ids, batch.completion_mask, model=self.model)
    sc = masked_mean_rows(stats["self_certainty"], batch.completion_mask).astype(np.float32)
    return RewardOutput(sc, extras={"entropy": masked_mean_rows(
        stats["entropy"], batch.completion_mask).astype(np.float32)})


class BordaVote:
  """Borda voting for best-of-N: within a group, rank samples by self-certainty, each votes
  ``(N − rank + 1)^p`` for its answer; ``r_i = 1[ans_i ≡ winner]``. ``p = 0`` is majority vote.
  Extra: ``self_certainty``."""

  def __init__(self, p: float = 0.5, answer_fn: AnswerFn = extract_answer,
               equal: EqualFn = default_equal):
    self.name = "borda_vote"
    self.p, self.answer_fn, self.equal = p, answer_fn, equal

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    sc = SelfCertainty()(batch, scorer).scores
    answers = _answers(batch, self.answer_fn)
    scores = np.zeros(batch.batch_size, np.float32)
    for idx in _group_indices(batch.groups()).values():
      group_answers = [answers[i] for i in idx]
      winner, labels, _ = majority_vote(group_answers, self.equal, borda_weights(sc[idx], self.p))
      scores[idx] = [float(winner >= 0 and lab == winner) for lab in labels]
    return RewardOutput(scores, extras={"self_certainty": sc})


# ----- scorer helpers -----

def _require(scorer, name):
  if scorer is None:
    raise ValueError(f"reward {name!r} needs a scorer (model access)")
  return scorer


def _prompt_ids(batch: RewardInput, scorer) -> list[np.ndarray]:
  if batch.prompt_ids is not None:
    return [np.asarray(p) for p in batch.prompt_ids]
  return [scorer.encode(p) for p in batch.prompts]


def answer_span(completion: str) -> tuple[int, int] | None:
  """Character span of the answer: the content of the last ``\\boxed{…}`` inside the last
  ``<answer>…</answer>`` (or of the whole tag when it holds no box), else of the last
  ``\\boxed{…}``; None when neither is present."""
  lo, hi = 0, len(completion)
  tags = list(re.finditer(r"<answer>(.*?)</answer>", completion, re.DOTALL))
  if tags:
    lo, hi = tags[-1].span(1)
  k = completion.rfind("\\boxed{", lo, hi)
  if k >= 0:
    depth = 0
    for j in range(k + 6, hi):
      depth += {"{": 1, "}": -1}.get(completion[j], 0)
      if depth == 0:
        return (k + 7, j)
  return (lo, hi) if tags else None


def _score_continuations(scorer, prompt_ids, prefixes, targets, model):
  """Per-token log-probs of ``targets`` after ``prompt + prefix``: list of 1-D float arrays."""
  seqs, spans = [], []
  for pre, tgt in zip(prefixes, targets):
    a, t = scorer.encode(pre), scorer.encode(tgt)
    seqs.append(np.concatenate([a, t]).astype(np.int32))
    spans.append((len(a), len(a) + len(t)))
  ids, mask = pad_ragged(seqs)
  lp = np.asarray(scorer.token_logprobs(prompt_ids, ids, mask, model=model), np.float64)
  return [lp[i, s:e] for i, (s, e) in enumerate(spans)]


class RLPRProbability:
  """RLPR probability reward: ``PR = mean_t p(y*_t | x, z, y*_<t)`` with the completion's answer
  span replaced by the reference ``y*``; debiased by ``PR_0`` (same with no reasoning: only the
  answer opener), computed once per (prompt, answer) with the ``debias_model`` and cached:
  ``r = 0.9·max(PR − PR_0, 0) + 0.1·format`` (format = an answer span was present).

  ``state_dict()`` holds the cache, so a resumed run uses the same baselines.
  """

  def __init__(self, answer_key: str = "answer", debias: bool = True,
               debias_model: str = "reference", prob_weight: float = 0.9,
               format_weight: float = 0.1, opener: str = "<answer>"):
    self.name = "rlpr"
    self.answer_key, self.debias, self.debias_model = answer_key, debias, debias_model
    self.prob_weight, self.format_weight, self.opener = prob_weight, format_weight, opener
    self.cache: dict[str, float] = {}

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    scorer = _require(scorer, self.name)
    b = batch.batch_size
    refs = [str(batch.meta(i).get(self.answer_key, "")) for i in range(b)]
    spans = [answer_span(c) for c in batch.completions]
    prefixes = [c[:s[0]] if s else c + self.opener for c, s in zip(batch.completions, spans)]
    fmt = np.array([s is not None for s in spans], np.float32)
    pids = _prompt_ids(batch, scorer)
    lps = _score_continuations(scorer, pids, prefixes, refs, "policy")
    pr = np.array([np.exp(lp).mean() if len(lp) else 0.0 for lp in lps], np.float64)
    pr0 = np.zeros(b)
    if self.debias:
      keys = [f"{batch.prompts[i]}\x00{refs[i]}" for i in range(b)]
      missing = sorted({k: i for i, k in enumerate(keys) if k not in self.cache}.items())
      if missing:
        idx = [i for _, i in missing]
        lp0 = _score_continuations(scorer, [pids[i] for i in idx], [self.opener] * len(idx),
                                   [refs[i] for i in idx], self.debias_model)
        for (k, _), lp in zip(missing, lp0):
          self.cache[k] = float(np.exp(lp).mean()) if len(lp) else 0.0
      pr0 = np.array([self.cache[k] for k in keys])
    scores = self.prob_weight * np.maximum(pr - pr0, 0.0) + self.format_weight * fmt
    return RewardOutput(scores.astype(np.float32),
                        extras={"prob": pr.astype(np.float32), "prob_baseline": pr0.astype(
                            np.float32), "format": fmt})

  def state_dict(self) -> dict[str, Any]:
    return {"cache": dict(self.cache)}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.cache = dict(state["cache"])


def laser_class_weights(r_v: np.ndarray, finished: np.ndarray) -> np.ndarray:
  """Class-balanced weights over finished samples: ``n_fin/(2·n_pos)`` for verified-correct
  (r_v > 0.5), ``n_fin/(2·n_neg)`` for the others, 0 for unfinished ones. [B] float32."""
  fin = np.asarray(finished, bool)
  pos = (np.asarray(r_v) > 0.5) & fin
  neg = ~pos & fin
  n = fin.sum()
  w = np.zeros(len(fin), np.float64)
  if pos.any():
    w[pos] = n / (2.0 * pos.sum())
  if neg.any():
    w[neg] = n / (2.0 * neg.sum())
  return w.astype(np.float32)


def laser_aux_loss(r_s, r_v, weights, finished, alpha: float = 0.1):
  """LaSeR auxiliary loss ``α · mean_i w_i · 1[finished_i] · (r_s,i − r_v,i)²`` (jax or numpy;
  differentiable in ``r_s`` when it is a jax array)."""
  f = finished.astype(r_s.dtype) if hasattr(finished, "astype") else finished
  return alpha * ((weights * f * (r_s - r_v) ** 2).sum() / r_s.shape[0])


def laser_mix_advantages(a_v: np.ndarray, a_s: np.ndarray, r_s: np.ndarray,
                         group_ids: np.ndarray, tau: float = 0.1,
                         std_threshold: float = 0.1) -> np.ndarray:
  """``A = (1−τ)A_v + τA_s`` for samples of groups whose std of ``r_s`` exceeds the threshold
  (unbiased std), ``A_v`` elsewhere. ``a_v``/``a_s`` are [B] or [B, T]."""
  a_v, a_s = np.asarray(a_v, np.float32), np.asarray(a_s, np.float32)
  mix = np.zeros(len(r_s), bool)
  for idx in _group_indices(np.asarray(group_ids)).values():
    if len(idx) > 1 and np.std(np.asarray(r_s)[idx], ddof=1) > std_threshold:
      mix[idx] = True
  m = mix.reshape((-1,) + (1,) * (a_v.ndim - 1))
  return np.where(m, (1 - tau) * a_v + tau * a_s, a_v)


class LaSeR:
  """LaSeR last-token self-reward: ``r_s = β_v·(log π(z | x, y, eos) − c_ref)`` for a fixed token
  ``z``. Scores are ``r_s``; ``aux`` carries the auxiliary-loss inputs for the trainer
  (``laser_target`` = verifier reward r_v from ``meta[verifier_key]`` or the ``verifier`` reward,
  ``laser_weight`` class-balanced weights, ``laser_finished``, ``laser_token``, ``laser_beta``,
  ``laser_alpha``, ``laser_c_ref``). ``c_ref``: a number, or ``"reference"`` to use the
  reference model's ``log π_ref(z | x, y, eos)`` per sample."""

  def __init__(self, token_id: int | None = None, beta_v: float = 0.1, alpha: float = 0.1,
               c_ref: float | str = 0.0, verifier: Any = None,
               verifier_key: str = "verifier_score"):
    self.name = "laser"
    self.token_id, self.beta_v, self.alpha, self.c_ref = token_id, beta_v, alpha, c_ref
    self.verifier, self.verifier_key = verifier, verifier_key

  def _last_token_logprob(self, scorer, batch, model):
    z = self.token_id if self.token_id is not None else scorer.eos_id
    seqs = []
    for i in range(batch.batch_size):
      y = np.asarray(batch.completion_ids[i])[np.asarray(batch.completion_mask[i]) > 0]
      # log π(z | x, y, eos): a completion that stopped on eos already ends with it (the
      # trainer's aux loss reads the same position, rlx.algorithms.laser.token_logprob_after).
      ended = len(y) > 0 and int(y[-1]) == scorer.eos_id
      seqs.append(np.concatenate([y, [z] if ended else [scorer.eos_id, z]]).astype(np.int32))
    ids, mask = pad_ragged(seqs)
    lp = np.asarray(scorer.token_logprobs(_prompt_ids(batch, scorer), ids, mask, model=model))
    last = mask.sum(-1) - 1
    return lp[np.arange(len(seqs)), last].astype(np.float64), z

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    scorer = _require(scorer, self.name)
    lp, z = self._last_token_logprob(scorer, batch, "policy")
    if self.c_ref == "reference":
      c_ref, _ = self._last_token_logprob(scorer, batch, "reference")
    else:
      c_ref = np.full(batch.batch_size, float(self.c_ref))
    r_s = (self.beta_v * (lp - c_ref)).astype(np.float32)
    if self.verifier is not None:
      r_v = np.asarray(self.verifier(batch, scorer).scores, np.float32)
    else:
      r_v = np.array([float(batch.meta(i).get(self.verifier_key, 0.0))
                      for i in range(batch.batch_size)], np.float32)
    fin = batch.finished()
    w = laser_class_weights(r_v, fin)
    aux = {"laser_self_reward": r_s, "laser_target": r_v, "laser_weight": w,
           "laser_finished": fin.astype(np.float32), "laser_token": z, "laser_beta": self.beta_v,
           "laser_alpha": self.alpha, "laser_c_ref": c_ref.astype(np.float32)}
    return RewardOutput(r_s, extras={"verifier": r_v}, aux=aux)


class SelfAlignedReward:
  """SAR: ``max((ppl(a) − ppl(a|q)) / ppl(a), −1)`` with ``ppl = exp(−mean_t log p)`` of the
  completion ``a`` without and with the question ``q`` (paper weight 0.2 beside the verifier)."""

  def __init__(self, model: str = "policy"):
    self.name = "self_aligned"
    self.model = model

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    scorer = _require(scorer, self.name)
    ids, m = batch.completion_ids, batch.completion_mask
    lp_q = scorer.token_logprobs(_prompt_ids(batch, scorer), ids, m, model=self.model)
    empty = [np.zeros(0, np.int32) for _ in range(batch.batch_size)]
    lp_0 = scorer.token_logprobs(empty, ids, m, model=self.model)
    ppl_q = np.exp(-masked_mean_rows(lp_q, m))
    ppl_0 = np.exp(-masked_mean_rows(lp_0, m))
    r = np.maximum((ppl_0 - ppl_q) / (ppl_0 + 1e-8), -1.0)
    return RewardOutput(r.astype(np.float32), extras={"ppl_conditional": ppl_q.astype(
        np.float32), "ppl_unconditional": ppl_0.astype(np.float32)})


class AnswerConfidence:
  """The policy's confidence in its own final answer: ``exp(mean_t log p(a_t | x, z, a_<t))`` over
  the tokens of the answer span (``<answer>`` tag or last ``\\boxed{}``); 0 without an answer."""

  def __init__(self, model: str = "policy"):
    self.name = "answer_confidence"
    self.model = model

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    scorer = _require(scorer, self.name)
    spans = [answer_span(c) for c in batch.completions]
    prefixes = [c[:s[0]] if s else "" for c, s in zip(batch.completions, spans)]
    targets = [c[s[0]:s[1]] if s else "" for c, s in zip(batch.completions, spans)]
    lps = _score_continuations(scorer, _prompt_ids(batch, scorer), prefixes, targets, self.model)
    conf = np.array([np.exp(lp.mean()) if (s and len(lp)) else 0.0
                     for lp, s in zip(lps, spans)], np.float32)
    return RewardOutput(conf, extras={"has_answer": np.array([s is not None for s in spans],
                                                              np.float32)})


def __getattr__(name: str):
  """``self_certainty_from_logits`` (``rlx.core``) is re-exported lazily, so that importing
  ``rlx.rewards`` (e.g. in a reward worker process) does not import jax."""
  if name == "self_certainty_from_logits":
    from rlx.core.logprobs import self_certainty_from_logits
    return self_certainty_from_logits
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
