"""Search agent: a tiny model learns to look prices up in a local document collection.

The task (``lookup``, rlx/data/tasks.py) asks "What does item 4821 cost?"; the price is only in a
collection of 1000 records ``item 4821: price 37`` generated from a fixed seed and shipped with
rlx (rlx/data/assets/lookup_items.jsonl, 43 kB; no download). Held-out questions are about a
fixed quarter of the items never asked in training, so they can be answered only by searching.
The ``search`` tool is BM25 over the collection (rlx/data/retrieval.py), top 1 document. The SFT
warm start imitates a mix of demonstrations: a quarter are episodes that search (``<tool>search:
item 4821</tool>``, read ``<obs>[1] item 4821: price 37</obs>``, answer ``Answer: 37``), the rest
answer at once; GRPO on episodes of the tool environment (reward 1 for the right price) follows.
Study: experiments/search_agent (with and without the tool).

Run: python -m rlx.train --config configs/search_lookup.py --workdir /tmp/rlx_search_lookup
Everything runs on a laptop CPU with no downloads (the task tokenizer ships with rlx).
"""

from rlx import config as rlx_config
from rlx.data.tasks import lookup_documents_path


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)  # the ~0.2M-parameter model of the per-algorithm configs
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.seed = 0
  cfg.data.task = "lookup"  # a quarter of the demonstrations search, the rest answer at once
  cfg.data.difficulty = (1,)
  cfg.data.max_prompt_len = 32  # "What does item 4821 cost?" and bos
  cfg.data.max_seq_len = 112  # SFT: prompt + search call + observation + answer, with eos
  cfg.env.name = "tools"
  cfg.env.tools = ("search",)
  cfg.env.kwargs = {"tool_kwargs": {"search": {"documents": lookup_documents_path(), "k": 1}}}
  cfg.env.max_turns = 2  # a search, then the answer
  cfg.env.max_obs_tokens = 48  # <obs>[1] item 4821: price 37</obs>
  cfg.warm_start.sft_steps = 1200  # as configs/tool_calculator.py: enough to copy ids and prices
  cfg.warm_start.learning_rate = 1e-3
  cfg.warm_start.batch_size = 32
  cfg.warm_start.cache_dir = rlx_config.warm_start_cache_dir()  # trained once, then loaded
  cfg.num_steps = 100  # GRPO steps
  cfg.algo.batch_size = 64  # 8 prompts × 8 episodes per step
  cfg.algo.group_size = 8
  cfg.algo.beta = 0.0
  cfg.algo.kl_placement = "none"
  cfg.optim.learning_rate = 3e-4
  cfg.sampling.temperature = 1.0
  cfg.sampling.max_new_tokens = 32  # per turn: the call is ~30 characters
  cfg.eval.every_steps = 20
  cfg.eval.num_examples = 128
  cfg.checkpoint.every_steps = 50
  return cfg
