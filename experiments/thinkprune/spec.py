"""Study 5: ThinkPrune — RL under a token limit, tightened over rounds (iterative pruning)."""

from experiments import common
from experiments.runner import Curve, Metric, Study, Variant

FULL = 32  # the small version's generation budget (worked solutions take at most 27 tokens)
ROUND_STEPS = 27  # three rounds of 27 steps ≈ the single-round runs' 80 steps
# Final evaluation at the full budget for every variant: a 0-step round started from the last
# checkpoint (so accuracy and length are measured the same way whatever limit trained it).
EVAL_FULL = {"num_steps": 0, "sampling.max_new_tokens": lambda cfg: _full(cfg),
             "rewards.length_cap": False}


def _full(cfg):
  """The evaluation budget: 32 tokens for the small version, 32768 for the distilled model."""
  return FULL if cfg.data.source == "task" else 32768


def _limit(tokens, steps=None):
  ov = {"sampling.max_new_tokens": tokens, "rewards.length_cap": True,
        "rewards.truncated_score": 0.0}
  if steps is not None:
    ov["num_steps"] = steps
  return ov


def base():
  return common.small_base("grpo")


def paper_base():
  """ThinkPrune's recipe (configs/thinkprune_r1_distill_1p5b.py): R1-Distill-Qwen-1.5B, GRPO,
  a 4k → 3k → 2k token limit over three rounds, unfinished thoughts score 0."""
  cfg = common.load_config("thinkprune_r1_distill_1p5b")
  cfg.rewards.name = "math_answer"  # correctness; the limit is rewards.length_cap below
  cfg.rewards.kwargs = {}
  return cfg


def _scaled(small, paper):
  """A token count of the small version, or the paper's at paper scale."""
  return lambda cfg: small if cfg.data.source == "task" else paper


STUDY = Study(
    name="thinkprune",
    title="Study 5: ThinkPrune iterative length pruning",
    question=("Does RL under a token limit (over-long completions score 0) shorten responses "
              "without losing accuracy, and is tightening the limit over rounds better than "
              "imposing the tightest limit at once?"),
    paper=("ThinkPrune (Hou et al., 2025, arXiv:2504.01296): DeepSeek-R1-Distill-Qwen-1.5B "
           "pruned 4k → 3k → 2k over three rounds halves the response length on AIME24 with a "
           "~2-point accuracy drop; iterative pruning beats a single round at the final limit."),
    setup=("GRPO without KL from the shared 500-step SFT warm start; 8 prompts × 8 samples per "
           "step, 80 RL steps per single-round variant. `no_limit` trains at the full 32-token "
           "budget; `direct_16` trains 80 steps under a 16-token limit; `iterative` trains 27 "
           "steps each under 24 → 20 → 16 tokens, each round started from the previous one's "
           "checkpoint. A completion that hits the limit scores 0 (`rewards.length_cap`). Every "
           "variant is evaluated at the end with the full 32-token budget (a 0-step round), so "
           "lengths and accuracies are comparable. The SFT model's mean held-out length is about "
           "18.6 tokens."),
    base=base,
    paper_base=paper_base,
    variants=[
        Variant("no_limit", {}, stages=[EVAL_FULL], description="GRPO at the full budget"),
        Variant("direct_16", _limit(_scaled(16, 2000)), stages=[EVAL_FULL],
                description="one round under the final limit"),
        Variant("iterative", _limit(_scaled(24, 4000), _scaled(ROUND_STEPS, 200)),
                stages=[_limit(_scaled(20, 3000), _scaled(ROUND_STEPS, 200)),
                        _limit(_scaled(16, 2000), _scaled(ROUND_STEPS, 200)), EVAL_FULL],
                description="three rounds, each tighter (ThinkPrune)"),
    ],
    metrics=[
        Metric("eval/greedy_accuracy", "greedy acc before", "initial"),
        Metric("eval/greedy_accuracy", "greedy acc after", "final"),
        Metric("eval/pass@1", "pass@1 after", "final"),
        Metric("eval/mean_length", "length before", "initial", ".1f"),
        Metric("eval/mean_length", "length after", "final", ".1f"),
        Metric("eval/truncation_rate", "truncated at 32 after", "final"),
        Metric("reward/length_capped", "capped in training (last 20%)", "mean_last"),
    ],
    curves=common.standard_curves() + [
        Curve("reward/length_capped", "fraction over the limit (train)", smooth=10)],
    finding=("No pruning here: under a 16-token limit about half of the training samples stay "
             "capped to the end (0.53) and full-budget length does not move (18.6 vs 18.5); "
             "accuracy dips within noise (greedy 0.367 direct, 0.354 iterative vs 0.393)."),
    findings="""
- **The limit does not shorten the responses.** Evaluated at the full 32-token budget, every
  variant ends at the SFT model's length (18.5-18.6 tokens). Under the limit the model keeps
  exceeding it: in the last 20% of training 53% (direct 16) and 52% (iterative, last round at
  16) of samples still hit the limit and score 0.
- **Accuracy:** greedy 0.367 ± 0.072 (direct) and 0.354 ± 0.044 (iterative) against
  0.393 ± 0.074 without a limit; pass@1 0.271 / 0.262 / 0.276. The differences are within seed
  noise; iterative pruning is not better than the direct limit here.
- **Why this differs from ThinkPrune** (hypothesis): ThinkPrune prunes R1-Distill's long,
  redundant reasoning (re-checks, restarts), which the model can drop without losing the answer.
  The synthetic worked solutions have no redundancy: their length is fixed by the number of
  expression steps, so the only way under 16 tokens is to skip steps, which the 0.2M-parameter
  model cannot do without losing the answer; the capped samples carry no gradient towards a
  shorter correct solution that the model never samples. A task with optional verbosity (e.g.
  SFT data padded with redundant re-checks) would test the mechanism the paper relies on.
""",
)
