"""Study 6: label-free rewards, judged by true held-out accuracy."""

from experiments import common
from experiments.runner import Curve, Metric, Study, Variant


def base():
  return common.small_base("grpo")


def paper_base():
  """GRPO on Qwen2.5-Math-7B over MATH prompts (DeepSeekMath's recipe: lr 1e-6, 16 prompts × 64
  samples, 1024 tokens); majority vote follows TTRL (64 voters, 32 trained on)."""
  cfg = common.load_config("grpo_qwen25_math_7b")
  cfg.eval.reward = "math_answer"  # true accuracy, whatever the training reward
  return cfg


def _ttrl_kwargs(cfg):
  g = cfg.algo.group_size
  return {"n_vote": g, "n_train": g // 2} if g >= 64 else {}


STUDY = Study(
    name="label_free",
    title="Study 6: label-free rewards",
    question=("Can a model improve without labels — majority vote, self-certainty, semantic "
              "entropy — and how does that compare with the ground truth and a random reward?"),
    paper=("TTRL (Zuo et al., 2025, arXiv:2504.16084): majority-vote rewards approach "
           "ground-truth RL; Intuitor (Zhao et al., 2025, arXiv:2505.19590): self-certainty as the "
           "only reward matches GRPO in-domain; EMPO (Zhang et al., 2025, arXiv:2504.05812): "
           "semantic-entropy rewards improve math reasoning; Spurious Rewards (Shao et al., 2025): "
           "even random rewards lift Qwen2.5-Math, but not other model families."),
    setup=("GRPO without KL from the shared 500-step SFT warm start, 80 RL steps, 8 prompts × "
           "8 samples; only the training reward changes. Held-out accuracy is always judged by "
           "the task's verifier (`eval.reward=auto`). Majority vote: all 8 samples vote and train "
           "(TTRL's 64/32 split at paper scale); semantic entropy: reward = size of the sample's "
           "answer cluster / 8; self-certainty: mean KL(U‖p) of the completion under the current "
           "policy; random: Bernoulli(0.5) per sample, seeded by the run seed. `train reward` is "
           "the variant's own reward, not accuracy."),
    base=base,
    paper_base=paper_base,
    variants=[
        Variant("ground_truth", {"rewards.name": lambda cfg: (
            "task" if cfg.data.source == "task" else "math_answer")},
                description="the task verifier (labels)"),
        Variant("majority_vote", {"rewards.name": "majority_vote",
                                  "rewards.kwargs": _ttrl_kwargs},
                description="1 if the answer equals the group's majority answer (TTRL)"),
        Variant("self_certainty", {"rewards.name": "self_certainty"},
                description="mean KL(uniform ‖ p_t) of the completion (Intuitor)"),
        Variant("semantic_entropy", {"rewards.name": "semantic_entropy"},
                description="answer-cluster size / G (EMPO)"),
        Variant("random", {"rewards.name": "random",
                           "rewards.kwargs": lambda cfg: {"p": 0.5, "seed": cfg.seed}},
                description="Bernoulli(0.5) (spurious-reward control)"),
    ],
    metrics=common.standard_metrics() + [
        Metric("eval/maj@4", "maj@4 after", "final"),
        Metric("reward/mean", "train reward (last 20%)", "mean_last"),
    ],
    curves=common.standard_curves(),
    finding=("Every label-free reward destroys accuracy here (greedy 0.40 → 0.01-0.09, as low as "
             "the random reward's 0.08) while its own reward climbs; only ground truth holds "
             "(+2.2 pass@1). The papers' gains need a model whose majority is usually right."),
    findings="""
- **Only the ground truth improves true accuracy.** Majority vote, self-certainty and semantic
  entropy all collapse held-out accuracy within 80 steps (greedy 0.401 → 0.070, 0.010, 0.091;
  Δ pass@1 −19, −24, −17 points), ending no better than the random-reward control (greedy 0.076,
  Δ pass@1 −21). Each run optimises its own reward well — agreement with the majority reaches
  0.71, semantic-entropy reward 0.63, self-certainty 5.8 nats — which is the reward hacking the
  label-free papers warn about, not the improvement they report.
- **Why this differs from TTRL / EMPO / Intuitor** (hypothesis): those methods assume the
  policy's consensus is more often right than a single sample (TTRL's "label accuracy"). Here
  the SFT policy solves ≈25% of problems per sample (maj@4 0.33), so the majority answer of 8
  samples is usually wrong, and rewarding agreement reinforces wrong answers until the group
  agrees on anything. Self-certainty is satisfied by confident but empty text: completions grow
  to the 32-token budget (27.9 tokens vs 18.5) and stop containing answers.
- **Random reward** (the spurious-rewards control) also degrades this model (−21 points). The
  spurious-rewards paper attributes Qwen2.5-Math's gains under random rewards to the clipping
  bias of several updates per batch amplifying pre-existing code-reasoning behaviour; with one
  on-policy update per step there is no clipping bias, and GRPO's std normalisation turns the
  coin flips into unit-size advantages, so the policy random-walks away from its SFT start.
- The collapse is fast at lr 2e-4; a smaller step would slow it, but the direction — agreement
  rising while accuracy falls — is visible from the first evaluation (step 40).
""",
)
