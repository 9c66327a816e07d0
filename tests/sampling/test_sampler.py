import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rlx import core, models
from rlx.sampling import STOP, LENGTH, Buckets, SamplingParams, continue_sampling, sample
from rlx.sampling import sampler as sampler_lib

CFG = models.ModelConfig(vocab_size=48, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         head_dim=8, d_ff=64, init_std=0.3)
PROMPTS = [[3, 7, 1], [5, 2, 9, 11, 4], [8], [6, 6, 2, 1]]
SMALL = Buckets(prompt_lengths=(8, 16), batch_sizes=(4, 8, 16), new_tokens=(8, 16))


@pytest.fixture(scope="module")
def policy():
  return models.init_params(CFG, seed=1)


def _left_padded(prompts, width=None):
  width = width or max(map(len, prompts))
  tokens = np.zeros((len(prompts), width), np.int32)
  mask = np.zeros((len(prompts), width), np.int32)
  for i, p in enumerate(prompts):
    tokens[i, width - len(p):] = p
    mask[i, width - len(p):] = 1
  return tokens, mask


def _teacher_forced_logits(graphdef, params, rollout):
  """Full forward pass over prompt + completion: logits that predict each completion token."""
  tokens = jnp.concatenate([rollout.prompt_tokens, rollout.completion_tokens], axis=1)
  mask = jnp.concatenate([rollout.prompt_mask.astype(jnp.float32), rollout.completion_mask], axis=1)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
  logits, _ = models.apply(graphdef, params, tokens, positions, mask)
  p = rollout.prompt_tokens.shape[1]
  return logits[:, p - 1:-1]


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.5, 0, 0.8),
                                                     (0.9, 10, 0.9)])
def test_logprobs_equal_teacher_forced(policy, temperature, top_k, top_p):
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  sp = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=12, n=2,
                      return_entropy=True, return_self_certainty=True)
  r = sample(graphdef, params, tokens, mask, sp, jax.random.key(3), buckets=SMALL)
  logits = _teacher_forced_logits(graphdef, params, r)
  stats_ = core.logprobs_from_logits(logits, r.completion_tokens, temperature, with_entropy=True)
  m = np.asarray(r.completion_mask)
  # 1e-5 absolute and relative: float32 rounding of a prefill batch shaped differently from the
  # teacher-forced pass (shared prefixes prefill each prompt once) reaches ~1e-5 at |logp| ~ 1.
  tol = dict(atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(r.logprobs), np.asarray(stats_.logprobs) * m, **tol)
  np.testing.assert_allclose(np.asarray(r.entropy), np.asarray(stats_.entropy) * m, **tol)
  sc = core.self_certainty_from_logits(logits, temperature)
  np.testing.assert_allclose(np.asarray(r.self_certainty), np.asarray(sc) * m, **tol)
  assert r.completion_tokens.shape == (8, 12)
  np.testing.assert_array_equal(r.group_ids, [0, 0, 1, 1, 2, 2, 3, 3])


def test_greedy_equals_stepwise_argmax_of_full_forward(policy):
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  r = sample(graphdef, params, tokens, mask, SamplingParams(greedy=True, max_new_tokens=10),
             jax.random.key(0), buckets=SMALL)
  width = 16  # right-padded to one width: causal attention makes the padding invisible
  forward = jax.jit(lambda ids, mask: models.apply(graphdef, params, ids, jnp.arange(width)[None], mask)[0])
  for i, prompt in enumerate(PROMPTS):
    seq = list(prompt)
    for _ in range(10):
      ids = np.zeros((1, width), np.int32)
      ids[0, :len(seq)] = seq
      logits = forward(ids, (np.arange(width) < len(seq))[None])
      seq.append(int(jnp.argmax(logits[0, len(seq) - 1])))
    np.testing.assert_array_equal(np.asarray(r.completion_tokens[i]), seq[len(prompt):])


