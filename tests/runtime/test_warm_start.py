"""The cached warm start (rlx.runtime.warm_start): a second run with the same model and task loads
the first run's SFT parameters instead of training them, and trains exactly as if it had trained
them itself; anything that changes the warm start changes the key; a damaged entry is rebuilt."""

import os
import shutil

import jax
import numpy as np

from rlx import config as rlx_config
from rlx.runtime import warm_start
from rlx.runtime.checkpoint import StepVerifier
from rlx.runtime.metrics import read_metrics
from rlx.runtime.run import train
from tests.runtime.test_loop import tiny_rl_config

SFT_STEPS = 3


def config(cache_dir, **overrides):
  cfg = tiny_rl_config("grpo", num_steps=2)
  cfg.warm_start.sft_steps = SFT_STEPS
  cfg.warm_start.batch_size = 4
  cfg.warm_start.cache_dir = str(cache_dir)
  for k, v in overrides.items():
    *section, field = k.split("__")
    setattr(getattr(cfg, section[0]) if section else cfg, field, v)
  return cfg


def phases(workdir):
  return {r["phase"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
          if "phase" in r}


def test_second_run_loads_the_warm_start_and_trains_the_same(tmp_path, capsys):
  cache = tmp_path / "cache"
  first = train(config(cache, logging__stdout=True), str(tmp_path / "a"))
  entries = os.listdir(cache)
  assert len(entries) == 1 and entries[0].startswith(f"sft{SFT_STEPS}-")
  assert "sft" in phases(tmp_path / "a")
  capsys.readouterr()
  second = train(config(cache, logging__stdout=True), str(tmp_path / "b"))
  assert f"rlx: warm start ({SFT_STEPS} SFT steps) loaded from the cache" in capsys.readouterr().err
  assert "sft" not in phases(tmp_path / "b")  # no SFT step ran
  rl = [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if r.get("phase") == "rl"]
  assert rl == [SFT_STEPS + 1, SFT_STEPS + 2]  # the global step still counts the warm start
  # The same warm start, then the same RL steps: the same policy and held-out results.
  for x, y in zip(jax.tree.leaves(first["params"]), jax.tree.leaves(second["params"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert first["evals"] == second["evals"]


def test_key_follows_what_makes_the_warm_start(tmp_path):
  def entry(**overrides):
    return warm_start.cache_entry(rlx_config.validate(config(tmp_path, **overrides)))

  base = entry()
  assert base.startswith(str(tmp_path))
  # RL settings do not change the warm start: shared.
  assert entry(optim__learning_rate=3e-5) == base
  assert entry(num_steps=7) == entry(algo__beta=0.5) == base
  # The model, the task, the seed and the warm start's own settings do.
  changed = [entry(model__d_model=16), entry(data__difficulty=(1,)), entry(seed=1),
             entry(warm_start__learning_rate=3e-3), entry(warm_start__batch_size=8),
             entry(optim__weight_decay=0.1), entry(warm_start__num_examples=64),
             entry(checkpoint__init_from=str(tmp_path))]
  assert len({base, *changed}) == len(changed) + 1
  # An episode run's demonstrations are episodes with the environment's prompts: its own entry.
  tools = entry(env__name="tools")
  assert tools not in {base, *changed} and entry(env__name="tools", env__instructions="x") != tools
  # No cache: none configured, no warm start, or SFT is the run itself.
  assert warm_start.cache_entry(rlx_config.validate(config(""))) is None
  assert entry(warm_start__sft_steps=0) is None
  sft = config(tmp_path)
  rlx_config.apply_algorithm(sft, "sft")
  assert warm_start.cache_entry(rlx_config.validate(sft)) is None


def test_entry_is_complete_and_a_damaged_one_is_rebuilt(tmp_path):
  cache = tmp_path / "cache"
  train(config(cache), str(tmp_path / "a"))
  entry = warm_start.cache_entry(rlx_config.validate(config(cache)))
  # store() renames a finished copy into place; a second writer keeps the first entry.
  before = sorted(os.listdir(entry))
  warm_start.store(entry, str(tmp_path / "a" / "checkpoints"), SFT_STEPS)
  assert sorted(os.listdir(entry)) == before
  assert not [n for n in os.listdir(cache) if n.startswith(".tmp-")]
  step_dir = os.path.join(entry, str(SFT_STEPS))
  victim = max((os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs
                if f != "checksums.json"), key=os.path.getsize)
  with open(victim, "r+b") as f:
    f.seek(os.path.getsize(victim) // 2)
    f.write(b"\xff" * 16)
  train(config(cache), str(tmp_path / "b"))
  assert "sft" in phases(tmp_path / "b")  # trained again, not loaded from the damaged entry
  assert StepVerifier(entry).latest_step() == SFT_STEPS  # and cached again, intact
  shutil.rmtree(entry)
  assert warm_start.load(entry, None) is None  # a missing entry is a miss
