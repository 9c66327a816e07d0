"""Search-R1 (Jin et al., 2025, arXiv:2503.09516): GRPO with a search tool on Qwen2.5-7B.

Run: python -m rlx.train --config configs/search_r1_qwen25_7b.py --workdir DIR \
       --config.model.path=/path/to/Qwen2.5-7B --config.data.path=/path/to/nq_hotpotqa_train.jsonl \
       --config.env.kwargs.tool_kwargs.search.documents=/path/to/corpus.jsonl
Search-R1 trains a base (or instruct) Qwen2.5-3B/7B with outcome-reward RL to interleave
reasoning with search-engine calls: the retrieved passages are appended to the context and
masked out of the loss, and only an exact-match final answer is rewarded. Its setup (paper §4):
training data = the NQ and HotpotQA train splits merged; top-3 passages of a 2018 Wikipedia dump
per call (E5 dense retrieval; BM25 in its retriever ablation); GRPO with 5 responses per prompt,
512 prompts per step in mini-batches of 256, policy lr 1e-6 with warm-up, KL coefficient 0.001,
clip ratio 0.2, 500 response tokens and 500 retrieved-content tokens per turn, up to 4 actions,
rollout temperature 1.0, about 1005 steps.

Our adaptation: the model calls rlx's ``search`` tool (BM25 over a local JSONL of {title, text},
rlx/data/retrieval.py; an in-memory pure-Python index, so point it at a corpus that fits memory,
e.g. the Wikipedia passages of the questions' retrieval pool rather than all 21M) in Qwen's tool
format (env.tool_format="qwen", data.prompt_format="chat"), where Search-R1 writes
``<search>query</search>`` and reads ``<information>`` blocks in a plain prompt; the answer is
scored by ToolEnv's answer check (the \\boxed{} value compared with ``answer``), not Search-R1's
normalised exact match of ``<answer>`` tags. The sampler stops at the tokenizer's eos_token,
which must be the template's end of turn ``<|im_end|>`` (see configs/torl_qwen25_math_1p5b.py).
The small version of this recipe is experiments/search_agent (configs/search_lookup.py).
"""

from rlx import config as rlx_config


def get_config():
  cfg = rlx_config.default_config()
  rlx_config.apply_algorithm(cfg, "grpo")
  cfg.model.preset = "qwen2.5-7b"  # architecture (the weights come from model.path)
  cfg.model.path = "/path/to/Qwen2.5-7B"  # local Hugging Face directory (override it)
  cfg.model.dtype = "bfloat16"  # parameters and compute in bfloat16
  cfg.data.source = "jsonl"  # NQ + HotpotQA train questions as JSONL (prompt / answer columns)
  cfg.data.path = "/path/to/nq_hotpotqa_train.jsonl"  # override it
  cfg.data.tokenizer = "/path/to/Qwen2.5-7B"  # the model's tokenizer.json (eos: above)
  cfg.data.prompt_format = "chat"  # the Qwen2.5 chat template, with the tool's JSON schema
  cfg.data.max_prompt_len = 512  # question, instructions and the template's tools block
  cfg.rewards.name = "math_answer"  # (episodes are scored by the environment's answer check)
  cfg.env.name = "tools"  # rlx.envs.ToolEnv: search calls, then a scored final answer
  cfg.env.tools = ("search",)
  cfg.env.kwargs = {"tool_kwargs": {"search": {"documents": "/path/to/corpus.jsonl", "k": 3,
                                               "max_chars": 600}}}  # paper: top-3 passages
  cfg.env.tool_format = "qwen"  # <tool_call>{json}</tool_call>, <tool_response> messages
  cfg.env.instructions = ("Answer the question. Reason step by step; whenever you lack "
                          "knowledge, call the search tool, as often as you need. Put the final "
                          "answer within \\boxed{}.")
  cfg.env.max_turns = 4  # paper: an action budget of 4 (searches, then the answer)
  cfg.env.max_obs_tokens = 500  # paper: 500 retrieved-content tokens
  cfg.env.max_obs_chars = 3 * 600 + 32  # three passages of at most 600 characters
  cfg.env.max_episode_tokens = 4096 - 512  # paper: 4096-token sequences
  cfg.num_steps = 1005  # paper
  cfg.algo.batch_size = 2560  # paper: 512 prompts × 5 responses
  cfg.algo.group_size = 5  # paper: GRPO group size 5
  cfg.algo.epochs = 1
  cfg.algo.minibatches = 2  # paper: mini-batches of 256 prompts
  cfg.algo.micro_batch_size = 16  # gradient accumulation (exact; memory only)
  cfg.algo.eps_low = 0.2  # paper: clip ratio 0.2
  cfg.algo.eps_high = 0.2
  cfg.algo.kl_placement = "loss"  # paper: KL in the loss (verl's low-variance k3), β 0.001
  cfg.algo.kl_estimator = "k3"
  cfg.algo.beta = 0.001
  cfg.optim.learning_rate = 1e-6  # paper: policy lr 1e-6
  cfg.optim.warmup_steps = 286  # paper: warm-up ratio 0.285 of 1005 steps
  cfg.optim.max_grad_norm = 1.0
  cfg.sampling.max_new_tokens = 500  # paper: 500 response tokens per turn
  cfg.sampling.temperature = 1.0  # paper
  cfg.sampling.top_p = 1.0
  cfg.checkpoint.every_steps = 100
  cfg.eval.every_steps = 50
  cfg.eval.num_examples = 512
  return cfg
