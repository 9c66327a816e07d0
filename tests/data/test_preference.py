"""Preference data: JSONL pairs and KTO examples, the synthetic separable task, padded batches."""

import json

import numpy as np
import pytest

from rlx.data import (ChatFormat, DataFormatError, PlainFormat, SyntheticPreferenceSource,
                      load_task_tokenizer, verify)
from rlx.data import preference as pref_data

TOK = load_task_tokenizer()


def write_jsonl(path, records):
  path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
  return path


def test_jsonl_pairs_with_margin_messages_and_errors(tmp_path):
  f = write_jsonl(tmp_path / "pairs.jsonl", [
      {"prompt": "What is 1 + 1?", "chosen": "Answer: 2", "rejected": "Answer: 3", "margin": 0.5},
      {"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi?"}],
       "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": "Go away.", "id": "x"},
  ])
  src = pref_data.PreferenceJsonlSource(f)
  assert len(src) == 2
  assert src[0] == pref_data.PreferencePair("What is 1 + 1?", "Answer: 2", "Answer: 3", 0.5,
                                            "pairs.jsonl/0")
  assert (src[1].prompt, src[1].chosen, src[1].margin, src[1].pair_id) == ("Hi?", "Hello.", 0.0,
                                                                           "x")
  bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "c"}])
  with pytest.raises(DataFormatError, match=r"bad\.jsonl:1: .*rejected"):
    pref_data.PreferenceJsonlSource(bad)
  assert pref_data.PreferenceJsonlSource(bad, on_error="skip").skipped == [f"{bad}:1"]


def test_jsonl_unpaired_labels(tmp_path):
  f = write_jsonl(tmp_path / "kto.jsonl", [
      {"prompt": "p", "completion": "good", "label": True},
      {"prompt": "p", "completion": "bad", "label": 0},
      {"prompt": "q", "completion": "fine", "label": "desirable"},
  ])
  src = pref_data.UnpairedJsonlSource(f)
  assert [e.desirable for e in src] == [True, False, True]
  bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "completion": "x", "label": 3}])
  with pytest.raises(DataFormatError, match="label"):
    pref_data.UnpairedJsonlSource(bad)


@pytest.mark.parametrize("corruption", ["answer", "guess"])
def test_synthetic_pairs_are_deterministic_and_separable(corruption):
  """Chosen is the verified solution, rejected never verifies; pair i depends on (seed, i)."""
  src = SyntheticPreferenceSource("calculation", size=200, seed=3, difficulty=(1, 2),
                                  corruption=corruption, margins=True)
  again = SyntheticPreferenceSource("calculation", size=200, seed=3, difficulty=(1, 2),
                                    corruption=corruption, margins=True)
  for i in range(200):
    p = src[i]
    assert p == again[i]
    assert verify("calculation", p.chosen, p.answer) == 1.0
    assert verify("calculation", p.rejected, p.answer) == 0.0
    assert 0 < p.margin <= 1
    if corruption == "answer":  # same steps, only the final answer differs
      assert p.chosen.rsplit("Answer:", 1)[0] == p.rejected.rsplit("Answer:", 1)[0]
  other = SyntheticPreferenceSource("calculation", size=200, seed=4, difficulty=(1, 2))
  assert src[0].prompt != other[0].prompt
  assert SyntheticPreferenceSource("sort", size=5, seed=0, difficulty=3)[0].rejected != \
      SyntheticPreferenceSource("sort", size=5, seed=0, difficulty=3)[0].chosen


def test_unpaired_view_splits_pairs():
  pairs = SyntheticPreferenceSource("calculation", size=3, seed=0, difficulty=1)
  view = pref_data.UnpairedView(pairs)
  assert len(view) == 6
  assert (view[2].completion, view[2].desirable) == (pairs[1].chosen, True)
  assert (view[3].completion, view[3].desirable) == (pairs[1].rejected, False)


