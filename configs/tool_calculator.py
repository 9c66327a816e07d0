"""Tool use: a tiny model learns to call a calculator (docs/envs.md, "A tool-use run").

The task is multiplication of two 2- or 3-digit numbers, which the tiny model cannot do in its
head but can copy from the calculator's output. The SFT warm start imitates a mix of
demonstrations: a quarter of them are whole episodes that call the tool (``<tool>calculator:
347 * 582</tool>``, read ``<obs>201954</obs>``, answer ``Answer: 201954``), the rest answer at
once. The warm-started policy calls the tool only sometimes and is mostly wrong when it does
not; GRPO on episodes of the tool environment (reward 1 for a right final
answer) then raises the tool-call rate and the held-out accuracy: seeds 0-2, held-out tool-call
rate 0.26-0.30 -> 0.98-0.99, greedy accuracy 0.00-0.02 -> 0.85-0.99, in 2-3 minutes on 2 CPU
cores (docs/envs.md, "A tool-use run"; tests/test_tool_learning.py).

Run: python -m rlx.train --config configs/tool_calculator.py --workdir /tmp/rlx_tool_calculator
Everything runs on a laptop CPU with no downloads (the task tokenizer ships with rlx).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)  # the ~0.2M-parameter model of the per-algorithm configs
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.seed = 0
  cfg.data.task = "tool_multiplication"  # a * b; a quarter of the demonstrations call the tool
  cfg.data.difficulty = (2, 3)  # digits per operand: products of up to 6 digits
  cfg.data.max_prompt_len = 16  # "What is 347 * 582?" and bos: 14 tokens
  cfg.data.max_seq_len = 80  # SFT: prompt + tool call + observation + answer, with eos: < 80
  # The tool environment: a turn that writes <tool>NAME: INPUT</tool> reads <obs>OUTPUT</obs>;
  # a turn without a call is the final answer (reward 1 if its number is the product).
  cfg.env.name = "tools"
  cfg.env.tools = ("calculator",)
  cfg.env.max_turns = 2  # a call, then the answer
  cfg.env.max_obs_tokens = 24  # <obs>...</obs> of a 6-digit product: 17 tokens
  # SFT updates on the demonstrations before GRPO: enough to copy the operands into the call and
  # the tool's output into the answer (after 600, calls were answered right 7% of the time, too
  # rarely for GRPO to see that calling pays; after 1200, 70-92%).
  cfg.warm_start.sft_steps = 1200
  cfg.warm_start.learning_rate = 1e-3
  cfg.warm_start.batch_size = 32
  cfg.warm_start.cache_dir = rlx_config.warm_start_cache_dir()  # trained once, then loaded
  cfg.num_steps = 100  # GRPO steps
  cfg.algo.batch_size = 64  # 8 prompts × 8 episodes per step
  cfg.algo.group_size = 8
  cfg.algo.beta = 0.0  # no KL term, no reference model
  cfg.algo.kl_placement = "none"
  cfg.optim.learning_rate = 3e-4  # GRPO step size
  cfg.sampling.temperature = 1.0
  cfg.sampling.max_new_tokens = 32  # per turn: a call of two 3-digit numbers is 27 tokens
  cfg.eval.every_steps = 20  # held-out episodes (greedy and 4 samples) every 20 GRPO steps
  cfg.eval.num_examples = 128
  cfg.checkpoint.every_steps = 50
  return cfg
