"""Process rewards: step spans, token offsets, step scores on the tokens that complete the steps."""

import io
import re

import numpy as np
import pytest

from rlx.rewards import (ProcessReward, RewardInput, SafeReward, compose, get_reward, pad_ragged,
                         reward_metrics, step_spans, steps_to_token_scores, token_end_offsets)
from rlx.rewards.testing import BigramScorer, make_batch

# --- toy tokenizers ------------------------------------------------------------------------------


def char_encode(text):
  return [ord(c) for c in text]


def char_decode(ids):
  return "".join(chr(i) for i in ids)


class PieceTokenizer:
  """Tokens are given pieces (words with their spaces, newlines ...); ``decode`` concatenates.
  With ``sentencepiece=True`` pieces spell spaces as "▁" and the decoded text loses its first
  space, as SentencePiece's decoder does (so decoding a suffix is not a suffix of the text)."""

  def __init__(self, sentencepiece=False):
    self.vocab, self.sentencepiece, self.decoded_tokens = [], sentencepiece, 0

  def encode_pieces(self, pieces):
    for p in pieces:
      if p not in self.vocab:
        self.vocab.append(p)
    return [self.vocab.index(p) for p in pieces]

  def decode(self, ids):
    self.decoded_tokens += len(ids)
    text = "".join(self.vocab[i] for i in ids)
    if self.sentencepiece:
      text = text.replace("▁", " ")
      text = text[1:] if text.startswith(" ") else text
    return text


def byte_decode(ids):
  """A byte-level tokenizer: one token per UTF-8 byte; incomplete characters print as U+FFFD."""
  return bytes(ids).decode("utf-8", errors="replace")


def arith_steps(prompt, steps, meta):
  """A per-sample step checker: ``a op b = c`` steps score 1 if right and -1 if wrong; anything
  else 0. (Used by name from the registry: ``tests.rewards.test_process:arith_steps``.)"""
  out = []
  for s in steps:
    m = re.fullmatch(r"(\d+)([+*-])(\d+)=(-?\d+)", s.replace(" ", ""))
    if not m:
      out.append(0.0)
      continue
    a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
    out.append(1.0 if {"+": a + b, "-": a - b, "*": a * b}[op] == c else -1.0)
  return out


def brute_force_offsets(decode, ids):
  """len(decode(ids[:k+1])) for every k (a trailing U+FFFD — a split character — does not end a
  token), running max, clipped to the text."""
  text = decode(ids)
  out, prev = [], 0
  for k in range(len(ids)):
    p = decode(ids[:k + 1])
    if "\ufffd" in text or not p.endswith("\ufffd"):
      prev = max(prev, len(p))
    out.append(min(prev, len(text)))
  return out


# --- step_spans ----------------------------------------------------------------------------------


def test_step_spans_lines_paragraphs_regex():
  text = "ab\ncd\n\nef"
  assert step_spans(text, "\n") == [(0, 2), (3, 5), (7, 9)]  # the empty line is skipped
  assert step_spans(text, "\n\n") == [(0, 5), (7, 9)]
  # trailing delimiter: no empty final step; whitespace around steps trimmed
  assert step_spans("  a b \n\n c\n\n", "\n\n") == [(2, 5), (9, 10)]
  assert step_spans("  a b \n\n c\n\n", "\n\n", strip=False) == [(0, 6), (8, 10)]
  # a final step without a delimiter (truncated) counts
  assert step_spans("x=1\ny=", "\n") == [(0, 3), (4, 6)]
  # regex: split on the delimiter, or (lookahead) keep the header in its step
  assert step_spans("Step 1: a Step 2: b", "re:Step \\d+:") == [(8, 9), (18, 19)]
  assert step_spans("Step 1: a Step 2: b", re.compile(r"(?=Step \d+:)")) == [(0, 9), (10, 19)]
  assert step_spans("", "\n") == [] and step_spans("\n\n\n", "\n") == []
  with pytest.raises(ValueError):
    step_spans("a", "")


# --- token_end_offsets ---------------------------------------------------------------------------


def test_offsets_char_tokenizer():
  text = "ab\ncd"
  np.testing.assert_array_equal(token_end_offsets(char_decode, char_encode(text)), [1, 2, 3, 4, 5])
  assert token_end_offsets(char_decode, []).shape == (0,)


def test_offsets_word_tokenizer():
  tok = PieceTokenizer()
  ids = tok.encode_pieces(["Let", " x", " =", " 2.", "\n\nThen", " y"])
  np.testing.assert_array_equal(token_end_offsets(tok.decode, ids), [3, 5, 7, 10, 16, 18])


