"""RL from a JSONL file named in the config: column mapping, a held-out tail never trained on, a
separate eval file, and field-named errors."""

import json
import os

import pytest

from rlx import config as rlx_config
from rlx.data import TaskSource
from rlx.runtime.run import _sources, train
from tests.runtime.test_loop import tiny_rl_config


def write_jsonl(path, n, seed=0):
  src = TaskSource("calculation", size=n, seed=seed, difficulty=1)
  with open(path, "w") as f:
    for i in range(n):
      ex = src[i]
      f.write(json.dumps({"question": ex.prompt, "final": f"#### {ex.answer}", "id": i}) + "\n")
  return [src[i] for i in range(n)]


def file_config(path):
  cfg = tiny_rl_config("grpo")
  cfg.data.source = "jsonl"
  cfg.data.path = str(path)
  cfg.data.prompt_key = "question"
  cfg.data.answer_key = "final"
  cfg.data.answer_fn = "gsm8k"
  cfg.data.eval_size = 4
  cfg.rewards.name = "math_answer"
  return cfg


def test_column_mapping_and_held_out_tail(tmp_path):
  examples = write_jsonl(tmp_path / "d.jsonl", 20)
  run = rlx_config.validate(file_config(tmp_path / "d.jsonl"))
  train_src, eval_src = _sources(run)
  assert len(train_src) == 16 and len(eval_src) == 4
  assert [e.prompt for e in eval_src] == [e.prompt for e in examples[16:]]
  assert eval_src[0].answer == examples[16].answer  # "#### x" → "x"
  with pytest.raises(IndexError):
    train_src[16]
  out = train(file_config(tmp_path / "d.jsonl"), str(tmp_path / "run"))
  assert "eval/greedy_accuracy" in out["evals"][-1]


def test_separate_eval_file_and_errors(tmp_path):
  write_jsonl(tmp_path / "train.jsonl", 8)
  write_jsonl(tmp_path / "eval.jsonl", 3, seed=1)
  cfg = file_config(tmp_path / "train.jsonl")
  cfg.data.eval_path = str(tmp_path / "eval.jsonl")
  train_src, eval_src = _sources(rlx_config.validate(cfg))
  assert len(train_src) == 8 and len(eval_src) == 3
  cfg.data.eval_path = str(tmp_path / "missing.jsonl")
  with pytest.raises(rlx_config.ConfigError, match="data.eval_path"):
    rlx_config.validate(cfg)
  cfg = file_config(tmp_path / "train.jsonl")
  cfg.rewards.name = "task"
  with pytest.raises(rlx_config.ConfigError, match="rewards.name.*math_answer"):
    rlx_config.validate(cfg)
  cfg = file_config(tmp_path / "train.jsonl")
  cfg.data.answer_fn = "latex"
  with pytest.raises(rlx_config.ConfigError, match="data.answer_fn.*gsm8k"):
    rlx_config.validate(cfg)
