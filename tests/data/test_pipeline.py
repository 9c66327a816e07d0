"""End to end on the host: task source → iterator → group batch → scored groups → filter refill."""

import numpy as np

from rlx.data import BalancedDifficulty, ExampleIterator, PromptBatchIterator, ScoredGroups
from rlx.data import TaskSource, fill_batch, get_task, load_task_tokenizer


def test_rl_loop_shaped_usage():
  tok = load_task_tokenizer()
  task = get_task("arithmetic")
  it = PromptBatchIterator(
      ExampleIterator(TaskSource(task, size=64, seed=0, difficulty=(1, 2, 3, 4)), batch_size=4,
                      seed=1),
      tok, group_size=4, length_buckets=(32,), batch_buckets=(16,))
  rng = np.random.default_rng(0)

  def sample_and_score(round_index):
    batch = next(it)
    # A stand-in policy: the reference solver with a random capacity per sample.
    completions = [task.reference_solve(ex, int(rng.integers(0, 5)), rng)
                   for ex in batch.examples]
    rewards = np.array([task.verify(c, a) for c, a in zip(completions, batch.answers)])
    return ScoredGroups(rewards=rewards, group_ids=batch.group_ids,
                        data={"tokens": batch.prompt_tokens, "round": np.full(16, round_index)})

  f = BalancedDifficulty(lo=0.0, hi=1.0, lo_closed=False, hi_closed=False)
  result, _ = fill_batch(sample_and_score, f, f.init_state(), num_groups=4, max_refills=20)
  assert not result.exhausted and result.num_groups == 4
  assert result.data["tokens"].shape == (16, 32)
  for g in range(4):
    r = result.rewards[result.group_ids == g]
    assert 0 < r.mean() < 1  # mixed groups only
  state = it.get_state()
  assert int(state["cursor"]) == 4 * (result.refills + 1)