@pytest.mark.parametrize("block", [None, 1, 2, 3, 100])
def test_offsets_sentencepiece_style_leading_space(block):
  # decode(["▁x"]) == "x" but the same piece adds " x" inside the text: single-piece decodes do
  # not concatenate to the text, so the windowed (left-context) path runs.
  tok = PieceTokenizer(sentencepiece=True)
  ids = tok.encode_pieces(["▁Let", "▁x", "▁=", "▁2.", "\n\n", "Then"])
  assert tok.decode(ids) == "Let x = 2.\n\nThen"
  np.testing.assert_array_equal(token_end_offsets(tok.decode, ids, block=block),
                                [3, 5, 7, 10, 12, 16])


@pytest.mark.parametrize("block", [None, 1, 2, 3, 100])
def test_offsets_split_multibyte_character(block):
  ids = list("x😀y\n\nz".encode())  # the emoji is 4 byte tokens; 9 tokens, 6 characters
  assert len(ids) == 9
  # the first three bytes of the emoji complete nothing; its last byte completes character 2
  np.testing.assert_array_equal(token_end_offsets(byte_decode, ids, block=block),
                                [1, 1, 1, 1, 2, 3, 4, 5, 6])


def test_offsets_non_prefix_decodes_are_monotone_and_clipped():
  # A decoder that "cleans up" " ." to "." once the full stop arrives: the prefix ending in a
  # space is longer than the next prefix, so offsets are made monotone and clipped to the text.
  vocab = ["a", " ", ".", "b"]
  decode = lambda ids: "".join(vocab[i] for i in ids).replace(" .", ".")
  ids = [0, 1, 2, 3]  # "a", " ", "." -> "a.", "b" -> "a.b"
  assert decode(ids) == "a.b"
  np.testing.assert_array_equal(token_end_offsets(decode, ids), [1, 2, 2, 3])
  np.testing.assert_array_equal(token_end_offsets(decode, ids, block=1), [1, 2, 2, 3])


def test_offsets_cost_is_subquadratic():
  tok = PieceTokenizer(sentencepiece=True)
  words = [f"▁w{i % 50}" + ("\n\n" if i % 7 == 6 else "") for i in range(1000)]
  ids = tok.encode_pieces(words)
  tok.decoded_tokens = 0
  fast = token_end_offsets(tok.decode, ids)
  cost = tok.decoded_tokens
  assert cost < 60_000, cost  # every prefix: 500,500 decoded tokens
  np.testing.assert_array_equal(fast, brute_force_offsets(tok.decode, ids))


