"""SPIRAL (Liu et al., 2025, arXiv:2506.24119): self-play on zero-sum games with Qwen3-4B-Base.

Run: python -m rlx.train --config configs/spiral_qwen3_4b.py --workdir DIR \
       --config.model.path=/path/to/Qwen3-4B-Base --config.data.path=/path/to/seeds.jsonl
SPIRAL trains one policy by playing both seats of textarena games (TicTacToe, Kuhn Poker, Simple
Negotiation) against itself, multi-turn, with role-conditioned advantage estimation (a baseline
per game and role), and reports that the reasoning it learns transfers to maths benchmarks.

Here: the policy plays both seats of textarena's TicTacToe (env.name="textarena",
env.self_play=True; one episode row per seat, the other seat's moves read as observations,
rows grouped by (prompt, seat): a per-role baseline, SPIRAL's RAE within a step rather than its
moving average); evaluation plays a fixed opponent (env.opponent: a "module:callable" of yours,
e.g. a random legal TicTacToe move, or another model) in both seats. The data rows only seed
the games (a JSONL of prompts; each prompt's hash seeds one game). The model (Qwen3-4B-Base),
the game and the shared self-play policy are the paper's; the step sizes, budgets and batch
below are our choices for that setting, not the paper's published values.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.preset = "qwen3-4b"  # Qwen3-4B(-Base): 36 layers, D 2560, GQA 32/8, tied embeddings
  cfg.model.path = "/path/to/Qwen3-4B-Base"  # local Hugging Face directory (override it)
  cfg.model.dtype = "bfloat16"
  cfg.data.source = "jsonl"  # prompts that seed the games (override the path)
  cfg.data.path = "/path/to/seeds.jsonl"
  cfg.data.tokenizer = "/path/to/Qwen3-4B-Base"
  cfg.data.prompt_format = "chat"  # the model's chat template around the game's text
  cfg.data.max_prompt_len = 512  # the game's rules and board
  cfg.rewards.name = "exact_match"  # (unused: episodes are scored by the game's outcome)
  cfg.env.name = "textarena"  # pip install rlx[games]
  cfg.env.kwargs = {"id": "TicTacToe-v0"}
  cfg.env.self_play = True  # both seats are the policy
  cfg.env.opponent = "random"  # replace with a TicTacToe opponent ("module:callable")
  cfg.env.max_turns = 5  # a TicTacToe seat moves at most 5 times
  cfg.env.max_obs_tokens = 256  # the other seat's move and the board
  cfg.num_steps = 400
  cfg.algo.batch_size = 256  # 32 prompts × 4 games × 2 seats
  cfg.algo.group_size = 8  # 4 games per prompt: groups (prompt, seat)
  cfg.algo.micro_batch_size = 8
  cfg.algo.kl_placement = "none"
  cfg.algo.beta = 0.0
  cfg.optim.learning_rate = 1e-6
  cfg.optim.max_grad_norm = 1.0
  cfg.sampling.max_new_tokens = 1024  # a move with its reasoning
  cfg.sampling.temperature = 1.0
  cfg.eval.every_steps = 20
  cfg.checkpoint.every_steps = 20
  return cfg
