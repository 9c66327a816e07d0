"""Multi-turn rollout throughput against single-turn sampling on the same model.

    python benchmarks/multi_turn.py [--reps 3] [--record]

The 12.6M reference model (benchmarks/sampling.py), 32 episodes of prompt 64, sampled at
temperature 1 with no stop token (every turn spends its whole budget, so both sides decode the
same number of model tokens). Multi-turn: ``turns`` turns of ``N`` new tokens; after every turn
but the last a scripted environment answers a fixed observation of ``obs`` tokens (appended
to the KV cache, loss mask 0; ``rlx.runtime.episodes.run_episodes``). Single-turn: one call of
``turns · N`` new tokens. Reported: model (action) tokens/s of each, and the overhead per turn,
``(multi − single) / (turns − 1)`` seconds (the host round trip, decoding the action text,
the environment, tokenising and prefilling the observation, the per-call launch).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from sampling import CONFIG  # noqa: E402  (the 12.6M reference model)

import rlx.models as M  # noqa: E402
from rlx.data import Example, load_task_tokenizer  # noqa: E402
from rlx.envs import Environment, StepResult  # noqa: E402
from rlx.runtime.episodes import run_episodes  # noqa: E402
from rlx.sampling import Buckets, SamplingParams, sample  # noqa: E402

BATCH, PROMPT = 32, 64
SHAPES = [(3, 64, 32), (4, 128, 64)]  # turns, new tokens per turn, observation tokens


class Fixed(Environment):
  """Answers every turn with the same observation; never ends the episode itself."""

  def __init__(self, obs: str):
    self.obs = obs

  def reset(self, example):
    return example.prompt

  def step(self, action):
    return StepResult(observation=self.obs)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--record", action="store_true")
  args = parser.parse_args()
  tok = load_task_tokenizer()
  config = CONFIG.replace(vocab_size=tok.vocab_size)  # the task tokenizer's ids
  graphdef, params = M.init_params(config, seed=0)
  rng = np.random.default_rng(0)
  rows = []
  print("| turns × new tokens | obs tokens | single-turn s | multi-turn s | single tok/s | "
        "multi tok/s | overhead per turn s |\n|---|---|---|---|---|---|---|")
  for turns, new, obs_len in SHAPES:
    prompt_ids = rng.integers(3, 400, (BATCH, PROMPT)).astype(np.int32)
    prompts = [tok.decode(p.tolist()) for p in prompt_ids]
    obs = "<obs>" + "y" * (obs_len - 12) + "</obs>"
    obs = tok.decode(tok.encode(obs)[:obs_len])
    buckets = Buckets(prompt_lengths=(PROMPT, 2 * PROMPT), batch_sizes=(BATCH,),
                      new_tokens=(new, turns * new))
    sp = SamplingParams(temperature=1.0, max_new_tokens=new)
    encoded = [tok.encode(p, add_bos=True)[:PROMPT] for p in prompts]
    single_prompts = np.stack([np.pad(e, (PROMPT - len(e), 0)) for e in encoded]).astype(np.int32)
    single_mask = np.stack([np.pad(np.ones(len(e), np.int32), (PROMPT - len(e), 0))
                            for e in encoded])

    def multi():
      out = run_episodes(graphdef, params, tok, [Fixed(obs) for _ in range(BATCH)],
                         [Example(prompt=p) for p in prompts], sp, jax.random.key(0),
                         max_turns=turns, max_obs_tokens=obs_len, buckets=buckets,
                         render=lambda ex, text: tok.encode(text, add_bos=True)[:PROMPT])
      return int(out["lengths"].sum())

    def single():
      r = sample(graphdef, params, single_prompts, single_mask,
                 SamplingParams(temperature=1.0, max_new_tokens=turns * new), jax.random.key(0),
                 buckets=buckets)
      return int(np.asarray(r.lengths).sum())

    multi(), single()  # compile
    times = {"single": [], "multi": []}
    counts = {}
    for _ in range(args.reps):
      for name, fn in (("single", single), ("multi", multi)):
        t0 = time.perf_counter()
        counts[name] = fn()
        times[name].append(time.perf_counter() - t0)
    s, m = (float(np.median(times[k])) for k in ("single", "multi"))
    line = (f"| {turns} × {new} | {obs_len} | {s:.2f} | {m:.2f} | {counts['single'] / s:,.0f} | "
            f"{counts['multi'] / m:,.0f} | {(m - s) / (turns - 1):.3f} |")
    print(line, flush=True)
    rows.append(common.stamp() + line)
  if args.record:
    common.append_rows(
        "## Multi-turn rollouts (benchmarks/multi_turn.py)",
        "| date | commit | machine | turns × new tokens | obs tokens | single-turn s | "
        "multi-turn s | single tok/s | multi tok/s | overhead per turn s |\n"
        "|---|---|---|---|---|---|---|---|---|---|", rows)


if __name__ == "__main__":
  main()
