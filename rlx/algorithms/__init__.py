"""Training objectives over one learner: ``trajectory`` (the typed data of an RL step),
``learner`` (epochs × minibatches × micro-batches, written once), and one module per family:
``sft``, ``grpo`` (the GRPO family), ``ppo``, ``dpo`` (preference optimisation, every
``rlx.core.PreferenceLoss``), ``rm`` (reward models), ``laser`` (LaSeR's auxiliary-loss plug-in).
"""

from rlx.algorithms import common, dpo, grpo, laser, learner, ppo, rm, sft, trajectory
from rlx.algorithms.dpo import (PairBatch, PreferenceObjective, PrefHyper, PrefSpec,
                                UnpairedBatch, make_preference_metrics, make_preference_update,
                                make_reference_logps)
from rlx.algorithms.grpo import (AuxLoss, GRPOSpec, Hyper, PolicyObjective, PrepareHyper,
                                 PrepareSpec, TrainBatch, make_grpo_update, make_prepare)
from rlx.algorithms.learner import LearnerSpec, Objective, make_update, minibatch_gradients
from rlx.algorithms.ppo import PPOBatch, PPOObjective, make_ppo_prepare, make_ppo_update
from rlx.algorithms.rm import RewardModelObjective, make_rm_update
from rlx.algorithms.sft import SFTBatch, SFTHyper, SFTObjective, make_sft_update, sft_batch
from rlx.algorithms.trajectory import Trajectory

__all__ = [
    "AuxLoss", "GRPOSpec", "Hyper", "LearnerSpec", "Objective", "PPOBatch", "PPOObjective",
    "PairBatch", "PolicyObjective", "PrefHyper", "PrefSpec", "PreferenceObjective",
    "PrepareHyper", "PrepareSpec", "RewardModelObjective", "SFTBatch", "SFTHyper",
    "SFTObjective", "TrainBatch", "Trajectory", "UnpairedBatch", "common", "dpo", "grpo",
    "laser", "learner", "make_grpo_update", "make_ppo_prepare", "make_ppo_update",
    "make_preference_metrics", "make_preference_update", "make_prepare", "make_reference_logps",
    "make_rm_update", "make_sft_update", "make_update", "minibatch_gradients", "ppo", "rm", "sft",
    "sft_batch", "trajectory",
]
