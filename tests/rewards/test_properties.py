"""Property tests (hypothesis) beside the hand-worked cases."""

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rlx.rewards import (dapo_overlong_penalty, majority_vote, math_equal, normalize_answer,
                         self_certainty_from_logits, semantic_entropy_rewards)

ANSWER_CHARS = st.text(alphabet="0123456789,./-x=% \\fracdt{}()", max_size=14)


@given(st.integers(-10**12, 10**12))
def test_thousands_separators(n):
  assert math_equal(f"{n:,}", str(n), use_sympy=False)
  assert not math_equal(str(n), str(n + 1), use_sympy=False)


@given(st.integers(-999, 999), st.integers(1, 999))
def test_fractions_equal_their_decimals(p, q):
  assert math_equal(f"\\frac{{{p}}}{{{q}}}", repr(p / q), use_sympy=False)
  assert math_equal(f"{p}/{q}", f"\\dfrac{{{p}}}{{{q}}}", use_sympy=False)
  if Fraction(p, q) != 0:
    assert not math_equal(f"{p}/{q}", repr(1.01 * p / q), use_sympy=False)


@given(ANSWER_CHARS)
def test_normalize_is_idempotent(s):
  once = normalize_answer(s)
  assert once is None or normalize_answer(once) == once


@given(ANSWER_CHARS, ANSWER_CHARS)
def test_equivalence_is_symmetric_without_sympy(a, b):
  assert math_equal(a, b, use_sympy=False) == math_equal(b, a, use_sympy=False)


@given(st.lists(st.sampled_from(["1", "2", "3", "0.5", "1/2", None, ""]), min_size=1, max_size=12))
def test_majority_winner_has_most_votes_and_is_first(answers):
  winner, labels, votes = majority_vote(answers)
  if all(lab < 0 for lab in labels):
    assert winner == -1
    return
  assert votes[winner] == votes.max()
  assert winner == min(c for c in range(len(votes)) if votes[c] == votes.max())


@given(st.lists(st.integers(-1, 3), min_size=1, max_size=12))
def test_semantic_entropy_rewards(labels):
  r, h = semantic_entropy_rewards(labels)
  g = len(labels)
  assert r.shape == (g,) and (r >= 0).all() and (r <= 1).all()
  assert 0 <= h <= np.log(g) + 1e-9
  if r.any():
    for c in set(labels) - {-1}:
      members = [i for i, lab in enumerate(labels) if lab == c]
      np.testing.assert_allclose(r[members].sum(), len(members) ** 2 / g, rtol=1e-6)


@given(st.lists(st.integers(0, 200), min_size=1, max_size=20), st.integers(20, 120),
       st.integers(1, 19))
def test_dapo_penalty_bounded_and_monotone(lengths, max_len, buf):
  lengths = sorted(lengths)
  p = dapo_overlong_penalty(lengths, max_len, buf)
  assert ((p <= 0) & (p >= -1)).all()
  assert (np.diff(p) <= 1e-7).all()


@given(st.lists(st.floats(-20, 20), min_size=2, max_size=16), st.floats(-50, 50))
def test_self_certainty_nonnegative_and_shift_invariant(logits, shift):
  z = np.asarray(logits, np.float32)
  sc = float(self_certainty_from_logits(z))
  assert sc >= -1e-5
  np.testing.assert_allclose(float(self_certainty_from_logits(z + np.float32(shift))), sc,
                             rtol=1e-4, atol=1e-4)
