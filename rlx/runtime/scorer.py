"""The ``rlx.rewards.Scorer`` of a run: compiled scoring with the current policy and the reference.

Model-based rewards (self-certainty, LaSeR's self-reward, RLPR, SAR, answer confidence, ...) call
back into the trainer's models through this object (docs/architecture.md, step 3). ``model="policy"`` scores
with the parameters bound by :meth:`PolicyScorer.bind` (the policy that sampled the batch);
``model="reference"`` with the frozen initial policy.

Shapes are bucketed (powers of two, at least 8) in batch, prompt and completion length, so a run
compiles a small, bounded number of scoring programs. Prompts are ragged and left-padded; a row
with an empty prompt gets the tokenizer's BOS (else EOS) as its one context token, since the first
completion token needs something to be predicted from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlx import models
from rlx.algorithms import rm
from rlx.algorithms.common import positions_from_mask, unembed_matrix, vocab_chunk
from rlx import core
from rlx.runtime.checkpoint import Checkpointer, restore_params


def _bucket(n: int, lo: int = 8) -> int:
  return max(lo, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def load_reward_model(directory: str, step: int | None = None) -> "rm.RewardModelScorer":
  """The reward model of an rlx reward-model run: ``directory`` is the run's ``checkpoints``
  folder (or the workdir holding it); ``step`` defaults to the latest checkpoint."""
  if os.path.isdir(os.path.join(directory, "checkpoints")):
    directory = os.path.join(directory, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"reward model checkpoint directory {directory!r} does not exist")
  ckpt = Checkpointer(directory)
  try:
    step = ckpt.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {directory}")
    host = ckpt.restore_host(step)
  finally:
    ckpt.close()
  info = host.get("reward_model")
  if info is None:
    raise ValueError(f"{directory} step {step} is not a reward-model checkpoint (phase "
                     f"{host.get('phase')!r}); train one with algo.name='rm'")
  config = rm.model_config_from_json(info["model_config"])
  if config.lora is None:
    graphdef, like = models.abstract(config, models.RewardModel)  # shapes only, no memory
  else:  # the checkpoint holds adapters and head: the frozen base is rebuilt as the run built it
    graphdef, like = _lora_reward_model(config, info["base"])
  params = restore_params(directory, like, step=step)
  return rm.RewardModelScorer(graphdef, params, pad_id=int(info.get("pad_id", 0)))


def _lora_reward_model(config, base: dict):
  """``(graphdef, params)`` of a LoRA reward model over the base its run was built from
  (``model.path`` or the seed's random init, then ``checkpoint.init_from``)."""
  from rlx.models import lora
  plain = lora.base_config(config)
  if base.get("path"):
    loaded, params = models.load_hf(base["path"], dtype=plain.param_dtype)
    if loaded.replace(dtype=plain.dtype, param_dtype=plain.param_dtype) != plain:
      raise ValueError(f"reward model base {base['path']!r}: its architecture differs from the "
                       f"one the reward model was trained over")
  else:
    _, params = models.init_params(plain, int(base["seed"]))
  if base.get("init_from"):
    params = restore_params(base["init_from"], params, step=base.get("init_step"))
  return lora.attach(config, params, int(base["seed"]), cls=models.RewardModel)


class ModelLoader:
  """Loads the models a reward names (``reward_model``'s ``checkpoint``), once per directory.
  The rewards layer loads no model itself; every scorer of a run is one of these."""

  def reward_model(self, directory: str):
    cache = self.__dict__.setdefault("_reward_models", {})
    if directory not in cache:
      cache[directory] = load_reward_model(directory)
    return cache[directory]


class PolicyScorer(ModelLoader):
  """Implements ``rlx.rewards.Scorer`` over a decoder's parameters (host in, host out)."""

  def __init__(self, graphdef, config: models.ModelConfig, tokenizer, reference_params,
               chunk_size: int = 4096):
    self.graphdef, self.config, self.tokenizer = graphdef, config, tokenizer
    self.vocab_size = config.vocab_size
    self.eos_id = tokenizer.eos_id
    self.context_id = tokenizer.bos_id if getattr(tokenizer, "bos_id", None) is not None \
        else tokenizer.eos_id
    self.reference_params = reference_params
    self.params = None
    self.chunk = vocab_chunk(config.vocab_size, chunk_size)
    self._fn = jax.jit(self._stats, static_argnames=("num_targets",))

  def bind(self, params) -> "PolicyScorer":
    """Score ``model="policy"`` with ``params`` from now on."""
    self.params = params
    return self

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self.tokenizer.encode(text), np.int32)

  # -- compiled ---------------------------------------------------------------------------------

  def _stats(self, params, tokens, attn, num_targets: int):
    """Per completion position: log p(y_t), entropy and self-certainty of the distribution that
    predicts y_t (temperature 1), ``[B,T]``; the final hidden state at y_t, ``[B,T,D]``."""
    s = tokens.shape[1]
    hidden, _ = models.hidden_states(self.graphdef, params, tokens, positions_from_mask(attn),
                                     attn)
    h = hidden[:, s - num_targets - 1:s - 1]
    targets = tokens[:, s - num_targets:]
    w = unembed_matrix(params, self.config)
    stats = core.logprobs_from_hidden(h, w.astype(h.dtype), targets, 1.0, chunk_size=self.chunk,
                                      softcap=self.config.final_logit_softcap, with_entropy=True)
    if self.config.final_logit_softcap is None:
      # Logits are linear in h: mean_v z_v = h·mean_v W[:, v], and logsumexp = z_y − log p(y).
      hf = h.astype(jnp.float32)
      wf = w.astype(jnp.float32)
      mean_z = hf @ jnp.mean(wf, axis=1)
      z_y = jnp.einsum("btd,btd->bt", hf, jnp.take(wf.T, targets, axis=0))
      lse = z_y - stats.logprobs
    else:
      logits = models.lm_head(self.graphdef, params, h)  # soft-capped, float32 [B,T,V]
      lse = jax.nn.logsumexp(logits, axis=-1)
      mean_z = jnp.mean(logits, axis=-1)
    sc = lse - mean_z - jnp.log(jnp.float32(self.vocab_size))
    return stats.logprobs, stats.entropy, sc, hidden[:, s - num_targets:].astype(jnp.float32)

  # -- host API -------------------------------------------------------------------------------------

  def _run(self, prompt_ids: Sequence[np.ndarray], completion_ids, completion_mask, model: str):
    params = self.params if model == "policy" else self.reference_params
    if model not in ("policy", "reference"):
      raise ValueError(f"model={model!r}: allowed values: 'policy', 'reference'")
    if params is None:
      raise ValueError(f"the scorer has no {model} parameters"
                       + (" (call bind(params) first)" if model == "policy" else ""))
    completion_ids = np.asarray(completion_ids, np.int32)
    completion_mask = np.asarray(completion_mask, np.float32)
    b, t = completion_ids.shape
    prompts = [np.asarray(p, np.int32) if len(p) else np.asarray([self.context_id], np.int32)
               for p in prompt_ids]
    bb, pb, tb = _bucket(b, 1), _bucket(max(len(p) for p in prompts)), _bucket(t)
    tokens = np.zeros((bb, pb + tb), np.int32)
    attn = np.zeros((bb, pb + tb), np.float32)
    for i, p in enumerate(prompts):
      tokens[i, pb - len(p):pb] = p
      attn[i, pb - len(p):pb] = 1
    tokens[:b, pb:pb + t] = completion_ids
    attn[:b, pb:pb + t] = completion_mask
    attn[b:, pb - 1] = 1  # padding rows: one dummy token, never read
    out = jax.device_get(self._fn(params, tokens, attn, num_targets=tb))
    m = completion_mask
    return [np.asarray(x[:b, :t]) * (m if x.ndim == 2 else m[..., None]) for x in out]

  def token_logprobs(self, prompt_ids, completion_ids, completion_mask, *, model="policy"):
    """``[B,T]`` float32 log p(y_t | x, y_<t) at temperature 1, 0 outside the mask."""
    return self._run(prompt_ids, completion_ids, completion_mask, model)[0].astype(np.float32)

  def logits_stats(self, prompt_ids, completion_ids, completion_mask, *, model="policy"):
    """``self_certainty`` (KL(U ‖ p_t) = −log V − mean_v log p_t(v)) and ``entropy``, ``[B,T]``."""
    _, ent, sc, _ = self._run(prompt_ids, completion_ids, completion_mask, model)
    return {"self_certainty": sc.astype(np.float32), "entropy": ent.astype(np.float32)}

  def last_hidden(self, prompt_ids, completion_ids, completion_mask, *, model="policy"):
    """``[B,T,D]`` float32 final hidden states at the completion tokens (position t has read x
    and y_≤t), 0 outside the mask."""
    return self._run(prompt_ids, completion_ids, completion_mask, model)[3].astype(np.float32)
