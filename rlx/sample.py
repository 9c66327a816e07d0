r"""Look at what a run's policy writes.

    python -m rlx.sample --config configs/NAME.py --workdir DIR [--prompt TEXT ...]
        [--prompts_file FILE] [--num N] [--samples K] [--greedy] [--temperature T] [--step S]

Loads the latest checkpoint of ``DIR`` (or step ``S``) and generates for each ``--prompt`` (the
flag repeats), for each prompt of ``--prompts_file`` (plain text: one prompt a line; ``.jsonl``:
records with ``prompt`` and, optionally, ``answer``), or, with neither, for the first ``--num``
problems of the run's held-out split. For every prompt it prints the prompt, its reference
answer where there is one, and each completion with its length, why it stopped and, where a
reference answer exists, the score the run's evaluation gives it (``eval.reward``). Sampling
follows the config (``sampling.*``); ``--greedy`` decodes greedily, ``--temperature`` overrides
the temperature. Nothing is written. Configuration errors print one line and exit with status 2
(``rlx.cli``).
"""

from __future__ import annotations

import json
import os

from absl import flags
from ml_collections import config_flags

from rlx import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The run's config file (model, tokenizer, prompt format, sampling).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (holds checkpoints/).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "A prompt (repeat the flag for several).")
_FILE = flags.DEFINE_string("prompts_file", None,
                            "Prompts: a text file (one a line) or JSONL (prompt[, answer]).")
_NUM = flags.DEFINE_integer("num", 4, "Held-out problems to sample when no prompt is given.")
_SAMPLES = flags.DEFINE_integer("samples", 1, "Completions per prompt.")
_GREEDY = flags.DEFINE_boolean("greedy", False, "Greedy decoding instead of sampling.")
_TEMPERATURE = flags.DEFINE_float("temperature", None,
                                  "Sampling temperature (default: the config's).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.mark_flags_as_required(["config", "workdir"])


def read_prompts(path: str, task: str) -> list:
  """Examples from a prompts file: ``.jsonl`` records (``prompt``, optional ``answer``) or one
  prompt per non-blank line of text."""
  from rlx.data import Example
  if not os.path.isfile(path):
    raise cli.Error(f"--prompts_file={path}: no such file")
  examples = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      if path.endswith(".jsonl"):
        try:
          record = json.loads(line)
          prompt = record["prompt"]
        except (ValueError, KeyError, TypeError) as e:
          raise cli.Error(f"--prompts_file={path}:{lineno}: expected a JSON object with a "
                          f"'prompt' field ({e})") from e
        examples.append(Example(prompt=str(prompt), answer=str(record.get("answer") or ""),
                                task=task, pair_id=f"{path}:{lineno}"))
      else:
        examples.append(Example(prompt=line.rstrip("\n"), task=task, pair_id=f"{path}:{lineno}"))
  return examples


def sample_and_score(setup, params, examples, *, samples: int, greedy: bool,
                     temperature: float | None, seed: int,
                     scorable: list[bool] | None = None) -> list[dict]:
  """Per example: ``{"example", "completions": [{"text", "length", "finish", "score"}]}``.
  ``score`` is the evaluation reward's, for the examples ``scorable`` marks (default: those with
  a reference answer); None for the others and where nothing can judge (a model-based reward,
  or a file source whose reward is the synthetic task's verifier)."""
  import jax
  import numpy as np

  from rlx.runtime import rollouts
  from rlx.sampling import LENGTH
  data = rollouts.sample_groups(setup, params, examples, jax.random.PRNGKey(seed),
                                n=1 if greedy else samples, greedy=greedy,
                                temperature=temperature)
  n = 1 if greedy else samples
  texts = rollouts.decode(setup.tokenizer, data["completion_tokens"], data["lengths"])
  scores = [None] * len(texts)
  name = rollouts.eval_reward_name(setup.run)
  if scorable is None:
    scorable = [bool(ex.answer) for ex in examples]
  rows = [r for r in range(len(texts)) if scorable[r // n]]
  if rows and name is not None and name not in rollouts.SCORER_REWARDS:
    reward_fn = rollouts.eval_reward_fn(setup.run, decode=setup.tokenizer.decode)
    picked = {k: np.asarray(v)[rows] for k, v in data.items()}
    got = reward_fn([examples[r // n] for r in rows], [texts[r] for r in rows], picked, 0,
                    shaped=False).scores
    for r, s in zip(rows, got):
      scores[r] = float(s)
  return [{"example": ex, "completions": [
      {"text": texts[i * n + j], "length": int(data["lengths"][i * n + j]),
       "finish": "length" if data["finish_reason"][i * n + j] == LENGTH else "stop",
       "score": scores[i * n + j]} for j in range(n)]} for i, ex in enumerate(examples)]


def report(results: list[dict]) -> str:
  lines, scored = [], []
  for i, r in enumerate(results, 1):
    ex = r["example"]
    lines.append(f"=== {i}/{len(results)} ===")
    lines.append(f"prompt: {ex.prompt}")
    if ex.answer:
      lines.append(f"answer: {ex.answer}")
    for j, c in enumerate(r["completions"], 1):
      score = "" if c["score"] is None else f", score {c['score']:g}"
      lines.append(f"--- completion {j} ({c['length']} tokens, {c['finish']}{score}) ---")
      lines.append(c["text"])
      if c["score"] is not None:
        scored.append(c["score"])
  if scored:
    lines.append(f"=== mean score {sum(scored) / len(scored):.3f} over {len(scored)} "
                 f"completions ===")
  return "\n".join(lines)


def main(argv):
  del argv  # rlx.cli.run refuses positional arguments
  workdir, step = _WORKDIR.value, _STEP.value
  if _SAMPLES.value < 1:
    raise cli.Error(f"--samples={_SAMPLES.value}: must be >= 1")
  checkpoints = cli.usable_checkpoints(workdir, step)
  from rlx import config as rlx_config
  from rlx.data import Example
  from rlx.runtime.checkpoint import restore_params
  from rlx.runtime.run import build
  run = rlx_config.validate(_CONFIG.value)
  task = run.data.task if run.data.source == "task" else ""
  examples = [Example(prompt=p, task=task, pair_id=f"--prompt {i}")
              for i, p in enumerate(_PROMPT.value)]
  if _FILE.value:
    examples += read_prompts(_FILE.value, task)
  setup = build(run, None)  # writes nothing
  # A prompt of yours is scored when it brings a reference answer and the run's verifier needs
  # nothing more (reasoning-gym entries and code tests come only with held-out problems).
  scorable = [bool(ex.answer) and run.data.source not in rlx_config.SOURCE_REWARDS
              for ex in examples]
  if not examples:
    if _NUM.value < 1:
      raise cli.Error(f"--num={_NUM.value}: must be >= 1 (or give --prompt / --prompts_file)")
    examples = [setup.eval_source[i] for i in range(min(_NUM.value, len(setup.eval_source)))]
    scorable = [True] * len(examples)
  params = restore_params(checkpoints, setup.init_params, step=step)
  results = sample_and_score(setup, params, examples, samples=_SAMPLES.value,
                             greedy=_GREEDY.value, temperature=_TEMPERATURE.value,
                             seed=_SEED.value, scorable=scorable)
  print(report(results), flush=True)


if __name__ == "__main__":
  cli.run(main)
