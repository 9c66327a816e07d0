"""The small SentencePiece tokenizer shipped for rlx's synthetic tasks.

``rlx/data/assets/task_tokenizer/`` holds ``tokenizer.model`` (BPE, 512 pieces, digits split
into single tokens, byte fallback for anything unseen, identity normalisation so decoding is
exact) and ``tokenizer_config.json`` (its chat template). ``scripts/train_tokenizer.py``
regenerates both deterministically with :func:`train_task_tokenizer`; a test checks the shipped
file equals a fresh training run.

Ids: pad 0, unk 1, bos 2 (``<s>``), eos 3 (``</s>``); ``\\n`` and the chat role tags
``<|system|>``, ``<|user|>``, ``<|assistant|>`` are single pieces.
"""

from __future__ import annotations

import io
import json
import os

from rlx.data.tasks import TASKS, generate_examples
from rlx.tokenizers import SentencePieceTokenizer, load_tokenizer

ASSET_DIR = os.path.join(os.path.dirname(__file__), "assets", "task_tokenizer")
VOCAB_SIZE = 512
CORPUS_SEED = 20250101
ROLE_TAGS = ("<|system|>", "<|user|>", "<|assistant|>")
# The tasks whose text trained the shipped tokenizer (a task added later, such as
# tool_multiplication, is tokenized by it as it is and does not change it).
CORPUS_TASKS = ("arithmetic", "countdown", "calculation", "sort", "reverse")

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' }}\n"
    "{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}\n{% endif %}")


def task_corpus(examples_per_difficulty: int = 8) -> list[str]:
  """Deterministic training text: prompts and worked solutions of every task and difficulty."""
  lines = []
  for name in CORPUS_TASKS:
    task = TASKS[name]
    for d in range(task.min_difficulty, task.max_difficulty + 1):
      for ex in generate_examples(name, examples_per_difficulty, seed=CORPUS_SEED + d,
                                  difficulty=d):
        lines.append(ex.prompt)
        lines.extend(ex.solution.split("\n"))
  lines += ["You are a careful calculator. Show your work, then give the final answer.",
            "Answer:"] * 4
  return lines


def train_task_tokenizer(vocab_size: int = VOCAB_SIZE) -> bytes:
  """Trains the task tokenizer (single-threaded, unshuffled input: deterministic bytes)."""
  import sentencepiece as spm
  buf = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(task_corpus()), model_writer=buf, vocab_size=vocab_size,
      model_type="bpe", split_digits=True, byte_fallback=True, character_coverage=1.0,
      normalization_rule_name="identity", remove_extra_whitespaces=False,
      add_dummy_prefix=False, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
      user_defined_symbols=["\n", *ROLE_TAGS], num_threads=1, shuffle_input_sentence=False,
      hard_vocab_limit=False, minloglevel=2)
  return buf.getvalue()


def write_task_tokenizer(out_dir: str = ASSET_DIR, vocab_size: int = VOCAB_SIZE) -> str:
  """Writes ``tokenizer.model`` and ``tokenizer_config.json`` into ``out_dir``."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
    f.write(train_task_tokenizer(vocab_size))
  config = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
            "unk_token": "<unk>", "chat_template": CHAT_TEMPLATE}
  with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, sort_keys=True)
    f.write("\n")
  return out_dir


def load_task_tokenizer() -> SentencePieceTokenizer:
  """The shipped task tokenizer (no download, no training)."""
  tok = load_tokenizer(ASSET_DIR)
  assert isinstance(tok, SentencePieceTokenizer)
  return tok
