"""Experiment configuration: the default ``ConfigDict`` and its validation into frozen objects.

A config file in ``configs/`` starts from :func:`default_config` and changes what its experiment
needs (one comment per field lives here, where every field is declared). :func:`validate` turns
the ``ConfigDict`` into a :class:`RunConfig` of frozen dataclasses, resolving every name (algorithm,
estimator, policy loss, KL estimator, aggregation, reward, optimizer, schedule, filter) to an enum
once, and raises :class:`ConfigError` naming the field, the value and the allowed values or the
fix — before any model is built or function compiled.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import enum
import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from rlx import core


# The decoder's projections (rlx.models.config.LORA_TARGETS): attention first, then the MLP.
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ConfigError(ValueError):
  """A config field holds a value rlx cannot run with; the message names the field and the fix."""


class Algorithm(enum.Enum):
  """What a run trains. Each RL name is a preset of estimator × policy loss × KL × aggregation."""

  SFT = "sft"
  GRPO = "grpo"
  DR_GRPO = "dr_grpo"
  DAPO = "dapo"
  GSPO = "gspo"
  CISPO = "cispo"
  RLOO = "rloo"
  REINFORCE_PP = "reinforce_pp"
  REINFORCE_PP_BASELINE = "reinforce_pp_baseline"
  REMAX = "remax"
  PPO = "ppo"
  DPO = "dpo"  # offline preference optimisation (any pref.loss), rlx.runtime.preference
  RM = "rm"  # Bradley–Terry reward-model training
  ITERATIVE_DPO = "iterative_dpo"  # rounds of on-policy sampling, pairing and a DPO round
  REJECTION_SFT = "rejection_sft"  # sample, keep the verified samples, SFT on them (RFT / STaR)


# Algorithms trained on a fixed dataset (no sampling; the RL fields of algo are unused).
OFFLINE_ALGORITHMS = frozenset({Algorithm.SFT, Algorithm.DPO, Algorithm.RM})
# Algorithms whose main phase is rlx.runtime.preference (configured by the pref section).
PREFERENCE_ALGORITHMS = frozenset({Algorithm.DPO, Algorithm.RM, Algorithm.ITERATIVE_DPO})


class KLPlacement(enum.Enum):
  NONE = "none"  # no KL term (β unused; no reference model is kept)
  LOSS = "loss"  # β·agg(kl(ℓ, ℓ_ref)) added to the loss
  REWARD = "reward"  # R_t ← R_t − β·kl(ℓ_old, ℓ_ref)


OLD_LOGPROBS = ("auto", "sampler", "recompute")  # algo.old_logprobs


class FilterKind(enum.Enum):
  NONE = "none"
  DYNAMIC_SAMPLING = "dynamic_sampling"  # DAPO: keep groups with reward std > 0
  BALANCED = "balanced"  # Bae et al.: keep groups with lo ≤ pass rate ≤ hi
  STD_EMA = "std_ema"  # RLPR: keep groups with std ≥ ratio·EMA(std)


class Schedule(enum.Enum):
  CONSTANT = "constant"  # linear warm-up, then constant
  COSINE = "cosine"  # linear warm-up, then cosine decay to end_lr_factor·lr
  LINEAR = "linear"  # linear warm-up, then linear decay to end_lr_factor·lr


class Optimizer(enum.Enum):
  ADAMW = "adamw"
  ADAM = "adam"
  SGD = "sgd"


class PromptFormat(enum.Enum):
  PLAIN = "plain"  # "{prompt}\n"
  CHAT = "chat"  # the tokenizer's chat template with the generation prompt


# Rewards computed by rlx itself rather than the reward registry: the synthetic task verifier.
TASK_REWARD = "task"
# data.source values: synthetic tasks, prompt files, reasoning-gym generators, code problems.
DATA_SOURCES = ("task", "jsonl", "parquet", "reasoning_gym", "humaneval", "mbpp")
# The registry reward that scores a library source's examples (docs/data.md).
SOURCE_REWARDS = {"reasoning_gym": "reasoning_gym", "humaneval": "code", "mbpp": "code"}


def default_config() -> ml_collections.ConfigDict:
  """Every field rlx reads, with its default; config files override what they need."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # seeds parameter init, data order and sampling
  c.num_steps = 100  # optimizer updates (SFT) or RL steps of the main phase

  # --- model --------------------------------------------------------------------------------
  c.model = m = ml_collections.ConfigDict()
  m.preset = "custom"  # a name of rlx.models.PRESETS / "tiny-<family>", or "custom" (fields below)
  m.path = ""  # local Hugging Face checkpoint directory to load weights from ("" = random init)
  m.family = "llama"  # custom: checkpoint family (llama, qwen2, qwen3, gemma2)
  m.vocab_size = 512  # custom: V (512 = rlx's task tokenizer)
  m.d_model = 64  # custom: D
  m.n_layers = 2  # custom: L
  m.n_heads = 4  # custom: H
  m.n_kv_heads = 2  # custom: K
  m.head_dim = 16  # custom: E
  m.d_ff = 128  # custom: F
  m.tie_embeddings = False  # custom: LM head reuses the embedding matrix
  m.qkv_bias = False  # custom: bias on q/k/v projections (Qwen2)
  m.rope_theta = 10_000.0  # custom: RoPE base
  m.norm_eps = 1e-5  # custom: RMSNorm epsilon
  m.dtype = "float32"  # compute and parameter dtype (float32 / bfloat16)
  m.logprob_chunk = 4096  # vocabulary chunk of the log-prob computation (rounded to divide V)
  m.value_head = False  # build a value network (PPO) initialised from the policy

  # --- data ---------------------------------------------------------------------------------
  c.data = d = ml_collections.ConfigDict()
  d.source = "task"  # "task" (synthetic, rlx.data.TASKS), "jsonl" or "parquet" (d.path),
  #                    "reasoning_gym" (d.task), "humaneval" or "mbpp" (code problems, d.path)
  d.task = "calculation"  # synthetic task name (rlx.data.TASKS); reasoning_gym: generator name
  d.task_config = ml_collections.ConfigDict()  # reasoning_gym: the generator's config fields
  #                                              (its difficulty), e.g. {"max_terms": 2}
  d.difficulty = (1,)  # task difficulties, drawn per example
  d.train_size = 100_000  # examples in one epoch of the training split
  d.eval_size = 256  # held-out examples (the split continues the stream after train_size)
  d.path = ""  # jsonl/parquet source: the training file
  d.eval_path = ""  # jsonl/parquet: held-out file ("" = hold out the last eval_size records of path)
  d.prompt_key = "prompt"  # jsonl/parquet: column with the question
  d.answer_key = "answer"  # jsonl/parquet: column with the reference answer ("" = none)
  d.solution_key = ""  # jsonl/parquet: column with a worked solution (SFT target; "" = none)
  d.answer_fn = ""  # jsonl/parquet: answer column post-processing: "", "gsm8k" (#### x), "boxed"
  d.tokenizer = "task"  # "task" (rlx's 512-piece task tokenizer) or a tokenizer path
  d.prompt_format = "plain"  # plain or chat
  d.max_prompt_len = 64  # prompt tokens P (left-padded to this width)
  d.max_seq_len = 128  # SFT: sequence width S (right-padded)
  d.shuffle = True  # visit each epoch in a seeded permutation
  d.curriculum_stages = ()  # RL on task data: difficulty stages, each an int or a tuple of ints
  #                           (e.g. (1, 2, (3, 4))); () = off (train on data.difficulty)
  d.curriculum_promote_at = 0.8  # curriculum: promote once the pass-rate EMA reaches it, (0, 1]
  d.curriculum_min_steps = 10  # curriculum: RL steps in a stage before promotion by pass rate
  d.curriculum_decay = 0.9  # curriculum: decay of the stage's EMA of the step pass rate, [0, 1)
  d.curriculum_steps_per_stage = 0  # curriculum: promote every N RL steps (0 = by pass rate)

  # --- algorithm ----------------------------------------------------------------------------
  c.algo = a = ml_collections.ConfigDict()
  a.name = "grpo"  # one of rlx.config.Algorithm
  a.batch_size = 32  # sequences per step (SFT: examples; RL: prompts × group_size)
  a.group_size = 8  # G samples per prompt (must divide batch_size)
  a.epochs = 1  # passes over each step's batch
  a.minibatches = 1  # optimizer updates per epoch (must divide batch_size)
  a.micro_batch_size = 0  # rows per gradient-accumulation micro-batch (0 = whole minibatch)
  a.estimator = "grpo"  # rlx.core.AdvantageEstimator
  a.policy_loss = "ppo"  # rlx.core.PolicyLoss
  a.aggregation = "token-mean"  # rlx.core.Aggregation
  a.norm_constant = 0  # C of seq-mean-token-sum-norm (0 = sampling.max_new_tokens; with env.name,
  #                      the episode's completion width)
  a.kl_placement = "loss"  # none, loss or reward
  a.kl_estimator = "k3"  # rlx.core.KLEstimator
  a.beta = 0.04  # KL coefficient β (initial β when adaptive_kl)
  a.adaptive_kl = False  # Ziegler et al. controller on β
  a.kl_target = 6.0  # adaptive controller: target KL
  a.kl_horizon = 10_000  # adaptive controller: horizon
  a.eps_low = 0.2  # clip range below 1
  a.eps_high = 0.2  # clip range above 1 (DAPO clip-higher: 0.28)
  a.dual_clip = 0.0  # dual-clip constant c > 1 (0 = off)
  a.adv_eps = 1e-6  # ε in (r − μ)/(σ + ε)
  a.std_scope = "group"  # group or batch σ for GRPO
  a.gamma = 1.0  # discount (gae, reinforce_pp)
  a.lam = 0.95  # GAE λ
  a.value_coef = 0.5  # c_V
  a.vf_clip = 0.5  # value clip c_v
  a.entropy_coef = 0.0  # c_H
  a.tis_cap = 0.0  # truncated IS cap for sampler/trainer mismatch (0 = off)
  a.old_logprobs = "auto"  # π_old of the ratio: "sampler" (the sampler's own log-probs: no extra
  #                          forward pass), "recompute" (a trainer forward before the update), or
  #                          "auto" (sampler where it is exact: float32 model, tis_cap = 0)
  a.filter = "none"  # online group filter (rlx.config.FilterKind)
  a.filter_lo = 0.0  # balanced: lower pass-rate bound
  a.filter_hi = 1.0  # balanced: upper pass-rate bound
  a.max_refills = 4  # filters: extra sampling rounds before training on what was kept
  a.max_staleness = 0  # 1: sample step t+1's batch with the policy of step t and score it on
  #                      the host while step t's update runs on the device (0: synchronous)
  a.laser_alpha = 0.0  # LaSeR auxiliary-loss weight α (0 = off; paper 0.1)
  a.laser_beta = 0.1  # LaSeR β_v in r_s = β_v·(log π(z | x, y) − c_ref)
  a.laser_tau = 0.0  # LaSeR advantage mixing τ (0 = off; paper 0.1)
  a.laser_token = -1  # LaSeR token z (-1 = the last vocabulary id)
  a.laser_ref = True  # c_ref = the initial policy's log π_ref(z | x, y) per sample (else laser_c_ref)
  a.laser_c_ref = 0.0  # constant c_ref when laser_ref=False

  # --- optimizer ----------------------------------------------------------------------------
  c.optim = o = ml_collections.ConfigDict()
  o.name = "adamw"  # adamw, adam or sgd
  o.learning_rate = 1e-6  # peak learning rate
  o.schedule = "constant"  # constant, cosine or linear (after warm-up)
  o.warmup_steps = 0  # linear warm-up from 0
  o.end_lr_factor = 0.0  # final lr / peak lr for cosine and linear decay
  o.b1 = 0.9  # Adam β1
  o.b2 = 0.999  # Adam β2
  o.eps = 1e-8  # Adam ε
  o.weight_decay = 0.0  # decoupled weight decay (adamw)
  o.max_grad_norm = 1.0  # global-norm gradient clipping (0 = off)
  o.lora_plus_ratio = 1.0  # LoRA+ (Hayou et al. 2024): step size of the B adapters / of A
  #                         (1 = plain LoRA; the paper uses 16); only with lora.rank > 0

  # --- sampling -----------------------------------------------------------------------------
  c.sampling = s = ml_collections.ConfigDict()
  s.temperature = 1.0  # sampling temperature (log-probs use the same temperature)
  s.top_k = 0  # 0 = off
  s.top_p = 1.0  # nucleus threshold
  s.min_p = 0.0  # min-p threshold
  s.max_new_tokens = 64  # completion tokens T
  s.stop_at_eos = True  # stop a completion at the tokenizer's eos
  s.dtype = ""  # decode in "bfloat16" (weights and compute) while the trainer keeps model.dtype
  #              ("" = the model's); π_old is then recomputed (algo.old_logprobs=auto) and
  #              algo.tis_cap corrects the gap, logged as sampler_trainer_logp_diff
  s.decode_slots = 0  # > 0: continuous batching through this many decode rows (a row whose
  #                     sample ends takes the next; each sample's draws from its id, so the same
  #                     samples whatever the slot count); 0 = one static batch

  # --- multi-turn environments (docs/envs.md) -------------------------------------------------
  c.env = v = ml_collections.ConfigDict()
  v.name = ""  # "" = single-turn RL; "tools" (tool calls <tool>NAME: INPUT</tool>) or a
  #              rlx.envs.register_env name: episodes replace single completions, the environment's
  #              rewards replace rewards.name
  v.max_turns = 4  # model turns per episode
  v.max_obs_tokens = 128  # an observation keeps its first tokens
  v.max_episode_tokens = 0  # > 0: episodes whose actions + observations would exceed it end
  v.tools = ("calculator",)  # env "tools": names of rlx.envs.TOOLS (calculator, python, search)
  v.tool_timeout = 5.0  # seconds a tool call may take (then an error observation, counted)
  v.max_obs_chars = 1000  # env "tools": longer tool output is cut
  v.instructions = ""  # env "tools": text after the prompt (e.g. the tool-call format)
  v.kwargs = ml_collections.ConfigDict()  # a registered environment's keyword arguments
  v.tool_format = "tags"  # tool calls / observations: "tags" (<tool>NAME: INPUT</tool>, <obs>..),
  #                         "qwen" (<tool_call>{json}</tool_call>) or "llama3" (JSON calls); the
  #                         last two need data.prompt_format="chat" (the template's tool messages)
  v.self_play = True  # a game (env.name "nim", "textarena", a register_game name): every seat
  #                     is the policy (algo.group_size = games × seats per prompt); False: the
  #                     policy plays env.seat against env.opponent
  v.opponent = "random"  # a game's fixed opponent (evaluation, and training without self-play):
  #                        rlx.envs.OPPONENTS name ("random", "nim_optimal") or "module:callable"
  v.seat = 0  # the policy's seat without self-play (-1: every seat in turn)

  # --- rewards ------------------------------------------------------------------------------
  c.rewards = r = ml_collections.ConfigDict()
  r.name = TASK_REWARD  # "task" (the synthetic task's verifier) or a rlx.rewards registry name
  r.kwargs = ml_collections.ConfigDict()  # keyword arguments of the registry reward
  r.overlong_buffer = 0  # DAPO soft overlong punishment buffer L_buf (0 = off)
  r.overlong_filter = False  # DAPO overlong filtering: truncated samples get mask 0
  r.length_cap = False  # ThinkPrune: a completion that hit max_new_tokens scores truncated_score
  r.truncated_score = 0.0  # the score of a length-truncated completion under length_cap

  # --- preference optimisation, reward models, iterative DPO (docs/preference.md) -----------
  c.pref = p = ml_collections.ConfigDict()
  p.loss = "dpo"  # rlx.core.PreferenceLoss: dpo, robust, ipo, hinge, simpo, orpo, kto
  p.beta = 0.1  # β of every loss (SimPO's β: 2.0)
  p.label_smoothing = 0.0  # ε of cDPO (dpo) and robust DPO (robust), in [0, 0.5)
  p.length_normalize = False  # ipo: divide c and j by the completion lengths
  p.gamma = 0.5  # SimPO target margin γ
  p.orpo_lambda = 0.1  # ORPO λ (weight of the odds-ratio term)
  p.kto_desirable_weight = 1.0  # KTO w_d
  p.kto_undesirable_weight = 1.0  # KTO w_u
  p.margin_coef = 1.0  # × the data's per-pair margin (dpo/robust/hinge/rm: βΔ − m; simpo: γ + m)
  p.center_coef = 0.0  # reward model: centering λ·(s_c + s_r)²
  p.reference = "precompute"  # reference log-probs: "precompute" (once, cached .npz) or "online"
  p.cache_dir = ""  # where precomputed reference log-probs are cached ("" = WORKDIR/reference)
  p.corruption = "answer"  # synthetic pairs: rejected = wrong final answer, or "guess" (bare guess)
  p.margins = False  # synthetic pairs carry a margin (the size of the answer's error)
  p.chosen_key = "chosen"  # jsonl pairs: column of the preferred completion
  p.rejected_key = "rejected"  # jsonl pairs: column of the dispreferred completion
  p.margin_key = "margin"  # jsonl pairs: optional per-pair margin column
  p.completion_key = "completion"  # jsonl KTO examples: column of the completion
  p.label_key = "label"  # jsonl KTO examples: column of the desirable (true) / undesirable label
  p.length_buckets = ()  # allowed padded widths ≤ data.max_seq_len (() = data.max_seq_len only)
  p.eval_generation = False  # dpo: each evaluation also samples held-out prompts (greedy/pass@k)
  p.rounds = 3  # iterative_dpo: rounds (num_steps DPO updates in all, num_steps/rounds a round)
  p.round_prompts = 32  # iterative_dpo: prompts per round, algo.group_size samples each
  p.pair_rule = "best_worst"  # iterative_dpo: best_worst, or anchored (rejected = worst sample
  #                             of the initial policy for the same prompt)
  p.min_gap = 0.0  # iterative_dpo: a pair needs reward(chosen) − reward(rejected) > min_gap
  p.round_reference = "round"  # iterative_dpo: DPO reference = the policy at the round's start
  #                              ("round") or the initial policy ("initial")

  # --- warm start (quickstart: SFT before RL) -----------------------------------------------
  c.warm_start = w = ml_collections.ConfigDict()
  w.sft_steps = 0  # SFT updates before the RL phase (0 = none)
  w.learning_rate = 1e-3  # SFT learning rate of the warm start
  w.batch_size = 32  # SFT examples per update
  w.num_examples = 0  # demonstrations it may see: the first N training examples (0 = all)
  w.schedule = ""  # its step-size schedule: "" = optim.schedule, or constant / cosine / linear
  w.end_lr_factor = 0.1  # cosine / linear warm start: final lr = end_lr_factor · learning_rate
  w.cache_dir = ""  # reuse the warm start across runs: its params are kept under this directory,
  #                   keyed by everything that determines them ("" = run it in every workdir)

  # --- checkpointing ------------------------------------------------------------------------
  c.checkpoint = k = ml_collections.ConfigDict()
  k.every_steps = 50  # save every N steps (and at the end, and on SIGTERM/SIGINT)
  k.keep = 3  # keep the last K checkpoints
  k.init_from = ""  # an rlx checkpoint directory whose params initialise the policy ("" = none)
  k.on_nonfinite = "stop"  # a non-finite loss: "stop" the run (no checkpoint of the bad step)

  # --- evaluation ---------------------------------------------------------------------------
  c.eval = e = ml_collections.ConfigDict()
  e.every_steps = 0  # evaluate every N steps (0 = only at the start and the end)
  e.num_examples = 64  # held-out prompts per evaluation
  e.num_samples = 4  # k of pass@k / maj@k
  e.temperature = 1.0  # temperature of the sampled evaluation
  e.reward = "auto"  # what judges correctness: "auto" (the source's own verifier: the task's,
  #                    reasoning-gym's, the code tests; else the training reward), "task", or a
  #                    rlx.rewards registry name

  # --- logging ------------------------------------------------------------------------------
  c.logging = g = ml_collections.ConfigDict()
  g.every_steps = 1  # write metrics every N steps (fetched one step late)
  g.stdout = True  # also print them (a progress line about every 1% of the run)
  g.tensorboard = True  # also write TensorBoard event files to WORKDIR/tensorboard
  g.rollouts_every = 10  # episode runs (env.name): every N-th step's whole episodes to
  #                        WORKDIR/rollouts/ (python -m rlx.runtime.rollout_log WORKDIR); 0 = off

  # --- parameter-efficient training (docs/lora.md) -----------------------------------------
  c.lora = lo = ml_collections.ConfigDict()
  lo.rank = 0  # LoRA rank r (0 = full fine-tuning: every parameter trains)
  lo.alpha = 16.0  # scale s = alpha / r (alpha / sqrt(r) with rslora)
  lo.targets = PROJECTIONS  # projection names, or regular expressions matched against paths
  #                           like layers.3.attn.q_proj
  lo.dropout = 0.0  # dropout on the adapters' input during updates, [0, 1)
  lo.rslora = False  # rank-stabilised scaling alpha / sqrt(r)
  lo.quantize = ""  # frozen base kernels: "" (as loaded), "int8" (per channel), "nf4" (4-bit)
  lo.group_size = 64  # nf4: inputs per scale block (even; divides d_model, head_dim, d_ff)

  # --- mesh, multi-host and memory (docs/scaling.md) ------------------------------------------
  c.mesh = h = ml_collections.ConfigDict()
  h.data = 1  # data-parallel groups (parameters replicated across them); -1 = the rest
  h.fsdp = -1  # FSDP: parameters, optimizer state and batch rows split over it; -1 = the rest
  h.tensor = 1  # tensor parallelism over heads, MLP width and vocabulary; -1 = the rest
  h.rules = "fsdp_tp"  # logical-axis rule table: fsdp, tp, fsdp_tp, replicated (rlx.runtime.mesh)
  h.sampling_rules = "train"  # sampling's table: "train" (same layout, no copy) or a rules name
  h.remat = "none"  # per-layer activation remat in the update: none, full, dots, dots_no_batch
  h.param_dtype = ""  # parameter storage dtype ("" = model.dtype): float32 or bfloat16
  h.reference_dtype = ""  # frozen reference policy's dtype ("" = the parameters'): bfloat16 halves it
  h.distributed = "auto"  # jax.distributed.initialize: auto (cluster env or address set), on, off
  h.coordinator_address = ""  # host:port of process 0 ("" = from the environment)
  h.num_processes = 0  # processes of the run (0 = from the environment)
  h.process_id = -1  # this process's id (-1 = from the environment)
  h.cpu_collectives = "gloo"  # cross-process collectives of the CPU backend: gloo or mpi
  return c


