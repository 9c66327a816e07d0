"""Update functions, one module per family: ``sft`` and ``grpo`` (the GRPO family).

PPO (value network + GAE) is not implemented yet.
"""

from rlx.algorithms import common, grpo, sft
from rlx.algorithms.grpo import (GRPOSpec, Hyper, PrepareHyper, PrepareSpec, TrainBatch,
                                 make_grpo_update, make_prepare, minibatch_gradients)
from rlx.algorithms.sft import make_sft_update, sft_batch, sft_gradients

__all__ = [
    "GRPOSpec", "Hyper", "PrepareHyper", "PrepareSpec", "TrainBatch", "common", "grpo",
    "make_grpo_update", "make_prepare", "make_sft_update", "minibatch_gradients", "sft",
    "sft_batch", "sft_gradients",
]
