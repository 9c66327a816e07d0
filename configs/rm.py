"""Bradley–Terry reward model on the synthetic preference pairs of configs/dpo.py (laptop CPU).

An SFT warm start on the chosen solutions first (the usual recipe: the reward model's backbone is
the SFT policy's), then the reward model — the backbone plus a scalar head read at the last
token — is trained on the pairs. Its checkpoints record the architecture, so PPO can use it as
its reward (configs/ppo_rm.py: rewards.name="reward_model", rewards.kwargs.checkpoint=DIR).

Run: python -m rlx.train --config configs/rm.py --workdir /tmp/rlx_rm
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "rm")
  cfg.num_steps = 200  # reward-model updates
  cfg.warm_start.sft_steps = 200  # SFT of the policy on the chosen solutions first
  cfg.warm_start.learning_rate = 3e-3
  cfg.warm_start.batch_size = 16
  cfg.data.difficulty = (1, 2)  # steps of the expression
  cfg.data.train_size = 4096  # training pairs
  cfg.data.eval_size = 256  # held-out pairs (another seed)
  cfg.data.max_seq_len = 48  # prompt + completion tokens per row
  cfg.algo.batch_size = 16  # pairs per update
  cfg.optim.learning_rate = 1e-3  # reward-model learning rate
  cfg.pref.margin_coef = 1.0  # × the pairs' margin in −log σ(s_c − s_r − m) (0 without margins)
  cfg.pref.center_coef = 0.0  # centering λ·(s_c + s_r)² (Eisenstein et al.: 0.01)
  cfg.eval.every_steps = 25  # held-out pair accuracy (eval/rewards/accuracy)
  cfg.eval.num_examples = 256  # held-out pairs per evaluation
  cfg.checkpoint.every_steps = 100
  return cfg
