"""Self-play on Nim: SFT warm start on random legal play, then GRPO with both seats the policy.

Run: python -m rlx.train --config configs/nim_self_play.py --workdir /tmp/rlx_nim

One pile of 5-12 stones, take 1-3 a turn, taking the last stone wins (rlx.envs.Nim; the player
to move loses with perfect play exactly when the pile is a multiple of 4). The warm start plays
uniformly random legal moves in both seats (it teaches what a move looks like, not how to win);
GRPO then plays the policy against itself, one episode row per seat, grouped by (prompt, seat),
and evaluation plays a uniformly random opponent in both seats (eval/win_rate, by seat). The
data task's problems only seed the games (a pile per prompt). docs/envs.md, "Games".
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.data.task = "calculation"  # its prompts seed the games' piles (held-out prompts: new games)
  cfg.env.name = "nim"
  cfg.data.max_prompt_len = 64  # the rules (≈ 50 tokens)
  cfg.data.max_seq_len = 192  # a warm-start demonstration: the rules and a seat's whole game
  cfg.env.kwargs = {"min_pile": 5, "max_pile": 12}
  cfg.env.max_turns = 6  # a seat's moves: 12 stones take at most 6 moves of one seat
  cfg.env.max_obs_tokens = 24  # "<obs>9 left</obs>": 16 tokens
  cfg.env.self_play = True  # both seats are the policy
  cfg.env.opponent = "random"  # evaluation's fixed opponent (uniformly random legal moves)
  cfg.warm_start.sft_steps = 300  # random legal play: the move format
  cfg.warm_start.learning_rate = 1e-3
  cfg.warm_start.batch_size = 32
  cfg.num_steps = 100
  cfg.algo.batch_size = 64  # 8 prompts × 4 games × 2 seats
  cfg.algo.group_size = 8  # 4 games per prompt, groups per (prompt, seat)
  cfg.algo.beta = 0.0
  cfg.algo.kl_placement = "none"
  cfg.optim.learning_rate = 2e-4
  cfg.sampling.temperature = 1.0
  cfg.sampling.max_new_tokens = 4  # a move: a digit and the end token
  cfg.eval.every_steps = 20
  cfg.eval.num_examples = 64  # 64 games per seat against the random opponent
  cfg.eval.num_samples = 2
  return cfg
