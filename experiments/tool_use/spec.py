"""Study 10: tool-integrated RL — the same multiplication task with and without a tool."""

from experiments import common
from experiments.runner import Curve, Metric, Study, Variant


def base():
  """configs/tool_calculator.py as it ships (1,200 SFT updates on `tool_multiplication`
  episodes, a quarter of which call the calculator; 100 GRPO steps of 8 prompts × 8 episodes,
  held-out evaluation every 20 steps on 128 problems)."""
  cfg = common.load_config("tool_calculator")
  cfg.warm_start.cache_dir = ""  # the runner factors the warm start into its own shared run
  return cfg


def paper_base():
  """ToRL (GRPO with a Python tool, Qwen2.5-Math-1.5B; configs/torl_qwen25_math_1p5b.py)."""
  return common.load_config("torl_qwen25_math_1p5b")


def _direct_task(cfg):
  """The small version's task with direct-answer demonstrations only; at paper scale (ToRL's
  JSONL questions, no demonstrations) the task is left as it is and `no_tool` only drops the
  environment (plain GRPO scored by `rewards.name`)."""
  return "direct_multiplication" if cfg.data.task == "tool_multiplication" else cfg.data.task


VARIANTS = [
    Variant("tool", {}, description=(
        "warm start on demonstrations of which a quarter call the calculator, then GRPO on "
        "episodes of the tool environment (a call, then the answer)")),
    Variant("no_tool", {"data.task": _direct_task, "env.name": ""}, description=(
        "the same problems; warm start on direct answers only (the same number of updates), "
        "then single-turn GRPO scored by the task's verifier")),
]

