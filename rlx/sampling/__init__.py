"""Compiled batched generation: prefill + ``lax.while_loop`` decode over a KV cache."""

from rlx.sampling.params import Buckets, SamplingParams
from rlx.sampling.sampler import (
    FINISH_REASONS,
    LENGTH,
    STOP,
    Rollout,
    SamplerState,
    continue_sampling,
    filter_logits,
    sample,
)

__all__ = [
    "Buckets",
    "FINISH_REASONS",
    "LENGTH",
    "Rollout",
    "STOP",
    "SamplerState",
    "SamplingParams",
    "continue_sampling",
    "filter_logits",
    "sample",
]
