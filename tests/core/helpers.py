"""Shared strategies and helpers for the rlx.core tests."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

B, T = 6, 5


def floats(lo=-5.0, hi=5.0):
  return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=32)


def arrays(shape, lo=-5.0, hi=5.0):
  return hnp.arrays(np.float32, shape, elements=floats(lo, hi))


def masks(shape=(B, T), min_valid=1):
  """Right-padded masks: each row keeps a prefix of 0..T tokens; at least ``min_valid`` in total."""

  def build(lengths):
    lengths = np.array(lengths)
    if lengths.sum() < min_valid:
      lengths[0] = shape[1]
    return (np.arange(shape[1])[None, :] < lengths[:, None]).astype(np.float32)

  return st.lists(st.integers(0, shape[1]), min_size=shape[0], max_size=shape[0]).map(build)


def group_ids(b=B):
  return st.lists(st.integers(0, 2), min_size=b, max_size=b).map(lambda g: np.array(g, np.int32))


def poison(x, mask, value=np.nan):
  """Copy of ``x`` with ``value`` written wherever ``mask`` is 0."""
  x = np.array(x, dtype=np.float32, copy=True)
  x[np.broadcast_to(np.asarray(mask), x.shape) == 0] = value
  return x
