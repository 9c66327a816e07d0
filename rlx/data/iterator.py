"""A checkpointable, shuffling, per-host-sharded iterator over a random-access source.

The stream is the concatenation of epochs; epoch ``e`` visits the source in the order
``np.random.default_rng([seed, e]).permutation(N)`` (or ``arange(N)`` without shuffling). Each
step consumes one *global* batch of ``batch_size * process_count`` positions from the stream
(crossing into the next epoch when the current one runs out, so no example is dropped) and
process ``p`` keeps the contiguous block ``[p * batch_size, (p + 1) * batch_size)`` of it.

The whole state is ``{"seed", "epoch", "cursor"}`` (0-d numpy int64 arrays; ``cursor`` counts global
positions consumed within ``epoch``). The order is re-derived from ``(seed, epoch)``, so restoring
the state in a fresh iterator continues with exactly the batches an uninterrupted run would have
produced. Because the cursor is global, a run may even resume with a different process count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rlx.data.example import Example

IteratorState = dict[str, np.ndarray]


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
  """``[n]`` int64 visiting order of epoch ``epoch``: a pure function of its arguments."""
  if not shuffle:
    return np.arange(n, dtype=np.int64)
  return np.random.default_rng([int(seed), int(epoch)]).permutation(n).astype(np.int64)


class ExampleIterator(Iterator[list[Example]]):
  """Yields this process's ``batch_size`` examples per step (see module docstring).

  Args:
    source: anything with ``len`` and integer indexing (``rlx.data`` sources, a list...).
    batch_size: examples per step *per process*.
    seed: shuffle seed (part of the state).
    shuffle: visit each epoch in a fresh seeded permutation.
    process_index, process_count: this process's slice of each global batch, e.g.
      ``jax.process_index()`` and ``jax.process_count()``.
    num_epochs: stop (``StopIteration``) before a batch that would need epoch ``num_epochs``;
      None runs forever.
  """

  def __init__(self, source: Sequence[Any], *, batch_size: int, seed: int = 0,
               shuffle: bool = True, process_index: int = 0, process_count: int = 1,
               num_epochs: int | None = None):
    if len(source) == 0:
      raise ValueError("empty source")
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    self.source = source
    self.batch_size = int(batch_size)
    self.shuffle = bool(shuffle)
    self.process_index, self.process_count = int(process_index), int(process_count)
    self.num_epochs = num_epochs
    self._seed, self._epoch, self._cursor = int(seed), 0, 0
    self._order_cache: tuple[tuple[int, int], np.ndarray] | None = None

  # --- state -----------------------------------------------------------------------------------
  def get_state(self) -> IteratorState:
    """``{"seed", "epoch", "cursor"}`` as 0-d numpy int64 arrays (a pytree for the checkpoint)."""
    return {k: np.asarray(v, dtype=np.int64)
            for k, v in (("seed", self._seed), ("epoch", self._epoch), ("cursor", self._cursor))}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Restores a state from :meth:`get_state` (numpy/JAX scalars or ints)."""
    self._seed, self._epoch, self._cursor = (int(np.asarray(state[k]))
                                             for k in ("seed", "epoch", "cursor"))
    if not 0 <= self._cursor <= len(self.source):
      raise ValueError(f"cursor {self._cursor} outside a source of {len(self.source)} examples")

  # --- iteration -------------------------------------------------------------------------------
  def _order(self, epoch: int) -> np.ndarray:
    key = (self._seed, epoch)
    if self._order_cache is None or self._order_cache[0] != key:
      self._order_cache = (key, epoch_order(self._seed, epoch, len(self.source), self.shuffle))
    return self._order_cache[1]

  def next_indices(self) -> np.ndarray:
    """Advances one step; returns this process's ``[batch_size]`` source indices."""
    n, global_batch = len(self.source), self.batch_size * self.process_count
    epoch, cursor, taken = self._epoch, self._cursor, []
    remaining = global_batch
    while remaining:
      if cursor == n:
        epoch, cursor = epoch + 1, 0
      if self.num_epochs is not None and epoch >= self.num_epochs:
        raise StopIteration
      k = min(remaining, n - cursor)
      taken.append(self._order(epoch)[cursor:cursor + k])
      cursor, remaining = cursor + k, remaining - k
    if cursor == n:
      epoch, cursor = epoch + 1, 0
    self._epoch, self._cursor = epoch, cursor
    lo = self.process_index * self.batch_size
    return np.concatenate(taken)[lo:lo + self.batch_size]

  def __next__(self) -> list[Example]:
    return [self.source[int(i)] for i in self.next_indices()]

  def __iter__(self):
    return self
