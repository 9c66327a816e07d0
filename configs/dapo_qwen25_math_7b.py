"""DAPO (Yu et al., 2025, arXiv:2503.14476 §4.1) on a local Qwen2.5-Math-7B.

Run: python -m rlx.train --config configs/dapo_qwen25_math_7b.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-Math-7B --config.data.path=/path/to/dapo_math.jsonl
Paper (Qwen2.5-32B): AdamW, lr 1e-6 with a 20-step linear warm-up, 512 prompts × 16 responses per
step, mini-batches of 512 responses (16 updates per step), clip-higher ε_low 0.2 / ε_high 0.28,
token-level loss, no KL term, dynamic sampling, soft overlong punishment with a 4096-token buffer
on a 20480-token budget, temperature 1.0, top-p 1.0. Qwen2.5-Math-7B has a 4096-token context, so
the generation budget is 3072 tokens with the buffer scaled to 512 (our adaptation).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "dapo")
  cfg.model.preset = "qwen2.5-math-7b"  # architecture (the weights come from model.path)
  cfg.model.path = "/path/to/Qwen2.5-Math-7B"  # local Hugging Face directory (override it)
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "jsonl"  # DAPO-Math-17k as JSONL
  cfg.data.path = "/path/to/dapo_math.jsonl"  # override it
  cfg.data.tokenizer = "/path/to/Qwen2.5-Math-7B"  # the model's tokenizer.json
  cfg.data.prompt_format = "chat"  # the model's chat template
  cfg.data.max_prompt_len = 1024  # prompt tokens
  cfg.rewards.name = "math_answer"  # paper: rule-based correctness reward
  cfg.rewards.overlong_buffer = 512  # soft overlong punishment buffer (paper 4096 of 20480)
  cfg.num_steps = 500  # RL steps
  cfg.algo.batch_size = 8192  # paper: 512 prompts × 16 responses
  cfg.algo.group_size = 16  # paper: 16 responses per prompt
  cfg.algo.minibatches = 16  # paper: mini-batch 512 responses -> 16 updates per step
  cfg.algo.micro_batch_size = 16  # gradient accumulation (exact; memory only)
  cfg.algo.eps_low = 0.2  # paper: ε_low
  cfg.algo.eps_high = 0.28  # paper: clip-higher ε_high
  cfg.algo.aggregation = "token-mean"  # paper: token-level policy-gradient loss
  cfg.algo.kl_placement = "none"  # paper: KL term removed
  cfg.algo.beta = 0.0
  cfg.algo.filter = "dynamic_sampling"  # paper: drop groups whose rewards are all equal
  cfg.algo.max_refills = 8  # over-sampling rounds per step
  cfg.optim.learning_rate = 1e-6  # paper: 1e-6
  cfg.optim.warmup_steps = 20  # paper: 20-step linear warm-up
  cfg.optim.weight_decay = 0.1  # AdamW weight decay (verl default; not stated in the paper)
  cfg.sampling.max_new_tokens = 3072  # fits the 4096-token context with the prompt
  cfg.sampling.temperature = 1.0  # paper
  cfg.sampling.top_p = 1.0  # paper
  cfg.checkpoint.every_steps = 20  # save every 20 steps
  cfg.eval.every_steps = 20  # evaluate every 20 steps
  return cfg
