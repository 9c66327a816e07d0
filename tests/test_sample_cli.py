"""``python -m rlx.sample``: prompts from the command line, a file or the held-out split, printed
with the completions of the workdir's checkpoint and their scores; writes nothing."""

import os
import subprocess
import sys

from rlx import config as rlx_config
from rlx import sample as rlx_sample
from rlx.data import Example, verify
from rlx.runtime.checkpoint import restore_params
from rlx.runtime.run import build, train
from tests.test_train_cli import ROOT, small_config

STEPS = 6


def sample_cli(workdir, *flags):
  cmd = [sys.executable, "-m", "rlx.sample", "--config", os.path.join(ROOT, "configs", "sft.py"),
         "--workdir", str(workdir), *[f"--config.{k}={v}" for k, v in OVERRIDES.items()], *flags]
  return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


OVERRIDES = {"model.d_model": 32, "model.n_layers": 1, "num_steps": STEPS}


def listing(path):
  return sorted((os.path.relpath(os.path.join(d, f), path), os.path.getmtime(os.path.join(d, f)))
                for d, _, fs in os.walk(path) for f in fs)


def test_sample_prints_the_checkpoints_completions_and_scores(tmp_path):
  cfg = small_config("sft", STEPS)
  train(cfg, str(tmp_path / "run"))
  before = listing(tmp_path / "run")
  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text('{"prompt": "Calculate 2 + 3.", "answer": "5"}\n'
                     '{"prompt": "Calculate 7 - 4."}\n')
  out = sample_cli(tmp_path / "run", "--prompt", "Calculate 3 * 3.", "--prompts_file",
                   str(prompts), "--greedy")
  assert out.returncode == 0, out.stderr
  # The same prompts through the library, from the same checkpoint: the same report.
  run = rlx_config.validate(cfg)
  setup = build(run, None)
  params = restore_params(str(tmp_path / "run" / "checkpoints"), setup.init_params)
  examples = ([Example(prompt="Calculate 3 * 3.", task=run.data.task)]
              + rlx_sample.read_prompts(str(prompts), run.data.task))
  results = rlx_sample.sample_and_score(setup, params, examples, samples=1, greedy=True,
                                        temperature=None, seed=0)
  assert out.stdout.strip() == rlx_sample.report(results).strip()
  assert "prompt: Calculate 2 + 3.\nanswer: 5\n--- completion 1 (" in out.stdout
  scores = [c["score"] for r in results for c in r["completions"]]
  assert scores[0] is None and scores[2] is None  # no reference answer: no score
  assert scores[1] == verify(run.data.task, results[1]["completions"][0]["text"], "5")
  # Held-out problems, several samples each: every completion scored by the task's verifier.
  out = sample_cli(tmp_path / "run", "--num", "2", "--samples", "3")
  assert out.returncode == 0, out.stderr
  assert out.stdout.count("=== 1/2 ===") == 1 and out.stdout.count("--- completion ") == 6
  assert out.stdout.count(", score ") == 6 and "=== mean score" in out.stdout
  assert listing(tmp_path / "run") == before  # nothing written


def test_sample_without_a_checkpoint_is_one_line(tmp_path):
  (tmp_path / "empty").mkdir()
  out = sample_cli(tmp_path / "empty")
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [
      f"rlx: --workdir={tmp_path / 'empty'}: no usable checkpoint in "
      f"{tmp_path / 'empty' / 'checkpoints'}"]
