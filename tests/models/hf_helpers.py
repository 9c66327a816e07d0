"""Tiny random Hugging Face checkpoints, created with `save_pretrained` (no downloads)."""

import numpy as np

FAMILIES = ("llama", "qwen2", "qwen3", "gemma2")


def hf_config(family: str):
  """A tiny transformers config of `family` with every family-specific switch exercised."""
  import transformers

  common = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2)
  if family == "llama":
    return transformers.LlamaConfig(
        **common, head_dim=8, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        rope_theta=500_000.0)
  if family == "qwen2":
    return transformers.Qwen2Config(**common, rope_theta=1e6, tie_word_embeddings=True)
  if family == "qwen3":
    return transformers.Qwen3Config(**common, head_dim=16, rope_theta=1e6,
                                    tie_word_embeddings=False)
  if family == "gemma2":
    # Window 4 < sequence length so the sliding layers really slide; small soft-caps so the
    # tanh is far from the identity.
    common["num_hidden_layers"] = 3
    return transformers.Gemma2Config(
        **common, head_dim=16, query_pre_attn_scalar=12, sliding_window=4,
        attn_logit_softcapping=2.0, final_logit_softcapping=5.0)
  raise ValueError(family)


def randomize_(model, seed: int, std: float = 0.2):
  """Overwrite every weight with N(0, std²) noise (norm scales around their identity value), so
  logits are O(1) and the (1 + w) Gemma convention is tested."""
  import torch

  gen = torch.Generator().manual_seed(seed)
  plus_one = model.config.model_type == "gemma2"
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen) * std
      if name.endswith("norm.weight") and not plus_one:
        noise += 1.0
      p.copy_(noise)
  return model


def make_checkpoint(family: str, path, seed: int = 0):
  """Save a random tiny HF model of `family` in `path`; returns the torch model (eval mode)."""
  import torch
  import transformers

  torch.manual_seed(seed)
  config = hf_config(family)
  config._attn_implementation = "eager"
  model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
  randomize_(model, seed)
  model.eval()
  model.save_pretrained(str(path), safe_serialization=True)
  return model


def left_padded_batch(vocab: int, lengths, seq_len: int, seed: int = 0):
  """(tokens, positions, mask) int32 [B, S]: row b has lengths[b] real tokens at the right;
  positions count from 0 at the first real token (0 on padding)."""
  rng = np.random.default_rng(seed)
  lengths = np.asarray(lengths)
  tokens = rng.integers(0, vocab, (len(lengths), seq_len)).astype(np.int32)
  mask = (np.arange(seq_len)[None] >= seq_len - lengths[:, None]).astype(np.int32)
  positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
  tokens = np.where(mask == 1, tokens, 0).astype(np.int32)
  return tokens, positions, mask


def random_params(config, seed: int = 0, std: float = 0.2, cls=None):
  """(graphdef, params) of an rlx model with N(0, std²) weights drawn on the host (no
  compilation); norm scales are centred on their identity value so logits are O(1)."""
  import jax
  import jax.numpy as jnp
  from flax import nnx

  import rlx.models as M

  graphdef, abstract = M.abstract(config, cls)
  rng = np.random.default_rng(seed)
  flat = {}
  for path, var in nnx.to_flat_state(abstract):
    value = std * rng.standard_normal(var.shape)
    if path[-1] == "scale" and not config.norm_plus_one:
      value += 1.0
    flat[path] = jnp.asarray(value.astype(np.float32)).astype(var.dtype)
  params = jax.tree.map(lambda x: x, abstract)
  nested = nnx.to_pure_dict(params)
  for path, value in flat.items():
    node = nested
    for key in path[:-1]:
      node = node[key]
    node[path[-1]] = value
  nnx.replace_by_pure_dict(params, nested)
  return graphdef, params
