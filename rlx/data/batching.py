"""Prompt formatting, group expansion, left padding into shape buckets, SFT encoding.

:class:`PromptBatch` is what the RL loop receives: with ``P`` prompts per step and group size
``G``, row ``r`` holds prompt ``r // G`` (rows of a group are adjacent) and ``group_ids[r] =
r // G``; rows added to reach an allowed batch size are padding (``example_mask`` False, empty
``prompt_mask``, ``group_ids`` -1).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from rlx.data.example import Example
from rlx.data.iterator import ExampleIterator, IteratorState
from rlx.data.tasks import EPISODE
from rlx.tokenizers import Tokenizer, pad_sequences


# --- formatting --------------------------------------------------------------------------------
class Formatter(Protocol):
  """Turns an example into the prompt text; ``add_bos`` says whether encoding adds bos."""

  add_bos: bool

  def __call__(self, example: Example) -> str: ...


@dataclasses.dataclass(frozen=True)
class PlainFormat:
  """``template.format(prompt=example.prompt)``; encoded with a leading bos by default."""

  template: str = "{prompt}\n"
  add_bos: bool = True

  def __call__(self, example: Example) -> str:
    return self.template.format(prompt=example.prompt)


@dataclasses.dataclass(frozen=True)
class ChatFormat:
  """The tokenizer's chat template over ``[system?, user]`` with the generation prompt.

  ``add_bos`` is False because chat templates write ``bos_token`` themselves.
  """

  tokenizer: Tokenizer
  system: str | None = None
  add_bos: bool = False

  def __call__(self, example: Example) -> str:
    messages = [{"role": "system", "content": self.system}] if self.system else []
    messages.append({"role": "user", "content": example.prompt})
    return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)


# --- batches -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PromptBatch:
  """Prompts for one RL step (host numpy arrays; metadata as Python lists of length B).

  Attributes:
    prompt_tokens: ``[B,S] int32``, left-padded.
    prompt_mask: ``[B,S] bool``, True on prompt tokens.
    group_ids: ``[B] int32``, prompt index within the batch; -1 on padding rows.
    example_mask: ``[B] bool``, False on padding rows.
    answers, tasks, difficulties, pair_ids, prompts: per-row metadata ("" / -1 on padding
      rows); ``prompts`` holds the formatted prompt text.
    examples: per-row :class:`Example` (None on padding rows), e.g. for ``info``.
  """

  prompt_tokens: np.ndarray
  prompt_mask: np.ndarray
  group_ids: np.ndarray
  example_mask: np.ndarray
  answers: list[str]
  tasks: list[str]
  difficulties: list[int]
  pair_ids: list[str]
  prompts: list[str]
  examples: list[Example | None]

  @property
  def num_groups(self) -> int:
    return int(self.group_ids.max(initial=-1)) + 1


def bucket_size(n: int, buckets: Sequence[int] | None, what: str = "length") -> int:
  """The smallest allowed size ``>= n`` (``n`` itself when ``buckets`` is None)."""
  if buckets is None:
    return n
  allowed = sorted(buckets)
  i = bisect.bisect_left(allowed, n)
  if i == len(allowed):
    raise ValueError(f"{what} {n} exceeds the largest bucket {allowed[-1]}")
  return allowed[i]


def make_prompt_batch(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    *,
    formatter: Formatter = PlainFormat(),
    group_size: int = 1,
    length_buckets: Sequence[int] | None = None,
    batch_buckets: Sequence[int] | None = None,
    truncate: bool = False,
) -> PromptBatch:
  """Formats, tokenizes, repeats each prompt ``group_size`` times and pads into buckets.

  Args:
    examples: P examples.
    tokenizer: encodes the formatted prompts.
    formatter: example → prompt text (``PlainFormat`` or ``ChatFormat``).
    group_size: G, copies of each prompt (adjacent rows, one group id).
    length_buckets: allowed S; the prompt length is rounded up to the smallest one that fits.
      A prompt longer than the largest raises ``ValueError`` unless ``truncate`` (then its last
      tokens are kept).
    batch_buckets: allowed B; ``P * G`` is rounded up with padding rows.

  Returns:
    A :class:`PromptBatch` with ``B = bucket(P * G)`` rows and ``S = bucket(longest prompt)``.
  """
  texts = [formatter(ex) for ex in examples]
  seqs = [tokenizer.encode(t, add_bos=formatter.add_bos) for t in texts]
  longest = max((len(s) for s in seqs), default=0)
  if length_buckets is not None and truncate:
    longest = min(longest, max(length_buckets))
  width = bucket_size(longest, length_buckets, "prompt length")
  g = int(group_size)
  rows = len(examples) * g
  batch = bucket_size(rows, batch_buckets, "batch size")
  ids, mask = pad_sequences([s for s in seqs for _ in range(g)], pad_id=tokenizer.pad_id,
                            left_pad=True, max_len=width, truncate=truncate)
  pad_rows = batch - rows
  ids = np.concatenate([ids, np.full((pad_rows, width), tokenizer.pad_id, np.int32)])
  mask = np.concatenate([mask, np.zeros((pad_rows, width), bool)])
  group_ids = np.concatenate([np.repeat(np.arange(len(examples), dtype=np.int32), g),
                              np.full((pad_rows,), -1, np.int32)])

  def rep(values, fill):
    return [v for v in values for _ in range(g)] + [fill] * pad_rows

  return PromptBatch(
      prompt_tokens=ids, prompt_mask=mask, group_ids=group_ids,
      example_mask=group_ids >= 0,
      answers=rep([e.answer for e in examples], ""), tasks=rep([e.task for e in examples], ""),
      difficulties=rep([e.difficulty for e in examples], -1),
      pair_ids=rep([e.pair_id for e in examples], ""), prompts=rep(texts, ""),
      examples=rep(list(examples), None))


class PromptBatchIterator(Iterator[PromptBatch]):
  """:class:`~rlx.data.iterator.ExampleIterator` + :func:`make_prompt_batch`; same state.

  ``get_state()`` / ``set_state()`` delegate to the example iterator, so the checkpoint holds
  ``{"seed", "epoch", "cursor"}``.
  """

  def __init__(self, examples: ExampleIterator, tokenizer: Tokenizer, **batch_kwargs: Any):
    self.examples, self.tokenizer, self.batch_kwargs = examples, tokenizer, batch_kwargs

  def get_state(self) -> IteratorState:
    return self.examples.get_state()

  def set_state(self, state: Mapping[str, Any]) -> None:
    self.examples.set_state(state)

  def __next__(self) -> PromptBatch:
    return make_prompt_batch(next(self.examples), self.tokenizer, **self.batch_kwargs)

  def __iter__(self):
    return self


# --- SFT ---------------------------------------------------------------------------------------
def demonstration_segments(example: Example, *, episodes: bool = False) -> list[tuple[str, bool]]:
  """The ``(text, trained)`` segments of an example's demonstration after its prompt.

  ``example.solution`` is one trained turn. With ``episodes`` and ``info["episode"]`` (the texts
  of action 1, observation 1, action 2, ..., as an environment plays them: see
  ``rlx.data.tasks.ToolMultiplicationTask``; ``None`` as action 1: the episode opens with an
  observation, ``rlx.envs.games.play_demonstrations``), the actions are trained turns and the
  observations are not."""
  episode = (example.info or {}).get(EPISODE) if episodes else None
  if not episode:
    return [(example.solution, True)]
  if len(episode) % 2 == 0:
    raise ValueError(f"{example.pair_id or example.prompt!r}: info['episode'] must alternate "
                     f"actions and observations and end with an action; got {len(episode)} texts")
  out = [(str(text), i % 2 == 0) for i, text in enumerate(episode)]
  # A leading None: the episode waits before its first action (a game seat that does not move
  # first), so it opens with an observation.
  return out[1:] if episode[0] is None else out


def make_sft_batch(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    *,
    formatter: Formatter = PlainFormat(),
    max_len: int | None = None,
    truncate: bool = False,
    episodes: bool = False,
    render: Callable[[Example], Sequence[int]] | None = None,
    encode_observation: Callable[[str], Sequence[int]] | None = None,
    end_of_turn: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
  """Right-padded demonstrations: formatted prompt + ``example.solution`` + eos.

  ``episodes``: an example with ``info["episode"]`` is a multi-turn demonstration
  (:func:`demonstration_segments`), tokenized as ``rlx.runtime.episodes.run_episodes``
  assembles an episode of the same texts: each action's tokens, then ``end_of_turn`` (default
  eos: where sampling stops a turn), loss mask 1; each observation's ``encode_observation``
  tokens (default ``tokenizer.encode``), attended to, loss mask 0.

  Args:
    render: ``example → prompt token ids`` (default the ``formatter``'s text, encoded with bos
      if it says so); a chat renderer's first prompt for episodes.

  Returns:
    ``tokens [B,S] int32``, ``mask [B,S] bool`` (all real tokens) and ``loss_mask [B,S] bool``
    (the solution's or actions' tokens and their eos only, i.e. the targets of next-token
    prediction).
  """
  encode = encode_observation or tokenizer.encode

  def turn(text):  # a trained turn: its tokens and the end of turn
    if end_of_turn is None:
      return list(tokenizer.encode(text, add_eos=True))
    return list(tokenizer.encode(text)) + list(end_of_turn)

  seqs, targets = [], []
  for ex in examples:
    seq = list(render(ex) if render is not None else
               tokenizer.encode(formatter(ex), add_bos=formatter.add_bos))
    target = [False] * len(seq)
    for text, trained in demonstration_segments(ex, episodes=episodes):
      ids = turn(text) if trained else list(encode(text))
      seq += ids
      target += [trained] * len(ids)
    seqs.append(seq)
    targets.append(target)
  tokens, mask = pad_sequences(seqs, pad_id=tokenizer.pad_id, left_pad=False, max_len=max_len,
                               truncate=truncate)
  loss_mask, _ = pad_sequences([[int(t) for t in tg] for tg in targets], pad_id=0,
                               left_pad=False, max_len=max_len, truncate=truncate)
  return {"tokens": tokens, "mask": mask, "loss_mask": loss_mask.astype(bool) & mask}
