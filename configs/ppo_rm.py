"""PPO whose reward is a trained reward model (train configs/rm.py into /tmp/rlx_rm first).

Run: python -m rlx.train --config configs/rm.py --workdir /tmp/rlx_rm
     python -m rlx.train --config configs/ppo_rm.py --workdir /tmp/rlx_ppo_rm
The reward is the reward model's score of each sample (the ``reward_model`` reward of
rlx.rewards, loaded from the checkpoint directory). Held-out evaluation still uses the task's
verifier (eval.reward="auto"), so the two can be compared (reward hacking shows as a rising
train reward with a flat held-out accuracy).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "ppo")
  cfg.num_steps = 100  # RL steps
  cfg.rewards.name = "reward_model"  # rlx.rewards registry: a learned reward model
  cfg.rewards.kwargs.checkpoint = "/tmp/rlx_rm/checkpoints"  # an algo.name="rm" run's checkpoints
  cfg.rewards.kwargs.normalize = False  # True: standardise the scores over the batch
  return cfg
