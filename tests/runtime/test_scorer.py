"""The run's Scorer (model access for model-based rewards) equals direct computation with the
model; label-free rewards train from a config while evaluation judges with the task verifier;
stateful rewards (episodic memory) are checkpointed and a resumed run continues exactly."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import models
from rlx.algorithms.common import positions_from_mask
from rlx.data import load_task_tokenizer
from rlx.runtime.checkpoint import Checkpointer
from rlx.runtime.metrics import read_metrics
from rlx.runtime.run import train
from rlx.runtime.scorer import PolicyScorer
from tests.runtime.test_loop import tiny_rl_config


@pytest.mark.parametrize("family", ["llama", "gemma2"])  # gemma2: soft-capped logits path
def test_scorer_matches_a_direct_forward(family):
  config = models.get_config(f"tiny-{family}", vocab_size=512)
  graphdef, params = models.init_params(config, 0)
  tok = load_task_tokenizer()
  scorer = PolicyScorer(graphdef, config, tok, jax.tree.map(lambda x: x * 0.5, params))
  scorer.bind(params)
  rng = np.random.default_rng(0)
  prompts = [rng.integers(4, 512, n).astype(np.int32) for n in (3, 9, 0)]
  comp = rng.integers(4, 512, (3, 5)).astype(np.int32)
  mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], np.float32)
  lp = scorer.token_logprobs(prompts, comp, mask)
  stats = scorer.logits_stats(prompts, comp, mask)
  hid = scorer.last_hidden(prompts, comp, mask)
  lp_ref = scorer.token_logprobs(prompts, comp, mask, model="reference")
  for i in range(3):
    p = prompts[i] if len(prompts[i]) else np.array([scorer.context_id], np.int32)
    n = int(mask[i].sum())
    seq = jnp.asarray(np.concatenate([p, comp[i, :n]])[None])
    attn = jnp.ones(seq.shape, jnp.float32)
    h, _ = models.hidden_states(graphdef, params, seq, positions_from_mask(attn), attn)
    logits = models.lm_head(graphdef, params, h)[0, len(p) - 1:-1]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    np.testing.assert_allclose(lp[i, :n], logp[jnp.arange(n), comp[i, :n]], atol=2e-5)
    np.testing.assert_allclose(stats["self_certainty"][i, :n],
                               -np.log(512) - np.mean(logp, -1), atol=2e-4)
    np.testing.assert_allclose(stats["entropy"][i, :n],
                               -np.sum(np.exp(logp) * logp, -1), atol=2e-4)
    np.testing.assert_allclose(hid[i, :n], h[0, len(p):], atol=2e-5)
    assert np.all(lp[i, n:] == 0) and np.all(hid[i, n:] == 0)
  assert np.abs(lp_ref - lp).max() > 1e-3  # the reference parameters are used


def test_label_free_reward_trains_and_evaluation_uses_the_verifier(tmp_path):
  cfg = tiny_rl_config("grpo")
  cfg.rewards.name = "self_certainty"
  out = train(cfg, str(tmp_path))
  steps = [r for r in read_metrics(os.path.join(tmp_path, "metrics.jsonl"))
           if r.get("phase") == "rl"]
  assert all("loss/total" in r for r in steps)
  # Self-certainty rewards are positive real numbers; a verifier's are 0/1.
  assert any(0 < r["reward/correct"] and r["reward/correct"] != 1 for r in steps)
  assert set(out["evals"][0]) >= {"eval/greedy_accuracy", "eval/maj@2", "eval/pass@2"}


def test_stateful_reward_is_checkpointed_and_resume_is_exact(tmp_path):
  def config(num_steps):
    cfg = tiny_rl_config("grpo", num_steps=num_steps)
    cfg.rewards.name = "episodic_memory"
    cfg.rewards.kwargs = {"verifier": "math_answer", "min_entries": 8, "k": 2}
    cfg.checkpoint.every_steps = 1
    return cfg

  full = train(config(3), str(tmp_path / "full"))
  train(config(2), str(tmp_path / "resumed"))
  resumed = train(config(3), str(tmp_path / "resumed"))
  assert resumed["resumed_from"] == 2
  for a, b in zip(jax.tree.leaves(full["params"]), jax.tree.leaves(resumed["params"])):
    np.testing.assert_allclose(a, b, atol=1e-6)
  ckpt = Checkpointer(str(tmp_path / "full" / "checkpoints"))
  memory = ckpt.restore_host(3)["reward"]
  ckpt.close()
  assert len(memory["correct"]) == 3 * 8  # every sample of the 3 steps was written to memory
