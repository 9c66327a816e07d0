"""rlx's maths verifier against Hugging Face ``math-verify`` on a hand-labelled corpus.

    python benchmarks/math_equivalence.py [--record] [--corpus PATH] [--show_errors]

The corpus (``tests/rewards/math_equivalence_corpus.jsonl``) holds (gold, prediction, equal)
cases labelled as a grader of a maths benchmark would judge them, each with a category. Both
verifiers see the prediction as a completion that boxes it, ``"... \\boxed{pred}"``:

- rlx: ``math_answer_score(completion, {"answer": gold})``, i.e. ``math_equal(extract_answer(
  completion), gold)`` as the ``math_answer`` reward calls it (default options);
- math-verify: ``verify(parse(gold_wrapped), parse(completion))`` with its default extraction
  (LaTeX and plain expressions) and time limits; the gold is wrapped as ``$gold$`` or
  ``\\boxed{gold}``, whichever agrees more with the labels (reported).

Agreement = fraction of cases where the verifier's verdict equals the label; a false positive
calls a non-equal pair equal. Cost per call: wall time of one comparison (parsing both sides
included) with sympy's and math-verify's caches cleared before each call, so that no case reuses
another's parse; mean and 95th percentile over the corpus, after one untimed warm-up pass.
Cases of the ``heldout`` split were written after rlx's rules were settled and scored once
(not tuned on). The "numeric answers" line averages the integer, decimal, negative, percent
and thousands categories (GSM8K-style answers). ``--record`` appends a row per verifier to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from rlx.rewards.verifiable import math_answer_score  # noqa: E402

NUMERIC = ("integer", "decimal", "negative", "percent", "thousands")  # GSM8K-style answers
CORPUS = os.path.join(os.path.dirname(__file__), "..", "tests", "rewards",
                      "math_equivalence_corpus.jsonl")


def load_corpus(path: str = CORPUS) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _clear_caches():
  from sympy.core.cache import clear_cache
  from math_verify import parser
  clear_cache()
  for fn in (parser.parse_latex_cached, parser.parse_expr_cached, parser.extract_latex):
    fn.cache_clear()


def rlx_verdict(gold: str, pred: str) -> bool:
  return math_answer_score(f"The answer is \\boxed{{{pred}}}", {"answer": gold})[0] == 1.0


def math_verify_verdict(gold_wrap: str):
  from math_verify import parse, verify

  def verdict(gold: str, pred: str) -> bool:
    return bool(verify(parse(gold_wrap.format(gold)), parse(f"The answer is \\boxed{{{pred}}}")))

  return verdict


def evaluate(cases: list[dict], verdict) -> dict:
  """Verdicts, agreement per category and overall, false positives/negatives, cost per call."""
  for c in cases:  # warm-up: imports, grammar loading
    verdict(c["gold"], c["pred"])
  out, secs = [], []
  for c in cases:
    _clear_caches()
    t0 = time.perf_counter()
    v = verdict(c["gold"], c["pred"])
    secs.append(time.perf_counter() - t0)
    out.append(v)
  per_cat = collections.defaultdict(lambda: [0, 0])
  for c, v in zip(cases, out):
    for key in (c["category"], "split:" + c.get("split", "dev")):
      per_cat[key][0] += v == c["equal"]
      per_cat[key][1] += 1
  secs_sorted = sorted(secs)
  return {
      "verdicts": out,
      "agree": sum(v == c["equal"] for c, v in zip(cases, out)),
      "fp": sum(v and not c["equal"] for c, v in zip(cases, out)),
      "fn": sum(c["equal"] and not v for c, v in zip(cases, out)),
      "per_category": dict(per_cat),
      "mean_ms": statistics.mean(secs) * 1e3,
      "numeric_ms": 1e3 * statistics.mean(
          s for c, s in zip(cases, secs) if c["category"] in NUMERIC),
      "p95_ms": secs_sorted[min(len(secs) - 1, int(0.95 * len(secs)))] * 1e3,
      "max_ms": secs_sorted[-1] * 1e3,
  }


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
  parser.add_argument("--corpus", default=CORPUS)
  parser.add_argument("--show_errors", action="store_true")
  args = parser.parse_args()
  logging.getLogger("math_verify").setLevel(logging.ERROR)
  cases = load_corpus(args.corpus)
  n = len(cases)

  mv = {}
  for wrap in ("${}$", "\\boxed{{{}}}"):
    mv[wrap] = evaluate(cases, math_verify_verdict(wrap))
  best_wrap = max(mv, key=lambda w: mv[w]["agree"])
  from importlib.metadata import version
  mv_name = f"math-verify {version('math-verify')} (gold `{best_wrap.format('g')}`)"
  results = {"rlx": evaluate(cases, rlx_verdict), mv_name: mv[best_wrap]}
  names = list(results)

  cats = list(dict.fromkeys(c["category"] for c in cases))
  print(f"{n} cases ({sum(c['equal'] for c in cases)} equal); math-verify by gold wrapping: "
        + ", ".join(f"`{w.format('g')}` {r['agree']}/{n}" for w, r in mv.items()))
  print("| category | cases | " + " | ".join(names) + " |")
  print("|---|---|" + "---|" * len(names))
  for cat in cats:
    k = results[names[0]]["per_category"][cat][1]
    print(f"| {cat} | {k} | " + " | ".join(
        f"{results[m]['per_category'][cat][0]}/{k}" for m in names) + " |")
  for split in ("dev", "heldout"):
    k = results[names[0]]["per_category"].get("split:" + split, [0, 0])[1]
    if k:
      print(f"| {split} split | {k} | " + " | ".join(
          f"{results[m]['per_category']['split:' + split][0]}/{k}" for m in names) + " |")
  print(f"| **all** | {n} | " + " | ".join(
      f"**{results[m]['agree']}/{n} ({results[m]['agree'] / n:.1%})**" for m in names) + " |")
  print("| false positives | | " + " | ".join(str(results[m]["fp"]) for m in names) + " |")
  print("| false negatives | | " + " | ".join(str(results[m]["fn"]) for m in names) + " |")
  print("| ms per call, mean / p95 / max | | " + " | ".join(
      f"{results[m]['mean_ms']:.2f} / {results[m]['p95_ms']:.2f} / {results[m]['max_ms']:.0f}"
      for m in names) + " |")
  print("| ms per call, numeric answers only | | " + " | ".join(
      f"{results[m]['numeric_ms']:.2f}" for m in names) + " |")
  if args.show_errors:
    for m in names:
      for c, v in zip(cases, results[m]["verdicts"]):
        if v != c["equal"]:
          print(f"{m}: {c['category']}: gold {c['gold']!r} pred {c['pred']!r} label {c['equal']}")

  if args.record:
    rows = [f"{common.stamp()}| {m} | {n} | "
            f"{r['agree'] / n:.1%} | {r['fp']} | {r['fn']} | {r['mean_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['numeric_ms']:.2f} |" for m, r in results.items()]
    common.append_rows(
        "## Maths answer equivalence (benchmarks/math_equivalence.py)",
        "| date | commit | machine | verifier | cases | agreement | false pos | false neg | "
        "mean ms/call | p95 ms/call | numeric answers ms/call |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|", rows)


if __name__ == "__main__":
  main()
