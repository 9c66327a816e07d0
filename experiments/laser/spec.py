"""Study 7: LaSeR — a last-token self-reward trained beside the policy."""

from experiments import common
from experiments.runner import Curve, Metric, Study, Variant


def base():
  return common.small_base("grpo")


def paper_base():
  """GRPO on Qwen2.5-Math-7B (DeepSeekMath's recipe) with LaSeR's α 0.1, β_v 0.1, τ 0.1."""
  return common.load_config("grpo_qwen25_math_7b")


STUDY = Study(
    name="laser",
    title="Study 7: LaSeR last-token self-rewarding",
    question=("Does LaSeR's auxiliary loss teach the policy's last-token score to verify its own "
              "answers (F1), and does it change accuracy, with or without advantage mixing?"),
    paper=("LaSeR (Yang et al., 2025, arXiv:2510.14943): the scaled log-probability of a fixed "
           "token after the answer, trained with an MSE to the verifier reward (α 0.1), reaches "
           "self-verification F1 comparable to external verifiers at almost no extra cost and "
           "keeps or improves reasoning accuracy; mixing the self-reward into the advantage "
           "(τ 0.1) adds a little more."),
    setup=("GRPO without KL from the shared 500-step SFT warm start, 80 RL steps, 8 prompts × 8 "
           "samples. `laser` adds the auxiliary loss (α 0.1, β_v 0.1, c_ref = the reference "
           "policy's log-prob of the token); `laser_mix` also mixes the self-reward into the "
           "advantage (τ 0.1). F1/accuracy of the self-verification (self-reward > 0.5 ⇔ "
           "verifier says correct) are logged on each training batch."),
    base=base,
    paper_base=paper_base,
    variants=[
        Variant("grpo", {"algo.laser_alpha": 0.0}, description="no self-reward"),
        Variant("laser", {"algo.laser_alpha": 0.1, "algo.laser_beta": 0.1,
                          "algo.laser_tau": 0.0}, description="+ auxiliary MSE (α 0.1)"),
        Variant("laser_mix", {"algo.laser_alpha": 0.1, "algo.laser_beta": 0.1,
                              "algo.laser_tau": 0.1},
                description="+ advantage mixing (τ 0.1)"),
    ],
    metrics=common.standard_metrics() + [
        Metric("laser/f1", "self-verif F1 (last 20%)", "mean_last"),
        Metric("laser/accuracy", "self-verif acc (last 20%)", "mean_last"),
    ],
    curves=common.standard_curves() + [Curve("laser/f1", "self-verification F1", smooth=10)],
    finding=("After 80 steps the last-token score verifies weakly (F1 0.50-0.53, accuracy "
             "0.69-0.71, near the always-'wrong' baseline of ≈0.72); accuracy is unchanged "
             "within noise (Δ pass@1 +1.1/+1.2 vs +2.2)."),
    findings="""
- **Self-verification is barely above trivial after 80 steps.** The last-token score reaches F1
  0.502 ± 0.041 (0.534 ± 0.123 with advantage mixing) and accuracy 0.69-0.71 on the training
  batches. About 27% of training samples are correct, so predicting "wrong" for everything scores
  accuracy ≈ 0.73 and predicting "right" for everything F1 ≈ 0.43: the score has learned a
  little (F1 is 0 for the first ≈15 steps, then climbs and is still rising at step 80) but is
  far from the paper's verifier-level F1. A side effect: the auxiliary loss keeps the policy's
  entropy higher (≈0.33 vs 0.29 at the end). Hypothesis: LaSeR trains the score through one token's log-probability with
  α 0.1 beside the policy loss; with 80 updates of a 0.2M-parameter model that signal has had
  little time, while the paper trains for hundreds of steps from a 7B model that already
  represents correctness.
- **Accuracy with and without LaSeR:** Δ pass@1 +1.1 ± 0.6 (aux loss) and +1.2 ± 4.2 (plus
  mixing) vs +2.2 ± 1.5 for GRPO; greedy 0.378 and 0.380 vs 0.393. No cost or gain beyond seed
  noise, consistent with the paper's claim that the auxiliary loss leaves reasoning accuracy
  intact; the small gain from advantage mixing the paper reports does not appear (mixing only
  applies where the group std of the self-reward exceeds 0.1, rare while the score is flat).
""",
)
