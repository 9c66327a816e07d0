"""Group expansion, left padding into shape buckets, chat formatting, SFT batches."""

import numpy as np
import pytest

from rlx.data import ChatFormat, PlainFormat, bucket_size, generate_examples, load_task_tokenizer
from rlx.data import make_prompt_batch, make_sft_batch


@pytest.fixture(scope="module")
def tok():
  return load_task_tokenizer()


def test_bucket_size():
  assert bucket_size(5, (8, 4, 16)) == 8 and bucket_size(8, (4, 8)) == 8
  assert bucket_size(5, None) == 5
  with pytest.raises(ValueError, match="exceeds the largest bucket 16"):
    bucket_size(17, (8, 16))


def test_group_expansion_and_buckets(tok):
  exs = generate_examples("arithmetic", 3, seed=0, difficulty=(1, 4))
  batch = make_prompt_batch(exs, tok, group_size=4, length_buckets=(8, 16, 32),
                            batch_buckets=(8, 16))
  B, S = batch.prompt_tokens.shape
  assert (B, S) == (16, 16)  # 12 rows -> 16; prompts of <= 16 tokens -> 16
  assert batch.prompt_tokens.dtype == np.int32 and batch.prompt_mask.dtype == bool
  np.testing.assert_array_equal(batch.group_ids, [0] * 4 + [1] * 4 + [2] * 4 + [-1] * 4)
  np.testing.assert_array_equal(batch.example_mask, batch.group_ids >= 0)
  assert batch.num_groups == 3
  assert batch.answers[:12] == [e.answer for e in exs for _ in range(4)]
  assert batch.answers[12:] == [""] * 4 and batch.examples[12:] == [None] * 4
  assert batch.pair_ids[4] == exs[1].pair_id and batch.difficulties[8] == exs[2].difficulty
  assert batch.tasks[0] == "arithmetic"
  for r in range(12):
    ids = tok.encode(exs[r // 4].prompt + "\n", add_bos=True)
    n = len(ids)
    assert batch.prompt_mask[r].sum() == n and batch.prompt_mask[r, S - n:].all()  # left pad
    assert batch.prompt_tokens[r, S - n:].tolist() == ids
    assert (batch.prompt_tokens[r, :S - n] == tok.pad_id).all()
  assert not batch.prompt_mask[12:].any()


def test_overlong_prompts_error_or_truncate(tok):
  exs = generate_examples("sort", 1, seed=0, difficulty=20)
  with pytest.raises(ValueError, match="prompt length"):
    make_prompt_batch(exs, tok, length_buckets=(8,))
  batch = make_prompt_batch(exs, tok, length_buckets=(8,), truncate=True)
  full = tok.encode(exs[0].prompt + "\n", add_bos=True)
  assert batch.prompt_tokens[0].tolist() == full[-8:]


def test_chat_format(tok):
  ex = generate_examples("countdown", 1, seed=0, difficulty=3)[0]
  fmt = ChatFormat(tok, system="Be brief.")
  text = fmt(ex)
  assert text == f"<s><|system|>\nBe brief.\n<|user|>\n{ex.prompt}\n<|assistant|>\n"
  batch = make_prompt_batch([ex], tok, formatter=fmt)
  row = batch.prompt_tokens[0][batch.prompt_mask[0]].tolist()
  assert row[0] == tok.bos_id and row.count(tok.bos_id) == 1  # template writes bos once
  assert batch.prompts[0] == text
  assert PlainFormat("Q: {prompt}\nA:")(ex) == f"Q: {ex.prompt}\nA:"


def test_sft_batch(tok):
  exs = generate_examples("calculation", 2, seed=0, difficulty=(2, 5))
  out = make_sft_batch(exs, tok)
  tokens, mask, loss_mask = out["tokens"], out["mask"], out["loss_mask"]
  assert tokens.shape == mask.shape == loss_mask.shape and mask[:, 0].all()  # right padded
  for b, ex in enumerate(exs):
    target = tokens[b][loss_mask[b]].tolist()
    assert target == tok.encode(ex.solution, add_eos=True)
    prompt = tokens[b][mask[b] & ~loss_mask[b]].tolist()
    assert prompt == tok.encode(ex.prompt + "\n", add_bos=True)
