"""Whole episodes of an RL run, written to the workdir and read back as text.

Every ``logging.rollouts_every`` steps an episode run writes its step's episodes to
``WORKDIR/rollouts/step_NNNNNNN.jsonl``, one line per row: the prompt (the environment's first
text), the episode as segments in order (``{"kind": "action" | "observation", "text"}``: what
the model wrote, loss mask 1, and what it read, loss mask 0), its reward, per-turn rewards,
finish reason, turns, group and seat.

View them: ``python -m rlx.runtime.rollout_log WORKDIR [--step N] [--rows K]`` prints the
episodes of step N (default: the last written) with each segment labelled.
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np

DIR = "rollouts"


def episode_records(data: dict, tokenizer) -> list[dict]:
  """One record per row of ``run_episodes``' output (host arrays)."""
  out = []
  cm, lm = np.asarray(data["completion_mask"]), np.asarray(data["loss_mask"])
  for i in range(cm.shape[0]):
    n = int(cm[i].sum())
    toks, mask = np.asarray(data["completion_tokens"][i, :n]), lm[i, :n] > 0
    cuts = np.nonzero(np.diff(mask.astype(np.int8)))[0] + 1
    segments = [{"kind": "action" if mask[run[0]] else "observation",
                 "text": tokenizer.decode(toks[run].tolist())}
                for run in np.split(np.arange(n), cuts) if len(run)]
    seat = data.get("seat")
    out.append({
        "row": i, "group": int(data["group_ids"][i]),
        "seat": None if seat is None or seat[i] < 0 else int(seat[i]),
        "prompt": data["prompt_texts"][i] if "prompt_texts" in data else "",
        "episode": segments, "reward": float(data["rewards"][i]),
        "turn_rewards": [float(r) for r in data["turn_rewards"][i]],
        "finish": data["episode_finish"][i], "turns": int(data["turns"][i])})
  return out


def write_episodes(workdir: str, step: int, data: dict, tokenizer) -> str:
  """Writes step ``step``'s episodes; returns the file's path."""
  os.makedirs(os.path.join(workdir, DIR), exist_ok=True)
  path = os.path.join(workdir, DIR, f"step_{step:07d}.jsonl")
  with open(path + ".tmp", "w") as f:
    for rec in episode_records(data, tokenizer):
      f.write(json.dumps({"step": step, **rec}) + "\n")
  os.replace(path + ".tmp", path)
  return path


def format_episode(rec: dict) -> str:
  """An episode as text: its header line, the prompt, then each segment labelled."""
  seat = "" if rec.get("seat") is None else f" seat {rec['seat']}"
  lines = [f"--- step {rec['step']} row {rec['row']} (group {rec['group']}{seat}): reward "
           f"{rec['reward']:g}, {rec['turns']} turns, {rec['finish']}",
           f"[prompt] {rec['prompt']}"]
  lines += [f"[{seg['kind']}] {seg['text']}" for seg in rec["episode"]]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description="Print the episodes an RL run wrote to its workdir.")
  p.add_argument("workdir")
  p.add_argument("--step", type=int, default=None, help="the step (default: the last written)")
  p.add_argument("--rows", type=int, default=8, help="episodes to print (0 = all)")
  a = p.parse_args(argv)
  files = sorted(glob.glob(os.path.join(a.workdir, DIR, "step_*.jsonl")))
  if not files:
    print(f"no episodes under {os.path.join(a.workdir, DIR)} (logging.rollouts_every, an "
          "episode run)")
    return 1
  path = (files[-1] if a.step is None
          else os.path.join(a.workdir, DIR, f"step_{a.step:07d}.jsonl"))
  if not os.path.exists(path):
    steps = [int(os.path.basename(f)[5:12]) for f in files]
    print(f"no episodes written at step {a.step}; written steps: {steps}")
    return 1
  with open(path) as f:
    records = [json.loads(line) for line in f]
  for rec in records[:a.rows or None]:
    print(format_episode(rec))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
