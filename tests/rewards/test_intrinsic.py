"""Episodic memory (Memory-R+) and embedders."""

import numpy as np

from rlx.rewards import EpisodicMemory, HashedNgramEmbedder, PolicyHiddenEmbedder, get_reward
from rlx.rewards.testing import BigramScorer, make_batch

VECS = {"qA": [1, 0], "qB": [0, 1], "cA": [1, 0], "cB": [0, 1], "c1": [1, 0], "c2": [0.6, 0.8],
        "c3": [0.8, 0.6]}


def table_embedder(texts):
  return np.array([VECS[t] for t in texts], np.float32)


def test_episodic_memory_hand_worked():
  mem = EpisodicMemory(embedder=table_embedder, k=2, min_entries=2)
  first = mem(make_batch(["qA", "qB"], ["cA", "cB"],
                         metadata=[{"correct": True}, {"correct": False}]))
  assert first.scores.tolist() == [0, 0] and first.extras["active"].tolist() == [0, 0]
  assert len(mem) == 2
  state = mem.state_dict()
  batch = make_batch(["qA", "qA"], ["c1", "c2"], metadata=[{"correct": True}] * 2)
  out = mem(batch)
  # V_correct = {cA}; d = |c1 - cA| = 0, |c2 - cA| = sqrt(0.8): exploit = 1 - minmax = [1, 0]
  # V_failed = {cB}: explore = 1 - cos = [1 - 0, 1 - 0.8]
  np.testing.assert_allclose(out.extras["exploit"], [1.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(out.extras["explore"], [1.0, 0.2], atol=1e-6)
  np.testing.assert_allclose(out.scores, [2.0, 0.2], atol=1e-6)
  # a restored memory continues exactly
  restored = EpisodicMemory(embedder=table_embedder, k=2, min_entries=2)
  restored.load_state_dict(state)
  np.testing.assert_allclose(restored(batch).scores, out.scores)
  nxt = make_batch(["qB"], ["c3"], metadata=[{"correct": False}])
  np.testing.assert_allclose(restored(nxt).scores, mem(nxt).scores)


def test_hashed_ngram_embedder():
  emb = HashedNgramEmbedder(dim=128)
  e = emb(["the cat sat on the mat", "the cat sat on a mat", "quantum chromodynamics", ""])
  assert e.shape == (4, 128) and e.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(e[:3], axis=1), 1.0, rtol=1e-5)
  assert e[0] @ e[1] > e[0] @ e[2] + 0.3
  np.testing.assert_array_equal(e, emb(["the cat sat on the mat", "the cat sat on a mat",
                                        "quantum chromodynamics", ""]))


def test_policy_hidden_embedder_and_registry_default():
  scorer = BigramScorer(hidden_dim=6)
  e = PolicyHiddenEmbedder(scorer)(["abc", "xy"])
  h = scorer.hidden[scorer.encode("abc")].mean(0)
  np.testing.assert_allclose(e[0], h / np.linalg.norm(h), rtol=1e-5)
  reward = get_reward("episodic_memory", min_entries=1)
  b = make_batch(["q1", "q2"], ["a", "b"], metadata=[{"correct": True}, {"correct": False}])
  reward(b)
  out = reward(b)
  assert out.extras["active"].tolist() == [1, 1] and np.isfinite(out.scores).all()
  assert len(reward.state_dict()["correct"]) == 4