STUDY = Study(
    name="tool_use",
    title="Study 10: tool-integrated RL",
    question=("On the same synthetic maths task, does RL with a tool beat RL without one, and "
              "does RL raise how often the model calls the tool?"),
    paper=("ToRL (Li, Zou & Liu, 2025, arXiv:2503.23383) runs GRPO from a base model with a code "
           "interpreter in the loop and reports higher accuracy than the same RL without tools, "
           "with the tool-call rate rising during training; TORA and ReTool (2025) report the "
           "same direction after an SFT warm start on tool-integrated demonstrations."),
    setup=("`configs/tool_calculator.py` as it ships: `tool_multiplication` (`What is 347 * "
           "582?`, 2- or 3-digit operands), the ~0.2M-parameter model, a 1,200-update SFT warm "
           "start (lr 1e-3, 32 demonstrations per update) per seed and variant, then 100 GRPO "
           "steps (8 prompts × 8 samples, lr 3e-4, no KL), held-out greedy and 4-sample "
           "evaluation on 128 problems every 20 steps. `tool`: a quarter of the demonstrations "
           "call the tool (`<tool>calculator: 347 * 582</tool>` → `<obs>201954</obs>` → "
           "`Answer: 201954`), GRPO on episodes of `env.name=\"tools\"` (at most a call, then "
           "the answer; reward 1 for a right final answer). `no_tool`: the same problems "
           "(`direct_multiplication`, the same generator draws) with every demonstration a "
           "direct answer, single-turn GRPO (`env.name=\"\"`) scored by the task's verifier. "
           "The tool is the **calculator, not the Python sandbox**: one "
           "`rlx.rewards.sandbox.run_python` call of a one-line print took 47 ms on this "
           "machine (median of 10, 37-65 ms; a fresh kernel-isolated process per call), and "
           "`ToolEnv` runs an episode's call synchronously, so a step of 64 calling episodes "
           "would add ≈ 3.0 s (≈ 4× a small study's whole step) and each evaluation (640 "
           "episodes) ≈ 30 s; the calculator answers in microseconds. The paper-scale config is "
           "ToRL's, with the Python tool. Tool-use rates are the share of episodes with at "
           "least one call: `eval/env/tool_use_rate` on the held-out sampled episodes and "
           "`env/tool_use_rate` on training episodes; single-turn runs log neither (n/a)."),
    base=base,
    paper_base=paper_base,
    variants=VARIANTS,
    metrics=[
        Metric("eval/greedy_accuracy", "greedy acc before", "initial"),
        Metric("eval/greedy_accuracy", "greedy acc after", "final"),
        Metric("eval/pass@1", "pass@1 before", "initial"),
        Metric("eval/pass@1", "pass@1 after", "final"),
        Metric("eval/pass@1", "Δ pass@1", "delta"),
        Metric("eval/env/tool_use_rate", "tool-use rate before (held-out)", "initial"),
        Metric("eval/env/tool_use_rate", "tool-use rate after (held-out)", "final"),
        Metric("env/tool_use_rate", "tool-use rate, train (last 20%)", "mean_last"),
        Metric("reward/mean", "train reward (last 20%)", "mean_last"),
    ],
    curves=[
        Curve("eval/greedy_accuracy", "held-out greedy accuracy"),
        Curve("eval/pass@1", "held-out pass@1 (4 samples, T=1)"),
        Curve("eval/env/tool_use_rate", "held-out tool-use rate (sampled episodes)"),
        Curve("env/tool_use_rate", "tool-use rate (train episodes)", smooth=5),
        Curve("reward/mean", "train reward", smooth=5),
    ],
    finding=("With the calculator, GRPO raises held-out greedy accuracy 0.016 → 0.930 and the "
             "tool-use rate 0.28 → 0.99 (≥ 0.9 in training by step 19-29); without it accuracy "
             "stays ≈ 0 (0.005 → 0.000): 2-3-digit products are beyond the tiny model, so "
             "GRPO's rewards are almost all 0 and it has nothing to learn from."),
    findings="""
- **The tool variant learns; the no-tool variant cannot start.** With the calculator, held-out
  greedy accuracy goes 0.016 ± 0.014 → 0.930 ± 0.079 and pass@1 0.234 → 0.872 (Δ +0.639 ±
  0.022, every seed +0.63 or more). Without it, accuracy is ≈ 0 before and after (greedy 0.005 →
  0.000, pass@1 0.004 → 0.001): the ~0.2M-parameter model cannot multiply 2- and 3-digit
  numbers in its head after 1,200 SFT updates on direct answers (it writes a number of about the
  right length, `67 * 22` → `1638`), so almost every group of 8 samples scores 0; only 5, 9 and
  19 of the 100 steps of the three seeds had any rewarded sample, and GRPO's group-normalised
  advantage is zero elsewhere. The direction is ToRL's (tool-integrated RL beats RL without the
  tool), but here the gap is a capability gap by construction (the task was chosen to be
  unsolvable without the tool), not the margin the paper measures on a model that can already
  reason; this toy says nothing about its size.
- **RL raises the tool-use rate, as ToRL reports.** The warm start calls the tool in about the
  share of its demonstrations that did (held-out sampled episodes 0.279 ± 0.018; training
  episodes 0.22-0.38 in the first 5 steps); GRPO pushes it to 0.988 ± 0.007 held out and 0.984
  in the last 20 training steps, crossing 0.9 in training at steps 29, 25 and 19 (seeds 0-2).
  Accuracy follows the call rate: before RL, pass@1 (0.23) is below the tool-use rate (0.28),
  consistent with nearly all right answers coming from episodes that call (the no-tool arm's
  direct answers are right < 1% of the time), and greedy accuracy is 0.02 because the
  warm start's likelier first turn is a direct answer (docs/envs.md reports that greedy decoding
  of this config's warm start does not call; greedy tool use is not logged); once the call is the
  likelier first move (held-out tool-use 0.77-0.95 at step 20) greedy accuracy jumps to
  0.84-0.97 and then stays flat, while pass@1 keeps rising slowly (0.70 → 0.87 from step 20 to
  100) as the copying becomes surer.
- **What is left** in the tool variant is miscopying: seed 1 ends at greedy 0.84 with 99% of its
  episodes calling, seed 2 at 1.00; the seed spread of greedy accuracy after RL (± 0.079) is the
  warm starts' copying quality, not whether they call.
- **Tool cost.** The calculator stands in for ToRL's Python interpreter (setup): the sandboxed
  Python tool costs ≈ 47 ms per call on this machine, ≈ 3 s per 64-episode step and ≈ 30 s per
  evaluation when run one call at a time, against ≈ 0.9 s for the whole tool-variant step here.
  The paper-scale config keeps the Python tool; its `no_tool` variant drops the environment
  (plain GRPO on the same JSONL questions with `math_answer`), so its prompts lose the tool
  instructions (ToRL's "put your final answer within \\boxed{}" included) unless the JSONL
  prompts carry them.
""",
)
