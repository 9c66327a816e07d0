"""Logit parity with Hugging Face transformers (torch CPU, float32) on left-padded batches."""

import jax
import numpy as np
import pytest
import torch
import transformers

import rlx.models as M
from tests.models.hf_helpers import FAMILIES, left_padded_batch

LENGTHS = (12, 9, 4)  # left padding of 0, 3 and 8 tokens
SEQ = 12
_forward = jax.jit(M.apply, static_argnums=0)


def _hf_logits(hf_model, tokens, positions, mask):
  with torch.no_grad():
    out = hf_model(input_ids=torch.tensor(tokens, dtype=torch.long),
                   attention_mask=torch.tensor(mask, dtype=torch.long),
                   position_ids=torch.tensor(positions, dtype=torch.long))
  return out.logits.numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_transformers(hf_checkpoints, family):
  path, hf_model = hf_checkpoints[family]
  config, params = M.load_hf(str(path))
  assert config.family == M.Family(family)
  tokens, positions, mask = left_padded_batch(config.vocab_size, LENGTHS, SEQ, seed=1)
  graphdef, _ = M.abstract(config)
  logits, cache = _forward(graphdef, params, tokens, positions, mask)
  assert cache is None
  assert logits.dtype == np.float32 and logits.shape == (3, SEQ, config.vocab_size)
  ref = _hf_logits(hf_model, tokens, positions, mask)
  valid = mask.astype(bool)
  assert np.abs(ref[valid]).max() > 0.5  # logits are O(1): the comparison is meaningful
  np.testing.assert_array_less(np.abs(np.asarray(logits)[valid] - ref[valid]).max(), 1e-4)


def test_gemma2_window_is_exercised(hf_checkpoints):
  """The sliding window matters: without it the logits differ from transformers."""
  path, hf_model = hf_checkpoints["gemma2"]
  config, params = M.load_hf(str(path))
  assert config.sliding_window < SEQ and config.sliding_layers == (True, False, True)
  tokens, positions, mask = left_padded_batch(config.vocab_size, LENGTHS, SEQ, seed=1)
  no_window = config.replace(sliding_window=None, sliding_layers=())
  graphdef, _ = M.abstract(no_window)
  logits, _ = _forward(graphdef, params, tokens, positions, mask)
  ref = _hf_logits(hf_model, tokens, positions, mask)
  assert np.abs(np.asarray(logits)[0, -1] - ref[0, -1]).max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_checkpoint_loads_in_transformers(hf_checkpoints, tmp_path, family):
  """save_hf writes a directory transformers loads, with the same logits as rlx."""
  path, _ = hf_checkpoints[family]
  config, params = M.load_hf(str(path))
  M.save_hf(str(tmp_path), config, params)
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(
      str(tmp_path), dtype=torch.float32, attn_implementation="eager").eval()
  tokens, positions, mask = left_padded_batch(config.vocab_size, LENGTHS, SEQ, seed=2)
  logits, _ = _forward(M.abstract(config)[0], params, tokens, positions, mask)
  ref = _hf_logits(reloaded, tokens, positions, mask)
  valid = mask.astype(bool)
  assert np.abs(np.asarray(logits)[valid] - ref[valid]).max() <= 1e-4
