"""rlx.rewards: reward protocol, registry, composition, built-in rewards and the sandbox.

See docs/rewards.md. Rewards are host-side (numpy); model-based ones reach the policy through a
``Scorer``. Everything from ``get_reward`` / ``compose`` is contained and never raises.
"""

from rlx.rewards.base import (FINISH_LENGTH, FINISH_STOP, BatchReward, Reward, RewardInput,
                              RewardOutput, Scorer, masked_mean_rows, pad_ragged)
from rlx.rewards.code import code_tests, code_tests_score, extract_code
from rlx.rewards.compose import Component, CompositeReward, compose, reward_metrics
from rlx.rewards.intrinsic import (Embedder, EpisodicMemory, HashedNgramEmbedder,
                                   PolicyHiddenEmbedder)
from rlx.rewards.label_free import (AnswerConfidence, BordaVote, CoReward, LaSeR, MajorityVote,
                                    RLPRProbability, SelfAlignedReward, SelfCertainty,
                                    SemanticEntropy, answer_span, borda_weights, cluster_answers,
                                    laser_aux_loss, laser_class_weights, laser_mix_advantages,
                                    majority_vote,
                                    semantic_entropy_rewards)
from rlx.rewards.math_verify import (extract_answer, math_equal, normalize_answer, parse_number,
                                     sympy_equal_with_timeout)
from rlx.rewards.model_based import LLMJudge, RewardModelReward, parse_judge_score
from rlx.rewards.process import (ProcessReward, step_spans, steps_to_token_scores,
                                 token_end_offsets)
from rlx.rewards.registry import get_reward, list_rewards, register_reward, resolve_reward
from rlx.rewards.safety import (PerSampleReward, ProcessPool, SafeReward, WorkerTimeout,
                                run_per_sample)
from rlx.rewards.sandbox import (SandboxConfig, SandboxResult, require_isolation, run_python,
                                 sandbox_capabilities)
from rlx.rewards.spurious import (FormatOnlyReward, IncorrectLabelReward, InvertedReward,
                                  RandomReward)
from rlx.rewards.verifiable import (DapoOverlong, OverlongFilter, ThinkPruneCap,
                                    dapo_overlong_penalty, exact_match, extract_choice,
                                    format_regex, math_answer, multiple_choice,
                                    overlong_filter_mask)

__all__ = [
    "FINISH_LENGTH", "FINISH_STOP", "AnswerConfidence", "BatchReward", "BordaVote", "CoReward",
    "Component", "CompositeReward", "DapoOverlong", "Embedder", "EpisodicMemory",
    "FormatOnlyReward", "HashedNgramEmbedder", "IncorrectLabelReward", "InvertedReward",
    "LLMJudge", "LaSeR", "MajorityVote", "OverlongFilter", "PerSampleReward",
    "PolicyHiddenEmbedder", "ProcessPool", "ProcessReward", "RLPRProbability", "RandomReward",
    "Reward",
    "RewardInput", "RewardModelReward", "RewardOutput", "SafeReward", "SandboxConfig",
    "SandboxResult", "Scorer", "SelfAlignedReward", "SelfCertainty", "SemanticEntropy",
    "ThinkPruneCap", "WorkerTimeout", "answer_span", "borda_weights", "cluster_answers",
    "code_tests", "code_tests_score", "compose", "dapo_overlong_penalty", "exact_match",
    "extract_answer", "extract_choice", "extract_code", "format_regex", "get_reward",
    "laser_aux_loss", "laser_class_weights", "laser_mix_advantages", "list_rewards",
    "majority_vote", "masked_mean_rows", "math_answer", "math_equal", "multiple_choice",
    "normalize_answer", "overlong_filter_mask", "pad_ragged", "parse_judge_score",
    "parse_number", "register_reward", "resolve_reward", "reward_metrics", "run_per_sample",
    "require_isolation", "run_python", "sandbox_capabilities", "self_certainty_from_logits",
    "semantic_entropy_rewards", "step_spans", "steps_to_token_scores",
    "sympy_equal_with_timeout", "token_end_offsets",
]


def __getattr__(name: str):  # jax only when asked for (see label_free.__getattr__)
  if name == "self_certainty_from_logits":
    return label_free.self_certainty_from_logits
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
