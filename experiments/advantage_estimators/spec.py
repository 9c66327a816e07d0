"""Study 3: advantage estimators — GRPO, Dr. GRPO, RLOO, REINFORCE++-baseline, ReMax, PPO."""

from experiments import common
from experiments.runner import Curve, Metric, Study, Variant

ESTIMATORS = ["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline", "remax", "ppo"]
_WHAT = {
    "grpo": "(r − mean_g)/std_g, ε-clipped ratio, sequence-mean loss",
    "dr_grpo": "r − mean_g, token sum / constant (Dr. GRPO)",
    "rloo": "r − leave-one-out mean, token-mean loss",
    "reinforce_pp_baseline": "r − mean_g, whitened over the batch",
    "remax": "r − r(greedy completion), plain policy gradient, 1 sample per prompt",
    "ppo": "GAE with a value network initialised from the policy, 1 sample per prompt",
}


def base():
  return common.small_base("grpo")


def paper_base():
  """DeepSeekMath's GRPO recipe on Qwen2.5-Math-7B (lr 1e-6, 1024 sequences per step, 1024-token
  budget); each variant swaps in its algorithm's preset with the KL term removed, as in the
  small version."""
  return common.load_config("grpo_qwen25_math_7b")


def _variant(name):
  ov = {"algorithm": name, "algo.kl_placement": "none", "algo.beta": 0.0}
  if name in ("remax", "ppo"):
    ov["algo.group_size"] = 1  # one sample per prompt: same sequences per step as the others
  else:
    ov["algo.group_size"] = lambda cfg: 64 if cfg.algo.batch_size > 512 else 8
  return Variant(name, ov, description=_WHAT[name])


STUDY = Study(
    name="advantage_estimators",
    title="Study 3: advantage estimators",
    question=("How do GRPO, Dr. GRPO, RLOO, REINFORCE++-baseline, ReMax and PPO compare in "
              "accuracy, response length and wall-clock?"),
    paper=("Dr. GRPO (Liu et al., 2025, arXiv:2503.20783): removing the std and length "
           "normalisation keeps accuracy and stops the length growth of wrong answers; "
           "REINFORCE++ (Hu, 2025, arXiv:2501.03262): a batch-whitened baseline is more stable "
           "than per-group normalisation; RLOO (Ahmadian et al., 2024) and ReMax (Li et al., "
           "2023) match PPO without a critic at lower cost."),
    setup=("Each variant is its algorithm's rlx preset (estimator × policy loss × aggregation, "
           "`rlx.config.ALGORITHM_PRESETS`) with the KL term removed for all (the SFT model "
           "would be the reference). Same 64 sequences per step: 8 prompts × 8 samples for the "
           "group estimators, 64 prompts × 1 sample for ReMax (plus one greedy completion per "
           "prompt as its baseline) and PPO (plus a value network). Shared 500-step SFT warm "
           "start, 80 RL steps, lr 2e-4 (also the value network's)."),
    base=base,
    paper_base=paper_base,
    variants=[_variant(n) for n in ESTIMATORS],
    metrics=common.standard_metrics() + [
        Metric("rollout/length", "train length (last 20%)", "mean_last", ".1f"),
        Metric("reward/mean", "train reward (last 20%)", "mean_last"),
    ],
    curves=common.standard_curves(),
    finding=("PPO gains most (Δ pass@1 +7.3 ± 2.3 points, best on every seed); Dr. GRPO +4.1, "
             "GRPO/RLOO/REINFORCE++-baseline +2-3, ReMax +1.3; lengths do not move; PPO costs "
             "≈1.7× GRPO's wall-clock per step."),
    findings="""
- **PPO learns fastest at this scale**, against the critic-free papers' claim that RLOO / ReMax
  match it: Δ pass@1 +7.3 ± 2.3 points and greedy accuracy 0.401 → 0.464, higher than every
  other estimator on each of the 3 seeds (`runs.csv`); the group estimators leave greedy accuracy
  flat or lower (seed 2 drops from 0.375 to 0.27-0.33 for all of them). Hypothesis: PPO's 64
  distinct prompts per step (one sample each) plus a value baseline initialised from the SFT
  policy give a lower-variance, more diverse gradient than 8 prompts × 8 samples; ReMax uses the
  same 64 × 1 layout and is the weakest (+1.3 ± 1.2), so the prompt layout alone does not
  explain it — its greedy baseline is a single 0/1 draw per prompt, a noisy baseline when the
  policy is right 40% of the time.
- **Dr. GRPO ≥ GRPO** (+4.1 ± 2.6 vs +2.2 ± 1.5 Δ pass@1, higher on 2 of 3 seeds). The length
  effect the Dr. GRPO paper reports (std/length normalisation inflating wrong answers' length)
  cannot show here: worked solutions have a fixed length (≈18 tokens) set by the task, and no
  estimator moved the mean length by more than 0.3 tokens.
- **RLOO and REINFORCE++-baseline ≈ GRPO** (+2.6 and +2.2): the baseline variants differ by
  O(1/G) scaling and batch whitening, which a single on-policy update per step and 80 steps do
  not separate beyond seed noise.
- **Wall-clock:** ReMax costs ≈1.3× GRPO per step (the extra greedy rollout) and PPO ≈1.7×
  (value forward/backward); the shared machine makes these ±20-50%.
- Reproducibility check: the `grpo` row equals the `naive_grpo` row of an earlier run of the
  DAPO ladder (same config, separate processes, different machine load) to every printed digit.
""",
)
