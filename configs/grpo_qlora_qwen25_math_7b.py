"""GRPO with quantised-base LoRA (QLoRA) on a local Qwen2.5-Math-7B: one accelerator.

Run: python -m rlx.train --config configs/grpo_qlora_qwen25_math_7b.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-Math-7B --config.data.path=/path/to/math_train.jsonl
The DeepSeekMath GRPO recipe of configs/grpo_qwen25_math_7b.py with the base frozen as NF4 codes
(Dettmers et al., 2023, arXiv:2305.14314) and rank-64 adapters on every projection: the
reference model is the same base with the initial adapters (no second copy of the weights), and
optimizer state and checkpoints hold the adapters only (~160M parameters of 7.6B). Adapters take
a larger step than full fine-tuning (1e-5 here vs the paper's 1e-6), as is usual for LoRA.
`python -m rlx.plan --config configs/grpo_qlora_qwen25_math_7b.py --compare_lora` prints full vs
LoRA vs QLoRA memory for this model (docs/lora.md).
"""

import importlib.util
import os


def _base():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpo_qwen25_math_7b.py")
  spec = importlib.util.spec_from_file_location("_grpo_qwen25_math_7b", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_config():
  cfg = _base()
  cfg.lora.rank = 64  # adapter rank r
  cfg.lora.alpha = 128.0  # s = alpha / r = 2
  cfg.lora.quantize = "nf4"  # frozen base as 4-bit NormalFloat codes, 64 inputs per scale
  cfg.lora.group_size = 64
  cfg.optim.learning_rate = 1e-5  # adapters: 10x the full fine-tuning step
  cfg.algo.micro_batch_size = 32  # the frozen base leaves room for larger micro-batches
  return cfg
