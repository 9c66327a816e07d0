"""ToRL (Li, Zou & Liu, 2025, arXiv:2503.23383): GRPO with a Python tool on Qwen2.5-Math-1.5B.

Run: python -m rlx.train --config configs/torl_qwen25_math_1p5b.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-Math-1.5B --config.data.path=/path/to/torl_train.jsonl
ToRL trains a base model (no SFT) to call a code interpreter while it reasons: the code's output
is appended to the context (masked out of the loss) and only a correct final answer is rewarded.
Its script (GAIR-NLP/ToRL, scripts/torl_1.5b.sh): GRPO, 128 prompts x 16 samples per step, one
update per step, lr 1e-6, no KL term, no entropy bonus, temperature 1.0, top-p 1.0, prompts up
to 400 tokens, 3072 response tokens, at most one tool call per response (C = 1); the training data
are its 28k questions (data/torl_data, as JSONL with prompt / answer columns).

Our adaptation: the model calls rlx's ``python`` tool (a stateful interpreter in the
kernel-isolated sandbox) in Qwen's tool format, ``<tool_call>{"name": "python", "arguments":
{"code": ...}}</tool_call>``, and reads the output in the Qwen2.5 chat template's tool message
(env.tool_format="qwen", data.prompt_format="chat"), where ToRL writes markdown ```python blocks
and reads ```output blocks in a plain prompt. One call then the answer is env.max_turns = 2; the
3072-token response budget is two 1280-token turns and one 512-token observation. The reward is
1 for a correct \\boxed{} answer, else 0 (ToRL's +1 / -1 gives the same GRPO advantages). The
sampler stops at the tokenizer's eos_token, which must be the template's end of turn
``<|im_end|>`` (checked when the first episodes are rendered): if data.tokenizer's
tokenizer_config.json names ``<|endoftext|>``, point it at a copy naming ``<|im_end|>``.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.preset = "custom"  # Qwen2.5-Math-1.5B = the Qwen2.5-1.5B architecture
  cfg.model.family = "qwen2"  # Qwen2 checkpoint layout
  cfg.model.vocab_size = 151_936  # V
  cfg.model.d_model = 1536  # D
  cfg.model.n_layers = 28  # L
  cfg.model.n_heads = 12  # H
  cfg.model.n_kv_heads = 2  # K
  cfg.model.head_dim = 128  # E
  cfg.model.d_ff = 8960  # F
  cfg.model.tie_embeddings = True  # LM head = embedding matrix (1.54B parameters)
  cfg.model.qkv_bias = True  # Qwen2
  cfg.model.rope_theta = 10_000.0  # RoPE base of the Math models (4096-token context)
  cfg.model.norm_eps = 1e-6  # RMSNorm ε
  cfg.model.path = "/path/to/Qwen2.5-Math-1.5B"  # local Hugging Face directory (override it)
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "jsonl"  # ToRL's 28k questions as JSONL (prompt / answer columns)
  cfg.data.path = "/path/to/torl_train.jsonl"  # override it
  cfg.data.tokenizer = "/path/to/Qwen2.5-Math-1.5B"  # the model's tokenizer.json (eos: above)
  cfg.data.prompt_format = "chat"  # the Qwen2.5 chat template, with the tool's JSON schema
  cfg.data.max_prompt_len = 512  # ToRL's 400 question tokens and the template's tools block
  cfg.rewards.name = "math_answer"  # (episodes are scored by the environment's answer check)
  cfg.env.name = "tools"  # rlx.envs.ToolEnv: tool calls, then a scored final answer
  cfg.env.tools = ("python",)  # paper: a code interpreter (Sandbox Fusion there)
  cfg.env.tool_format = "qwen"  # <tool_call>{json}</tool_call>, <tool_response> messages
  cfg.env.instructions = ("Please integrate natural language reasoning with programs to solve "
                          "the problem above, and put your final answer within \\boxed{}.")
  cfg.env.max_turns = 2  # paper: at most one tool call (C = 1), then the answer
  cfg.env.max_obs_tokens = 512  # a tool message (ToRL keeps an error's last line)
  cfg.env.max_obs_chars = 2000  # tool output kept, in characters
  cfg.env.tool_timeout = 10.0  # seconds per code cell
  cfg.num_steps = 600  # RL steps (our choice)
  cfg.algo.batch_size = 2048  # paper: 128 prompts × 16 samples
  cfg.algo.group_size = 16  # paper: 16 samples per prompt
  cfg.algo.epochs = 1  # paper: one update per step (mini-batch ≥ the batch)
  cfg.algo.minibatches = 1
  cfg.algo.micro_batch_size = 16  # gradient accumulation (exact; memory only)
  cfg.algo.kl_placement = "none"  # paper: KL coefficients 0
  cfg.algo.beta = 0.0
  cfg.optim.learning_rate = 1e-6  # paper: 1e-6
  cfg.optim.max_grad_norm = 1.0  # gradient clipping (verl default)
  cfg.sampling.max_new_tokens = 1280  # per turn: 2 × 1280 + 512 = ToRL's 3072 response tokens
  cfg.sampling.temperature = 1.0  # paper
  cfg.sampling.top_p = 1.0  # paper
  cfg.checkpoint.every_steps = 20  # paper: save every 20 steps
  cfg.eval.every_steps = 20  # evaluate every 20 steps
  return cfg
