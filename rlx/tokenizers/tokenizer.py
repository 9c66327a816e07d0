"""One tokenizer interface over SentencePiece ``.model`` files and HF ``tokenizer.json`` files.

:class:`Tokenizer` is the base: subclasses implement ``encode``/``decode`` and the id tables;
batching with left padding and chat-template rendering are shared. :func:`load_tokenizer` reads a
local directory laid out like a Hugging Face checkpoint (``tokenizer.json`` or ``tokenizer.model``,
plus optional ``tokenizer_config.json`` / ``chat_template.jinja`` / ``special_tokens_map.json``).
"""

from __future__ import annotations

import abc
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlx.tokenizers.chat_template import render_chat_template


class Tokenizer(abc.ABC):
  """Text ↔ token ids, special ids, batching and chat templates.

  Attributes:
    chat_template: jinja2 source of the chat template, or None.
  """

  chat_template: str | None = None

  # --- per-backend -------------------------------------------------------------------------
  @property
  @abc.abstractmethod
  def vocab_size(self) -> int:
    """Number of ids (the embedding table needs at least this many rows)."""

  @property
  @abc.abstractmethod
  def bos_id(self) -> int | None:
    """Beginning-of-sequence id, or None when the vocabulary has none."""

  @property
  @abc.abstractmethod
  def eos_id(self) -> int | None:
    """End-of-sequence id, or None when the vocabulary has none."""

  @property
  @abc.abstractmethod
  def _pad_id(self) -> int | None:
    """The vocabulary's own pad id, or None."""

  @abc.abstractmethod
  def _encode(self, text: str) -> list[int]:
    """Ids of ``text`` without any added bos/eos."""

  @abc.abstractmethod
  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    """Text of ``ids`` (special tokens such as bos/eos/pad dropped unless asked for)."""

  @abc.abstractmethod
  def token_to_id(self, token: str) -> int | None:
    """Id of a vocabulary piece, or None."""

  @abc.abstractmethod
  def id_to_token(self, token_id: int) -> str:
    """Vocabulary piece of an id."""

  # --- shared ----------------------------------------------------------------------------------
  @property
  def pad_id(self) -> int:
    """Id written into padding positions: the vocabulary's pad, else eos, else 0.

    Padding is always described by an explicit mask; the pad id only has to be a valid id.
    """
    for candidate in (self._pad_id, self.eos_id):
      if candidate is not None and candidate >= 0:
        return int(candidate)
    return 0

  @property
  def special_tokens(self) -> dict[str, str | None]:
    """``{"bos_token": ..., "eos_token": ..., "pad_token": ...}`` as template variables."""
    def piece(i):
      return None if i is None or i < 0 else self.id_to_token(i)
    return {"bos_token": piece(self.bos_id), "eos_token": piece(self.eos_id),
            "pad_token": piece(self._pad_id)}

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Ids of ``text``, optionally framed by bos/eos (raises if the vocabulary lacks them)."""
    ids = self._encode(text)
    if add_bos:
      if self.bos_id is None:
        raise ValueError("add_bos=True but this tokenizer has no bos token")
      ids = [self.bos_id] + ids
    if add_eos:
      if self.eos_id is None:
        raise ValueError("add_eos=True but this tokenizer has no eos token")
      ids = ids + [self.eos_id]
    return ids

  def batch_encode(
      self,
      texts: Sequence[str],
      *,
      left_pad: bool = True,
      max_len: int | None = None,
      truncate: bool = False,
      add_bos: bool = False,
      add_eos: bool = False,
  ) -> tuple[np.ndarray, np.ndarray]:
    """Encodes and pads a batch.

    Args:
      texts: B strings.
      left_pad: pad on the left (prompts for generation) or on the right (training targets).
      max_len: S; None pads to the longest sequence.
      truncate: with ``max_len``, cut longer sequences (keeping the *last* ``max_len`` ids when
        left-padding, the first ones otherwise) instead of raising ``ValueError``.
      add_bos, add_eos: frame each sequence.

    Returns:
      ``ids [B,S] int32`` (pad positions hold ``pad_id``) and ``mask [B,S] bool`` (True on tokens).
    """
    seqs = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
    return pad_sequences(seqs, pad_id=self.pad_id, left_pad=left_pad, max_len=max_len,
                         truncate=truncate)

  def apply_chat_template(
      self,
      messages: Sequence[Mapping[str, Any]],
      *,
      add_generation_prompt: bool = False,
      chat_template: str | None = None,
      **kwargs: Any,
  ) -> str:
    """Renders ``messages`` with the tokenizer's chat template (text, not ids).

    Matches ``transformers`` ``apply_chat_template(..., tokenize=False)``; the special-token
    strings are template variables, and so are ``tools=`` (JSON schemas) and the other keyword
    arguments (see :func:`rlx.tokenizers.render_chat_template`). Encode the result with
    ``add_bos=False`` when the template writes ``bos_token`` itself.
    """
    template = chat_template or self.chat_template
    if template is None:
      raise ValueError("this tokenizer has no chat_template; pass chat_template=...")
    return render_chat_template(template, messages, add_generation_prompt=add_generation_prompt,
                                special_tokens=self.special_tokens, **kwargs)


def pad_sequences(
    seqs: Sequence[Sequence[int]],
    *,
    pad_id: int,
    left_pad: bool = True,
    max_len: int | None = None,
    truncate: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """Pads B id lists into ``ids [B,S] int32`` and ``mask [B,S] bool`` (see ``batch_encode``)."""
  longest = max((len(s) for s in seqs), default=0)
  width = longest if max_len is None else max_len
  ids = np.full((len(seqs), width), pad_id, dtype=np.int32)
  mask = np.zeros((len(seqs), width), dtype=bool)
  for b, s in enumerate(seqs):
    s = list(s)
    if len(s) > width:
      if not truncate:
        raise ValueError(f"sequence {b} has {len(s)} tokens > max_len={width} (truncate=False)")
      s = s[len(s) - width:] if left_pad else s[:width]
    n = len(s)
    if n == 0:
      continue
    if left_pad:
      ids[b, width - n:] = s
      mask[b, width - n:] = True
    else:
      ids[b, :n] = s
      mask[b, :n] = True
  return ids, mask


class SentencePieceTokenizer(Tokenizer):
  """A SentencePiece ``.model`` (file path or serialized proto bytes).

  Control pieces written literally in the text (``<s>``, ``</s>``, as chat templates do) encode
  to their ids, as special tokens do in Hugging Face tokenizers.
  """

  def __init__(self, model: str | os.PathLike | bytes, *, chat_template: str | None = None):
    import sentencepiece as spm
    if isinstance(model, bytes):
      self._sp = spm.SentencePieceProcessor(model_proto=model)
    else:
      self._sp = spm.SentencePieceProcessor(model_file=os.fspath(model))
    self.chat_template = chat_template
    self._control = {self._sp.id_to_piece(i): i for i in range(self._sp.get_piece_size())
                     if self._sp.is_control(i)}
    self._control_re = (re.compile("|".join(re.escape(p) for p in sorted(
        self._control, key=len, reverse=True))) if self._control else None)

  @property
  def vocab_size(self) -> int:
    return int(self._sp.get_piece_size())

  @property
  def bos_id(self) -> int | None:
    i = self._sp.bos_id()
    return None if i < 0 else int(i)

  @property
  def eos_id(self) -> int | None:
    i = self._sp.eos_id()
    return None if i < 0 else int(i)

  @property
  def _pad_id(self) -> int | None:
    i = self._sp.pad_id()
    return None if i < 0 else int(i)

  def _encode(self, text: str) -> list[int]:
    if self._control_re is None:
      return list(self._sp.encode(text))
    ids, start = [], 0
    for m in self._control_re.finditer(text):
      ids += self._sp.encode(text[start:m.start()]) if m.start() > start else []
      ids.append(self._control[m.group()])
      start = m.end()
    if start < len(text):
      ids += self._sp.encode(text[start:])
    return ids

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    ids = [int(i) for i in ids]
    if skip_special_tokens:
      ids = [i for i in ids if not self._sp.is_control(i)]
      return self._sp.decode(ids)
    # SentencePiece drops control pieces when decoding; spell them out piece by piece.
    out, run = [], []
    for i in ids:
      if self._sp.is_control(i):
        out.append(self._sp.decode(run))
        out.append(self._sp.id_to_piece(i))
        run = []
      else:
        run.append(i)
    out.append(self._sp.decode(run))
    return "".join(out)

  def token_to_id(self, token: str) -> int | None:
    i = self._sp.piece_to_id(token)
    return None if i == self._sp.unk_id() and token != self._sp.id_to_piece(i) else int(i)

  def id_to_token(self, token_id: int) -> str:
    return self._sp.id_to_piece(int(token_id))


class HFTokenizer(Tokenizer):
  """A Hugging Face ``tokenizer.json`` (via the ``tokenizers`` package).

  Special tokens are named by string (``bos_token="<s>"``), as in ``tokenizer_config.json``.
  ``encode`` never adds special tokens on its own (the json's post-processor is bypassed); use
  ``add_bos``/``add_eos`` or a chat template that writes them.
  """

  def __init__(
      self,
      tokenizer: str | os.PathLike | Any,
      *,
      bos_token: str | None = None,
      eos_token: str | None = None,
      pad_token: str | None = None,
      chat_template: str | None = None,
  ):
    import tokenizers
    if isinstance(tokenizer, (str, os.PathLike)):
      tokenizer = tokenizers.Tokenizer.from_file(os.fspath(tokenizer))
    self._tok = tokenizer
    self._bos = self._lookup(bos_token)
    self._eos = self._lookup(eos_token)
    self._pad = self._lookup(pad_token)
    self.chat_template = chat_template

  def _lookup(self, token: str | None) -> int | None:
    if token is None:
      return None
    i = self._tok.token_to_id(token)
    if i is None:
      raise ValueError(f"special token {token!r} is not in the vocabulary")
    return int(i)

  @property
  def vocab_size(self) -> int:
    return int(self._tok.get_vocab_size(with_added_tokens=True))

  @property
  def bos_id(self) -> int | None:
    return self._bos

  @property
  def eos_id(self) -> int | None:
    return self._eos

  @property
  def _pad_id(self) -> int | None:
    return self._pad

  def _encode(self, text: str) -> list[int]:
    return list(self._tok.encode(text, add_special_tokens=False).ids)

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  def token_to_id(self, token: str) -> int | None:
    i = self._tok.token_to_id(token)
    return None if i is None else int(i)

  def id_to_token(self, token_id: int) -> str:
    return self._tok.id_to_token(int(token_id))


def _token_str(value: Any) -> str | None:
  """A special token from a tokenizer_config entry: a string or ``{"content": ...}``."""
  if value is None:
    return None
  if isinstance(value, Mapping):
    return value.get("content")
  return str(value)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
  """Loads the tokenizer in a local directory (or a single ``.model``/``.json`` file).

  Looks for ``tokenizer.json`` (HF ``tokenizers``), else ``tokenizer.model`` (SentencePiece). The
  chat template comes from ``chat_template.jinja`` or ``tokenizer_config.json["chat_template"]``;
  special tokens from ``tokenizer_config.json`` / ``special_tokens_map.json`` (for SentencePiece
  the model's own ids are used).
  """
  path = os.fspath(path)
  if os.path.isfile(path):
    if path.endswith(".json"):
      return HFTokenizer(path)
    return SentencePieceTokenizer(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"no tokenizer directory or file at {path}")

  config: dict[str, Any] = {}
  for name in ("special_tokens_map.json", "tokenizer_config.json"):
    file = os.path.join(path, name)
    if os.path.exists(file):
      with open(file, encoding="utf-8") as f:
        config.update(json.load(f))
  template = config.get("chat_template")
  if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
    named = {t["name"]: t["template"] for t in template}
    template = named.get("default", next(iter(named.values()), None))
  jinja_file = os.path.join(path, "chat_template.jinja")
  if os.path.exists(jinja_file):
    with open(jinja_file, encoding="utf-8") as f:
      template = f.read()

  json_file = os.path.join(path, "tokenizer.json")
  model_file = os.path.join(path, "tokenizer.model")
  if os.path.exists(json_file):
    return HFTokenizer(json_file, bos_token=_token_str(config.get("bos_token")),
                       eos_token=_token_str(config.get("eos_token")),
                       pad_token=_token_str(config.get("pad_token")), chat_template=template)
  if os.path.exists(model_file):
    return SentencePieceTokenizer(model_file, chat_template=template)
  raise FileNotFoundError(f"{path} holds neither tokenizer.json nor tokenizer.model")