# ---------------------------------------------------------------------------------------------
# Typed, frozen configuration.


@dataclasses.dataclass(frozen=True)
class ModelSection:
  preset: str
  path: str
  family: str
  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  head_dim: int
  d_ff: int
  tie_embeddings: bool
  qkv_bias: bool
  rope_theta: float
  norm_eps: float
  dtype: str
  logprob_chunk: int
  value_head: bool

  def model_config(self):
    """The ``rlx.models.ModelConfig`` (the architecture only; weights come from ``path``)."""
    from rlx import models
    if self.preset == "custom":
      return models.ModelConfig(
          family=self.family, vocab_size=self.vocab_size, d_model=self.d_model,
          n_layers=self.n_layers, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
          head_dim=self.head_dim, d_ff=self.d_ff, tie_embeddings=self.tie_embeddings,
          qkv_bias=self.qkv_bias, rope_theta=self.rope_theta, norm_eps=self.norm_eps,
          qk_norm=str(getattr(self.family, "value", self.family)) == "qwen3",  # Qwen3's q/k norm
          dtype=self.dtype, param_dtype=self.dtype)
    return models.get_config(self.preset, dtype=self.dtype, param_dtype=self.dtype)


@dataclasses.dataclass(frozen=True)
class DataSection:
  source: str
  task: str
  difficulty: tuple[int, ...]
  train_size: int
  eval_size: int
  path: str
  tokenizer: str
  prompt_format: PromptFormat
  max_prompt_len: int
  max_seq_len: int
  shuffle: bool
  eval_path: str = ""
  task_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  prompt_key: str = "prompt"
  answer_key: str = "answer"
  solution_key: str = ""
  answer_fn: str = ""
  curriculum_stages: tuple[int | tuple[int, ...], ...] = ()
  curriculum_promote_at: float = 0.8
  curriculum_min_steps: int = 10
  curriculum_decay: float = 0.9
  curriculum_steps_per_stage: int = 0


