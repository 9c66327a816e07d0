"""Label-free rewards against hand-worked examples (docs/algorithms.md §9)."""

import dataclasses
import math

import numpy as np
import pytest

from rlx.rewards import (AnswerConfidence, BordaVote, CoReward, LaSeR, MajorityVote,
                         RLPRProbability, SelfAlignedReward, SelfCertainty, SemanticEntropy,
                         borda_weights, cluster_answers, laser_aux_loss, laser_class_weights,
                         laser_mix_advantages, majority_vote, self_certainty_from_logits)
from rlx.rewards.testing import BigramScorer, make_batch


def boxed(xs):
  return [("I give up" if x is None else f"so \\boxed{{{x}}}") for x in xs]


# ----- majority vote (TTRL) -----

def test_majority_vote_tie_and_empty_answers():
  # group 0: 5 and 3 tie with 2 votes; 5 appears first and wins; empty answers never win.
  # group 1: three empty answers and one 7: 7 wins with a single vote.
  # group 2: every answer empty: nobody wins, all 0.
  answers = ["5", "3", None, "3", "5", ""] + [None, "", None, "7"] + [None, ""]
  gids = [0] * 6 + [1] * 4 + [2] * 2
  batch = make_batch(["q"] * 12, boxed(answers), group_ids=gids,
                     metadata=[{"answer": "5"}] * 6 + [{"answer": "8"}] * 4 + [{}] * 2)
  out = MajorityVote()(batch)
  np.testing.assert_array_equal(out.scores, [1, 0, 0, 0, 1, 0] + [0, 0, 0, 1] + [0, 0])
  np.testing.assert_allclose(out.extras["majority_ratio"], [2 / 6] * 6 + [1 / 4] * 4 + [0, 0])
  np.testing.assert_array_equal(out.extras["label_accuracy"], [1] * 6 + [0] * 4 + [0, 0])
  np.testing.assert_array_equal(out.extras["label_known"], [1] * 6 + [1] * 4 + [0, 0])


def test_majority_vote_functional():
  winner, labels, votes = majority_vote(["1/2", "0.5", "2", "2", None])
  assert labels == [0, 0, 1, 1, -1] and votes.tolist() == [2, 2] and winner == 0


def test_ttrl_n_vote_n_train():
  # first 3 vote: 1 gets 1 vote, 2 gets 2 -> 2 wins (the full group of 6 would pick 1).
  answers = ["1", "2", "2", "1", "1", "1"]
  batch = make_batch(["q"] * 6, boxed(answers), group_ids=[0] * 6)
  out = MajorityVote(n_vote=3, n_train=2)(batch)
  np.testing.assert_array_equal(out.scores, [0, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(out.sample_mask, [1, 1, 0, 0, 0, 0])
  assert MajorityVote()(batch).scores.tolist() == [1, 0, 0, 1, 1, 1]
  with pytest.raises(ValueError):
    MajorityVote(n_vote=2, n_train=3)


# ----- semantic entropy (EMPO) -----

def test_semantic_entropy_clusters_3_2_1():
  answers = ["7", "7.0", "7", "1/2", "0.5", "9"] + ["1", "2", "3"]
  batch = make_batch(["q"] * 9, boxed(answers), group_ids=[0] * 6 + [1] * 3)
  out = SemanticEntropy()(batch)
  np.testing.assert_allclose(out.scores, [3 / 6] * 3 + [2 / 6] * 2 + [1 / 6] + [0, 0, 0],
                             rtol=1e-6)
  h = -(0.5 * math.log(0.5) + (1 / 3) * math.log(1 / 3) + (1 / 6) * math.log(1 / 6))
  np.testing.assert_allclose(out.extras["semantic_entropy"][:6], h, rtol=1e-6)
  # all distinct: entropy log G, every sample 0
  np.testing.assert_allclose(out.extras["semantic_entropy"][6:], math.log(3), rtol=1e-6)


# ----- co-reward -----

def test_co_reward_pairs():
  answers = ["4", "4", "5"] + ["5", "5", "4"] + ["1", "1"]
  gids = [0] * 3 + [1] * 3 + [2] * 2
  meta = [{"pair_id": "p"}] * 6 + [{"pair_id": "lonely"}] * 2
  out = CoReward()(make_batch(["q"] * 8, boxed(answers), group_ids=gids, metadata=meta))
  np.testing.assert_array_equal(out.scores, [0, 0, 1, 0, 0, 1, 0, 0])
  np.testing.assert_array_equal(out.extras["unpaired"], [0] * 6 + [1, 1])


# ----- self-certainty and Borda -----

def _kl_uniform_f64(logits):
  z = np.asarray(logits, np.float64)
  logp = z - z.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  v = z.shape[-1]
  return np.sum((1.0 / v) * (np.log(1.0 / v) - logp), -1)


def test_self_certainty_from_logits_is_kl_from_uniform():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 11)).astype(np.float32) * 3
  sc = np.asarray(self_certainty_from_logits(logits))
  np.testing.assert_allclose(sc, _kl_uniform_f64(logits), rtol=1e-5, atol=1e-6)
  assert np.allclose(self_certainty_from_logits(np.zeros((3, 7))), 0.0, atol=1e-6)
  import jax
  np.testing.assert_allclose(jax.jit(self_certainty_from_logits)(logits), sc, rtol=1e-6)


