"""The shipped task tokenizer: small, deterministic, digit-level, exact round trips."""

import os

from rlx.data import TASKS, generate_examples, load_task_tokenizer, train_task_tokenizer
from rlx.data.task_tokenizer import ASSET_DIR


def test_shipped_tokenizer_equals_a_fresh_training_run():
  path = os.path.join(ASSET_DIR, "tokenizer.model")
  assert os.path.getsize(path) < 1_000_000
  with open(path, "rb") as f:
    assert f.read() == train_task_tokenizer()


def test_digits_are_single_tokens_and_solutions_round_trip():
  tok = load_task_tokenizer()
  assert tok.vocab_size == 512 and (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 2, 3)
  for d in "0123456789":
    assert len(tok.encode(d)) == 1
  ids = tok.encode("1234567")
  assert [tok.id_to_token(i) for i in ids] == list("1234567")
  for name in TASKS:
    for ex in generate_examples(name, 3, seed=0, difficulty=TASKS[name].max_difficulty):
      for text in (ex.prompt, ex.solution):
        assert tok.decode(tok.encode(text)) == text
  text = "Ünïcode ☃ falls back to bytes"
  assert tok.decode(tok.encode(text)) == text
