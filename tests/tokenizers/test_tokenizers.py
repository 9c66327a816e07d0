"""Tokenizers: round trips on a SentencePiece model and a tokenizer.json built here; chat templates
render what transformers renders."""

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlx.tokenizers import HFTokenizer
from rlx.tokenizers import SentencePieceTokenizer
from rlx.tokenizers import load_tokenizer
from rlx.tokenizers import pad_sequences

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Compute 123 + 456. Answer: 579",
    "Sort the numbers 5 3 9 1 in ascending order.",
    "Large language models learn from reinforcement.",
    "Hello world! Héllo wörld, naïve café.",
] * 20

TEXTS = [
    "The lazy fox computes 12 + 34.",
    "Hello wörld!\nSecond line\twith a tab.",
    "",
    "zebra quiz ☃",  # unseen characters go through byte fallback
]

# Exercises the pieces of transformers' environment: trim/lstrip blocks, raise_exception, tojson,
# loop controls, bos/eos variables and add_generation_prompt.
TEMPLATE = """{{ bos_token }}
{% if messages[0]['role'] == 'system' %}
  {% set system = messages[0]['content'] %}
  {% set messages = messages[1:] %}
{% else %}
  {% set system = none %}
{% endif %}
{% if system %}[SYS] {{ system }}
{% endif %}
{% for message in messages %}
  {% if message['role'] not in ['user', 'assistant'] %}
    {{ raise_exception('unknown role ' + message['role']) }}
  {% endif %}
  {% if message.get('meta') %}meta={{ message['meta'] | tojson }}
  {% endif %}
<|{{ message['role'] }}|>
{{ message['content'] | trim }}{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}

{% endfor %}
{% if add_generation_prompt %}<|assistant|>
{% endif %}"""

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "  What is 2 + 2? "},
    {"role": "assistant", "content": "4", "meta": {"ok": True, "text": "é<>&"}},
    {"role": "user", "content": "And 3 + 3?"},
]


@pytest.fixture(scope="module")
def sp_tok():
  import sentencepiece as spm
  buf = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=340, model_type="bpe",
      byte_fallback=True, split_digits=True, character_coverage=1.0,
      normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
      pad_id=0, unk_id=1, bos_id=2, eos_id=3, user_defined_symbols=["\n", "\t"], num_threads=1,
      minloglevel=2, hard_vocab_limit=False)
  return SentencePieceTokenizer(buf.getvalue(), chat_template=TEMPLATE)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  """A byte-level BPE tokenizer.json saved by transformers with TEMPLATE."""
  import tokenizers
  from tokenizers import decoders, models, pre_tokenizers, trainers
  from transformers import PreTrainedTokenizerFast
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(CORPUS, trainer)
  fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                 pad_token="<pad>", chat_template=TEMPLATE)
  path = tmp_path_factory.mktemp("hf_tok")
  fast.save_pretrained(path)
  return path, fast


@pytest.mark.parametrize("text", TEXTS)
def test_sentencepiece_round_trip(sp_tok, text):
  ids = sp_tok.encode(text)
  assert all(0 <= i < sp_tok.vocab_size for i in ids)
  assert sp_tok.decode(ids) == text
  framed = sp_tok.encode(text, add_bos=True, add_eos=True)
  assert framed == [sp_tok.bos_id] + ids + [sp_tok.eos_id]
  assert sp_tok.decode(framed) == text


def test_sentencepiece_special_ids(sp_tok):
  assert (sp_tok.pad_id, sp_tok.bos_id, sp_tok.eos_id) == (0, 2, 3)
  assert sp_tok.special_tokens["bos_token"] == "<s>"
  assert sp_tok.decode([2, *sp_tok.encode("hi"), 3], skip_special_tokens=False) == "<s>hi</s>"


@pytest.mark.parametrize("text", TEXTS)
def test_hf_round_trip(hf_dir, text):
  path, fast = hf_dir
  tok = load_tokenizer(path)
  assert isinstance(tok, HFTokenizer)
  ids = tok.encode(text)
  assert ids == fast.encode(text, add_special_tokens=False)
  assert tok.decode(ids) == text
  assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text
  assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)


def test_chat_template_matches_transformers(hf_dir, sp_tok):
  path, fast = hf_dir
  tok = load_tokenizer(path)
  assert tok.chat_template == TEMPLATE
  for gen in (False, True):
    expected = fast.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=gen)
    assert tok.apply_chat_template(MESSAGES, add_generation_prompt=gen) == expected
  assert "<|assistant|>\n" in expected and expected.startswith("<s>")
  assert '"text": "é<>&"' in expected  # tojson does not HTML-escape
  # The SentencePiece tokenizer renders the same template with its own special tokens.
  assert sp_tok.apply_chat_template(MESSAGES, add_generation_prompt=True) == expected


def test_chat_template_raise_exception(sp_tok):
  import jinja2
  with pytest.raises(jinja2.exceptions.TemplateError, match="unknown role tool"):
    sp_tok.apply_chat_template([{"role": "tool", "content": "x"}])


def test_batch_encode_left_and_right_padding(sp_tok):
  texts = ["a", "The quick brown fox", ""]
  ids, mask = sp_tok.batch_encode(texts, add_bos=True)
  assert ids.dtype == np.int32 and mask.dtype == bool and ids.shape == mask.shape
  lengths = [len(sp_tok.encode(t, add_bos=True)) for t in texts]
  assert mask.sum(1).tolist() == lengths
  for b, n in enumerate(lengths):
    assert mask[b, ids.shape[1] - n:].all()  # left padded: tokens flush right
    assert (ids[b, :ids.shape[1] - n] == sp_tok.pad_id).all()
    assert sp_tok.decode(ids[b][mask[b]]) == texts[b]
  ids_r, mask_r = sp_tok.batch_encode(texts, left_pad=False, max_len=24)
  assert ids_r.shape == (3, 24) and mask_r[:, 0].tolist() == [True, True, False]
  with pytest.raises(ValueError, match="max_len"):
    sp_tok.batch_encode(texts, max_len=2)
  cut, cut_mask = sp_tok.batch_encode(texts, max_len=2, truncate=True)
  assert cut[1].tolist() == sp_tok.encode(texts[1])[-2:] and cut_mask.shape == (3, 2)


def test_pad_sequences_hand_case():
  ids, mask = pad_sequences([[5, 6], [7], []], pad_id=0)
  np.testing.assert_array_equal(ids, [[5, 6], [0, 7], [0, 0]])
  np.testing.assert_array_equal(mask, [[1, 1], [0, 1], [0, 0]])


def test_load_sentencepiece_directory(tmp_path, sp_tok):
  (tmp_path / "tokenizer.model").write_bytes(sp_tok._sp.serialized_model_proto())
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE}))
  tok = load_tokenizer(tmp_path)
  assert isinstance(tok, SentencePieceTokenizer) and tok.chat_template == TEMPLATE
  assert tok.encode(TEXTS[1]) == sp_tok.encode(TEXTS[1])
  with pytest.raises(FileNotFoundError):
    load_tokenizer(tmp_path / "missing")


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(
    "\n\t 0123456789"), max_size=40))
def test_round_trip_property(sp_tok, hf_dir, text):
  hf = load_tokenizer(hf_dir[0])
  for tok in (sp_tok, hf):
    assert tok.decode(tok.encode(text)) == text
