"""A reasoning-gym task rlx does not ship: SFT warm start, then GRPO, scored by its own verifier.

Run: python -m rlx.train --config configs/reasoning_gym.py --workdir /tmp/rlx_reasoning_gym
Needs the task libraries: pip install 'rlx[tasks]'. The generator is reasoning-gym's
``basic_arithmetic`` (``Calculate 7 - 2 + 9.``), its difficulty set by its own config fields in
``data.task_config``; the reward is the generator's ``score_answer`` on the completion's final
answer (rewards.name="reasoning_gym"). The warm start imitates the gold answers (``Answer: 14``):
there are no worked solutions, so the tiny model answers directly and RL sharpens it.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)  # task tokenizer, small batches
  rlx_config.apply_algorithm(cfg, "grpo")
  # A ~0.7M-parameter model: answering without worked steps needs more than the ~0.2M model of
  # the per-algorithm configs (18% greedy held-out accuracy after 300 SFT + 300 GRPO steps).
  cfg.model.d_model = 128
  cfg.model.n_layers = 3
  cfg.model.head_dim = 32  # 4 query heads, 2 key/value heads
  cfg.model.d_ff = 384
  cfg.data.source = "reasoning_gym"  # a reasoning-gym generator, by name
  cfg.data.task = "basic_arithmetic"  # reasoning_gym.factory.DATASETS name
  cfg.data.task_config = dict(  # the generator's own config fields: its difficulty
      min_terms=2, max_terms=3,  # two or three terms
      min_digits=1, max_digits=1,  # operands 0..10
      operators=["+", "-"],  # no * or /
      allow_parentheses=False)  # a flat expression
  cfg.data.train_size = 100_000  # training items; their questions are never held out
  # Held out: items whose question a fixed hash puts in a tenth of the question space (never
  # trained on, although the generator repeats questions across items).
  cfg.data.eval_size = 256
  cfg.data.max_prompt_len = 16  # "Calculate 10 - 7 + 3.\n" and bos: at most 15 tokens
  cfg.data.max_seq_len = 32  # prompt + "Answer: -20" + eos
  cfg.rewards.name = "reasoning_gym"  # the generator's score_answer on the final answer
  cfg.rewards.kwargs = dict(binary=True)  # no partial credit: 1 for a correct answer, else 0
  cfg.warm_start.sft_steps = 600  # SFT on the gold answers before GRPO
  cfg.warm_start.learning_rate = 1e-3
  cfg.warm_start.batch_size = 32
  cfg.num_steps = 300  # GRPO steps after the warm start
  cfg.algo.batch_size = 64  # 8 prompts × 8 samples
  cfg.algo.group_size = 8
  cfg.algo.beta = 0.0  # no KL term (the tiny model starts from its own SFT checkpoint)
  cfg.algo.kl_placement = "none"
  cfg.optim.learning_rate = 1e-4
  cfg.sampling.temperature = 1.0
  cfg.sampling.max_new_tokens = 8  # "Answer: -20" and eos: at most 6 tokens
  cfg.checkpoint.every_steps = 100
  cfg.eval.every_steps = 100
  cfg.eval.num_examples = 256
  return cfg
