"""Iterative on-policy DPO on the synthetic calculation task (laptop CPU).

An SFT warm start, then ``pref.rounds`` rounds: sample ``algo.group_size`` completions for each
of ``pref.round_prompts`` prompts with the current policy, score them with the task's verifier
(``rewards.name``; any library reward works: "reward_model", "self_certainty", "llm_judge" ...),
pair the best with the worst sample of each prompt, and train ``num_steps / rounds`` DPO updates
on the round's pairs with the policy at the round's start as the reference. Every round is
checkpointed (WORKDIR/rounds/round_RRR.npz holds its pairs) and resumable.

Run: python -m rlx.train --config configs/iterative_dpo.py --workdir /tmp/rlx_iterative_dpo
Self-rewarding variant: --config.rewards.name=self_certainty; rejection anchored to the initial
model's samples: --config.pref.pair_rule=anchored.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  rlx_config.apply_algorithm(cfg, "iterative_dpo")
  cfg.warm_start.sft_steps = 500  # SFT on worked solutions first (≈48% greedy accuracy)
  cfg.warm_start.learning_rate = 1e-3
  cfg.warm_start.batch_size = 32
  cfg.warm_start.cache_dir = rlx_config.warm_start_cache_dir()  # trained once, then loaded
  # Seed 0, 256 held-out problems: greedy 0.457 → 0.512, pass@1 0.322 → 0.374, rising every
  # round; 30 updates a round (instead of 10) over-fit the pairs and lose half the accuracy.
  cfg.num_steps = 60  # DPO updates over all rounds
  cfg.pref.rounds = 6  # rounds of sample → score → pair → DPO (10 updates each)
  cfg.pref.round_prompts = 128  # prompts per round (≈60 of them give a pair)
  cfg.algo.group_size = 4  # samples per prompt
  cfg.algo.batch_size = 16  # pairs per DPO update
  cfg.pref.pair_rule = "best_worst"  # chosen = best, rejected = worst sample of the prompt
  cfg.pref.round_reference = "round"  # DPO reference: the policy at the round's start
  cfg.pref.loss = "dpo"
  cfg.pref.beta = 0.1
  cfg.rewards.name = "task"  # the synthetic task's verifier scores the samples
  cfg.optim.learning_rate = 5e-5  # DPO step size (2e-4 for 20 updates a round halves accuracy)
  cfg.optim.warmup_steps = 0
  cfg.sampling.max_new_tokens = 32  # completion tokens
  cfg.eval.num_examples = 256  # held-out prompts, evaluated after every round
  cfg.eval.every_steps = 0  # and not in between (N > 0: also every N updates)
  cfg.checkpoint.every_steps = 10
  return cfg
