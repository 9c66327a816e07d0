"""Study: self-play on a two-player game (SPIRAL-style), win rate against a fixed opponent."""

from experiments import common
from experiments.runner import Curve, Metric, Study, Variant

STEPS = 150  # RL steps per run
EVAL_EVERY = 30
EVAL_GAMES = 64  # held-out games per seat against the random opponent (greedy)


def base():
  """configs/nim_self_play.py: Nim with 5-12 stones, the tiny model, 300 SFT updates on random
  legal play in both seats, then GRPO (8 prompts × 4 games × 2 seats), evaluated against a
  uniformly random opponent in both seats (64 games a seat)."""
  cfg = common.load_config("nim_self_play")
  cfg.num_steps = STEPS
  cfg.eval.every_steps = EVAL_EVERY
  cfg.eval.num_examples = EVAL_GAMES
  cfg.eval.num_samples = 1  # (the win rates are greedy; sampled games only add time)
  cfg.checkpoint.every_steps = EVAL_EVERY
  return cfg


def paper_base():
  """SPIRAL's setting (configs/spiral_qwen3_4b.py): Qwen3-4B-Base playing both seats of
  textarena's TicTacToe."""
  return common.load_config("spiral_qwen3_4b")


STUDY = Study(
    name="self_play",
    title="Study 11: self-play on a two-player game",
    question=("Does a policy that plays both seats of a zero-sum game against itself learn to "
              "beat a fixed opponent it never trained against, and how does that compare with "
              "training against the fixed opponent itself?"),
    paper=("SPIRAL (Liu et al., 2025, arXiv:2506.24119): self-play on zero-sum textarena games "
           "(TicTacToe, Kuhn Poker, Simple Negotiation) with one shared policy and a per-role "
           "baseline (role-conditioned advantage estimation) improves the policy's play and its "
           "reasoning; training against a fixed opponent instead overfits to that opponent."),
    setup=("Nim (rlx.envs.Nim): one pile of 5-12 stones, take 1-3 a turn, taking the last stone "
           "wins (+1 / -1); an invalid move loses at once. The player to move wins with perfect "
           "play unless the pile is a multiple of 4, by leaving a multiple of 4. Warm start: 300 "
           "SFT updates on games played with uniformly random legal moves in both seats (it "
           "teaches what a move is, not how to win). Then 150 GRPO steps (no KL, lr 2e-4, T 1.0) of "
           "8 prompts × 8 rows. `self_play`: 4 games per prompt, both seats the policy, groups "
           "(prompt, seat): a per-role baseline. `vs_random`: 8 games per prompt against the "
           "uniformly random opponent, the policy's seat alternating. Evaluation: 64 held-out "
           "games per seat against the random opponent, greedy; `winning-move rate` is the share "
           "of the policy's moves from a winnable position (pile not a multiple of 4) that leave "
           "a multiple of 4 (random play: 1/3 where 3 moves are legal)."),
    base=base,
    paper_base=paper_base,
    variants=[
        Variant("self_play", {}, description="both seats the policy (SPIRAL)"),
        Variant("vs_random", {"env.self_play": False, "env.seat": -1},
                description="against the fixed random opponent, seats alternating"),
    ],
    metrics=[
        Metric("eval/win_rate", "win rate before", "initial"),
        Metric("eval/win_rate", "win rate after", "final"),
        Metric("eval/win_rate", "Δ win rate", "delta"),
        Metric("eval/win_rate/seat0", "win rate seat 0 after", "final"),
        Metric("eval/win_rate/seat1", "win rate seat 1 after", "final"),
        Metric("eval/winning_move_rate", "winning-move rate before", "initial"),
        Metric("eval/winning_move_rate", "winning-move rate after", "final"),
        Metric("eval/invalid_move_rate", "invalid-move rate after", "final"),
    ],
    curves=[
        Curve("eval/win_rate", "win rate vs the random opponent (greedy, both seats)"),
        Curve("eval/winning_move_rate", "winning-move rate (held-out games)"),
        Curve("env/win_rate/seat0", "training: seat 0's win rate", smooth=5),
        Curve("reward/mean", "training reward", smooth=5),
    ],
    finding=("Self-play and training against the random opponent raise the win rate against "
             "it alike (0.58 → 0.77 and 0.76, every seed) by converging to the same simple rule "
             "— take the rest when at most 3 are left, else take 1 — not Nim's multiple-of-4 "
             "strategy (winning-move rate 0.51 → 0.57)."),
    findings="""
- **Both variants learn to beat the random opponent, equally.** Greedy win rate against it,
  both seats: 0.578 → 0.768 ± 0.115 (self-play) and 0.755 ± 0.124 (trained against that very
  opponent), Δ +0.19 and +0.18, positive on every seed. The two are indistinguishable: on seeds
  0 and 1 their greedy policies play the identical held-out games from step 90 on (the same win
  and winning-move rates at every later checkpoint: 0.680 / 0.532 and 0.898 / 0.639).
- **What they learn is a simple rule, not the game's strategy.** The modal move in the last
  logged training episodes (step 140, `rollouts/`) is "take the rest when 1-3 stones are left,
  else take 1" on every run (two runs take 1 at 3 left as well). Against a random opponent,
  taking 1 keeps the game long and waits for the opponent to leave 1-3 stones. The
  winning-move rate (leaving a multiple of 4 from a winnable position) rises only from 0.508 to
  0.574 / 0.567; the multiple-of-4 strategy would make it 1.
- **Self-play is balanced, as it should be.** In training, the first seat's win rate against
  its copy is 0.47-0.50 over the last 30 steps (against the random opponent 0.69-0.86): equal
  copies of the policy split the games, and the per-(prompt, seat) baseline keeps a first-move
  edge out of the other seat's advantages.
- **Invalid moves are gone after the warm start** (0.003 after RL): the 300 SFT updates on
  random legal play teach the format.
- **Not tested here:** SPIRAL's finding that a fixed opponent is overfit, which needs an
  evaluation opponent different from the training one; and whether longer self-play finds the
  multiple-of-4 strategy (150 steps, the tiny model, a random-play warm start).
""",
)
