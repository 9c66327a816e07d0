"""On 8 simulated CPU devices (own process, ``mesh_checks.py``): the GRPO update with FSDP, TP and
FSDP×TP equals the single-device update; per-device parameter and optimizer memory shrink by the
sharded factor; a checkpoint saved on one mesh restores on another and training continues with
the single-device losses; the sampler with sharded parameters gives the one-device tokens."""

import pytest

from tests.scale.helpers import results, run_module


@pytest.fixture(scope="module")
def checks():
  return results(run_module("tests.scale.mesh_checks", devices=8))


@pytest.mark.parametrize("mesh", ["fsdp", "tp", "fsdp_tp"])
def test_sharded_update_equals_single_device(checks, mesh):
  r = checks[mesh]
  assert r["param_diff"] < 1e-5, r
  assert r["loss_diff"] < 1e-5, r
  assert r["out_param_sharded"], r  # the output state stays in its layout (out_shardings)


def test_parameter_memory_shrinks_by_the_sharded_factor(checks):
  # 8-way FSDP: every parameter has a model-width dim → exactly 1/8 per device.
  assert checks["fsdp"]["param_shrink"] == pytest.approx(8.0)
  assert checks["fsdp"]["opt_shrink"] == pytest.approx(8.0, rel=1e-3)  # + Adam's count scalar
  # 4-way TP: everything but the RMSNorm scales (replicated) shrinks 4x.
  assert 3.9 < checks["tp"]["param_shrink"] <= 4.0
  # 2×4 FSDP×TP: matrices 8x, norm scales 2x.
  assert 7.8 < checks["fsdp_tp"]["param_shrink"] <= 8.0
  assert checks["fsdp_tp"]["kernel_spec"] == "P('fsdp', 'tensor')"
  for mesh in ("fsdp", "tp", "fsdp_tp"):  # the planner's arithmetic is what the devices hold
    assert checks[mesh]["planned_param_bytes"] == checks[mesh]["param_bytes"]


def test_restore_on_another_mesh_continues_like_unsharded(checks):
  r = checks["restore"]
  assert r["step"] == 2 and r["host"] == "fsdp"
  assert r["restored_spec"] == "P('fsdp', 'tensor')"  # saved 8-way FSDP, now 2×4
  assert r["restored_diff"] < 1e-5
  assert r["loss_diff"] < 1e-5, r
  assert r["param_diff"] < 1e-5, r


def test_sampler_with_sharded_params_matches_one_device(checks):
  r = checks["sampler"]
  assert r["params_sharded"] and r["devices"] == 8
  assert r["tokens_equal"], r
  assert r["logprob_diff"] < 1e-5, r
