"""Dr. GRPO (Liu et al., 2025, "Understanding R1-Zero-Like Training", arXiv:2503.20783) on a local
Qwen2.5-Math-7B, trained on MATH levels 3-5.

Run: python -m rlx.train --config configs/dr_grpo_qwen25_math_7b.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-Math-7B --config.data.path=/path/to/math_l3to5.jsonl
Dr. GRPO removes the per-response length normalisation (loss summed over tokens and divided by a
constant) and the std division of the advantage; no KL term. lr 1e-6, 8 samples per question,
temperature 1.0, a 3000-token generation budget. The batch layout (128 prompts × 8) follows the
authors' released Oat recipe; check it against the paper before claiming a reproduction.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "dr_grpo")
  cfg.model.preset = "qwen2.5-math-7b"  # architecture (the weights come from model.path)
  cfg.model.path = "/path/to/Qwen2.5-Math-7B"  # local Hugging Face directory (override it)
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "jsonl"  # MATH levels 3-5 as JSONL
  cfg.data.path = "/path/to/math_l3to5.jsonl"  # override it
  cfg.data.tokenizer = "/path/to/Qwen2.5-Math-7B"  # the model's tokenizer.json
  cfg.data.prompt_format = "plain"  # the paper's Qwen-Math template is a plain prompt
  cfg.data.max_prompt_len = 512  # prompt tokens
  cfg.rewards.name = "math_answer"  # rule-based correctness reward
  cfg.num_steps = 400  # RL steps
  cfg.algo.batch_size = 1024  # 128 prompts × 8 samples
  cfg.algo.group_size = 8  # paper: 8 samples per question
  cfg.algo.micro_batch_size = 16  # gradient accumulation (exact; memory only)
  cfg.algo.estimator = "dr_grpo"  # A = r − mean_group(r)
  cfg.algo.aggregation = "seq-mean-token-sum-norm"  # Σ_t L / (N_seq · C)
  cfg.algo.norm_constant = 3000  # C = the generation budget
  cfg.algo.kl_placement = "none"  # paper: β = 0
  cfg.algo.beta = 0.0
  cfg.optim.learning_rate = 1e-6  # paper: 1e-6
  cfg.sampling.max_new_tokens = 3000  # paper: 3000-token generation budget
  cfg.sampling.temperature = 1.0  # paper
  cfg.checkpoint.every_steps = 50  # save every 50 steps
  cfg.eval.every_steps = 50  # evaluate every 50 steps
  return cfg