@dataclasses.dataclass(frozen=True)
class AlgoSection:
  name: Algorithm
  batch_size: int
  group_size: int
  epochs: int
  minibatches: int
  micro_batch_size: int
  estimator: core.AdvantageEstimator
  policy_loss: core.PolicyLoss
  aggregation: core.Aggregation
  norm_constant: float
  kl_placement: KLPlacement
  kl_estimator: core.KLEstimator
  beta: float
  adaptive_kl: bool
  kl_target: float
  kl_horizon: float
  eps_low: float
  eps_high: float
  dual_clip: float
  adv_eps: float
  std_scope: core.StdScope
  gamma: float
  lam: float
  value_coef: float
  vf_clip: float
  entropy_coef: float
  tis_cap: float
  filter: FilterKind
  filter_lo: float
  filter_hi: float
  max_refills: int
  max_staleness: int = 0
  old_logprobs: str = "auto"
  laser_alpha: float = 0.0
  laser_beta: float = 0.1
  laser_tau: float = 0.0
  laser_token: int = -1
  laser_ref: bool = True
  laser_c_ref: float = 0.0

  @property
  def num_prompts(self) -> int:
    return self.batch_size // self.group_size

  @property
  def minibatch_size(self) -> int:
    return self.batch_size // self.minibatches

  @property
  def micro_batch(self) -> int:
    return self.micro_batch_size or self.minibatch_size


@dataclasses.dataclass(frozen=True)
class OptimSection:
  name: Optimizer
  learning_rate: float
  schedule: Schedule
  warmup_steps: int
  end_lr_factor: float
  b1: float
  b2: float
  eps: float
  weight_decay: float
  max_grad_norm: float
  lora_plus_ratio: float = 1.0


@dataclasses.dataclass(frozen=True)
class SamplingSection:
  temperature: float
  top_k: int
  top_p: float
  min_p: float
  max_new_tokens: int
  stop_at_eos: bool
  dtype: str = ""
  decode_slots: int = 0


@dataclasses.dataclass(frozen=True)
class RewardsSection:
  name: str
  kwargs: Mapping[str, Any]
  overlong_buffer: int
  overlong_filter: bool
  length_cap: bool
  truncated_score: float


@dataclasses.dataclass(frozen=True)
class PrefSection:
  loss: core.PreferenceLoss = core.PreferenceLoss.DPO
  beta: float = 0.1
  label_smoothing: float = 0.0
  length_normalize: bool = False
  gamma: float = 0.5
  orpo_lambda: float = 0.1
  kto_desirable_weight: float = 1.0
  kto_undesirable_weight: float = 1.0
  margin_coef: float = 1.0
  center_coef: float = 0.0
  reference: str = "precompute"
  cache_dir: str = ""
  corruption: str = "answer"
  margins: bool = False
  chosen_key: str = "chosen"
  rejected_key: str = "rejected"
  margin_key: str = "margin"
  completion_key: str = "completion"
  label_key: str = "label"
  length_buckets: tuple[int, ...] = ()
  eval_generation: bool = False
  rounds: int = 3
  round_prompts: int = 32
  pair_rule: str = "best_worst"
  min_gap: float = 0.0
  round_reference: str = "round"


@dataclasses.dataclass(frozen=True)
class WarmStartSection:
  sft_steps: int
  learning_rate: float
  batch_size: int
  num_examples: int = 0
  schedule: Schedule | None = None  # None: optim.schedule (and optim.end_lr_factor)
  end_lr_factor: float = 0.1
  cache_dir: str = ""


@dataclasses.dataclass(frozen=True)
class CheckpointSection:
  every_steps: int
  keep: int
  init_from: str
  on_nonfinite: str = "stop"


@dataclasses.dataclass(frozen=True)
class EvalSection:
  every_steps: int
  num_examples: int
  num_samples: int
  temperature: float
  reward: str = "auto"


@dataclasses.dataclass(frozen=True)
class LoggingSection:
  every_steps: int
  stdout: bool
  tensorboard: bool = True
  rollouts_every: int = 10


