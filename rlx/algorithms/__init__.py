"""Update functions, one module per family: ``sft``, ``grpo`` (the GRPO family), ``ppo``,
``dpo`` (preference optimisation, every ``rlx.core.PreferenceLoss``) and ``rm`` (reward models).
"""

from rlx.algorithms import common, dpo, grpo, rm, sft
from rlx.algorithms.dpo import (PairBatch, PrefHyper, PrefSpec, UnpairedBatch,
                                make_preference_metrics, make_preference_update,
                                make_reference_logps, preference_gradients)
from rlx.algorithms.grpo import (GRPOSpec, Hyper, PrepareHyper, PrepareSpec, TrainBatch,
                                 make_grpo_update, make_prepare, minibatch_gradients)
from rlx.algorithms.rm import make_rm_update
from rlx.algorithms.sft import make_sft_update, sft_batch, sft_gradients

__all__ = [
    "GRPOSpec", "Hyper", "PairBatch", "PrefHyper", "PrefSpec", "PrepareHyper", "PrepareSpec",
    "TrainBatch", "UnpairedBatch", "common", "dpo", "grpo", "make_grpo_update", "make_preference_metrics", "make_preference_update", "make_prepare",
    "make_reference_logps", "make_rm_update", "make_sft_update", "minibatch_gradients",
    "preference_gradients", "rm", "sft", "sft_batch", "sft_gradients",
]
