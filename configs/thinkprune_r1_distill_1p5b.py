"""ThinkPrune (Hou et al., 2025, arXiv:2504.01296) on a local DeepSeek-R1-Distill-Qwen-1.5B.

Run: python -m rlx.train --config configs/thinkprune_r1_distill_1p5b.py --workdir DIR \
       --config.model.path=/path/to/DeepSeek-R1-Distill-Qwen-1.5B \
       --config.data.path=/path/to/aime_amc.jsonl
ThinkPrune trains a long-thinking model with GRPO under a token limit: a completion that does not
finish within the limit gets reward 0 (rlx reward "thinkprune"). The paper prunes iteratively,
4k -> 3k -> 2k tokens, each round a separate RL run started from the previous one (override
sampling.max_new_tokens and checkpoint.init_from per round). Training data: the AIME/AMC subset of
the PRIME collection. lr 1e-6 and the batch layout below are our choices in the verl defaults the
authors build on; check them against the paper before claiming a reproduction.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.preset = "custom"  # DeepSeek-R1-Distill-Qwen-1.5B = the Qwen2.5-Math-1.5B architecture
  cfg.model.family = "qwen2"  # Qwen2 checkpoint layout
  cfg.model.vocab_size = 151_936  # V
  cfg.model.d_model = 1536  # D
  cfg.model.n_layers = 28  # L
  cfg.model.n_heads = 12  # H
  cfg.model.n_kv_heads = 2  # K
  cfg.model.head_dim = 128  # E
  cfg.model.d_ff = 8960  # F
  cfg.model.tie_embeddings = False  # separate LM head
  cfg.model.qkv_bias = True  # Qwen2
  cfg.model.rope_theta = 10_000.0  # RoPE base of the distilled model
  cfg.model.norm_eps = 1e-6  # RMSNorm ε
  cfg.model.path = "/path/to/DeepSeek-R1-Distill-Qwen-1.5B"  # override it
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "jsonl"  # AIME/AMC problems as JSONL
  cfg.data.path = "/path/to/aime_amc.jsonl"  # override it
  cfg.data.tokenizer = "/path/to/DeepSeek-R1-Distill-Qwen-1.5B"  # the model's tokenizer.json
  cfg.data.prompt_format = "chat"  # the model's chat template
  cfg.data.max_prompt_len = 512  # prompt tokens
  cfg.rewards.name = "thinkprune"  # correctness, 0 when the completion hit the token limit
  cfg.rewards.kwargs.inner = "math_answer"  # the correctness check inside the cap
  cfg.rewards.kwargs.truncated_score = 0.0  # paper: unfinished thoughts get zero reward
  cfg.num_steps = 200  # RL steps per pruning round
  cfg.algo.batch_size = 1024  # 128 prompts × 8 samples
  cfg.algo.group_size = 8  # samples per prompt
  cfg.algo.micro_batch_size = 8  # gradient accumulation (exact; memory only)
  cfg.algo.beta = 0.001  # small KL to the starting model (verl default)
  cfg.optim.learning_rate = 1e-6  # RL step size
  cfg.sampling.max_new_tokens = 4000  # paper: first pruning round, 4k-token limit
  cfg.sampling.temperature = 0.6  # DeepSeek-R1-Distill recommended sampling temperature
  cfg.checkpoint.every_steps = 20  # save every 20 steps
  cfg.eval.every_steps = 20  # evaluate every 20 steps
  return cfg
