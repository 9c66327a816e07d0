"""``python -m rlx.plan`` on 8 simulated devices (own process): the per-device memory it plans
from ``eval_shape`` arithmetic is what the AOT-compiled update reports for its arguments."""

import json
import math

import pytest

from tests.scale.helpers import ROOT, run_module

SMALL = ["--config", f"{ROOT}/configs/grpo.py", "--config.algo.batch_size=8",
         "--config.algo.group_size=4", "--config.data.max_prompt_len=8",
         "--config.sampling.max_new_tokens=8", "--config.mesh.fsdp=2", "--config.mesh.tensor=4",
         "--config.mesh.reference_dtype=bfloat16", "--devices=8", "--json"]


@pytest.fixture(scope="module")
def planned():
  proc = run_module("rlx.plan", *SMALL, devices=1, timeout=600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("PLAN_JSON ")]
  assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-4000:]
  return json.loads(lines[0][len("PLAN_JSON "):]), proc.stdout


def test_plan_matches_compiled_memory_within_10_percent(planned):
  p, text = planned
  assert p["mesh"] == {"data": 1, "fsdp": 2, "tensor": 4} and p["devices"] == 8
  assert abs(p["planned_vs_compiled_arguments"] - 1) < 0.10, p
  c = p["compiled"]
  assert c["alias"] > 0.9 * p["train_state"]  # the donated state is updated in place
  assert c["peak"] >= c["argument"]
  assert "arguments (state + batch)" in text and "peak of the update" in text


def test_plan_arithmetic(planned):
  p, _ = planned
  # 2×4 FSDP×TP: matrices with a model-width and a heads/MLP/vocab dim split 8 ways; the 2 kv
  # heads of configs/grpo.py do not split 4 ways and norm scales only over fsdp, so per device
  # a bit above 1/8 of the float32 parameters.
  full = 4 * p["params"]
  assert full / 8 <= p["policy_params"] < 1.25 * full / 8
  assert p["optimizer_state"] == pytest.approx(2 * p["policy_params"], abs=16)  # Adam μ, ν
  assert p["reference_params"] == pytest.approx(p["policy_params"] / 2, rel=0.01)  # bfloat16


# --- LoRA (docs/lora.md): planned in this process, arithmetic only, on replicated parameters
# (mesh data=-1, fsdp=1: the per-device bytes of a parameter tree are its whole size).


def _run(**lora):
  from rlx import config as rlx_config
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.dtype = "bfloat16"
  cfg.algo.beta = 0.04  # a reference model is kept
  cfg.mesh.data, cfg.mesh.fsdp = -1, 1
  cfg.lora.update(lora)
  return rlx_config.validate(cfg, check_paths=False)


def _projections(c):
  """``(kernel shape, contracting axes)`` of every projection of one layer, written out from
  the equations in ``rlx.models.layers`` (q, k, v, o, gate, up, down)."""
  d, h, k, e, f = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff
  return [((d, h, e), (0,)), ((d, k, e), (0,)), ((d, k, e), (0,)), ((h, e, d), (0, 1)),
          ((d, f), (0,)), ((d, f), (0,)), ((f, d), (0,))]


@pytest.fixture(scope="module")
def lora_plans():
  from rlx.plan import plan
  runs = {"full": _run(), "lora": _run(rank=4), "int8": _run(rank=4, quantize="int8"),
          "nf4": _run(rank=4, quantize="nf4", group_size=32)}
  return {k: plan(r, compile=False) for k, r in runs.items()}, runs


def test_lora_plan_trains_and_optimises_the_adapters_only(lora_plans):
  plans, runs = lora_plans
  c = runs["lora"].model.model_config()
  r = 4
  adapters = c.n_layers * sum(r * (math.prod(s[i] for i in ax) + math.prod(
      s[i] for i in range(len(s)) if i not in ax)) for s, ax in _projections(c))
  for name in ("lora", "int8", "nf4"):
    p = plans[name]
    assert p["trainable_params"] == adapters, name
    assert p["trained_params"] == 4 * adapters  # float32 A and B
    assert p["optimizer_state"] == pytest.approx(2 * 4 * adapters, abs=16)  # Adam μ, ν
    assert p["params"] == plans["full"]["params"]  # the architecture's count
  full = plans["full"]
  assert full["trainable_params"] == full["params"]
  assert full["optimizer_state"] == pytest.approx(2 * full["policy_params"], abs=16)


