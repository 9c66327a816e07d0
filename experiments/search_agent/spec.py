"""Study 9: a search agent — questions answerable only from a local document collection, with
and without the retrieval tool."""

from experiments import common
from experiments.runner import Curve, Metric, Study, Variant

RL_STEPS = 80
EVAL_EVERY = 20


def base():
  """configs/search_lookup.py (the ``lookup`` task, BM25 ``search`` over the shipped collection,
  1200-step SFT warm start on the mixed demonstrations, GRPO on tool episodes), 80 RL steps."""
  cfg = common.load_config("search_lookup")
  cfg.num_steps = RL_STEPS
  cfg.eval.every_steps = EVAL_EVERY
  cfg.eval.num_examples = 128
  cfg.eval.num_samples = 4
  cfg.checkpoint.every_steps = EVAL_EVERY
  cfg.warm_start.cache_dir = ""  # the runner factors the warm start out as its own SFT run
  return cfg


def paper_base():
  """Search-R1-style GRPO with a BM25 search tool on Qwen2.5-7B (configs/search_r1_qwen25_7b.py)."""
  return common.load_config("search_r1_qwen25_7b")


VARIANTS = [
    Variant("search", {}, description=(
        "env `tools` with `search` (BM25, top 1): SFT on episodes (a quarter search, the rest "
        "answer at once), then GRPO on episodes")),
    Variant("no_search", {"env.name": "", "env.kwargs": {}}, description=(
        "single turn, no tool: SFT on the direct answers of the same questions (same 1200 "
        "updates), then GRPO with the task's verifier")),
]


STUDY = Study(
    name="search_agent",
    title="Study 9: a search agent",
    question=("On questions answerable only from a locally generated document collection, does "
              "GRPO teach a small model to use a retrieval tool, and how far does it get with "
              "and without the tool?"),
    paper=("Search-R1 (Jin et al., 2025, arXiv:2503.09516), R1-Searcher (Song et al., 2025) and "
           "ReSearch / ReSeek train LLMs with outcome-reward RL to interleave search calls with "
           "reasoning: retrieved passages are appended to the context (masked out of the loss), "
           "only the final answer is rewarded, and the policy learns when and what to search; "
           "without retrieval the model can only answer from its parameters."),
    setup=("Task `lookup` (rlx/data/tasks.py): \"What does item 4821 cost?\"; the prices are only "
           "in a collection of 1000 records `item 4821: price 37` (4-digit ids, prices 10-99) "
           "generated from a fixed seed and shipped as rlx/data/assets/lookup_items.jsonl (43 "
           "kB). Training questions ask about 750 items; the held-out questions (128, greedy and "
           "4 samples at T=1) ask about the other 250, never seen in training, so chance is "
           "1/90. `search` = BM25 (rlx/data/retrieval.py), top 1 document, observation "
           "`<obs>[1] item 4821: price 37</obs>`; at most 2 turns. Both variants: ~0.2M-parameter "
           "model, 1200 SFT updates (batch 32, lr 1e-3) on the same questions, then 80 GRPO "
           "steps of 8 prompts × 8 samples (lr 3e-4, no KL, T=1), evaluation every 20 steps. "
           "`tool rate` = share of sampled held-out episodes that call a tool."),
    base=base,
    paper_base=paper_base,
    variants=VARIANTS,
    metrics=[
        Metric("eval/greedy_accuracy", "greedy acc before", "initial"),
        Metric("eval/greedy_accuracy", "greedy acc after", "final"),
        Metric("eval/pass@1", "pass@1 before", "initial"),
        Metric("eval/pass@1", "pass@1 after", "final"),
        Metric("eval/pass@4", "pass@4 after", "final"),
        Metric("eval/env/tool_use_rate", "tool rate before", "initial"),
        Metric("eval/env/tool_use_rate", "tool rate after", "final"),
        Metric("reward/mean", "train reward (last 20%)", "mean_last"),
    ],
    curves=[
        Curve("reward/mean", "train reward", smooth=10),
        Curve("eval/greedy_accuracy", "held-out greedy accuracy"),
        Curve("eval/pass@1", "held-out pass@1 (4 samples, T=1)"),
        Curve("eval/env/tool_use_rate", "held-out tool-use rate (sampled)"),
        Curve("env/tool_use_rate", "train tool-use rate", smooth=10),
    ],
    finding=("With the tool, GRPO makes searching the policy's first move: held-out tool rate "
             "0.23 → 0.98, greedy accuracy 0.02 → 1.00, pass@1 0.22 → 0.93 on items never "
             "trained on; without it, held-out accuracy stays at chance (1/90: pass@1 0.01) "
             "while training reward (memorised items) is 0.23-0.33."),
    findings="""
- **The tool is learned, and it generalises to unseen items.** With `search`, the held-out
  tool-use rate (sampled) rises from 0.19-0.27 after the SFT warm start (about the 0.25 share of
  search demonstrations) to 0.98-0.99 after 80 GRPO steps, on every seed; greedy accuracy goes
  0.01-0.02 → 1.00 (already 0.98-1.00 at step 20) and pass@1 0.19-0.25 → 0.91-0.95. The
  held-out questions ask about items never asked in training, so this is retrieval, not recall.
- **Searching was already right before RL; RL changed how often it is used.** At step 0,
  held-out pass@1 ≈ held-out tool rate on each seed (0.19 vs 0.19, 0.25 vs 0.27, 0.21 vs 0.24):
  direct answers to unseen items can only be right by chance (1/90), so the warm start's
  searching episodes end right in roughly 0.8-1.0 of cases (an estimate from the two rates, not
  a logged metric): it already copies the id into the query and the price out of the
  observation. Greedy decoding answers directly at step 0 (the likelier first turn), hence greedy
  accuracy near 0 until GRPO makes the search the first move. After RL, pass@1 (0.93) vs tool
  rate (0.98) leaves about 5% of sampled episodes wrong (miscopies at T=1 or the remaining direct
  answers; not broken down).
- **Without the tool the model memorises, and that does not transfer.** `no_search` (the same
  questions, 1200 SFT updates on their direct answers, the same GRPO) ends with training reward
  0.23-0.33 (sampled answers to training questions, mean over the last 16 steps; 0.17-0.28 in
  the first 10 steps): the ~0.2M-parameter model has memorised some of the 750 training items'
  prices. On held-out items its greedy accuracy is 0.00-0.03 and pass@1 0.004-0.018, chance
  level (1/90 = 0.011), before and after RL: nothing in 80 steps of outcome reward can teach a
  price that is only in the collection.
- **Caveats.** The retrieval is easy by construction (the query is the item id, BM25 top 1 is
  always the right record), so this isolates learning *when to call* and *how to use the
  output*, not query formulation or reading through distractors (multi-item questions,
  `data.difficulty` 2-4, and `k` > 1 would test those; not run). Both variants use the task's
  price as the answer, but the `search` episode is scored by ToolEnv's answer check (the last
  number of the final turn) and `no_search` by the task verifier (the number on the `Answer:`
  line): ToolEnv's is the more lenient, a difference that can only favour `search` (not
  measured; both variants' demonstrations end in `Answer: N`).
- **Cost.** Each variant-seed run needs its own 1200-step SFT warm start (192-293 s here, not in
  the wall-clock table, which is the RL phase only); a `search` RL step cost ≈3× a `no_search`
  step (two turns, a BM25 call per episode, longer sequences).
""",
)