@pytest.fixture(scope="module")
def real_tokenizers():
  """A byte-level BPE (tokenizers) and a SentencePiece BPE with byte fallback, trained here."""
  corpus = ["Let x = 2.\n\nThen y = x + 2 = 4.", "So the answer is 4.", "Compute 12 * 3 = 36.",
            "Héllo wörld, naïve café."] * 20
  out = {}
  tokenizers = pytest.importorskip("tokenizers")
  from tokenizers import decoders, models, pre_tokenizers, trainers
  bpe = tokenizers.Tokenizer(models.BPE())
  bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  bpe.decoder = decoders.ByteLevel()
  bpe.train_from_iterator(corpus, trainers.BpeTrainer(
      vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
  out["byte_bpe"] = (lambda t: bpe.encode(t, add_special_tokens=False).ids,
                     lambda ids: bpe.decode(ids))
  spm = pytest.importorskip("sentencepiece")
  buf = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(corpus), model_writer=buf, vocab_size=340, model_type="bpe",
      byte_fallback=True, character_coverage=1.0, user_defined_symbols=["\n"], num_threads=1,
      minloglevel=2, hard_vocab_limit=False)
  sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
  out["sentencepiece"] = (lambda t: sp.encode(t), lambda ids: sp.decode(ids))
  return out


REAL_TEXTS = ["Let x = 2.\n\nThen y = x + 2 = 4.\n\nSo the answer is 4.",
              "Héllo ☃ wörld 😀!\n\nzebra quiz",  # unseen characters: byte tokens
              " leading space\n\n\ntrailing \n"]


@pytest.mark.parametrize("kind", ["byte_bpe", "sentencepiece"])
@pytest.mark.parametrize("text", REAL_TEXTS)
def test_offsets_real_tokenizers_match_brute_force(real_tokenizers, kind, text):
  encode, decode = real_tokenizers[kind]
  ids = list(encode(text))
  ref = brute_force_offsets(decode, ids)
  for block in (None, 1, 2, 5, len(ids)):
    np.testing.assert_array_equal(token_end_offsets(decode, ids, block=block), ref)
  full = decode(ids)
  assert ref[-1] == len(full)
  if "\ufffd" not in full:  # offsets land on character boundaries of tokens' own text
    for k, e in enumerate(ref):
      p = decode(ids[:k + 1])
      assert p.endswith("\ufffd") or e == len(p)


@pytest.mark.parametrize("kind", ["byte_bpe", "sentencepiece"])
def test_process_reward_real_tokenizer_places_scores_on_completing_token(real_tokenizers, kind):
  encode, decode = real_tokenizers[kind]
  texts = [t for t in REAL_TEXTS]
  ids, mask = pad_ragged([encode(t) for t in texts])
  texts = [decode(r[m > 0].tolist()) for r, m in zip(ids, mask)]  # what the runtime decodes
  batch = RewardInput(prompts=[""] * 3, completions=texts, completion_ids=ids,
                      completion_mask=mask, decode=decode)
  reward = ProcessReward(lambda p, steps, m: [10.0 ** j for j in range(len(steps))])
  out = reward(batch)
  for i, text in enumerate(texts):
    spans = step_spans(text, "\n\n")
    row_ids = ids[i, mask[i] > 0].tolist()
    placed = np.flatnonzero(out.token_scores[i])
    assert len(placed) == len(spans)
    for j, (_, end) in enumerate(spans):
      k = placed[j]
      assert out.token_scores[i, k] == 10.0 ** j
      # token k completes the step: the text up to k reaches the step's end, up to k−1 does not
      assert len(decode(row_ids[:k + 1]).rstrip("\ufffd")) >= end
      assert k == 0 or len(decode(row_ids[:k]).rstrip("\ufffd")) < end
    assert np.all(out.token_scores[i, mask[i] == 0] == 0)


# --- steps_to_token_scores -----------------------------------------------------------------------


def test_steps_to_token_scores_hand_case():
  token_ends = [3, 5, 7, 10, 16, 18]  # "Let", " x", " =", " 2.", "\n\nThen", " y"
  got = steps_to_token_scores([0.5, -1.0], [10, 18], token_ends, 8)
  np.testing.assert_array_equal(got, [0, 0, 0, 0.5, 0, -1.0, 0, 0])
  # a step ending inside a token goes to that token; two steps on one token add up
  got = steps_to_token_scores([1.0, 2.0], [4, 5], token_ends, 6)
  np.testing.assert_array_equal(got, [0, 3.0, 0, 0, 0, 0])
  # truncation: a step ending past the last token goes to the last token
  got = steps_to_token_scores([1.0, 2.0], [10, 40], token_ends, 8)
  np.testing.assert_array_equal(got, [0, 0, 0, 1.0, 0, 2.0, 0, 0])
  assert steps_to_token_scores([1.0], [3], [], 4).tolist() == [0, 0, 0, 0]  # no tokens
  with pytest.raises(ValueError):
    steps_to_token_scores([1.0, 2.0], [3], token_ends, 8)


# --- ProcessReward -------------------------------------------------------------------------------

ARITH = ["1+2=3\n3*4=12\n12-5=7", "1+2=4\n4*4=16", "2+2=4\n4*5="]


def arith_expected():
  t = max(len(c) for c in ARITH)  # char tokenizer: token k ends at character k+1
  exp = np.zeros((3, t), np.float32)
  exp[0, [4, 11, 18]] = [1, 1, 1]
  exp[1, [4, 11]] = [-1, 1]
  exp[2, [4, 9]] = [1, 0]  # truncated final step "4*5=" scores 0 on the last token (index 9)
  return exp


def test_process_reward_char_tokenizer_lines_with_padding():
  batch = make_batch(["q"] * 3, ARITH, finish_reasons=["stop", "stop", "length"],
                     answers=["7", "15", "20"])  # BigramScorer's character tokenizer
  assert batch.completion_ids.shape == (3, 19) and batch.completion_mask[2].sum() == 10
  out = ProcessReward(arith_steps, delimiter="\n")(batch, BigramScorer())  # scorer.decode
  np.testing.assert_array_equal(out.token_scores, arith_expected())
  np.testing.assert_array_equal(out.scores, [0, 0, 0])  # aggregate "none"
  np.testing.assert_array_equal(out.extras["steps"], [3, 2, 2])
  np.testing.assert_array_equal(out.extras["step_score_min"], [1, -1, 0])
  np.testing.assert_array_equal(out.failures, [0, 0, 0])
  np.testing.assert_array_equal(out.extras["decode_mismatch"], [0, 0, 0])


@pytest.mark.parametrize("aggregate,expected", [("none", [0, 0, 0]), ("min", [1, -1, 0]),
                                                ("mean", [1, 0, 0.5]), ("last", [1, 1, 0])])
def test_process_reward_aggregates(aggregate, expected):
  batch = make_batch(["q"] * 3, ARITH)
  out = ProcessReward(arith_steps, delimiter="\n", aggregate=aggregate)(batch, BigramScorer())
  np.testing.assert_allclose(out.scores, expected)


def test_process_reward_paragraphs_word_tokens_and_padding_mask():
  tok = PieceTokenizer()
  rows = [["Let", " x", " =", " 2.", "\n\nThen", " y", " =", " 4", "\n\n", "Done"],
          ["Only", " one", " step"],
          []]
  ids, mask = pad_ragged([tok.encode_pieces(r) for r in rows], pad=tok.encode_pieces(["PAD"])[0])
  texts = ["".join(r) for r in rows]
  batch = RewardInput(prompts=["p"] * 3, completions=texts, completion_ids=ids,
                      completion_mask=mask, decode=tok.decode)
  seen = []

  def score(prompt, steps, meta):
    seen.append(steps)
    return [0.5, -1.0, 2.0][:len(steps)]

  out = ProcessReward(score, delimiter="\n\n", aggregate="last")(batch)
  assert seen == [["Let x = 2.", "Then y = 4", "Done"], ["Only one step"]]  # no call for row 3
  # ends: Let 3, " x" 5, " =" 7, " 2." 10, "\n\nThen" 16, " y" 18, " =" 20, " 4" 22, "\n\n" 24,
  # "Done" 28: steps end at 10, 22, 28 → tokens 3, 7, 9; "Only one step" ends at token 2.
  exp = np.zeros((3, 10), np.float32)
  exp[0, [3, 7, 9]] = [0.5, -1.0, 2.0]
  exp[1, 2] = 0.5
  np.testing.assert_array_equal(out.token_scores, exp)
  np.testing.assert_array_equal(out.scores, [2.0, 0.5, 0.0])
  np.testing.assert_array_equal(out.extras["steps"], [3, 1, 0])


def test_process_reward_mask_with_holes_and_decode_mismatch():
  # Positions are those of the mask's ones; a completion text that is not a prefix of the
  # decoded tokens is replaced by the decoded text (counted as decode_mismatch).
  ids = np.array([[ord(c) for c in "a\nbXc"], [ord(c) for c in "a\nb\nc"]])
  mask = np.array([[1, 1, 1, 0, 1], [1, 1, 1, 1, 1]])
  batch = RewardInput(prompts=["", ""], completions=["a\nbc", "a\nbZZZ"], completion_ids=ids,
                      completion_mask=mask, decode=char_decode)
  out = ProcessReward(lambda p, s, m: [1.0] * len(s), delimiter="\n")(batch)
  # row 0: "a" ends at valid token 0 (position 0), "bc" at valid token 3 (position 4)
  # row 1: decoded "a\nb\nc" (mismatch) → steps "a", "b", "c" at positions 0, 2, 4
  np.testing.assert_array_equal(out.token_scores, [[1, 0, 0, 0, 1], [1, 0, 1, 0, 1]])
  np.testing.assert_array_equal(out.extras["decode_mismatch"], [0, 1])


def test_process_reward_prefix_completion_keeps_completion_text():
  # The completion text is a prefix of the decoded tokens (e.g. a stop string trimmed): the
  # completion is split, and its steps land on the tokens that reach their ends.
  ids = np.array([[ord(c) for c in "a\nb</s>"]])
  batch = RewardInput(prompts=[""], completions=["a\nb"], completion_ids=ids,
                      completion_mask=np.ones_like(ids), decode=char_decode)
  seen = []
  out = ProcessReward(lambda p, s, m: seen.append(s) or [1.0, 2.0], delimiter="\n")(batch)
  assert seen == [["a", "b"]]
  np.testing.assert_array_equal(out.token_scores[0], [1, 0, 2, 0, 0, 0, 0])


def test_process_reward_contains_bad_step_functions():
  batch = make_batch(["ok", "raises", "short", "nan"], ["a\nb"] * 4)

  def score(prompt, steps, meta):
    if prompt == "raises":
      raise RuntimeError("boom")
    return {"ok": [1.0, 2.0], "short": [1.0], "nan": [1.0, float("nan")]}[prompt]

  out = ProcessReward(score, delimiter="\n")(batch, BigramScorer())
  np.testing.assert_array_equal(out.failures, [0, 1, 1, 1])
  np.testing.assert_array_equal(out.extras["failures_exception"], [0, 1, 0, 0])
  np.testing.assert_array_equal(out.extras["failures_malformed"], [0, 0, 1, 0])
  np.testing.assert_array_equal(out.extras["failures_nonfinite"], [0, 0, 0, 1])
  np.testing.assert_array_equal(out.token_scores[0, :3], [1, 0, 2])
  assert not out.token_scores[1:].any()


def test_process_reward_needs_a_decoder():
  batch = make_batch(["q"], ["a\nb"])
  reward = ProcessReward(arith_steps, delimiter="\n")
  with pytest.raises(ValueError, match="must pass"):
    reward(batch, None)
  safe = SafeReward(reward)(batch, None)  # contained: default scores, counted, no token scores
  assert safe.token_scores is None and safe.failures.tolist() == [1]
  # select keeps the decoder
  with_decode = RewardInput(prompts=["q", "r"], completions=["a", "b"], decode=char_decode)
  assert with_decode.select([1]).decode is char_decode


def test_process_reward_arguments_are_checked():
  with pytest.raises(ValueError):
    ProcessReward(arith_steps, aggregate="max")
  with pytest.raises(ValueError):
    ProcessReward(arith_steps, aggregate="min", outcome=get_reward("format"))
  with pytest.raises(ValueError):
    ProcessReward(arith_steps, delimiter="")
  assert not hasattr(ProcessReward(arith_steps), "state_dict")


# --- registry, outcome, SafeReward and compose keep token scores ---------------------------------

STEP_FN = "tests.rewards.test_process:arith_steps"


def test_registry_builds_process_reward_with_outcome():
  batch = make_batch(["q"] * 3, ARITH, answers=["7", "15", "20"])
  reward = get_reward("process_reward", step_fn=STEP_FN, delimiter="\n",
                      outcome={"name": "math_answer", "use_sympy": False})
  assert isinstance(reward, SafeReward) and isinstance(reward.reward, ProcessReward)
  out = reward(batch, BigramScorer())
  np.testing.assert_array_equal(out.scores, [1, 0, 0])  # the outcome's scores: 7 ✓, 16 ✗, 5 ✗
  np.testing.assert_array_equal(out.token_scores, arith_expected())
  np.testing.assert_array_equal(out.extras["outcome/failures"], [0, 0, 0])
  m = reward_metrics(out)
  assert m["reward/steps"] == pytest.approx(7 / 3)


def test_safe_wrapped_process_reward_keeps_token_scores():
  batch = make_batch(["q"] * 3, ARITH)
  out = SafeReward(ProcessReward(arith_steps, delimiter="\n"))(batch, BigramScorer())
  np.testing.assert_array_equal(out.token_scores, arith_expected())
  out = get_reward("process_reward", step_fn=arith_steps, delimiter="\n", aggregate="min")(
      batch, BigramScorer())
  np.testing.assert_array_equal(out.token_scores, arith_expected())
  np.testing.assert_array_equal(out.scores, [1, -1, 0])


def test_composed_process_reward_keeps_weighted_token_scores():
  batch = make_batch(["q"] * 3, ARITH, answers=["7", "15", "20"])
  reward = compose([
      {"name": "math_answer", "use_sympy": False},
      {"name": "process_reward", "key": "steps", "weight": 0.5, "step_fn": STEP_FN,
       "delimiter": "\n"},
      {"name": "process_reward", "key": "gated_steps", "weight": 2.0, "gate": "math_answer",
       "step_fn": STEP_FN, "delimiter": "\n"},
  ])
  out = reward(batch, BigramScorer())
  gate = np.array([1.0, 0.0, 0.0])[:, None]  # only row 0 is correct
  np.testing.assert_allclose(out.token_scores, (0.5 + 2.0 * gate) * arith_expected())
  np.testing.assert_array_equal(out.scores, [1, 0, 0])
  assert out.extras["reward/steps/steps"].tolist() == [3, 2, 2]