@dataclasses.dataclass(frozen=True)
class MeshSection:
  data: int = 1
  fsdp: int = -1
  tensor: int = 1
  rules: str = "fsdp_tp"
  sampling_rules: str = "train"
  remat: str = "none"
  param_dtype: str = ""
  reference_dtype: str = ""
  distributed: str = "auto"
  coordinator_address: str = ""
  num_processes: int = 0
  process_id: int = -1
  cpu_collectives: str = "gloo"


@dataclasses.dataclass(frozen=True)
class LoraSection:
  rank: int = 0
  alpha: float = 16.0
  targets: tuple[str, ...] = PROJECTIONS
  dropout: float = 0.0
  rslora: bool = False
  quantize: str = ""
  group_size: int = 64

  @property
  def enabled(self) -> bool:
    return self.rank > 0

  def spec(self):
    """The ``rlx.models.LoRASpec`` (None for full fine-tuning)."""
    if not self.enabled:
      return None
    from rlx.models.config import LoRASpec
    return LoRASpec(rank=self.rank, alpha=self.alpha, targets=tuple(self.targets),
                    dropout=self.dropout, rslora=self.rslora, quantize=self.quantize,
                    group_size=self.group_size)


@dataclasses.dataclass(frozen=True)
class EnvSection:
  name: str = ""
  max_turns: int = 4
  max_obs_tokens: int = 128
  max_episode_tokens: int = 0
  tools: tuple = ("calculator",)
  tool_timeout: float = 5.0
  max_obs_chars: int = 1000
  instructions: str = ""
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  tool_format: str = "tags"
  self_play: bool = True
  opponent: str = "random"
  seat: int = 0

  @property
  def enabled(self) -> bool:
    return bool(self.name)

  @property
  def game(self) -> bool:
    """Whether ``name`` is a game (``rlx.envs.register_game``): seats, opponents, win rates."""
    from rlx.envs import game_names
    return self.name in game_names()

  @functools.cached_property
  def players(self) -> int:
    """A game's number of seats (1 for other environments); made once per section (the RL step
    asks every step, and a textarena game is not free to make)."""
    if not self.game:
      return 1
    from rlx.envs import make_game
    return make_game(self.name, **dict(self.kwargs)).num_players

  @property
  def seats(self) -> int:
    """Episode rows per played game: the game's seats with self-play, else 1."""
    return self.players if self.self_play else 1

  def completion_width(self, max_new_tokens: int) -> int:
    """An episode's completion width (actions + observations), fixed per run so that the update
    compiles once: every turn's budget and every observation but the last turn's, capped by
    ``max_episode_tokens``."""
    # (a game's seat may read an observation before each of its turns: the other's move)
    observations = self.max_turns if self.game else self.max_turns - 1
    width = self.max_turns * max_new_tokens + observations * self.max_obs_tokens
    if self.max_episode_tokens:
      width = min(width, max(self.max_episode_tokens, max_new_tokens))
    return width

  def make_kwargs(self) -> dict:
    """Keyword arguments of ``rlx.envs.make_env(name, ...)``."""
    if self.name == "tools":
      return dict(tools=tuple(self.tools), tool_timeout=self.tool_timeout,
                  max_obs_chars=self.max_obs_chars, instructions=self.instructions or None,
                  tool_format=self.tool_format, **dict(self.kwargs))
    return dict(self.kwargs)


@dataclasses.dataclass(frozen=True)
class RunConfig:
  seed: int
  num_steps: int
  model: ModelSection
  data: DataSection
  algo: AlgoSection
  optim: OptimSection
  sampling: SamplingSection
  rewards: RewardsSection
  warm_start: WarmStartSection
  checkpoint: CheckpointSection
  eval: EvalSection
  logging: LoggingSection
  mesh: MeshSection = MeshSection()
  pref: PrefSection = PrefSection()
  lora: LoraSection = LoraSection()
  env: EnvSection = EnvSection()

  @property
  def is_rl(self) -> bool:
    return self.algo.name is not Algorithm.SFT


# ---------------------------------------------------------------------------------------------
# Validation.


def _allowed(values) -> str:
  return ", ".join(repr(v) for v in values)


def _enum(field: str, value, kind: type[enum.Enum]):
  try:
    return kind(value)
  except ValueError:
    raise ConfigError(f"config.{field}={value!r}: unknown value; allowed values: "
                      f"{_allowed(m.value for m in kind)}") from None


def _check(cond: bool, field: str, value, fix: str) -> None:
  if not cond:
    raise ConfigError(f"config.{field}={value!r}: {fix}")


def _positive(field, value, integer=False):
  _check(value > 0, field, value, f"must be > 0 (a positive {'integer' if integer else 'number'})")


def _non_negative(field, value):
  _check(value >= 0, field, value, "must be >= 0")


def unknown_field(prefix: str, name: str, names) -> str:
  """The message for an unknown field ``name`` of section ``config.<prefix>`` (``prefix`` ""
  for the top level): the nearest known name if one is close, else the known names."""
  names = [str(n) for n in names]
  field = f"config.{prefix}.{name}" if prefix else f"config.{name}"
  near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
  if near:
    return f"{field}: unknown field; did you mean {near[0]}?"
  section = f"config.{prefix}" if prefix else "config"
  return f"{field}: unknown field; fields of {section}: {', '.join(names)}"


def _section(cfg, name):
  section = cfg.get(name)
  if section is None:
    raise ConfigError(f"config.{name} is missing; start the config from rlx.config.default_config()")
  return section


def _fields(cls, section, prefix, *, defaults: bool = False, **resolved):
  """``cls`` from a config section: unknown fields fail naming the field; a missing field fails
  too, or (``defaults=True``, for sections older configs may lack) takes the class default."""
  names = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(section.keys()) - set(names))
  if unknown:
    raise ConfigError(unknown_field(prefix, unknown[0], names))
  values = {}
  for n in names:
    if n in resolved:
      values[n] = resolved[n]
    elif n in section:
      values[n] = section[n]
    elif not defaults:
      raise ConfigError(f"config.{prefix}.{n} is missing; start from rlx.config.default_config()")
  return cls(**values)


def reward_names() -> list[str]:
  """Names ``rewards.name`` accepts: ``"task"`` and every ``rlx.rewards`` registry name."""
  try:
    from rlx.rewards import list_rewards
  except ImportError:  # HOOK: the reward library is optional at import time
    return [TASK_REWARD]
  return [TASK_REWARD] + list_rewards()


