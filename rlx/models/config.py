"""Model configuration: one frozen dataclass describes every supported decoder family.

The families differ only in the switches below; `rlx.models.Transformer` reads them once at
construction, so no string comparisons happen inside jitted code.

| switch                  | Llama 3 | Qwen2/2.5 | Qwen3 | Gemma 2            |
|-------------------------|---------|-----------|-------|--------------------|
| `activation`            | silu    | silu      | silu  | gelu_tanh          |
| `qkv_bias`              | -       | yes       | -     | -                  |
| `qk_norm`               | -       | -         | yes   | -                  |
| `rope_scaling`          | llama3  | -         | -     | -                  |
| `norm_plus_one` (1+w)   | -       | -         | -     | yes                |
| `post_norms`            | -       | -         | -     | yes                |
| `scale_embeddings`      | -       | -         | -     | yes (sqrt(d))      |
| `attn_logit_softcap`    | -       | -         | -     | 50                 |
| `final_logit_softcap`   | -       | -         | -     | 30                 |
| `query_pre_attn_scalar` | -       | -         | -     | 256 (= head_dim)   |
| `sliding_window`        | -       | -         | -     | 4096, even layers  |
"""

from __future__ import annotations

import dataclasses
import re
import enum
import functools

import numpy as np


class Family(str, enum.Enum):
  """Checkpoint family: decides the Hugging Face names and `config.json` layout."""

  LLAMA = "llama"
  QWEN2 = "qwen2"
  QWEN3 = "qwen3"
  GEMMA2 = "gemma2"


class Activation(str, enum.Enum):
  """Gated-MLP activation: `silu` (SwiGLU) or `gelu_tanh` (GeGLU, tanh approximation)."""

  SILU = "silu"
  GELU_TANH = "gelu_tanh"


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """Llama 3 RoPE frequency scaling (`rope_type: llama3` in Hugging Face configs)."""

  factor: float = 8.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position_embeddings: int = 8192


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
QUANTIZE_MODES = ("", "int8", "nf4")


