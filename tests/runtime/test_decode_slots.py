"""``sampling.decode_slots``: the RL rollouts of a run are continuously batched, the same for
any slot count (the sampler-level properties are in tests/sampling)."""

import jax
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx.runtime import rollouts
from rlx.runtime.run import build
from tests.runtime.test_loop import tiny_rl_config


def test_decode_slots_rollouts_do_not_depend_on_the_slot_count(tmp_path, monkeypatch):
  cfg = tiny_rl_config("grpo")
  seen, sample = [], rollouts.sample
  monkeypatch.setattr(rollouts, "sample", lambda *a, **kw: seen.append(kw["decode_slots"])
                      or sample(*a, **kw))
  data = {}
  for slots in (0, 4, 8):
    cfg.sampling.decode_slots = slots
    setup = build(cfg, str(tmp_path / str(slots)))
    examples = [setup.train_source[i] for i in range(3)]
    data[slots] = rollouts.sample_groups(setup, setup.init_params, examples,
                                         jax.random.PRNGKey(3), n=4)
    setup.checkpointer.close()
  assert seen == [0, 4, 8]
  for k in data[0]:
    np.testing.assert_allclose(data[8][k], data[4][k], atol=1e-5, err_msg=k)
    assert data[0][k].shape == data[4][k].shape, k  # the static batch: same layout


def test_negative_decode_slots_is_a_config_error():
  cfg = tiny_rl_config("grpo")
  cfg.sampling.decode_slots = -1
  with pytest.raises(ValueError, match="sampling.decode_slots"):
    rlx_config.validate(cfg)
