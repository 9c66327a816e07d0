r"""LoRA GRPO vs full-fine-tuning GRPO on the quickstart task, from the same SFT checkpoint.

    python benchmarks/lora_learning.py [--seeds 0,1,2] [--steps 500] [--rank 8] [--lora_lr 1e-3]

Per seed: the quickstart's SFT warm start (its full-fine-tuning updates) is run once; then GRPO
continues from that checkpoint twice with the quickstart's settings, the same number of steps,
prompts and samples: once training every parameter (lr 1e-4, the quickstart's), once training
rank-r LoRA adapters on every projection (the base frozen; adapters usually want a larger step:
``--lora_lr``). Reports held-out greedy and sampled accuracy before and after, RL wall time, and
the size of the final checkpoint step on disk; appends the table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # noqa

from benchmarks.common import append_rows, git_commit, machine, today  # noqa: E402
from experiments.common import load_config  # noqa: E402



def _dir_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _last_step_bytes(workdir: str) -> int:
  ckpt = os.path.join(workdir, "checkpoints")
  steps = [int(s) for s in os.listdir(ckpt) if s.isdigit()]
  return _dir_bytes(os.path.join(ckpt, str(max(steps))))


def _config(seed: int, steps: int):
  cfg = load_config("quickstart")
  cfg.seed = seed
  cfg.num_steps = steps
  cfg.logging.stdout = False
  cfg.logging.tensorboard = False
  cfg.eval.every_steps = max(steps, 1)
  cfg.checkpoint.every_steps = max(steps, 1)
  return cfg


def _accuracies(evals: list[dict]) -> tuple[dict, dict]:
  keys = ("eval/greedy_accuracy", "eval/pass@1")
  return {k: evals[0][k] for k in keys}, {k: evals[-1][k] for k in keys}


def run_seed(seed: int, steps: int, rank: int, lora_lr: float, root: str,
             runs=("full", "lora"), lora_plus: float = 1.0) -> list[dict]:
  from rlx.runtime.run import train
  sft_dir = os.path.join(root, f"sft{seed}")
  # The warm start only (its last step is checkpointed); with the same --root a rerun finds it
  # done and only evaluates.
  if train(_config(seed, 0), sft_dir)["preempted"]:
    raise SystemExit("interrupted during the SFT warm start: rerun with the same --root")
  out = []
  for name in runs:
    cfg = _config(seed, steps)
    cfg.warm_start.sft_steps = 0
    cfg.checkpoint.init_from = os.path.join(sft_dir, "checkpoints")
    if name == "lora":
      cfg.lora.rank = rank
      cfg.lora.alpha = 2.0 * rank
      cfg.optim.learning_rate = lora_lr
      cfg.optim.lora_plus_ratio = lora_plus
    tag = f"r{rank}_lr{lora_lr:g}" + (f"_plus{lora_plus:g}" if lora_plus != 1 else "") \
        if name == "lora" else ""
    workdir = os.path.join(root, f"{name}{tag}_{seed}")
    t0 = time.perf_counter()
    summary = train(cfg, workdir)
    if summary["preempted"]:
      raise SystemExit(f"interrupted ({name}, seed {seed}): rerun with the same --root")
    wall = time.perf_counter() - t0
    before, after = _accuracies(summary["evals"])
    out.append({"seed": seed, "run": name, "rank": rank, "lr": cfg.optim.learning_rate,
                "plus": cfg.optim.lora_plus_ratio,
                "before": before,
                "after": after, "wall": wall, "ckpt": _last_step_bytes(workdir)})
    print(out[-1], flush=True)
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--steps", type=int, default=500)
  p.add_argument("--rank", type=int, default=8)
  p.add_argument("--lora_lr", type=float, default=1e-3)
  p.add_argument("--runs", default="full,lora", help="which of full,lora to run")
  p.add_argument("--lora_plus", type=float, default=1.0,
                 help="LoRA+ ratio (optim.lora_plus_ratio): B's step size / A's")
  p.add_argument("--root", default="", help="work directory (reused: SFT runs are not redone)")
  p.add_argument("--no_record", action="store_true")
  args = p.parse_args()
  root = args.root or tempfile.mkdtemp(prefix="rlx_lora_learning_")
  rows = []
  for seed in [int(s) for s in args.seeds.split(",")]:
    rows += run_seed(seed, args.steps, args.rank, args.lora_lr, root, args.runs.split(","),
                     args.lora_plus)
  table = []
  for r in rows:
    g0, g1 = r["before"]["eval/greedy_accuracy"], r["after"]["eval/greedy_accuracy"]
    s0, s1 = r["before"]["eval/pass@1"], r["after"]["eval/pass@1"]
    label = (f"LoRA r{r['rank']}" + (f" LoRA+ λ={r['plus']:g}" if r["plus"] != 1 else "")
             if r["run"] == "lora" else "full")
    table.append(f"| {r['seed']} | {label} (lr {r['lr']:g}) | {g0:.3f} → {g1:.3f} "
                 f"({g1 - g0:+.3f}) | {s0:.3f} → {s1:.3f} | {r['wall']:.0f} s | "
                 f"{r['ckpt'] / 1e3:.0f} kB |")
  sft = load_config("quickstart").warm_start
  header = (f"{args.steps} GRPO steps from the quickstart's SFT checkpoint ({sft.sft_steps} steps "
            f"on {sft.num_examples or 'all'} demonstrations), LoRA "
            f"(alpha = 2 × rank) on every projection vs every parameter; "
            f"{machine()}, {today()}, commit {git_commit()}.\n\n"
            "| seed | run | greedy held-out accuracy | sampled pass@1 | RL wall | checkpoint step |\n"
            "|---|---|---|---|---|---|")
  print(header)
  print("\n".join(table))
  if not args.no_record:
    append_rows("## LoRA vs full fine-tuning GRPO, quickstart of 2026-12-07 (benchmarks/lora_learning.py)",
                header, table)


if __name__ == "__main__":
  main()
