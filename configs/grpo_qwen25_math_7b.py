"""GRPO (Shao et al., 2024, DeepSeekMath, arXiv:2402.03300 §4.2) on a local Qwen2.5-Math-7B.

Run: python -m rlx.train --config configs/grpo_qwen25_math_7b.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-Math-7B --config.data.path=/path/to/math_train.jsonl
DeepSeekMath's RL stage: policy lr 1e-6, KL coefficient 0.04, 64 samples per question, max length
1024, batch size 1024, one policy update per exploration stage. The paper trains
DeepSeekMath-Instruct 7B; here the same hyper-parameters drive Qwen2.5-Math-7B (4096-token context).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.preset = "qwen2.5-math-7b"  # architecture (the weights come from model.path)
  cfg.model.path = "/path/to/Qwen2.5-Math-7B"  # local Hugging Face directory (override it)
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "jsonl"  # MATH train split as JSONL (question / answer columns)
  cfg.data.path = "/path/to/math_train.jsonl"  # override it
  cfg.data.tokenizer = "/path/to/Qwen2.5-Math-7B"  # the model's tokenizer.json
  cfg.data.prompt_format = "chat"  # the model's chat template
  cfg.data.max_prompt_len = 512  # prompt tokens
  cfg.rewards.name = "math_answer"  # rule-based answer check (docs/algorithms.md §8)
  cfg.num_steps = 1000  # RL steps
  cfg.algo.batch_size = 1024  # sequences per step (paper: batch size 1024)
  cfg.algo.group_size = 64  # paper: 64 outputs per question -> 16 questions per step
  cfg.algo.epochs = 1  # paper: a single update per exploration stage
  cfg.algo.minibatches = 1  # one optimizer update per step
  cfg.algo.micro_batch_size = 16  # gradient accumulation (exact; memory only)
  cfg.algo.beta = 0.04  # paper: KL coefficient 0.04
  cfg.algo.kl_estimator = "k3"  # paper: the unbiased estimator of Schulman (2020)
  cfg.algo.eps_low = 0.2  # PPO clip ε
  cfg.algo.eps_high = 0.2
  cfg.optim.learning_rate = 1e-6  # paper: policy learning rate 1e-6
  cfg.optim.max_grad_norm = 1.0  # gradient clipping
  cfg.sampling.max_new_tokens = 1024  # paper: max length 1024
  cfg.sampling.temperature = 1.0  # sample at the policy's distribution
  cfg.checkpoint.every_steps = 50  # save every 50 steps
  cfg.eval.every_steps = 50  # evaluate every 50 steps
  return cfg