@dataclasses.dataclass(frozen=True)
class LoRASpec:
  """Low-rank adapters on the decoder's projections (docs/lora.md).

  Each targeted projection y = x·W computes y = x·W + s·(x·A)·B with A [in, r] (Kaiming-uniform,
  as loralib/PEFT initialise the LoRA paper's A) and B [r, out] zeros, so an untrained adapter
  is the base model exactly. s = alpha / r, or alpha / sqrt(r) with ``rslora`` (Kalajdzievski,
  2023). ``targets``: projection names (``q_proj`` ... ``down_proj``) or regular expressions
  matched in full against a projection's path (``layers.3.attn.q_proj``, ``layers.0.mlp.up_proj``).
  ``quantize`` stores the frozen base projection kernels as int8 (per output channel) or NF4
  (4-bit normal-float codes, two per byte, one float32 scale per ``group_size`` inputs);
  dequantised on the fly in the matmul. ``dropout`` drops the adapter's input in training
  updates only.
  """

  rank: int = 8
  alpha: float = 16.0
  targets: tuple[str, ...] = LORA_TARGETS
  dropout: float = 0.0
  rslora: bool = False
  quantize: str = ""
  group_size: int = 64

  def __post_init__(self):
    object.__setattr__(self, "targets", tuple(self.targets))
    if self.rank <= 0:
      raise ValueError(f"lora.rank={self.rank}: must be a positive integer")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"lora.dropout={self.dropout}: must be in [0, 1)")
    if self.quantize not in QUANTIZE_MODES:
      raise ValueError(f"lora.quantize={self.quantize!r}: allowed values: "
                       f"{', '.join(repr(m) for m in QUANTIZE_MODES)}")
    if self.group_size <= 0 or self.group_size % 2:
      raise ValueError(f"lora.group_size={self.group_size}: must be a positive even integer")
    if not self.targets:
      raise ValueError("lora.targets is empty: name at least one projection")
    for t in self.targets:
      try:
        re.compile(t)
      except re.error as e:
        raise ValueError(f"lora.targets: {t!r} is not a valid regular expression ({e})") from None

  @property
  def scale(self) -> float:
    """s = alpha / r (alpha / sqrt(r) with rsLoRA)."""
    return self.alpha / (self.rank ** 0.5 if self.rslora else self.rank)

  def targets_path(self, path: str) -> bool:
    """Whether the projection at ``path`` (e.g. ``layers.0.attn.q_proj``) gets an adapter."""
    name = path.rsplit(".", 1)[-1]
    return any(t == name or re.fullmatch(t, path) for t in self.targets)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of a decoder-only transformer.

  Shape letters used throughout `rlx.models`: B batch, S query tokens, T key slots, D `d_model`,
  H query heads, K kv heads, G = H // K query heads per kv head, E `head_dim`, F `d_ff`,
  V `vocab_size`, L `n_layers`.
  """

  family: Family = Family.LLAMA  # checkpoint naming / config.json layout
  vocab_size: int = 256  # V
  d_model: int = 64  # D
  n_layers: int = 2  # L
  n_heads: int = 4  # H
  n_kv_heads: int = 2  # K (grouped-query attention when K < H)
  head_dim: int = 16  # E (independent of d_model, as in Qwen3 and Gemma 2)
  d_ff: int = 128  # F, hidden width of the gated MLP
  norm_eps: float = 1e-5  # RMSNorm epsilon
  rope_theta: float = 10_000.0  # RoPE base
  rope_scaling: RopeScaling | None = None  # Llama 3 frequency scaling
  max_position_embeddings: int = 2048  # recorded for export; positions are not clipped
  activation: Activation = Activation.SILU
  tie_embeddings: bool = False  # LM head reuses the embedding matrix
  qkv_bias: bool = False  # Qwen2: bias on q/k/v projections
  qk_norm: bool = False  # Qwen3: RMSNorm over head_dim on q and k before RoPE
  norm_plus_one: bool = False  # Gemma: RMSNorm scale is (1 + w), w initialised to 0
  post_norms: bool = False  # Gemma 2: extra RMSNorm after attention and after the MLP
  scale_embeddings: bool = False  # Gemma: embeddings multiplied by sqrt(d_model)
  query_pre_attn_scalar: float | None = None  # attention scale is this ** -0.5 (None: head_dim)
  attn_logit_softcap: float | None = None  # Gemma 2: cap * tanh(logits / cap) on attention logits
  final_logit_softcap: float | None = None  # Gemma 2: the same on the output logits
  sliding_window: int | None = None  # window size of the sliding-window layers
  sliding_layers: tuple[bool, ...] = ()  # per layer: True = sliding window (empty: none)
  dtype: str = "float32"  # compute dtype ("float32" or "bfloat16")
  param_dtype: str = "float32"  # parameter storage dtype
  init_std: float = 0.02  # stddev of the normal initialiser of random models
  lora: LoRASpec | None = None  # low-rank adapters (None: every parameter is trained)

  def __post_init__(self):
    object.__setattr__(self, "family", Family(self.family))
    object.__setattr__(self, "activation", Activation(self.activation))
    object.__setattr__(self, "sliding_layers", tuple(bool(x) for x in self.sliding_layers))
    if self.n_heads % self.n_kv_heads:
      raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
    if self.sliding_layers and len(self.sliding_layers) != self.n_layers:
      raise ValueError(
          f"sliding_layers has {len(self.sliding_layers)} entries for n_layers={self.n_layers}")
    if any(self.sliding_layers) and not self.sliding_window:
      raise ValueError("sliding_layers set but sliding_window is None")
    if self.head_dim % 2:
      raise ValueError(f"head_dim={self.head_dim} must be even for RoPE")
    for name in ("dtype", "param_dtype"):
      if getattr(self, name) not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"{name}={getattr(self, name)!r}: expected float32, bfloat16 or float16")

  def layer_window(self, layer: int) -> int | None:
    """Sliding-window size of layer `layer`, or None for full causal attention."""
    if self.sliding_layers and self.sliding_layers[layer]:
      return self.sliding_window
    return None

  @property
  def attn_scale(self) -> float:
    return float(self.query_pre_attn_scalar or self.head_dim) ** -0.5

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)


@functools.lru_cache(maxsize=64)
def rope_inv_freq(config: ModelConfig) -> np.ndarray:
  """Inverse RoPE frequencies `[E/2]` float32, with Llama 3 scaling when configured.

  Follows `transformers.modeling_rope_utils._compute_llama3_parameters`.
  """
  e = config.head_dim
  inv_freq = 1.0 / (config.rope_theta ** (np.arange(0, e, 2, dtype=np.int64).astype(np.float32) / e))
  inv_freq = inv_freq.astype(np.float32)
  s = config.rope_scaling
  if s is None:
    return inv_freq
  low_wavelen = s.original_max_position_embeddings / s.low_freq_factor
  high_wavelen = s.original_max_position_embeddings / s.high_freq_factor
  wavelen = 2 * np.pi / inv_freq
  scaled = np.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
  smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (
      s.high_freq_factor - s.low_freq_factor)
  smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
  medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
  return np.where(medium, smoothed, scaled).astype(np.float32)


def _alternate(n_layers: int) -> tuple[bool, ...]:
  """Gemma 2 pattern: even layers slide, odd layers attend to everything."""
  return tuple(i % 2 == 0 for i in range(n_layers))


def _llama3(d, f, layers, heads, kv, factor, tie, **kw) -> ModelConfig:
  return ModelConfig(
      family=Family.LLAMA, vocab_size=128_256, d_model=d, n_layers=layers, n_heads=heads,
      n_kv_heads=kv, head_dim=d // heads, d_ff=f, norm_eps=1e-5, rope_theta=500_000.0,
      rope_scaling=RopeScaling(factor=factor), max_position_embeddings=131_072,
      tie_embeddings=tie, **kw)


def _qwen2(v, d, f, layers, heads, kv, tie, theta=1e6, max_pos=32_768) -> ModelConfig:
  return ModelConfig(
      family=Family.QWEN2, vocab_size=v, d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=kv,
      head_dim=d // heads, d_ff=f, norm_eps=1e-6, rope_theta=theta,
      max_position_embeddings=max_pos, tie_embeddings=tie, qkv_bias=True)


def _qwen3(d, f, layers, heads, kv, tie) -> ModelConfig:
  return ModelConfig(
      family=Family.QWEN3, vocab_size=151_936, d_model=d, n_layers=layers, n_heads=heads,
      n_kv_heads=kv, head_dim=128, d_ff=f, norm_eps=1e-6, rope_theta=1e6,
      max_position_embeddings=40_960, tie_embeddings=tie, qk_norm=True)


def _gemma2(d, f, layers, heads, kv) -> ModelConfig:
  return ModelConfig(
      family=Family.GEMMA2, vocab_size=256_000, d_model=d, n_layers=layers, n_heads=heads,
      n_kv_heads=kv, head_dim=256, d_ff=f, norm_eps=1e-6, rope_theta=10_000.0,
      max_position_embeddings=8192, activation=Activation.GELU_TANH, tie_embeddings=True,
      norm_plus_one=True, post_norms=True, scale_embeddings=True, query_pre_attn_scalar=256,
      attn_logit_softcap=50.0, final_logit_softcap=30.0, sliding_window=4096,
      sliding_layers=_alternate(layers))


# Full-size published architectures (the `config.json` of each Hugging Face repository).
PRESETS: dict[str, ModelConfig] = {
    "llama-3.2-1b": _llama3(2048, 8192, 16, 32, 8, factor=32.0, tie=True),
    "llama-3.2-3b": _llama3(3072, 8192, 28, 24, 8, factor=32.0, tie=True),
    "llama-3.1-8b": _llama3(4096, 14_336, 32, 32, 8, factor=8.0, tie=False),
    "llama-3.1-70b": _llama3(8192, 28_672, 80, 64, 8, factor=8.0, tie=False),
    "qwen2.5-0.5b": _qwen2(151_936, 896, 4864, 24, 14, 2, tie=True),
    "qwen2.5-1.5b": _qwen2(151_936, 1536, 8960, 28, 12, 2, tie=True),
    "qwen2.5-7b": _qwen2(152_064, 3584, 18_944, 28, 28, 4, tie=False, max_pos=131_072),
    "qwen2.5-math-7b": _qwen2(152_064, 3584, 18_944, 28, 28, 4, tie=False, theta=10_000.0,
                              max_pos=4096),
    "qwen3-0.6b": _qwen3(1024, 3072, 28, 16, 8, tie=True),
    "qwen3-4b": _qwen3(2560, 9728, 36, 32, 8, tie=True),
    "qwen3-8b": _qwen3(4096, 12_288, 36, 32, 8, tie=False),
    "gemma-2-2b": _gemma2(2304, 9216, 26, 8, 4),
    "gemma-2-9b": _gemma2(3584, 14_336, 42, 16, 8),
}


def _tiny(family: Family, **kw) -> ModelConfig:
  base = dict(vocab_size=128, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8,
              d_ff=64)
  base.update(kw)
  return ModelConfig(family=family, **base)


# Tiny configurations with every switch of their family on, for tests and notebooks.
TINY: dict[str, ModelConfig] = {
    "llama": _tiny(Family.LLAMA, rope_theta=500_000.0, tie_embeddings=False,
                   rope_scaling=RopeScaling(factor=8.0, original_max_position_embeddings=64)),
    "qwen2": _tiny(Family.QWEN2, rope_theta=1e6, norm_eps=1e-6, qkv_bias=True,
                   tie_embeddings=True),
    "qwen3": _tiny(Family.QWEN3, head_dim=16, rope_theta=1e6, norm_eps=1e-6, qk_norm=True),
    "gemma2": _tiny(Family.GEMMA2, n_layers=3, head_dim=16, norm_eps=1e-6,
                    activation=Activation.GELU_TANH, tie_embeddings=True, norm_plus_one=True,
                    post_norms=True, scale_embeddings=True, query_pre_attn_scalar=12,
                    attn_logit_softcap=50.0, final_logit_softcap=30.0, sliding_window=4,
                    sliding_layers=_alternate(3)),
}


def get_config(name: str, **overrides) -> ModelConfig:
  """Preset (`PRESETS`) or tiny test config (`TINY`, prefixed `tiny-`) by name, with overrides."""
  key = name.lower()
  if key.startswith("tiny-") and key[5:] in TINY:
    config = TINY[key[5:]]
  elif key in PRESETS:
    config = PRESETS[key]
  else:
    names = sorted(PRESETS) + [f"tiny-{n}" for n in sorted(TINY)]
    raise KeyError(f"unknown model config {name!r}; known: {', '.join(names)}")
  return config.replace(**overrides) if overrides else config