def test_greedy_matches_hugging_face_generate(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  hf_cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, head_dim=8, tie_word_embeddings=False,
                                    bos_token_id=1, eos_token_id=2, pad_token_id=0)
  hf_model = transformers.LlamaForCausalLM(hf_cfg).eval()
  with torch.no_grad():
    for p in hf_model.parameters():
      p.normal_(0.0, 0.3) if p.ndim > 1 else None
  hf_model.save_pretrained(tmp_path, safe_serialization=True)
  config, params = models.load_hf(str(tmp_path))
  graphdef, _ = models.abstract(config)
  prompts = [[5, 9, 13, 7], [3, 4, 8, 10, 11, 12]]
  tokens, mask = _left_padded(prompts)
  r = sample(graphdef, params, tokens, mask, SamplingParams(greedy=True, max_new_tokens=12),
             jax.random.key(0), buckets=SMALL)
  for i, prompt in enumerate(prompts):
    out = hf_model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                            eos_token_id=None, pad_token_id=0)
    np.testing.assert_array_equal(np.asarray(r.completion_tokens[i]), out[0, len(prompt):].numpy())


def test_same_key_same_output_different_key_different(policy):
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  sp = SamplingParams(max_new_tokens=8, n=2)
  a = sample(graphdef, params, tokens, mask, sp, jax.random.key(7), buckets=SMALL)
  b = sample(graphdef, params, tokens, mask, sp, jax.random.key(7), buckets=SMALL)
  c = sample(graphdef, params, tokens, mask, sp, jax.random.key(8), buckets=SMALL)
  np.testing.assert_array_equal(a.completion_tokens, b.completion_tokens)
  np.testing.assert_array_equal(a.logprobs, b.logprobs)
  assert not np.array_equal(a.completion_tokens, c.completion_tokens)
  # The n samples of one prompt differ from each other.
  assert not np.array_equal(a.completion_tokens[0], a.completion_tokens[1])


def _first_token_distribution(graphdef, params, prompt, temperature):
  ids = jnp.asarray([prompt])
  logits, _ = models.apply(graphdef, params, ids, jnp.arange(len(prompt))[None], jnp.ones_like(ids))
  p = np.asarray(jax.nn.softmax(logits[0, -1] / temperature), np.float64)
  return p / p.sum(), np.asarray(logits[0, -1])


def test_n_samples_are_independent_draws_from_the_tempered_distribution():
  cfg = models.ModelConfig(vocab_size=8, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1,
                           head_dim=8, d_ff=32, init_std=0.5)
  graphdef, params = models.init_params(cfg, seed=4)
  prompt, temperature, n = [1, 2, 3], 1.3, 4096
  tokens, mask = _left_padded([prompt])
  r = sample(graphdef, params, tokens, mask, SamplingParams(temperature=temperature, max_new_tokens=2, n=n),
             jax.random.key(11), buckets=Buckets(prompt_lengths=(8,), batch_sizes=(n,), new_tokens=(2,)))
  first = np.asarray(r.completion_tokens[:, 0])
  p, _ = _first_token_distribution(graphdef, params, prompt, temperature)
  counts = np.bincount(first, minlength=8)
  assert stats.chisquare(counts, p * n).pvalue > 1e-3
  # Independence across rows: pairs (row 2k, row 2k+1) show no association.
  table = np.zeros((8, 8))
  np.add.at(table, (first[0::2], first[1::2]), 1)
  table = table[table.sum(1) > 0][:, table.sum(0) > 0]
  assert stats.chi2_contingency(table).pvalue > 1e-3
  # The sampler's log-prob of each first token is log p under the tempered distribution.
  np.testing.assert_allclose(np.asarray(r.logprobs[:, 0]), np.log(p[first]), atol=1e-5)


@pytest.mark.parametrize("kw", [dict(top_k=3), dict(top_p=0.5), dict(min_p=0.3),
                                dict(top_k=4, top_p=0.7)])