def test_self_certainty_reward_matches_float64_kl():
  scorer = BigramScorer(seed=1)
  batch = make_batch(["what is 2+2?", "hi"], ["it is 4", "ok then"], scorer=scorer)
  out = SelfCertainty()(batch, scorer)
  logits = scorer.logits(batch.prompt_ids, batch.completion_ids)
  per_tok = _kl_uniform_f64(logits)
  m = batch.completion_mask
  expected = (per_tok * m).sum(-1) / m.sum(-1)
  np.testing.assert_allclose(out.scores, expected, rtol=1e-5)


class StubScorer:
  """Scorer whose per-token self-certainty is a given per-sequence constant."""
  vocab_size, eos_id = 10, 1

  def __init__(self, sc):
    self.sc = np.asarray(sc, np.float32)

  def logits_stats(self, prompt_ids, ids, mask, model="policy"):
    return {"self_certainty": self.sc[:, None] * mask, "entropy": 0 * mask}


@pytest.mark.parametrize("p,expected", [(1.0, [1, 0, 0, 0]), (0.0, [0, 1, 1, 0]),
                                        (0.5, [0, 1, 1, 0])])
def test_borda_vote(p, expected):
  # SC ranks: s0 (0.9) > s3 (0.5) > s2 (0.2) > s1 (0.1); votes (N - rank + 1)^p, N = 4.
  # p=1: "1"=4, "2"=1+2=3, "3"=3 -> "1". p=0: majority -> "2". p=.5: "2"=1+1.414 > "1"=2.
  batch = make_batch(["q"] * 4, boxed(["1", "2", "2", "3"]), group_ids=[0] * 4)
  out = BordaVote(p=p)(batch, StubScorer([0.9, 0.1, 0.2, 0.5]))
  np.testing.assert_array_equal(out.scores, expected)
  np.testing.assert_allclose(borda_weights([0.9, 0.1, 0.2, 0.5], 1.0), [4, 1, 2, 3])


def test_cluster_labels_first_occurrence():
  assert cluster_answers(["b", "a", "b", None, "A"]) == [0, 1, 0, -1, 1]


# ----- RLPR -----

def test_rlpr_probability_reward_and_cache():
  scorer = BigramScorer(seed=2)
  prompt, ref = "q: 6*7?", "42"
  comps = ["think hard <answer>41</answer>", "no tags at all"]
  batch = make_batch([prompt] * 2, comps, scorer=scorer, answers=[ref, ref])
  rlpr = RLPRProbability()
  out = rlpr(batch, scorer)
  pr_a = np.exp(scorer.sequence_logprob(prompt + "think hard <answer>", ref)).mean()
  pr_b = np.exp(scorer.sequence_logprob(prompt + "no tags at all<answer>", ref)).mean()
  pr0 = np.exp(scorer.sequence_logprob(prompt + "<answer>", ref, model="reference")).mean()
  expected = [0.9 * max(pr_a - pr0, 0) + 0.1, 0.9 * max(pr_b - pr0, 0)]
  np.testing.assert_allclose(out.scores, expected, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out.extras["prob_baseline"], [pr0, pr0], rtol=1e-5)
  # the baseline is cached: a second call scores only the policy
  calls = scorer.calls
  rlpr(batch, scorer)
  assert scorer.calls == calls + 1
  fresh = RLPRProbability()
  fresh.load_state_dict(rlpr.state_dict())
  fresh(batch, scorer)
  assert scorer.calls == calls + 2


# ----- LaSeR -----

