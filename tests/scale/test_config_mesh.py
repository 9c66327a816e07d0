"""The config's ``mesh`` section: validation errors name the field; mesh shapes; rule tables."""

import jax
import pytest
from jax.sharding import PartitionSpec as P

from rlx import config as rlx_config
from rlx.runtime import mesh as mesh_lib


def _cfg(**mesh):
  cfg = rlx_config.default_config()
  for k, v in mesh.items():
    setattr(cfg.mesh, k, v)
  return cfg


def test_defaults_validate_and_one_device_has_no_layout():
  run = rlx_config.validate(_cfg())
  assert (run.mesh.data, run.mesh.fsdp, run.mesh.tensor) == (1, -1, 1)
  assert mesh_lib.layout_from_config(run.mesh) is None  # the test process has one device


@pytest.mark.parametrize("field,value,message", [
    ("fsdp", 0, "config.mesh.fsdp=0"),
    ("data", -1, "only one axis may be -1"),
    ("rules", "zero3", "config.mesh.rules='zero3'"),
    ("sampling_rules", "x", "config.mesh.sampling_rules='x'"),
    ("remat", "some", "config.mesh.remat='some'"),
    ("param_dtype", "float16", "config.mesh.param_dtype='float16'"),
    ("distributed", "yes", "config.mesh.distributed='yes'"),
    ("process_id", -2, "config.mesh.process_id=-2"),
])
def test_errors_name_the_field(field, value, message):
  with pytest.raises(rlx_config.ConfigError, match=message.replace("(", r"\(")):
    rlx_config.validate(_cfg(**{field: value}))


def test_batch_must_split_over_data_and_fsdp():
  with pytest.raises(rlx_config.ConfigError, match="config.algo.batch_size=32: must be a "
                     "multiple of mesh.data × mesh.fsdp = 6"):
    rlx_config.validate(_cfg(data=2, fsdp=3))


def test_resolve_shape():
  assert mesh_lib.resolve_shape(1, -1, 1, 8) == (1, 8, 1)
  assert mesh_lib.resolve_shape(2, -1, 2, 8) == (2, 2, 2)
  with pytest.raises(ValueError, match="do not divide"):
    mesh_lib.resolve_shape(1, -1, 3, 8)
  with pytest.raises(ValueError, match="6 devices but 8"):
    mesh_lib.resolve_shape(1, 2, 3, 8)


def test_rule_tables_map_logical_axes():
  mesh = mesh_lib.make_mesh(1, 1, 1, jax.devices()[:1])
  # On a real 2×4 mesh the tables give these specs (checked here with the spec arithmetic).
  fake = jax.sharding.AbstractMesh((1, 2, 4), mesh_lib.AXES)
  spec = lambda rules, axes, shape: mesh_lib.msharding.logical_to_spec(
      axes, shape, fake, mesh_lib.RULES[rules])
  assert spec("fsdp_tp", ("embed", "mlp"), (64, 128)) == P("fsdp", "tensor")
  assert spec("fsdp", ("embed", "mlp"), (64, 128)) == P("fsdp", None)
  assert spec("tp", ("embed", "mlp"), (64, 128)) == P(None, "tensor")
  assert spec("replicated", ("embed", "mlp"), (64, 128)) == P(None, None)
  assert spec("fsdp_tp", ("batch", "seq", "act_embed"), (8, 16, 64)) == P(("data", "fsdp"), None, None)
  assert mesh.size == 1