def test_filters_never_emit_excluded_tokens(kw):
  cfg = models.ModelConfig(vocab_size=16, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1,
                           head_dim=8, d_ff=32, init_std=0.5)
  graphdef, params = models.init_params(cfg, seed=5)
  prompt, n = [3, 1, 4], 1024
  tokens, mask = _left_padded([prompt])
  r = sample(graphdef, params, tokens, mask, SamplingParams(max_new_tokens=1, n=n, **kw),
             jax.random.key(2), buckets=Buckets(prompt_lengths=(8,), batch_sizes=(n,), new_tokens=(1,)))
  p, _ = _first_token_distribution(graphdef, params, prompt, 1.0)
  order = np.argsort(-p)
  keep = np.ones(16, bool)
  if kw.get("top_k"):
    keep[order[kw["top_k"]:]] = False
  q = np.where(keep, p, 0) / np.where(keep, p, 0).sum()
  if kw.get("top_p"):
    before = np.cumsum(q[order]) - q[order]
    keep[order[before >= kw["top_p"]]] = False
  if kw.get("min_p"):
    keep &= q >= kw["min_p"] * q.max()
  emitted = set(np.asarray(r.completion_tokens[:, 0]).tolist())
  assert emitted <= set(np.flatnonzero(keep).tolist()), (emitted, np.flatnonzero(keep))
  assert len(emitted) == keep.sum()  # every allowed token shows up in 1024 draws here


def test_stop_tokens_finish_reasons_and_masks(policy):
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  free = sample(graphdef, params, tokens, mask, SamplingParams(greedy=True, max_new_tokens=10),
                jax.random.key(0), buckets=SMALL)
  stop = int(free.completion_tokens[1, 3])  # a token row 1 emits at step 3
  r = sample(graphdef, params, tokens, mask,
             SamplingParams(greedy=True, max_new_tokens=10, stop_token_ids=(stop,)),
             jax.random.key(0), buckets=SMALL)
  comp = np.asarray(r.completion_tokens)
  for i in range(len(PROMPTS)):
    row = np.asarray(free.completion_tokens[i]).tolist()
    expected_len = row.index(stop) + 1 if stop in row else 10
    assert int(r.lengths[i]) == expected_len
    assert int(r.finish_reason[i]) == (STOP if stop in row else LENGTH)
    np.testing.assert_array_equal(r.completion_mask[i], np.arange(10) < expected_len)
    np.testing.assert_array_equal(comp[i, :expected_len], row[:expected_len])
    assert np.all(comp[i, expected_len:] == 0) and np.all(np.asarray(r.logprobs[i, expected_len:]) == 0)


def test_compilations_bounded_by_buckets(policy):
  graphdef, params = policy
  rng = np.random.default_rng(0)
  before = sampler_lib._generate._cache_size()
  shapes = set()
  buckets = Buckets(prompt_lengths=(16,), batch_sizes=(4, 8), new_tokens=(8,))
  for call in range(20):
    b = int(rng.integers(1, 9))
    lengths = rng.integers(1, 13, size=b)
    prompts = [list(rng.integers(1, 40, size=n)) for n in lengths]
    tokens, mask = _left_padded(prompts)
    sample(graphdef, params, tokens, mask,
           SamplingParams(temperature=float(rng.uniform(0.5, 1.5)), max_new_tokens=int(rng.integers(2, 9))),
           jax.random.key(call), buckets=buckets)
    shapes.add(Buckets.pick(buckets.batch_sizes, b, ""))
  compiled = sampler_lib._generate._cache_size() - before
  assert len(shapes) == 2  # both batch buckets were used
  assert compiled <= len(buckets.prompt_lengths) * len(buckets.batch_sizes)


def _teacher_forced_tail(graphdef, params, seq, n, temperature):
  ids = jnp.asarray([seq])
  logits, _ = models.apply(graphdef, params, ids, jnp.arange(len(seq))[None], jnp.ones_like(ids))
  return np.asarray(core.logprobs_from_logits(logits[:, :-1], ids[:, 1:], temperature)[0, -n:])