def test_laser_self_reward_and_aux():
  scorer = BigramScorer(seed=3)
  z = scorer.encode("y")[0]
  comps = ["abc", "de", "fgh", "i"]
  batch = make_batch(["q"] * 4, comps, scorer=scorer,
                     finish_reasons=["stop", "stop", "stop", "length"],
                     metadata=[{"verifier_score": v} for v in (1.0, 0.0, 0.0, 1.0)])
  out = LaSeR(token_id=int(z), beta_v=0.1, c_ref=-2.0)(batch, scorer)
  table = scorer.tables["policy"][scorer.eos_id]
  logp_z = table[z] - np.log(np.exp(table).sum())
  np.testing.assert_allclose(out.scores, 0.1 * (logp_z + 2.0), rtol=1e-5)
  # finished: 3 (one positive, two negatives): w_pos = 3/2, w_neg = 3/4, unfinished 0
  np.testing.assert_allclose(out.aux["laser_weight"], [1.5, 0.75, 0.75, 0.0])
  np.testing.assert_array_equal(out.aux["laser_finished"], [1, 1, 1, 0])
  ref_out = LaSeR(token_id=int(z), c_ref="reference")(batch, scorer)
  rt = scorer.tables["reference"][scorer.eos_id]
  np.testing.assert_allclose(ref_out.scores,
                             0.1 * (logp_z - (rt[z] - np.log(np.exp(rt).sum()))), rtol=1e-4)


def test_laser_loss_weights_and_mixing():
  r_v = np.array([1.0, 0.0, 0.0, 0.0])
  w = laser_class_weights(r_v, np.ones(4, bool))
  np.testing.assert_allclose(w, [2.0, 2 / 3, 2 / 3, 2 / 3], rtol=1e-6)
  r_s = np.array([0.5, 0.1, -0.1, 0.0])
  loss = laser_aux_loss(r_s, r_v, w, np.ones(4), alpha=0.1)
  expected = 0.1 * (2 * 0.25 + 2 / 3 * (0.01 + 0.01 + 0.0)) / 4
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  a_v, a_s = np.ones(4), np.full(4, 3.0)
  # group 0 (std of r_s 0.28 > 0.1) mixes: 0.9*1 + 0.1*3 = 1.2; group 1 (std 0.07) does not
  mixed = laser_mix_advantages(a_v, a_s, r_s, np.array([0, 0, 1, 1]), tau=0.1)
  np.testing.assert_allclose(mixed, [1.2, 1.2, 1.0, 1.0], rtol=1e-6)


# ----- SAR and answer confidence -----

def test_self_aligned_reward():
  scorer = BigramScorer(seed=4)
  prompts, comps = ["add 2 and 2.", "name a color"], ["4", "blue sky"]
  out = SelfAlignedReward()(make_batch(prompts, comps, scorer=scorer), scorer)
  for i, (q, a) in enumerate(zip(prompts, comps)):
    ppl_q = math.exp(-scorer.sequence_logprob(q, a).mean())
    ppl_0 = math.exp(-scorer.sequence_logprob("", a).mean())
    assert out.scores[i] == pytest.approx(max((ppl_0 - ppl_q) / ppl_0, -1.0), rel=1e-4)


def test_answer_confidence():
  scorer = BigramScorer(seed=5)
  comps = ["so \\boxed{12} ok", "<answer>ab</answer>", "none"]
  out = AnswerConfidence()(make_batch(["q"] * 3, comps, scorer=scorer), scorer)
  c0 = math.exp(scorer.sequence_logprob("qso \\boxed{", "12").mean())
  c1 = math.exp(scorer.sequence_logprob("q<answer>", "ab").mean())
  np.testing.assert_allclose(out.scores, [c0, c1, 0.0], rtol=1e-5)


def test_laser_reads_the_position_after_the_stop_token_once():
  """A completion whose ids already end with eos (as sampled completions do) is scored at the
  same position as one without it: log π(z | x, y, eos), never after a second eos."""
  scorer = BigramScorer(seed=3)
  z = int(scorer.encode("y")[0])
  seen = []
  inner = scorer.token_logprobs

  def spy(prompt_ids, ids, mask, **kw):
    seen.append([row[m > 0].tolist() for row, m in zip(np.asarray(ids), np.asarray(mask))])
    return inner(prompt_ids, ids, mask, **kw)

  scorer.token_logprobs = spy
  plain = make_batch(["q"], ["abc"], scorer=scorer)
  y = np.asarray(plain.completion_ids[0])[np.asarray(plain.completion_mask[0]) > 0].tolist()
  ids = np.asarray([y + [scorer.eos_id]], np.int32)
  with_eos = dataclasses.replace(plain, completion_ids=ids,
                                 completion_mask=np.ones_like(ids, np.float32))
  for batch in (plain, with_eos):
    LaSeR(token_id=z, beta_v=0.1, c_ref=0.0)(batch, scorer)
  assert seen == [[y + [scorer.eos_id, z]]] * 2
