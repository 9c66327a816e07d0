"""Checkpointable iterator: resume equals an uninterrupted run (across epochs, shuffled), and
per-process sharding partitions each global batch."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlx.data import ExampleIterator, PromptBatchIterator, TaskSource, epoch_order
from rlx.data import load_task_tokenizer


def _ids(it, k):
  return [it.next_indices().tolist() for _ in range(k)]


def test_resume_across_epoch_boundary_with_shuffling():
  source = list(range(10))  # 10 examples, batch 4: batch 3 straddles epochs 0 and 1
  ref = ExampleIterator(source, batch_size=4, seed=123, shuffle=True)
  uninterrupted = [next(ref) for _ in range(8)]

  it = ExampleIterator(source, batch_size=4, seed=123, shuffle=True)
  first = [next(it) for _ in range(3)]
  state = it.get_state()
  assert set(state) == {"seed", "epoch", "cursor"}
  assert all(v.dtype == np.int64 and v.shape == () for v in state.values())
  assert (int(state["epoch"]), int(state["cursor"])) == (1, 2)
  # The state survives a trip through a checkpoint format (here JSON of ints).
  saved = json.dumps({k: int(v) for k, v in state.items()})

  fresh = ExampleIterator(source, batch_size=4, seed=999, shuffle=True)  # seed comes from state
  fresh.set_state(json.loads(saved))
  resumed = [next(fresh) for _ in range(5)]
  assert first + resumed == uninterrupted
  # Epoch 0 visits every example once, in a seeded permutation that differs across epochs.
  flat = sum(uninterrupted, [])
  assert sorted(flat[:10]) == list(range(10)) and flat[:10] != list(range(10))
  assert flat[:10] == epoch_order(123, 0, 10).tolist()
  assert flat[10:20] == epoch_order(123, 1, 10).tolist() != flat[:10]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 13), batch=st.integers(1, 6), k=st.integers(0, 9),
       seed=st.integers(0, 2**31), shuffle=st.booleans())
def test_resume_property(n, batch, k, seed, shuffle):
  ref = ExampleIterator(range(n), batch_size=batch, seed=seed, shuffle=shuffle)
  expected = _ids(ref, k + 4)
  it = ExampleIterator(range(n), batch_size=batch, seed=seed, shuffle=shuffle)
  _ids(it, k)
  fresh = ExampleIterator(range(n), batch_size=batch, seed=0, shuffle=shuffle)
  fresh.set_state(it.get_state())
  assert expected[k:] == _ids(fresh, 4)


def test_processes_partition_the_global_batch():
  n, batch, count = 11, 3, 2
  single = ExampleIterator(range(n), batch_size=batch * count, seed=5)
  hosts = [ExampleIterator(range(n), batch_size=batch, seed=5, process_index=p,
                           process_count=count) for p in range(count)]
  for _ in range(6):
    glob = single.next_indices().tolist()
    parts = [h.next_indices().tolist() for h in hosts]
    assert parts[0] + parts[1] == glob
  # All processes hold the same (global) state, so one checkpoint serves all of them.
  assert {tuple(map(int, h.get_state().values())) for h in hosts} == {
      tuple(map(int, single.get_state().values()))}
  with pytest.raises(ValueError):
    ExampleIterator(range(3), batch_size=1, process_index=2, process_count=2)


def test_num_epochs_stops():
  it = ExampleIterator(range(5), batch_size=2, shuffle=False, num_epochs=1)
  assert [b for b in it] == [[0, 1], [2, 3]]  # [4] + next epoch would need epoch 1


def test_prompt_batch_iterator_resumes_on_a_task_source():
  tok = load_task_tokenizer()
  source = TaskSource("arithmetic", size=6, seed=1, difficulty=(1, 2, 3))

  def make():
    return PromptBatchIterator(ExampleIterator(source, batch_size=4, seed=2), tok,
                               group_size=2, length_buckets=(16, 32))

  ref = make()
  expected = [next(ref) for _ in range(4)]
  it = make()
  next(it), next(it)
  fresh = make()
  fresh.set_state(it.get_state())
  for want, got in zip(expected[2:], [next(fresh), next(fresh)]):
    np.testing.assert_array_equal(want.prompt_tokens, got.prompt_tokens)
    assert want.pair_ids == got.pair_ids