@pytest.mark.parametrize("family", ["llama", "gemma2"])  # gemma2: sliding window 4 < trajectory
def test_multi_turn_continuation_matches_teacher_forcing(family):
  """Three turns; row 1 skips turn 2 and is continued in turn 3 (its position must not move)."""
  graphdef, params = models.init_params(models.TINY[family].replace(init_std=0.3), seed=2)
  prompts = PROMPTS[:3]
  tokens, mask = _left_padded(prompts)
  sp = SamplingParams(temperature=0.8, max_new_tokens=6, stop_token_ids=(5,))
  r, state = sample(graphdef, params, tokens, mask, sp, jax.random.key(1), buckets=SMALL,
                    reserve=48, return_state=True)
  seqs = [list(p) + np.asarray(r.completion_tokens[i, :int(r.lengths[i])]).tolist()
          for i, p in enumerate(prompts)]
  turns = [[[30, 31, 32], None, [40]], [[41, 42], [33, 34, 35], None]]
  for turn, append in enumerate(turns):
    pos_before = np.asarray(state.next_positions)
    r, state = continue_sampling(graphdef, params, state, append, sp, jax.random.key(10 + turn),
                                 buckets=SMALL)
    for i, a in enumerate(append):
      n = int(r.lengths[i])
      if a is None:
        assert n == 0 and int(state.next_positions[i]) == pos_before[i]
        continue
      chunk = np.asarray(r.prompt_tokens[i])[np.asarray(r.prompt_mask[i])].tolist()
      assert chunk == [seqs[i][-1]] + a  # pending token + observation tokens, not completion
      seqs[i] += a + np.asarray(r.completion_tokens[i, :n]).tolist()
      np.testing.assert_allclose(np.asarray(r.logprobs[i, :n]),
                                 _teacher_forced_tail(graphdef, params, seqs[i], n, 0.8), atol=1e-5)
      assert int(state.next_positions[i]) == len(seqs[i]) - 1  # the pending token's position
  with pytest.raises(ValueError, match="cache slots"):
    continue_sampling(graphdef, params, state, [[1], [1], [1]], SamplingParams(max_new_tokens=64),
                      jax.random.key(3),
                      buckets=Buckets(prompt_lengths=(8,), batch_sizes=(4,), new_tokens=(64,)))


def test_invalid_sampling_params_fail_with_the_field_name():
  with pytest.raises(ValueError, match="temperature"):
    SamplingParams(temperature=0.0)
  with pytest.raises(ValueError, match="top_p"):
    SamplingParams(top_p=1.5)
  with pytest.raises(ValueError, match="largest bucket"):
    Buckets.pick((8, 16), 17, "prompt length")


def test_first_argmax_matches_jnp_argmax():
  """The sampler's argmax (two plain reductions) keeps jnp.argmax's tie and NaN rules."""
  rng = np.random.default_rng(0)
  z = rng.integers(0, 4, (64, 37)).astype(np.float32)  # many ties
  z[3, 5] = z[9, 0] = z[9, 7] = np.nan
  np.testing.assert_array_equal(sampler_lib.first_argmax(jnp.asarray(z)), np.argmax(z, -1))


