"""LoRA checkpoints hold adapters only: a resume over another base is refused; a LoRA SFT run
hands its adapters to a LoRA RL run (``checkpoint.init_from``); a LoRA reward model loads as a
reward with its base rebuilt."""

import jax
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx.models import lora
from rlx.runtime.run import build, train
from rlx.runtime.scorer import load_reward_model
from tests.runtime.test_lora_runs import config as lora_config
from tests.test_train_cli import small_config


def _cfg(rank=4, quantize=""):
  cfg = small_config("sft")
  cfg.num_steps = 1
  cfg.lora.rank = rank
  cfg.lora.quantize = quantize
  cfg.lora.group_size = 16
  return cfg


def test_resume_over_another_base_is_refused(tmp_path):
  train(_cfg(), str(tmp_path))
  with pytest.raises(rlx_config.ConfigError, match=r"config\.lora: the checkpoints .* frozen base "
                     r"was random init .*lora\.quantize=''.* this config builds .*'int8'"):
    train(_cfg(quantize="int8"), str(tmp_path))
  with pytest.raises(rlx_config.ConfigError, match="this config builds full fine-tuning"):
    train(_cfg(rank=0), str(tmp_path))
  assert train(_cfg(), str(tmp_path))["resumed_from"] == 1  # the same base resumes


def test_init_from_a_lora_run_continues_its_adapters(tmp_path):
  sft = train(_cfg(), str(tmp_path / "sft"))
  cfg = _cfg()
  cfg.checkpoint.init_from = str(tmp_path / "sft" / "checkpoints")
  setup = build(cfg, str(tmp_path / "next"))
  got, want = lora.partition(setup.init_params), lora.partition(sft["params"])
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):  # adapters and base
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert setup.lora_base == setup.lora_base.split(", checkpoint.init_from")[0]  # base unchanged
  setup.checkpointer.close()
  full = _cfg(rank=0)
  full.checkpoint.init_from = cfg.checkpoint.init_from
  with pytest.raises(rlx_config.ConfigError, match="holds LoRA adapters only"):
    build(full, str(tmp_path / "full"))
  other = _cfg(quantize="int8")
  other.checkpoint.init_from = cfg.checkpoint.init_from
  with pytest.raises(rlx_config.ConfigError, match="its adapters were trained over"):
    build(other, str(tmp_path / "other"))


def test_lora_reward_model_loads_as_a_reward(tmp_path, monkeypatch):
  from rlx.runtime import rollouts
  monkeypatch.setattr(rollouts, "evaluate", lambda *a, **k: {})
  cfg = lora_config("rm", num_steps=2)
  summary = train(cfg, str(tmp_path))
  scorer = load_reward_model(str(tmp_path))
  trained = jax.tree.leaves(summary["params"])
  loaded = jax.tree.leaves(scorer.params)
  assert len(trained) == len(loaded)
  for a, b in zip(trained, loaded):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