def test_pair_batch_masks_right_padding_and_rows():
  pairs = [pref_data.PreferencePair("What is 2 + 2?", "Answer: 4", "It is 5, I think.", 0.25)]
  b = pref_data.make_pair_batch(pairs, TOK, max_len=32, rows=3)
  prompt = TOK.encode("What is 2 + 2?\n", add_bos=True)
  chosen = TOK.encode("Answer: 4", add_eos=True)
  rejected = TOK.encode("It is 5, I think.", add_eos=True)
  assert b["chosen_tokens"].shape == (3, 32)
  n = len(prompt) + len(chosen)
  np.testing.assert_array_equal(b["chosen_tokens"][0, :n], prompt + chosen)
  np.testing.assert_array_equal(b["chosen_mask"][0], np.arange(32) < n)
  np.testing.assert_array_equal(b["chosen_loss_mask"][0],
                                (np.arange(32) >= len(prompt)) & (np.arange(32) < n))
  assert b["rejected_loss_mask"][0].sum() == len(rejected)
  assert b["chosen_tokens"][0, n:].tolist() == [TOK.pad_id] * (32 - n)
  np.testing.assert_array_equal(b["weight"], [1, 0, 0])  # padding rows repeat row 0, weight 0
  np.testing.assert_array_equal(b["margin"], [0.25] * 3)


def test_truncation_keeps_the_completion_and_buckets():
  long_prompt = "Calculate " + " + ".join(["1"] * 30) + "."
  pairs = [pref_data.PreferencePair(long_prompt, "Answer: 30", "Answer: 31")]
  b = pref_data.make_pair_batch(pairs, TOK, max_len=24)
  completion = TOK.encode("Answer: 30", add_eos=True)
  assert b["chosen_mask"][0].sum() == 24
  assert b["chosen_tokens"][0, -len(completion):].tolist() == completion  # prompt cut on the left
  assert b["chosen_loss_mask"][0].sum() == len(completion)
  short = [pref_data.PreferencePair("What is 1 + 1?", "Answer: 2", "Answer: 3")]
  assert pref_data.make_pair_batch(short, TOK, max_len=48, length_buckets=(16, 32))[
      "chosen_tokens"].shape[1] == 16
  assert pref_data.make_pair_batch(pairs, TOK, max_len=48, length_buckets=(16, 32))[
      "chosen_tokens"].shape[1] == 48


def test_chat_format_applies_to_pairs():
  pairs = [pref_data.PreferencePair("What is 1 + 1?", "Answer: 2", "Answer: 3")]
  plain = pref_data.make_pair_batch(pairs, TOK, formatter=PlainFormat(), max_len=64)
  chat = pref_data.make_pair_batch(pairs, TOK, formatter=ChatFormat(TOK), max_len=64)
  prompt = TOK.encode(ChatFormat(TOK)(pref_data.Example(prompt="What is 1 + 1?")))
  assert chat["chosen_tokens"][0, :len(prompt)].tolist() == prompt
  assert chat["chosen_mask"].sum() != plain["chosen_mask"].sum()


def test_unpaired_batch_mismatched_rows():
  examples = [pref_data.LabeledCompletion("p0", "Answer: 0", True),
              pref_data.LabeledCompletion("p1", "Answer: 1", False),
              pref_data.LabeledCompletion("p2", "Answer: 2", True)]
  b = pref_data.make_unpaired_batch(examples, TOK, max_len=24)
  np.testing.assert_array_equal(b["desirable"], [1, 0, 1])
  decode = lambda tokens, m: TOK.decode(tokens[m > 0].tolist())
  assert decode(b["kl_tokens"][0], b["kl_loss_mask"][0]) == "Answer: 1"  # prompt 0, completion 1
  assert decode(b["kl_tokens"][2], b["kl_loss_mask"][2]) == "Answer: 0"
  assert decode(b["kl_tokens"][1], b["kl_mask"][1] - b["kl_loss_mask"][1]).strip() == "p1"
  fixed = pref_data.make_unpaired_batch(examples, TOK, max_len=24, mismatched=examples[::-1])
  assert decode(fixed["kl_tokens"][0], fixed["kl_loss_mask"][0]) == "Answer: 2"