@pytest.mark.parametrize("vocab, block", [(40, 8), (37, 8), (37, 128)])
def test_blocked_draw_follows_the_distribution(vocab, block):
  """The two-stage inverse-CDF draw samples softmax(z) (several blocks, a padded last block, one
  block) and never emits an excluded (−inf) token."""
  rng = np.random.default_rng(vocab)
  z = rng.normal(size=(vocab,)).astype(np.float32) * 1.5
  z[[0, 9, vocab - 1]] = -np.inf
  n = 20_000
  keys = jax.random.split(jax.random.key(0), n // 4)
  draws = jax.jit(jax.vmap(lambda k: sampler_lib.draw(k, jnp.tile(jnp.asarray(z), (4, 1)), block)))
  counts = np.bincount(np.asarray(draws(keys)).ravel(), minlength=vocab)
  assert counts[[0, 9, vocab - 1]].sum() == 0
  p = np.exp(z.astype(np.float64) - np.max(z))
  keep = p > 0
  assert counts.sum() == n
  assert stats.chisquare(counts[keep], n * p[keep] / p[keep].sum()).pvalue > 1e-3


def test_blocked_draw_at_the_top_of_the_unit_interval(monkeypatch):
  """If u · total rounds to the total, the draw takes the last token with mass, never padding
  of the last block or an excluded token after it."""
  z = jnp.asarray(np.array([[0.0, 1.0, 2.0, -np.inf, 0.5, -np.inf, -np.inf]], np.float32))
  monkeypatch.setattr(sampler_lib.jax.random, "uniform", lambda key, shape, dtype: jnp.ones(shape, dtype))
  assert int(sampler_lib.draw(jax.random.key(0), z, block=4)[0]) == 4  # 7 tokens padded to 8
  monkeypatch.setattr(sampler_lib.jax.random, "uniform", lambda key, shape, dtype: jnp.zeros(shape, dtype))
  assert int(sampler_lib.draw(jax.random.key(0), z, block=4)[0]) == 0


@pytest.mark.parametrize("greedy,n", [(False, 4), (True, 2), (False, 3)])
def test_shared_prefix_prefill_equals_per_row_prefill(policy, greedy, n):
  """Each prompt prefilled once and its cache copied to its n rows gives the rows a prefill per
  row gives: same tokens, log-probs (1e-5), lengths; and a continuation from either state agrees.
  (n=3 with a batch bucket of 16 is not a multiple: that batch falls back to per-row prefill.)"""
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  sp = SamplingParams(greedy=greedy, max_new_tokens=8, n=n, stop_token_ids=(5,))
  outs = {}
  for share in (True, False):
    r, state = sample(graphdef, params, tokens, mask, sp, jax.random.key(11), buckets=SMALL,
                      share_prefix=share, return_state=True, reserve=16)
    more, _ = continue_sampling(graphdef, params, state, [[3, 4]] * state.rows,
                                SamplingParams(max_new_tokens=4), jax.random.key(12), buckets=SMALL)
    outs[share] = (r, more)
  (a, a2), (b, b2) = outs[True], outs[False]
  for x, y in ((a, b), (a2, b2)):
    np.testing.assert_array_equal(x.completion_tokens, y.completion_tokens)
    np.testing.assert_array_equal(x.lengths, y.lengths)
    np.testing.assert_array_equal(x.prompt_tokens, y.prompt_tokens)
    np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(a.group_ids, np.arange(len(PROMPTS) * n) // n)
  # The shared rows really are the group's prompt: teacher forcing scores them the same.
  logits = _teacher_forced_logits(graphdef, params, a)
  lp = core.logprobs_from_logits(logits, a.completion_tokens, 1.0)
  np.testing.assert_allclose(a.logprobs, np.asarray(lp) * np.asarray(a.completion_mask),
                             atol=1e-5, rtol=1e-5)


# ----- continuous batching -----

STOPPY = dict(max_new_tokens=12, stop_token_ids=(5, 7, 30))  # lengths from 1 to 12


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.8, 6, 0.9)])
def test_continuous_batching_logprobs_equal_teacher_forced(policy, temperature, top_k, top_p):
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  sp = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, n=3,
                      return_entropy=True, **STOPPY)
  r = sample(graphdef, params, tokens, mask, sp, jax.random.key(5), buckets=SMALL, decode_slots=4)
  lengths = np.asarray(r.lengths)
  assert lengths.min() < 12 and (np.asarray(r.finish_reason) == STOP).any()  # rows end early
  logits = _teacher_forced_logits(graphdef, params, r)
  st = core.logprobs_from_logits(logits, r.completion_tokens, temperature, with_entropy=True)
  m = np.asarray(r.completion_mask)
  np.testing.assert_allclose(np.asarray(r.logprobs), np.asarray(st.logprobs) * m, atol=1e-5,
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(r.entropy), np.asarray(st.entropy) * m, atol=1e-5,
                             rtol=1e-5)
  np.testing.assert_array_equal(m.sum(1), lengths)
  toks = np.asarray(r.completion_tokens)
  assert (toks[m == 0] == 0).all()  # pad_id after the end
  np.testing.assert_array_equal(r.group_ids, np.arange(12) // 3)


@pytest.mark.parametrize("greedy", [False, True])
def test_continuous_batching_is_invariant_to_slots_and_order(policy, greedy, monkeypatch):
  """Each sample's draws come from (key, sample id, step): 1, 3 (bucket 4) or 16 slots and
  slots taken in reverse order give the same samples; greedy decoding also equals the static
  batch's (which keeps its own one-key-a-step stream for sampling)."""
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  sp = SamplingParams(n=3, greedy=greedy, **STOPPY)
  key = jax.random.key(11)
  runs = [sample(graphdef, params, tokens, mask, sp, key, buckets=SMALL, decode_slots=s)
          for s in (1, 3, 16)]
  inner = sampler_lib._generate_continuous
  monkeypatch.setattr(sampler_lib, "_generate_continuous",
                      lambda *a, **kw: inner(*a, slot_order=np.arange(kw["slots"])[::-1], **kw))
  runs.append(sample(graphdef, params, tokens, mask, sp, key, buckets=SMALL, decode_slots=4))
  if greedy:
    runs.append(sample(graphdef, params, tokens, mask, sp, key, buckets=SMALL))
  ref = runs[0]
  assert greedy or len(set(np.asarray(ref.lengths).tolist())) > 1  # rows end at different times
  for r in runs[1:]:
    np.testing.assert_array_equal(np.asarray(r.completion_tokens),
                                  np.asarray(ref.completion_tokens))
    np.testing.assert_array_equal(np.asarray(r.lengths), np.asarray(ref.lengths))
    np.testing.assert_array_equal(np.asarray(r.finish_reason), np.asarray(ref.finish_reason))
    np.testing.assert_allclose(np.asarray(r.logprobs), np.asarray(ref.logprobs), atol=1e-5)


def test_continuous_batching_steps_follow_total_work_not_the_longest_row(policy):
  """With 4 slots the loop runs about Σ lengths / 4 steps (plus the tail), fewer than three
  static batches of 4 rows (each as long as its longest row) would."""
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  sp = SamplingParams(n=3, max_new_tokens=12, stop_token_ids=(5, 7, 30, 2, 9, 11))
  rows = sampler_lib._rows_from_batch(tokens, mask)
  t, m = sampler_lib._left_pad(rows, 8, 0)
  pos = np.maximum(np.cumsum(m, axis=1) - 1, 0).astype(np.int32)
  out = sampler_lib._generate_continuous(
      graphdef, params, t, m, pos, jnp.int32(12), sampler_lib._knobs(sp), jax.random.key(2),
      max_new=16, greedy=False, filtered=False, stats=(False, False), pad_id=0, n=3, slots=4,
      cache_dtype="float32")
  lengths, steps = np.asarray(out[4][:12]), int(out[6])
  assert lengths.sum() / 4 <= steps <= lengths.sum() / 4 + 12
  assert steps < lengths.reshape(3, 4).max(axis=1).sum() - 8  # 20 vs 34 (Σ lengths 67)


def test_decode_programs_without_ynnpack_dots_give_the_same_samples(policy, monkeypatch):
  """Large CPU decode programs compile without XLA:CPU's YNNPACK dots (a slow path there,
  benchmarks/decode_step.py); forced here on a small shape, the samples are the same."""
  graphdef, params = policy
  tokens, mask = _left_padded(PROMPTS)
  sp = SamplingParams(n=2, **STOPPY)
  key = jax.random.key(2)
  assert not sampler_lib._ynn_dots_off(32, 576) and sampler_lib._ynn_dots_off(64, 576) == (
      jax.default_backend() == "cpu")
  base = sample(graphdef, params, tokens, mask, sp, key, buckets=SMALL)
  monkeypatch.setenv("RLX_CPU_DECODE_YNN_DOTS", "off")
  assert sampler_lib._ynn_dots_off(8, 24) == (jax.default_backend() == "cpu")
  off = sample(graphdef, params, tokens, mask, sp, key, buckets=SMALL)
  np.testing.assert_array_equal(np.asarray(off.completion_tokens),
                                np.asarray(base.completion_tokens))
  np.testing.assert_allclose(np.asarray(off.logprobs), np.asarray(base.logprobs), atol=1e-5)
  monkeypatch.setenv("RLX_CPU_DECODE_YNN_DOTS", "fast")
  with pytest.raises(ValueError, match="RLX_CPU_DECODE_YNN_DOTS"):
    sample(graphdef, params, tokens, mask, sp, key, buckets=SMALL)