def validate(cfg: ml_collections.ConfigDict, *, check_paths: bool = True) -> RunConfig:
  """Checks ``cfg`` and returns the typed, frozen :class:`RunConfig`.

  Raises :class:`ConfigError` naming the field, the value and the allowed values / fix. With
  ``check_paths=False`` directories named by the config need not exist (tests of paper recipes).
  """
  if isinstance(cfg, ml_collections.ConfigDict):
    cfg = cfg.to_dict()
  cfg = dict(cfg)

  # model
  m = dict(_section(cfg, "model"))
  from rlx import models
  presets = ["custom"] + sorted(models.PRESETS) + [f"tiny-{n}" for n in sorted(models.TINY)]
  _check(m.get("preset") in presets, "model.preset", m.get("preset"),
         f"unknown model preset; allowed values: {_allowed(presets)}")
  _check(m.get("dtype") in ("float32", "bfloat16"), "model.dtype", m.get("dtype"),
         "allowed values: 'float32', 'bfloat16'")
  _positive("model.logprob_chunk", m.get("logprob_chunk", 0), True)
  if m.get("path") and check_paths:
    _check(os.path.isdir(m["path"]), "model.path", m["path"],
           "checkpoint directory does not exist; point it at a local Hugging Face model directory "
           "(config.json + *.safetensors) or set it to '' for random init")
  model = _fields(ModelSection, m, "model")
  try:
    model_config = model.model_config()
  except (ValueError, KeyError) as e:
    raise ConfigError(f"config.model: {e}") from None

  # data
  d = dict(_section(cfg, "data"))
  _check(d.get("source") in DATA_SOURCES, "data.source", d.get("source"),
         f"allowed values: {_allowed(DATA_SOURCES)}")
  d["task_config"] = dict(d.get("task_config") or {})  # configs saved before the field existed
  _check(d.get("answer_fn", "") in ("", "gsm8k", "boxed"), "data.answer_fn", d.get("answer_fn"),
         "allowed values: '', 'gsm8k', 'boxed'")
  if d.get("source") == "task":
    from rlx.data import TASKS
    _check(d.get("task") in TASKS, "data.task", d.get("task"),
           f"unknown task; allowed values: {_allowed(sorted(TASKS))}")
    from rlx.data import get_task
    task = get_task(d["task"])
    for level in (d.get("difficulty") if isinstance(d.get("difficulty"), (list, tuple))
                  else (d.get("difficulty"),)):
      try:
        task.check_difficulty(int(level))
      except ValueError as e:
        raise ConfigError(f"config.data.difficulty={d.get('difficulty')!r}: {e}") from None
  elif d.get("source") == "reasoning_gym":
    _reasoning_gym_data(d)
  elif check_paths:
    _check(os.path.isfile(d.get("path", "")), "data.path", d.get("path"),
           f"{d.get('source')} file does not exist")
    _check(not d.get("eval_path") or os.path.isfile(d["eval_path"]), "data.eval_path",
           d.get("eval_path"), f"{d.get('source')} file does not exist ('' = hold out the last "
           "data.eval_size records of data.path)")
  difficulty = d.get("difficulty")
  difficulty = tuple(int(x) for x in (difficulty if isinstance(difficulty, (list, tuple))
                                      else (difficulty,)))
  _positive("data.train_size", d.get("train_size", 0), True)
  _positive("data.max_prompt_len", d.get("max_prompt_len", 0), True)
  _positive("data.max_seq_len", d.get("max_seq_len", 0), True)
  stages = _curriculum_stages(d)
  _check(0 < d.get("curriculum_promote_at", 0.8) <= 1, "data.curriculum_promote_at",
         d.get("curriculum_promote_at"), "must be in (0, 1] (a pass rate)")
  _check(isinstance(d.get("curriculum_min_steps", 10), int) and d.get("curriculum_min_steps", 10)
         >= 1, "data.curriculum_min_steps", d.get("curriculum_min_steps"),
         "must be an integer >= 1")
  _check(0 <= d.get("curriculum_decay", 0.9) < 1, "data.curriculum_decay",
         d.get("curriculum_decay"), "must be in [0, 1)")
  _check(isinstance(d.get("curriculum_steps_per_stage", 0), int)
         and d.get("curriculum_steps_per_stage", 0) >= 0, "data.curriculum_steps_per_stage",
         d.get("curriculum_steps_per_stage"),
         "must be an integer >= 0 (0 = promote by pass rate)")
  data = _fields(DataSection, d, "data", difficulty=difficulty, curriculum_stages=stages,
                 prompt_format=_enum("data.prompt_format", d.get("prompt_format"), PromptFormat))
  if data.tokenizer == "task":
    _check(model_config.vocab_size >= 512, "model.vocab_size", model_config.vocab_size,
           "the task tokenizer has 512 pieces; set model.vocab_size >= 512")

  # algorithm
  a = dict(_section(cfg, "algo"))
  name = _enum("algo.name", a.get("name"), Algorithm)
  _check(not stages or (name not in OFFLINE_ALGORITHMS and name not in PREFERENCE_ALGORITHMS),
         "data.curriculum_stages", stages,
         f"a curriculum schedules the prompts of the RL loop; algo.name={name.value!r} has none: "
         "use an RL algorithm (grpo, dr_grpo, dapo, gspo, cispo, rloo, reinforce_pp, "
         "reinforce_pp_baseline, remax, ppo, rejection_sft) or set data.curriculum_stages=()")
  _positive("algo.batch_size", a.get("batch_size", 0), True)
  _positive("algo.group_size", a.get("group_size", 0), True)
  bs, g = a["batch_size"], a["group_size"]
  if name not in OFFLINE_ALGORITHMS and name is not Algorithm.ITERATIVE_DPO:
    _check(bs % g == 0, "algo.group_size", g,
           f"must divide algo.batch_size={bs} (sequences per step = prompts × group_size); "
           f"e.g. set algo.batch_size to {max(1, bs // g) * g}")
  _positive("algo.epochs", a.get("epochs", 0), True)
  _positive("algo.minibatches", a.get("minibatches", 0), True)
  _check(bs % a["minibatches"] == 0, "algo.minibatches", a["minibatches"],
         f"must divide algo.batch_size={bs}")
  mb = bs // a["minibatches"]
  micro = a.get("micro_batch_size", 0)
  _non_negative("algo.micro_batch_size", micro)
  _check(micro == 0 or mb % micro == 0, "algo.micro_batch_size", micro,
         f"must divide the minibatch size {mb} (= batch_size / minibatches), or be 0")
  for f in ("beta", "kl_target", "kl_horizon", "eps_low", "eps_high", "value_coef", "vf_clip",
            "entropy_coef", "tis_cap", "adv_eps", "norm_constant"):
    _non_negative(f"algo.{f}", a.get(f, 0))
  _check(a.get("dual_clip", 0) == 0 or a["dual_clip"] > 1, "algo.dual_clip", a.get("dual_clip"),
         "must be 0 (off) or > 1")
  _check(0 <= a.get("gamma", 1) <= 1, "algo.gamma", a.get("gamma"), "must be in [0, 1]")
  _check(0 <= a.get("lam", 1) <= 1, "algo.lam", a.get("lam"), "must be in [0, 1]")
  _check(0 <= a.get("filter_lo", 0) <= a.get("filter_hi", 1) <= 1, "algo.filter_lo",
         (a.get("filter_lo"), a.get("filter_hi")), "need 0 <= filter_lo <= filter_hi <= 1")
  _non_negative("algo.max_refills", a.get("max_refills", 0))
  a.setdefault("max_staleness", 0)
  _check(a["max_staleness"] in (0, 1), "algo.max_staleness", a["max_staleness"],
         "allowed values: 0 (synchronous) or 1 (the next batch is sampled by the policy before "
         "this step's update; on one device a deeper pipeline overlaps nothing more)")
  a.setdefault("old_logprobs", "auto")  # configs saved before the field existed
  _check(a["old_logprobs"] in OLD_LOGPROBS, "algo.old_logprobs", a["old_logprobs"],
         f"allowed values: {_allowed(OLD_LOGPROBS)}")
  algo = _fields(
      AlgoSection, a, "algo", name=name,
      estimator=_enum("algo.estimator", a.get("estimator"), core.AdvantageEstimator),
      policy_loss=_enum("algo.policy_loss", a.get("policy_loss"), core.PolicyLoss),
      aggregation=_enum("algo.aggregation", a.get("aggregation"), core.Aggregation),
      kl_placement=_enum("algo.kl_placement", a.get("kl_placement"), KLPlacement),
      kl_estimator=_enum("algo.kl_estimator", a.get("kl_estimator"), core.KLEstimator),
      std_scope=_enum("algo.std_scope", a.get("std_scope"), core.StdScope),
      filter=_enum("algo.filter", a.get("filter"), FilterKind),
      norm_constant=float(a.get("norm_constant") or 0))
  if name is Algorithm.PPO:
    _check(algo.estimator is core.AdvantageEstimator.GAE, "algo.estimator", algo.estimator.value,
           "PPO needs the 'gae' estimator (it trains a value network)")
    _check(model.value_head, "model.value_head", model.value_head, "PPO needs model.value_head=True")
  elif name not in (Algorithm.SFT, Algorithm.REJECTION_SFT):
    _check(algo.estimator is not core.AdvantageEstimator.GAE, "algo.estimator", "gae",
           "'gae' needs a value network: use algo.name='ppo'")
  group_estimators = (core.AdvantageEstimator.GRPO, core.AdvantageEstimator.DR_GRPO,
                      core.AdvantageEstimator.RLOO, core.AdvantageEstimator.GRPO_PASSK,
                      core.AdvantageEstimator.OPO, core.AdvantageEstimator.REINFORCE_PP_BASELINE)
  if name is Algorithm.REJECTION_SFT:
    _check_rejection_sft(algo)
  elif name not in OFFLINE_ALGORITHMS and algo.group_size < 2:
    _check(algo.estimator not in group_estimators, "algo.group_size", algo.group_size,
           f"estimator {algo.estimator.value!r} compares samples within a group: every advantage "
           "would be 0 with one sample per prompt; set algo.group_size >= 2")
    _check(algo.filter is FilterKind.NONE, "algo.group_size", algo.group_size,
           f"filter {algo.filter.value!r} keeps groups by their reward spread: set "
           "algo.group_size >= 2 or algo.filter='none'")
  if name is not Algorithm.SFT and algo.adaptive_kl:
    _check(algo.kl_placement is not KLPlacement.NONE and algo.beta > 0, "algo.adaptive_kl", True,
           "the adaptive KL controller needs a KL term: set algo.kl_placement to 'loss' or "
           "'reward' and algo.beta > 0 (the initial β)")
    _check(algo.kl_target > 0 and algo.kl_horizon > 0, "algo.kl_target",
           (algo.kl_target, algo.kl_horizon), "adaptive KL needs kl_target > 0 and kl_horizon > 0")
  if name is Algorithm.REMAX:
    _check(algo.estimator is core.AdvantageEstimator.REMAX, "algo.estimator",
           algo.estimator.value, "ReMax uses the 'remax' estimator (greedy-rollout baseline)")
  _non_negative("algo.laser_alpha", algo.laser_alpha)
  if algo.laser_alpha > 0:
    _check(name not in (Algorithm.SFT, Algorithm.PPO, Algorithm.REJECTION_SFT), "algo.laser_alpha",
           algo.laser_alpha,
           "LaSeR's auxiliary loss trains with the GRPO-family update; set it to 0 for "
           f"algo.name={name.value!r}")
    _positive("algo.laser_beta", algo.laser_beta)
    _check(0 <= algo.laser_tau <= 1, "algo.laser_tau", algo.laser_tau, "must be in [0, 1]")
    _check(-1 <= algo.laser_token < model_config.vocab_size, "algo.laser_token",
           algo.laser_token, f"must be -1 (the last id) or a token id < model vocab "
           f"{model_config.vocab_size}")

  # optimizer
  o = dict(_section(cfg, "optim"))
  _check(o.get("learning_rate", -1) > 0,
         "optim.learning_rate", o.get("learning_rate"),
         "must be > 0 (a positive step size, e.g. 1e-6 for RL, 1e-3 for a tiny SFT model)")
  _non_negative("optim.warmup_steps", o.get("warmup_steps", 0))
  _non_negative("optim.weight_decay", o.get("weight_decay", 0))
  _non_negative("optim.max_grad_norm", o.get("max_grad_norm", 0))
  _check(0 <= o.get("end_lr_factor", 0) <= 1, "optim.end_lr_factor", o.get("end_lr_factor"),
         "must be in [0, 1]")
  o.setdefault("lora_plus_ratio", 1.0)  # configs saved before the field existed
  _check(o["lora_plus_ratio"] > 0, "optim.lora_plus_ratio", o["lora_plus_ratio"],
         "must be > 0 (the B adapters' step size over the A adapters'; 1 = plain LoRA)")
  optim = _fields(OptimSection, o, "optim", name=_enum("optim.name", o.get("name"), Optimizer),
                  schedule=_enum("optim.schedule", o.get("schedule"), Schedule))

  # sampling
  s = dict(_section(cfg, "sampling"))
  _positive("sampling.temperature", s.get("temperature", 0))
  _positive("sampling.max_new_tokens", s.get("max_new_tokens", 0), True)
  _non_negative("sampling.top_k", s.get("top_k", 0))
  _check(0 < s.get("top_p", 1) <= 1, "sampling.top_p", s.get("top_p"), "must be in (0, 1]")
  s.setdefault("dtype", "")  # configs saved before the field existed
  _check(s["dtype"] in ("", "float32", "bfloat16"), "sampling.dtype", s["dtype"],
         "allowed values: '' (the model's dtype), 'float32', 'bfloat16'")
  s.setdefault("decode_slots", 0)
  _non_negative("sampling.decode_slots", s["decode_slots"])
  sampling = _fields(SamplingSection, s, "sampling")

  # rewards
  r = dict(_section(cfg, "rewards"))
  names = reward_names()
  _check(r.get("name") in names, "rewards.name", r.get("name"),
         f"unknown reward; allowed values: {_allowed(names)}")
  _check(not (r.get("name") == TASK_REWARD and data.source != "task"
              and name not in OFFLINE_ALGORITHMS), "rewards.name",
         r.get("name"), "the 'task' verifier needs data.source='task'; for a file source use a "
         "registry reward such as 'math_answer' or 'exact_match'"
         + (f" ({SOURCE_REWARDS[data.source]!r} for data.source={data.source!r})"
            if data.source in SOURCE_REWARDS else ""))
  _check(not (r.get("name") == "reasoning_gym" and data.source != "reasoning_gym"
              and name not in OFFLINE_ALGORITHMS), "rewards.name", r.get("name"),
         "the 'reasoning_gym' reward scores examples of data.source='reasoning_gym' (is "
         f"{data.source!r})")
  _non_negative("rewards.overlong_buffer", r.get("overlong_buffer", 0))
  rewards = _fields(RewardsSection, r, "rewards", kwargs=dict(r.get("kwargs") or {}))

  # warm start, checkpoint, eval, logging
  w = dict(_section(cfg, "warm_start"))
  _non_negative("warm_start.sft_steps", w.get("sft_steps", 0))
  _check(w.get("learning_rate", -1) > 0, "warm_start.learning_rate", w.get("learning_rate"),
         "must be > 0")
  _positive("warm_start.batch_size", w.get("batch_size", 0), True)
  w.setdefault("cache_dir", "")  # configs saved before the fields existed
  w.setdefault("end_lr_factor", 0.1)
  w.setdefault("num_examples", 0)
  _non_negative("warm_start.num_examples", w["num_examples"])
  w["schedule"] = _enum("warm_start.schedule", w["schedule"], Schedule) if w.get("schedule") \
      else None
  _check(0 <= w["end_lr_factor"] <= 1, "warm_start.end_lr_factor", w["end_lr_factor"],
         "must be in [0, 1]")
  _check(isinstance(w["cache_dir"], str), "warm_start.cache_dir", w["cache_dir"],
         'must be a directory path, or "" for no cache')
  warm_start = _fields(WarmStartSection, w, "warm_start")
  k = dict(_section(cfg, "checkpoint"))
  _positive("checkpoint.every_steps", k.get("every_steps", 0), True)
  _positive("checkpoint.keep", k.get("keep", 0), True)
  if k.get("init_from") and check_paths:
    _check(os.path.isdir(k["init_from"]), "checkpoint.init_from", k["init_from"],
           "checkpoint directory does not exist; give an rlx checkpoint directory (a workdir's "
           "'checkpoints' folder) or set it to ''")
  k.setdefault("on_nonfinite", "stop")  # configs saved before the field existed
  _check(k["on_nonfinite"] == "stop", "checkpoint.on_nonfinite", k["on_nonfinite"],
         'must be "stop" (stop the run at a non-finite loss, keeping the last good checkpoint); '
         '"rollback" is not implemented yet')
  checkpoint = _fields(CheckpointSection, k, "checkpoint")
  e = dict(_section(cfg, "eval"))
  _non_negative("eval.every_steps", e.get("every_steps", 0))
  _non_negative("eval.num_examples", e.get("num_examples", 0))
  _positive("eval.num_samples", e.get("num_samples", 0), True)
  _check(e.get("reward", "auto") in ["auto"] + names, "eval.reward", e.get("reward"),
         f"unknown reward; allowed values: {_allowed(['auto'] + names)}")
  _check(not (e.get("reward") == TASK_REWARD and data.source != "task"), "eval.reward",
         e.get("reward"), "the 'task' verifier needs data.source='task'")
  evaluation = _fields(EvalSection, e, "eval")
  lg = dict(_section(cfg, "logging"))
  _positive("logging.every_steps", lg.get("every_steps", 0), True)
  _non_negative("logging.rollouts_every", lg.get("rollouts_every", 0))
  logging = _fields(LoggingSection, lg, "logging")
  mesh = _mesh_section(cfg.get("mesh") or {}, algo)
  lora = _lora_section(cfg.get("lora") or {}, _architecture(model, model_config, check_paths))
  env = _env_section(cfg.get("env") or {}, algo, data)
  if algo.aggregation is core.Aggregation.SEQ_MEAN_TOKEN_SUM_NORM and not algo.norm_constant:
    # C defaults to the completion width: a turn's budget, or an episode's with env.name
    width = (env.completion_width(sampling.max_new_tokens) if env.enabled
             else sampling.max_new_tokens)
    algo = dataclasses.replace(algo, norm_constant=float(width))

  _check(isinstance(cfg.get("num_steps"), int) and cfg["num_steps"] >= 0, "num_steps",
         cfg.get("num_steps"), "must be an integer >= 0")
  known = {f.name for f in dataclasses.fields(RunConfig)}
  unknown = sorted(set(cfg) - known)
  if unknown:
    raise ConfigError(unknown_field("", unknown[0], sorted(known)))
  return RunConfig(seed=int(cfg.get("seed", 0)), num_steps=int(cfg["num_steps"]), model=model,
                   data=data, algo=algo, optim=optim, sampling=sampling, rewards=rewards,
                   warm_start=warm_start, checkpoint=checkpoint, eval=evaluation, logging=logging,
                   mesh=mesh, lora=lora, env=env,
                   pref=_pref_section(cfg.get("pref") or {}, name, data, algo,
                                      int(cfg["num_steps"])))


