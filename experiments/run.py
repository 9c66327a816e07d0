"""One command per study: ``python -m experiments.run STUDY [--workers N]``.

Runs (or resumes) every run of the study, skipping finished ones, then writes the study's
results.csv / results.md / runs.csv / plots / README.md. ``--scale paper`` builds the paper-scale
configs (``--dry-run`` only validates and prints them); ``--index`` rewrites experiments/README.md.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys

if __package__ in (None, ""):  # python experiments/run.py STUDY
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import runner  # noqa: E402


def _value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def write_index(path: str | None = None) -> str:
  """experiments/README.md: every study with its one-line finding (or status)."""
  path = path or os.path.join(runner.EXPERIMENTS_DIR, "README.md")
  with open(os.path.join(runner.EXPERIMENTS_DIR, "INTRO.md")) as f:
    intro = f.read()
  lines = [intro.rstrip() + "\n", "| study | question | finding (small scale) |", "|---|---|---|"]
  def order(sn):  # "Study 2: ..." before "Study 10: ..."
    m = re.match(r"Study (\d+)", sn[0].title)
    return (int(m.group(1)) if m else 10**6, sn[0].title)
  studies = sorted(((runner.load_study(n), n) for n in runner.study_names()), key=order)
  for s, name in studies:
    lines.append(f"| [{s.title}]({name}/README.md) | {s.question} | "
                 f"{s.finding or s.status or 'not yet run'} |")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("study", nargs="?", help=f"one of: {', '.join(runner.study_names())}")
  p.add_argument("--workers", type=int, default=0, help="parallel run processes (0 = this one)")
  p.add_argument("--root", default=runner.DEFAULT_ROOT, help="where run directories go")
  p.add_argument("--scale", choices=("small", "paper"), default="small")
  p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the study's)")
  p.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
  p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                 help="override a config field of every run (changes the runs' hashes)")
  p.add_argument("--report-only", action="store_true", help="only aggregate finished runs")
  p.add_argument("--dry-run", action="store_true", help="validate and list the runs only")
  p.add_argument("--out", default=None, help="where results and README go (default: the study)")
  p.add_argument("--index", action="store_true", help="rewrite experiments/README.md")
  a = p.parse_args(argv)
  if a.index:
    print(write_index())
    if not a.study:
      return 0
  if not a.study:
    p.error("give a study")
  extra = dict(kv.split("=", 1) for kv in a.set)
  extra = {k: _value(v) for k, v in extra.items()}
  seeds = None if a.seeds is None else [int(s) for s in a.seeds.split(",")]
  variants = None if a.variants is None else a.variants.split(",")
  if a.dry_run:
    from rlx import config as rlx_config
    study = runner.load_study(a.study)
    nodes, _ = runner.plan(study, os.path.abspath(a.root), scale=a.scale, seeds=seeds,
                           variants=variants, extra=extra)
    for n in nodes.values():
      run = rlx_config.validate(n.cfg, check_paths=False)
      print(f"{n.label:<40} {run.algo.name.value:<8} steps={run.num_steps:<5} "
            f"{'finished' if n.finished() else 'to run'}  {n.workdir}")
    return 0
  out = a.out
  if a.scale == "paper" and out is None:
    out = os.path.join(os.path.abspath(a.root), a.study + "_paper")
  res = runner.run_study(a.study, root=a.root, workers=a.workers, out_dir=out, scale=a.scale,
                         seeds=seeds, variants=variants, extra=extra or None,
                         report_only=a.report_only)
  print(runner.table_markdown(runner.load_study(a.study), res))
  return 1 if res.missing else 0


if __name__ == "__main__":
  sys.exit(main())
