"""GRPO on MBPP-style code problems, scored by running their asserts in the sandbox.

Run: python -m rlx.train --config configs/mbpp.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-Coder-7B-Instruct \
       --config.data.tokenizer=/path/to/Qwen2.5-Coder-7B-Instruct \
       --config.data.path=/path/to/mbpp.jsonl
data.path is an MBPP-style JSON-lines file (.jsonl or .jsonl.gz): text, test_list (asserts),
test_setup_code, code, task_id per line, as in the original MBPP release (mbpp.jsonl). The prompt
is the task and its asserts (they name the function); the model answers with a fenced program in
the chat format, and the ``code`` reward runs its last code block against the asserts in the
sandbox. The last 100 problems are held out. The batch layout and learning rate are our choices,
as in configs/humaneval.py.
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.preset = "qwen2.5-7b"  # Qwen2.5-Coder-7B-Instruct: the Qwen2.5-7B architecture
  cfg.model.path = "/path/to/Qwen2.5-Coder-7B-Instruct"  # local HF directory (override it)
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "mbpp"  # text / test_list / test_setup_code / code records
  cfg.data.path = "/path/to/mbpp.jsonl"  # override it
  cfg.data.eval_size = 100  # the last 100 problems are held out
  cfg.data.tokenizer = "/path/to/Qwen2.5-Coder-7B-Instruct"  # its tokenizer.json (override it)
  cfg.data.prompt_format = "chat"  # the model's chat template; it answers with a code block
  cfg.data.max_prompt_len = 512
  cfg.rewards.name = "code"  # sandboxed asserts: 1 if all pass, else 0
  cfg.rewards.kwargs = dict(timeout=10.0, max_workers=8)
  cfg.num_steps = 300  # RL steps
  cfg.algo.batch_size = 128  # sequences per step
  cfg.algo.group_size = 8  # samples per problem -> 16 problems per step
  cfg.algo.micro_batch_size = 8  # gradient accumulation (exact; memory only)
  cfg.algo.beta = 0.0  # no KL term
  cfg.algo.kl_placement = "none"  # no reference model is kept
  cfg.optim.learning_rate = 1e-6  # policy learning rate
  cfg.optim.max_grad_norm = 1.0  # gradient clipping
  cfg.sampling.max_new_tokens = 512  # a short program
  cfg.sampling.temperature = 0.8
  cfg.checkpoint.every_steps = 50
  cfg.eval.every_steps = 25
  cfg.eval.num_examples = 100  # every held-out problem
  cfg.eval.num_samples = 8  # k of pass@k
  return cfg