def _env_section(section, algo: AlgoSection, data: DataSection | None = None) -> EnvSection:
  from rlx.envs import OPPONENTS, TOOLS, env_names, game_names
  v = dict(section)
  v["kwargs"] = dict(v.get("kwargs") or {})
  v["tools"] = tuple(v.get("tools", ("calculator",)))
  env = _fields(EnvSection, v, "env", defaults=True)
  if not env.name:
    return env
  _check(env.name in env_names() + game_names(), "env.name", env.name,
         f"unknown environment; allowed values: {_allowed([''] + env_names() + game_names())}")
  single_turn = (OFFLINE_ALGORITHMS - {Algorithm.SFT}) | PREFERENCE_ALGORITHMS | {
      Algorithm.REJECTION_SFT, Algorithm.REMAX}
  _check(algo.name not in single_turn, "env.name", env.name,
         f"episodes are trained by the policy-gradient algorithms (grpo family, ppo) and "
         f"demonstrated to sft (the warm start of an episode run), not "
         f"algo.name={algo.name.value!r}")
  _positive("env.max_turns", env.max_turns, True)
  _positive("env.max_obs_tokens", env.max_obs_tokens, True)
  _non_negative("env.max_episode_tokens", env.max_episode_tokens)
  _positive("env.tool_timeout", env.tool_timeout)
  _positive("env.max_obs_chars", env.max_obs_chars, True)
  from rlx.envs import TOOL_FORMATS
  _check(env.tool_format in TOOL_FORMATS, "env.tool_format", env.tool_format,
         f"unknown tool-call format; allowed values: {_allowed(TOOL_FORMATS)}")
  _check(env.tool_format == "tags" or data is None or data.prompt_format is PromptFormat.CHAT,
         "env.tool_format", env.tool_format, "the qwen / llama3 tool formats are chat-template "
         "turns (tool calls, tool messages): set data.prompt_format='chat'")
  if env.game:
    _check(env.opponent in OPPONENTS or ":" in env.opponent, "env.opponent", env.opponent,
           f"allowed values: {_allowed(sorted(OPPONENTS))} or 'module:callable'")
    players, seats = env.players, env.seats
    _check(-1 <= env.seat < players, "env.seat", env.seat,
           f"must be a seat of the game, 0..{players - 1}, or -1 (every seat in turn)")
    _check(algo.name is Algorithm.SFT or algo.group_size % seats == 0, "algo.group_size",
           algo.group_size,
           f"self-play plays group_size / {seats} games per prompt, one row per seat: must be a "
           f"multiple of {seats}")
  if env.name == "tools":
    for t in env.tools:
      _check(t in TOOLS, "env.tools", t, f"unknown tool; allowed values: {_allowed(sorted(TOOLS))}")
    if "search" in env.tools:
      search = dict(dict(env.kwargs.get("tool_kwargs") or {}).get("search") or {})
      _check(bool(search.get("documents")), "env.kwargs.tool_kwargs.search.documents",
             search.get("documents"), "the search tool needs a local document collection "
             "(a JSONL file of {title, text} or a directory of .txt files)")
  return env


