"""TFDS builder for a synthetic task: prepare as array_record, read back via tfds.data_source,
without TensorFlow."""

import importlib.util
import sys

import pytest

from rlx.data import TfdsSource, generate_example, verify


def test_tensorflow_is_not_installed():
  assert importlib.util.find_spec("tensorflow") is None
  with pytest.raises(ImportError):
    import tensorflow  # noqa: F401


def test_builder_prepares_and_reads_back_without_tensorflow(tmp_path):
  import tensorflow_datasets as tfds
  from rlx.data.tfds_builders import SyntheticTaskConfig, prepare_task_dataset

  config = SyntheticTaskConfig(name="arith_test", task="arithmetic", difficulties=(2, 3),
                               num_train=24, num_test=6, seed=9)
  path = prepare_task_dataset(config, tmp_path)
  assert any(".array_record" in p.name for p in __import__("pathlib").Path(path).iterdir())

  train = TfdsSource("rlx_synthetic_tasks/arith_test", split="train", data_dir=str(tmp_path))
  test = TfdsSource("rlx_synthetic_tasks/arith_test", split="test", data_dir=str(tmp_path))
  assert (len(train), len(test)) == (24, 6)
  got = {ex.pair_id: ex for ex in list(train) + list(test)}
  # Every stored example equals a fresh generation; train and test are disjoint stream ranges.
  expected = {f"arithmetic/9/{i}": generate_example("arithmetic", 9, i, (2, 3)) for i in range(30)}
  assert got == expected
  assert all(verify(ex.task, ex.solution, ex.answer) == 1.0 for ex in got.values())

  # The raw data source works too (bytes for text features).
  raw = tfds.data_source("rlx_synthetic_tasks/arith_test", split="test", data_dir=str(tmp_path))
  assert isinstance(raw[0]["prompt"], bytes)
  assert "tensorflow" not in sys.modules