def test_lora_plan_keeps_no_reference_copy_of_the_base(lora_plans):
  plans, _ = lora_plans
  full = plans["full"]
  assert full["reference_params"] == full["policy_params"]
  for name in ("lora", "int8", "nf4"):
    p = plans[name]
    # The reference copies the adapters only (float32; mesh.reference_dtype unset) and shares
    # the frozen base with the train state.
    assert p["reference_params"] == p["trained_params"], name
    assert p["planned_total_persistent"] == (p["train_state"] + p["reference_params"]
                                             + p["batch"])
    # A checkpoint stores adapters, their optimizer state and the reference's adapters.
    assert p["checkpoint"] == pytest.approx(
        2 * p["trained_params"] + p["optimizer_state"], abs=32)


def test_quantised_base_bytes_per_projection_kernel(lora_plans):
  plans, runs = lora_plans
  c = runs["lora"].model.model_config()
  bf16 = int8 = nf4 = 0
  for shape, ax in _projections(c):
    n = math.prod(shape)
    bf16 += 2 * n
    int8 += n + 4 * n // math.prod(shape[i] for i in ax)  # 1 byte + a float32 per out channel
    nf4 += n // 2 + 4 * n // min(32, shape[ax[-1]])  # half a byte + a float32 per block
  base = plans["lora"]["policy_params"]
  assert plans["int8"]["policy_params"] == base - c.n_layers * (bf16 - int8)
  assert plans["nf4"]["policy_params"] == base - c.n_layers * (bf16 - nf4)
  assert 0.5 < int8 / bf16 < 0.55 and 0.25 < nf4 / bf16 < 0.33


def test_compare_lora_table(lora_plans):
  from rlx.plan import format_comparison, lora_comparison
  rows = lora_comparison(_run(group_size=32), compile=False)
  assert [n for n, _ in rows] == ["full", "LoRA", "LoRA int8", "LoRA nf4"]
  assert rows[1][1]["lora"]["rank"] == 16  # the default comparison rank
  totals = [p["planned_total_persistent"] for _, p in rows]
  assert totals == sorted(totals, reverse=True)
  assert rows[0][1]["policy_params"] == lora_plans[0]["full"]["policy_params"]
  text = format_comparison(rows)
  assert "optimizer state" in text and "persistent total vs full" in text
  header = text.splitlines()[2]
  assert all(n in header for n in ("full", "LoRA", "LoRA int8", "LoRA nf4")), text


def test_lora_plan_compiles_with_the_base_undonated():
  """NF4-base LoRA on 2×4 FSDP×TP: the planned arguments (quantised codes and scales sharded
  like their kernels) match the compiled ones; only the adapters' state is donated."""
  proc = run_module("rlx.plan", *SMALL, "--config.lora.rank=4", "--config.lora.quantize=nf4",
                    "--config.lora.group_size=16", devices=1, timeout=600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("PLAN_JSON ")]
  assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-4000:]
  p = json.loads(lines[0][len("PLAN_JSON "):])
  assert abs(p["planned_vs_compiled_arguments"] - 1) < 0.10, p
  c = p["compiled"]
  trained_state = p["trained_params"] + p["optimizer_state"]
  assert trained_state <= c["alias"] < trained_state + 64, p  # + step and RNG
  assert c["alias"] < p["train_state"] - 0.9 * (p["policy_params"] - p["trained_params"])
  assert p["reference_params"] == pytest.approx(p["trained_params"] / 2, rel=0.01)  # bfloat16
  assert "of which trained (adapters)" in proc.stdout and "LoRA rank 4" in proc.stdout