def _check_rejection_sft(algo: AlgoSection) -> None:
  """rejection_sft takes one plain SFT step per sampling round on the verified samples: the
  policy-gradient fields (filters, KL, several epochs / minibatches) have no meaning there."""
  why = "rejection_sft takes one SFT step on the verified samples of each round"
  _check(algo.filter is FilterKind.NONE, "algo.filter", algo.filter.value,
         f"{why}, keeping every sample with score >= 1 itself; set algo.filter='none'")
  _check(algo.kl_placement is KLPlacement.NONE or algo.beta == 0, "algo.kl_placement",
         algo.kl_placement.value, f"{why} and has no KL term; set algo.kl_placement='none' and "
         "algo.beta=0 (rlx.config.apply_algorithm(cfg, 'rejection_sft') does)")
  _check(not algo.adaptive_kl, "algo.adaptive_kl", True, f"{why} and has no KL term to adapt")
  for field in ("epochs", "minibatches"):
    _check(getattr(algo, field) == 1, f"algo.{field}", getattr(algo, field),
           f"{why}: set algo.{field}=1 (algo.micro_batch_size splits the step into micro-batches)")


def _reasoning_gym_data(d: dict) -> None:
  """``data.task`` names a reasoning-gym generator and ``data.task_config`` is a valid config of
  it (the library is needed: ``pip install 'rlx[tasks]'``)."""
  from rlx.data import reasoning_gym as rg
  try:
    names = rg.generator_names()
  except ImportError as e:
    raise ConfigError(f"config.data.source='reasoning_gym': {e}") from None
  _check(d.get("task") in names, "data.task", d.get("task"),
         f"unknown reasoning-gym generator; allowed values: {_allowed(names)}")
  try:
    rg.create(d["task"], d["task_config"], size=1, seed=0)
  except ValueError as e:
    raise ConfigError(f"config.data.task_config={d['task_config']!r}: {e}") from None


def _curriculum_stages(d) -> tuple[int | tuple[int, ...], ...]:
  """``data.curriculum_stages`` as a tuple of difficulties (an int, or a tuple of ints drawn from
  per example), each checked against the task like ``data.difficulty``; only task data has
  difficulties to schedule."""
  stages = d.get("curriculum_stages") or ()
  _check(isinstance(stages, (list, tuple)), "data.curriculum_stages", stages,
         "must be a tuple of difficulties, each an int or a tuple of ints (() = off)")
  if not stages:
    return ()
  _check(d.get("source") == "task", "data.curriculum_stages", stages,
         f"a curriculum schedules task difficulties: needs data.source='task' (is "
         f"{d.get('source')!r}); set data.curriculum_stages=() for file data")
  from rlx.data import get_task
  task = get_task(d["task"])
  out = []
  for stage in stages:
    levels = tuple(stage) if isinstance(stage, (list, tuple)) else (stage,)
    _check(len(levels) > 0 and all(isinstance(x, int) and not isinstance(x, bool)
                                   for x in levels), "data.curriculum_stages", stages,
           f"stage {stage!r}: each stage is a difficulty (an int) or a non-empty tuple of ints")
    for level in levels:
      try:
        task.check_difficulty(level)
      except ValueError as e:
        raise ConfigError(f"config.data.curriculum_stages={stages!r}: {e}") from None
    out.append(levels if isinstance(stage, (list, tuple)) else int(stage))
  return tuple(out)


def _pref_section(p, name: Algorithm, data: DataSection, algo: AlgoSection,
                  num_steps: int) -> PrefSection:
  """The ``pref`` section (defaults for fields a config leaves out), checked for ``name``."""
  from rlx.data.preference import CORRUPTIONS
  pref = _fields(PrefSection, p, "pref", defaults=True,
                 loss=_enum("pref.loss", p.get("loss", "dpo"), core.PreferenceLoss),
                 length_buckets=tuple(int(x) for x in (p.get("length_buckets") or ())))
  _positive("pref.beta", pref.beta)
  _check(0 <= pref.label_smoothing < 0.5, "pref.label_smoothing", pref.label_smoothing,
         "must be in [0, 0.5) (robust DPO divides by 1 − 2ε)")
  for f in ("gamma", "orpo_lambda", "margin_coef", "center_coef", "min_gap"):
    _non_negative(f"pref.{f}", getattr(pref, f))
  _positive("pref.kto_desirable_weight", pref.kto_desirable_weight)
  _positive("pref.kto_undesirable_weight", pref.kto_undesirable_weight)
  _check(pref.reference in ("precompute", "online"), "pref.reference", pref.reference,
         "allowed values: 'precompute', 'online'")
  _check(pref.corruption in CORRUPTIONS, "pref.corruption", pref.corruption,
         f"allowed values: {_allowed(CORRUPTIONS)}")
  _check(pref.pair_rule in ("best_worst", "anchored"), "pref.pair_rule", pref.pair_rule,
         "allowed values: 'best_worst', 'anchored'")
  _check(pref.round_reference in ("round", "initial"), "pref.round_reference",
         pref.round_reference, "allowed values: 'round', 'initial'")
  _check(all(0 < w <= data.max_seq_len for w in pref.length_buckets), "pref.length_buckets",
         pref.length_buckets, f"every width must be in [1, data.max_seq_len={data.max_seq_len}]")
  if name in (Algorithm.DPO, Algorithm.RM):
    _check(data.source in ("task", "jsonl"), "data.source", data.source,
           f"algo.name={name.value!r} reads pairs from 'task' (synthetic preference pairs) or "
           "'jsonl' (prompt/chosen/rejected records)")
  if pref.eval_generation:
    _check(name is Algorithm.DPO, "pref.eval_generation", True,
           "only algo.name='dpo' samples held-out prompts in its evaluations (iterative_dpo "
           "always does; rm has no policy)")
    _check(data.source == "task", "pref.eval_generation", True,
           "held-out generation is judged by the synthetic task's verifier: needs "
           "data.source='task'")
  if name is Algorithm.ITERATIVE_DPO:
    _check(pref.loss is not core.PreferenceLoss.KTO, "pref.loss", pref.loss.value,
           "iterative_dpo trains on pairs: use a paired loss (dpo, robust, ipo, hinge, simpo, "
           "orpo)")
    _positive("pref.rounds", pref.rounds, True)
    _check(num_steps >= pref.rounds and num_steps % pref.rounds == 0, "num_steps", num_steps,
           f"iterative_dpo: num_steps counts the DPO updates of all pref.rounds={pref.rounds} "
           "rounds and must be a positive multiple of it")
    _check(algo.group_size >= 2, "algo.group_size", algo.group_size,
           "iterative_dpo samples algo.group_size completions per prompt to pair: set >= 2")
    _positive("pref.round_prompts", pref.round_prompts, True)
  return pref


def _architecture(model: ModelSection, model_config, check_paths: bool):
  """The architecture a run builds: ``model.path``'s ``config.json`` when there is one."""
  path = os.path.join(model.path, "config.json") if model.path else ""
  if not (check_paths and path and os.path.isfile(path)):
    return model_config
  from rlx import models
  try:
    with open(path) as f:
      return models.config_from_hf(json.load(f))
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(f"config.model.path={model.path!r}: unreadable config.json ({e})") from None


def _lora_section(section, model_config) -> LoraSection:
  """The ``lora`` section: rank 0 is full fine-tuning; otherwise every field is checked against
  the model (targets that match no projection, NF4 blocks that do not divide its widths)."""
  section = dict(section)
  if isinstance(section.get("targets"), str):
    section["targets"] = tuple(t.strip() for t in section["targets"].split(",") if t.strip())
  lo = _fields(LoraSection, section, "lora", defaults=True)
  _check(isinstance(lo.rank, int) and lo.rank >= 0, "lora.rank", lo.rank,
         "must be an integer >= 0 (0 = full fine-tuning)")
  if not lo.enabled:
    _check(lo.quantize == "", "lora.quantize", lo.quantize,
           "a quantised base needs adapters to train: set lora.rank > 0 (or quantize='')")
    return lo
  _positive("lora.alpha", lo.alpha)
  try:
    spec = lo.spec()
  except ValueError as e:  # LoRASpec's messages name the field: "lora.dropout=1.5: ..."
    raise ConfigError(f"config.{e}") from None
  paths = [f"layers.{i}.{'attn' if p in PROJECTIONS[:4] else 'mlp'}.{p}"
           for i in range(model_config.n_layers) for p in PROJECTIONS]
  for t in spec.targets:
    one = dataclasses.replace(spec, targets=(t,))
    _check(any(one.targets_path(p) for p in paths), "lora.targets", t,
           "matches no projection; give names among q_proj, k_proj, v_proj, o_proj, gate_proj, "
           "up_proj, down_proj, or a regular expression matching paths like layers.0.attn.q_proj")
  if spec.quantize == "nf4":
    for name, width in (("d_model", model_config.d_model), ("head_dim", model_config.head_dim),
                        ("d_ff", model_config.d_ff)):
      g = min(spec.group_size, width)
      _check(width % g == 0 and g % 2 == 0, "lora.group_size", spec.group_size,
             f"nf4 blocks must evenly split model {name}={width}; choose a divisor of it")
  return lo


