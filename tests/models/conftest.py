"""Session fixtures: tiny random Hugging Face checkpoints."""

import pytest
from tests.models.hf_helpers import FAMILIES, make_checkpoint


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory):
  """{family: (directory, torch model)} for all four families, built once per session."""
  out = {}
  for family in FAMILIES:
    path = tmp_path_factory.mktemp(f"hf_{family}")
    out[family] = (path, make_checkpoint(family, path))
  return out
