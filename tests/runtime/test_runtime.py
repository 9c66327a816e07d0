"""Train state, optimizer schedule, checkpoint round trip, metrics one step late."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx import models
from rlx.runtime import (Checkpointer, MetricsWriter, from_json, init_train_state,
                         make_optimizer, read_metrics, restore_params, to_json, unit_schedule)
from rlx.optim import apply_updates

CONFIG = models.ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                            head_dim=16, d_ff=64)


def optim(**kw):
  run = rlx_config.validate(rlx_config.default_config())
  return dataclasses.replace(run.optim, **kw)


@pytest.mark.parametrize("schedule", list(rlx_config.Schedule))
def test_schedule_warmup_then_decay(schedule):
  s = unit_schedule(optim(schedule=schedule, warmup_steps=4, end_lr_factor=0.1), total_steps=20)
  values = np.array([float(s(i)) for i in range(21)])
  np.testing.assert_allclose(values[:4], [0.25, 0.5, 0.75, 1.0], rtol=1e-6)
  assert values[0] > 0  # the first update is not a no-op
  if schedule is rlx_config.Schedule.CONSTANT:
    np.testing.assert_allclose(values[4:], 1.0)
  else:
    assert values[-1] == pytest.approx(0.1, rel=1e-5) and np.all(np.diff(values[3:]) <= 1e-7)


def test_learning_rate_is_traced_and_adamw_matches_optax():
  opt = make_optimizer(optim(learning_rate=1e-2, max_grad_norm=0.0, weight_decay=0.1), 10)
  params = {"w": jnp.arange(4.0)}
  grads = {"w": jnp.array([0.1, -0.2, 0.3, 0.0])}
  state = opt.tx.init(params)
  step = jax.jit(lambda p, s, g, lr: apply_updates(opt, p, s, g, jnp.int32(0), lr))
  new, _, metrics = step(params, state, grads, 1e-2)
  ref_tx = __import__("optax").adamw(1e-2, weight_decay=0.1)
  upd, _ = ref_tx.update(grads, ref_tx.init(params), params)
  np.testing.assert_allclose(new["w"], params["w"] + upd["w"], rtol=1e-6)
  step(params, state, grads, 3e-2)
  assert step._cache_size() == 1
  assert float(metrics["lr"]) == pytest.approx(1e-2)


def test_train_state_has_no_optimizer_state_for_reference():
  graphdef, params = models.init_params(CONFIG, 0)
  opt = make_optimizer(optim(), 10)
  state = init_train_state(opt, params, seed=3)
  assert state.value_params is None and state.value_opt_state is None
  assert state.rng.dtype == jnp.uint32 and int(state.step) == 0


def test_checkpoint_round_trip_with_host_state(tmp_path):
  graphdef, params = models.init_params(CONFIG, 0)
  opt = make_optimizer(optim(), 10)
  state = init_train_state(opt, params, seed=3)
  state = state.replace(step=jnp.int32(7), rng=jax.random.split(state.rng)[0])
  host = {"phase": "rl", "phase_step": 7,
          "data": {"seed": np.asarray(1, np.int64), "epoch": np.asarray(2, np.int64),
                   "cursor": np.asarray(33, np.int64)},
          "filter": {"ema": np.asarray(0.25, np.float64), "count": np.asarray(4, np.int64)},
          "kl_beta": np.asarray(0.05, np.float32)}
  ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=2)
  for s in (5, 6, 7):
    ckpt.save(s, {"train": state, "ref": params}, host)
  ckpt.wait()
  assert ckpt.latest_step() == 7
  assert sorted(ckpt.manager.all_steps()) == [6, 7]  # keep the last K
  fresh = init_train_state(opt, models.init_params(CONFIG, 1)[1], seed=0)
  restored, got = ckpt.restore(None, {"train": fresh, "ref": params})
  ckpt.close()
  for a, b in zip(jax.tree.leaves(restored["train"]), jax.tree.leaves(state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert got["phase"] == "rl" and got["data"]["cursor"] == 33
  assert got["filter"]["ema"].dtype == np.float64 and got["kl_beta"] == np.float32(0.05)
  # Params-only restore (checkpoint.init_from), matched by path.
  loaded = restore_params(str(tmp_path / "ckpt"), models.init_params(CONFIG, 5)[1])
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_json_host_state_round_trip():
  tree = {"a": np.arange(3, dtype=np.int16), "b": [np.float32(1.5), "x"], "c": {"d": 2}}
  back = from_json(json.loads(json.dumps(to_json(tree))))
  assert back["a"].dtype == np.int16 and back["b"][0] == np.float32(1.5) and back["c"]["d"] == 2


def test_metrics_are_written_one_step_late(tmp_path):
  w = MetricsWriter(str(tmp_path), stdout=False)
  w.push(1, {"loss": jnp.float32(1.0)})
  assert not (tmp_path / "metrics.jsonl").exists()  # step 1 is still pending
  w.push(2, {"loss": jnp.float32(0.5)}, {"phase": "sft"})
  assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1]
  w.flush()
  records = read_metrics(tmp_path / "metrics.jsonl")
  assert [r["loss"] for r in records] == [1.0, 0.5] and records[1]["phase"] == "sft"


def test_progress_line_shows_step_percent_eta_and_key_metrics(tmp_path, capsys):
  from rlx.runtime.metrics import read_metrics

  writer = MetricsWriter(str(tmp_path), stdout=True)
  writer.total_steps = 200
  for step in range(1, 201):
    writer.push(step, {"reward/mean": np.float32(step / 200), "grad_norm": np.float32(1.0)})
  writer.flush()
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("[")]
  assert len(lines) == 100  # about every 1% of the run, not every record
  assert lines[-1].startswith("[200/200 100%]") and "ETA" in lines[-1]
  assert "reward/mean=1" in lines[-1] and "grad_norm" not in lines[-1]
  assert len(read_metrics(tmp_path / "metrics.jsonl")) == 200  # the file keeps every record
