"""Shared settings of the studies: the small (2-CPU-core) base and paper-scale model configs."""

from __future__ import annotations

from rlx import config as rlx_config

# The small version of every study: the quickstart's task and model, a shared SFT warm start,
# then a short RL phase. One setting for all variants of all studies (nothing tuned per variant).
SFT_STEPS = 500  # SFT updates of the shared warm start (≈ 40% greedy held-out accuracy)
RL_STEPS = 80  # RL steps per run (8 prompts × 8 samples each)
EVAL_EVERY = 40  # held-out evaluation every 40 RL steps (and at the start and the end)


def small_base(algorithm: str = "grpo", *, kl: bool = False):
  """Synthetic ``calculation`` (difficulty 1-2), ~0.2M-parameter model, 500 SFT steps, then
  ``RL_STEPS`` steps of ``algorithm`` (its rlx preset) at lr 2e-4, 64 sequences per step,
  32-token completions. ``kl=False`` removes the preset's KL term (the reference would be the
  SFT model itself; the quickstart's choice)."""
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, algorithm)
  cfg.data.task = "calculation"
  cfg.data.difficulty = (1, 2)
  cfg.warm_start.sft_steps = SFT_STEPS
  cfg.warm_start.learning_rate = 1e-3
  cfg.warm_start.batch_size = 32
  cfg.num_steps = RL_STEPS
  cfg.algo.batch_size = 64
  if cfg.algo.group_size > 1:
    cfg.algo.group_size = 8
  if not kl:
    cfg.algo.kl_placement = "none"
    cfg.algo.beta = 0.0
  cfg.optim.learning_rate = 2e-4  # twice the quickstart's (its 2000 steps do not fit 80)
  cfg.sampling.temperature = 1.0
  cfg.sampling.max_new_tokens = 32
  cfg.eval.every_steps = EVAL_EVERY
  cfg.eval.num_examples = 128
  cfg.eval.num_samples = 4
  cfg.checkpoint.every_steps = EVAL_EVERY
  return cfg


def qwen25_32b(cfg):
  """Qwen2.5-32B's architecture (DAPO's base model) as a custom model (rlx has no preset)."""
  m = cfg.model
  m.preset = "custom"
  m.family = "qwen2"
  m.vocab_size = 152_064
  m.d_model = 5120
  m.n_layers = 64
  m.n_heads = 40
  m.n_kv_heads = 8
  m.head_dim = 128
  m.d_ff = 27_648
  m.tie_embeddings = False
  m.qkv_bias = True
  m.rope_theta = 1_000_000.0
  m.norm_eps = 1e-5
  m.dtype = "bfloat16"
  return cfg


def hf_paths(cfg, model: str, data: str):
  """Local model and data paths of a paper-scale config (placeholders; override them)."""
  cfg.model.path = model
  cfg.data.source = "jsonl"
  cfg.data.path = data
  cfg.data.tokenizer = model
  cfg.data.prompt_format = "chat"
  return cfg


def load_config(name: str):
  """``configs/<name>.py``'s ``get_config()`` (the paper recipes the studies start from)."""
  import importlib.util
  import os
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"_rlx_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


# Metrics most studies tabulate.
def standard_metrics(k: int = 4):
  from experiments.runner import Metric
  return [
      Metric("eval/greedy_accuracy", "greedy acc before", "initial"),
      Metric("eval/greedy_accuracy", "greedy acc after", "final"),
      Metric("eval/pass@1", "pass@1 after", "final"),
      Metric(f"eval/pass@{k}", f"pass@{k} after", "final"),
      Metric("eval/pass@1", "Δ pass@1", "delta"),
      Metric("eval/mean_length", "length after", "final", ".1f"),
  ]


def standard_curves():
  from experiments.runner import Curve
  return [
      Curve("reward/mean", "train reward", smooth=10),
      Curve("eval/greedy_accuracy", "held-out greedy accuracy"),
      Curve("eval/pass@1", "held-out pass@1 (4 samples, T=1)"),
      Curve("rollout/length", "completion length (train)", smooth=10),
      Curve("entropy", "entropy", smooth=10),
  ]