def _mesh_section(h, algo: AlgoSection) -> MeshSection:
  """The ``mesh`` section (defaults for fields a config leaves out); sizes are checked against
  the devices when the run builds its mesh (``rlx.runtime.mesh.resolve_shape``)."""
  from rlx.models.sharding import REMAT_POLICIES
  from rlx.models.sharding import RULES, SAMPLING_RULES
  m = _fields(MeshSection, h, "mesh", defaults=True)
  for f in ("data", "fsdp", "tensor"):
    v = getattr(m, f)
    _check(isinstance(v, int) and (v >= 1 or v == -1), f"mesh.{f}", v,
           "must be a positive integer, or -1 for the rest of the devices")
  free = [f for f in ("data", "fsdp", "tensor") if getattr(m, f) == -1]
  _check(len(free) <= 1, f"mesh.{free[-1] if free else 'fsdp'}", -1,
         f"only one axis may be -1 (the rest of the devices); {', '.join(free)} all are")
  _check(m.rules in RULES, "mesh.rules", m.rules, f"allowed values: {_allowed(RULES)}")
  _check(m.sampling_rules in SAMPLING_RULES, "mesh.sampling_rules", m.sampling_rules,
         f"allowed values: {_allowed(SAMPLING_RULES)}")
  _check(m.remat in REMAT_POLICIES, "mesh.remat", m.remat,
         f"allowed values: {_allowed(REMAT_POLICIES)}")
  for f in ("param_dtype", "reference_dtype"):
    _check(getattr(m, f) in ("", "float32", "bfloat16"), f"mesh.{f}", getattr(m, f),
           "allowed values: '' (same as the model / parameters), 'float32', 'bfloat16'")
  _check(m.distributed in ("auto", "on", "off"), "mesh.distributed", m.distributed,
         "allowed values: 'auto', 'on', 'off'")
  _check(m.cpu_collectives in ("gloo", "mpi"), "mesh.cpu_collectives", m.cpu_collectives,
         "allowed values: 'gloo', 'mpi'")
  _check(isinstance(m.num_processes, int) and m.num_processes >= 0, "mesh.num_processes",
         m.num_processes, "must be >= 0 (0 = from the environment)")
  _check(isinstance(m.process_id, int) and m.process_id >= -1, "mesh.process_id", m.process_id,
         "must be >= 0, or -1 (from the environment)")
  _check(not (m.num_processes > 0 and m.process_id >= m.num_processes), "mesh.process_id",
         m.process_id, f"must be < mesh.num_processes={m.num_processes}")
  rows = (m.data if m.data > 0 else 1) * (m.fsdp if m.fsdp > 0 else 1)
  _check(algo.batch_size % rows == 0, "algo.batch_size", algo.batch_size,
         f"must be a multiple of mesh.data × mesh.fsdp = {rows} (the batch rows are split over "
         "those devices)")
  return m


# Presets: the estimator × policy loss × KL × aggregation each algorithm name stands for.
ALGORITHM_PRESETS: dict[str, dict[str, Any]] = {
    "sft": dict(),
    "grpo": dict(estimator="grpo", policy_loss="ppo", aggregation="seq-mean-token-mean",
                 kl_placement="loss", kl_estimator="k3", beta=0.04),
    "dr_grpo": dict(estimator="dr_grpo", policy_loss="ppo",
                    aggregation="seq-mean-token-sum-norm", kl_placement="none", beta=0.0),
    "dapo": dict(estimator="grpo", policy_loss="ppo", aggregation="token-mean",
                 kl_placement="none", beta=0.0, eps_low=0.2, eps_high=0.28,
                 filter="dynamic_sampling"),
    "gspo": dict(estimator="grpo", policy_loss="gspo", aggregation="seq-mean-token-mean",
                 kl_placement="none", beta=0.0, eps_low=3e-4, eps_high=4e-4),
    "cispo": dict(estimator="grpo", policy_loss="cispo", aggregation="token-mean",
                  kl_placement="none", beta=0.0, eps_low=0.2, eps_high=0.28),
    "rloo": dict(estimator="rloo", policy_loss="ppo", aggregation="token-mean",
                 kl_placement="reward", kl_estimator="k1", beta=0.05),
    "reinforce_pp": dict(estimator="reinforce_pp", policy_loss="ppo", aggregation="token-mean",
                         kl_placement="reward", kl_estimator="k1", beta=0.01, group_size=1),
    "reinforce_pp_baseline": dict(estimator="reinforce_pp_baseline", policy_loss="ppo",
                                  aggregation="token-mean", kl_placement="loss",
                                  kl_estimator="k2", beta=0.01),
    "remax": dict(estimator="remax", policy_loss="pg", aggregation="token-mean",
                  kl_placement="reward", kl_estimator="k1", beta=0.01, group_size=1),
    "ppo": dict(estimator="gae", policy_loss="ppo", aggregation="token-mean",
                kl_placement="reward", kl_estimator="k1", beta=0.05, group_size=1),
    # Preference phases (rlx.runtime.preference): their settings live in the pref section.
    "dpo": dict(kl_placement="none", beta=0.0),
    "rm": dict(kl_placement="none", beta=0.0),
    "iterative_dpo": dict(kl_placement="none", beta=0.0),
    # Rejection-sampling SFT (rlx.runtime.phases.rejection_sft): no KL, no policy-gradient loss.
    "rejection_sft": dict(kl_placement="none", beta=0.0),
}


def synthetic_defaults(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Small settings shared by the per-algorithm configs: a ~0.2M-parameter model on the task
  tokenizer, short prompts and completions, small batches (runs on a laptop CPU)."""
  cfg.model.preset = "custom"
  cfg.model.vocab_size = 512
  cfg.model.d_model = 64
  cfg.model.n_layers = 2
  cfg.model.n_heads = 4
  cfg.model.n_kv_heads = 2
  cfg.model.head_dim = 16
  cfg.model.d_ff = 128
  cfg.data.task = "calculation"
  cfg.data.difficulty = (1, 2)
  cfg.data.max_prompt_len = 16
  cfg.data.max_seq_len = 48
  cfg.sampling.max_new_tokens = 32
  cfg.algo.batch_size = 32
  cfg.algo.group_size = 8
  cfg.optim.learning_rate = 3e-4
  cfg.optim.warmup_steps = 5
  cfg.checkpoint.every_steps = 25
  cfg.eval.every_steps = 25
  cfg.eval.num_examples = 64
  return cfg


def warm_start_cache_dir() -> str:
  """Where shipped configs keep their cached warm starts: ``$XDG_CACHE_HOME/rlx/warm_start``
  (``~/.cache/rlx/warm_start`` without it)."""
  return os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "rlx", "warm_start")


def synthetic_warm_start(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The per-algorithm RL configs' SFT warm start (400 updates of 32 worked solutions at 1e-3:
  16-22% greedy held-out accuracy, well-formed answers, room for every algorithm to show what it
  does), cached across runs (:func:`warm_start_cache_dir`): the first of those configs to run
  trains it, the others load it."""
  cfg.warm_start.sft_steps = 400
  cfg.warm_start.learning_rate = 1e-3
  cfg.warm_start.batch_size = 32
  cfg.warm_start.cache_dir = warm_start_cache_dir()
  return cfg


def synthetic_rl_defaults(cfg: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The per-algorithm RL configs' shared settings (configs/grpo.py, dapo.py, ppo.py, ...):
  :func:`synthetic_defaults`, the algorithm's preset, the cached warm start
  (:func:`synthetic_warm_start`), then RL at the quickstart's step size and batch: 1e-4 (3e-4
  lowers accuracy from this warm start), 8 prompts × 8 samples, 300 steps, held-out accuracy on
  256 problems every 50 steps. The configs then set only what their algorithm needs, so their runs
  are comparable (docs/benchmarks.md, "Every per-algorithm config as shipped")."""
  synthetic_defaults(cfg)
  apply_algorithm(cfg, name)
  synthetic_warm_start(cfg)
  cfg.num_steps = 300
  cfg.algo.batch_size = 64
  cfg.algo.group_size = 8
  cfg.optim.learning_rate = 1e-4
  cfg.eval.every_steps = 50
  cfg.eval.num_examples = 256
  cfg.checkpoint.every_steps = 50
  return cfg


def synthetic_preference_defaults(cfg: ml_collections.ConfigDict,
                                  loss: str = "dpo") -> ml_collections.ConfigDict:
  """The offline preference configs' shared settings (configs/dpo.py, ipo.py, simpo.py, kto.py):
  :func:`synthetic_defaults`, algorithm ``dpo`` with ``pref.loss=loss``, 400 updates of 16 pairs
  from 4096 synthetic calculation pairs (256 held out, another seed), held-out pair metrics
  every 50 updates. The configs then set only their loss's hyper-parameters, so their runs are
  comparable."""
  synthetic_defaults(cfg)
  apply_algorithm(cfg, "dpo")
  cfg.pref.loss = loss
  cfg.num_steps = 400  # updates
  cfg.data.train_size = 4096  # training pairs
  cfg.data.eval_size = 256  # held-out pairs (another seed)
  cfg.algo.batch_size = 16  # pairs per update
  cfg.optim.learning_rate = 3e-3  # a tiny model from scratch tolerates a large step
  cfg.eval.every_steps = 50  # held-out pair metrics (eval/rewards/accuracy ...)
  cfg.eval.num_examples = 256  # held-out pairs per evaluation
  cfg.checkpoint.every_steps = 100
  return cfg


def apply_algorithm(cfg: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """Sets ``cfg.algo.name`` and the fields of its preset (:data:`ALGORITHM_PRESETS`)."""
  if name not in ALGORITHM_PRESETS:
    raise ConfigError(f"config.algo.name={name!r}: unknown value; allowed values: "
                      f"{_allowed(ALGORITHM_PRESETS)}")
  cfg.algo.name = name
  for k, v in ALGORITHM_PRESETS[name].items():
    setattr(cfg.algo, k, v)
  if name == "ppo":
    cfg.model.value_head = True
  return cfg
