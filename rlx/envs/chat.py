"""Chat-template rendering of multi-turn episodes and tool calls (docs/envs.md).

An episode is one conversation, and its tokens are the chat template's, whether the conversation
is rendered at once or turn by turn:

- the first prompt: ``[system?, user]`` with the generation prompt (with the ``qwen`` / ``llama3``
  tool formats, also the tools' JSON schemas where the template lists them);
- an action: the assistant turn as the model writes it, up to and including the template's end
  of turn (``end_token``, by default the tokenizer's eos, where sampling stops: ``<|im_end|>``,
  ``<|eot_id|>``);
- an observation: everything the template writes after that end token up to the next generation
  prompt: the rest of the assistant message (Qwen2.5's ``"\\n"``), the tool message (``qwen`` /
  ``llama3``: role ``tool``, i.e. Qwen2.5's ``<|im_start|>user\\n<tool_response>\\n...
  \\n</tool_response><|im_end|>\\n``, Llama 3.1's ``<|start_header_id|>ipython<|end_header_id|>``
  turn) or a user message (``tags``: the ``<obs>...</obs>`` text), then the assistant header.

An observation's tokens are the delta between two renderings: a conversation up to an assistant's
end token, and the same conversation with the tool message and the generation prompt. Every
renderer checks on construction that a 3-turn tool conversation rendered at once gives, token for
token, its prompt + actions + observations rendered turn by turn, and raises ``ValueError`` naming
the place where a template does not split cleanly.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Sequence

from rlx.envs.tools import TOOL_FORMATS, tool_schema

# The check's conversation (any text works: the template's structure is what is checked).
_PROBE_PROMPT = "What is 1 + 2 + 3?"
_PROBE_CALLS = ({"expression": "1 + 2"}, {"expression": "3 + 3"})
_PROBE_OUTPUTS = ("3", "6")
_PROBE_ANSWER = "The answer is 6."


class ChatRenderer:
  """Renders an episode's turns with a tokenizer's chat template (module docstring).

  Args:
    tokenizer: an ``rlx.tokenizers.Tokenizer`` with a chat template (or pass ``chat_template``).
    tool_format: ``"tags"`` (observations are user messages, tool calls plain text), ``"qwen"``
      or ``"llama3"`` (observations are tool messages, tool calls structured ``tool_calls``).
    tools: the tools' JSON schemas (``rlx.envs.tools.tool_schema``) the template lists in the
      prompt; ignored with ``tags``.
    system: the system message of the first prompt (None: none, the template's default).
    end_token: the token that ends the model's turn (default the tokenizer's eos token): must be
      one token, and where the template ends an assistant message.
    max_obs_tokens: > 0: an observation's tool output is cut so that its whole delta (tool
      message and next generation prompt included) fits in this many tokens.
    template_kwargs: further template variables (e.g. ``{"date_string": "26 Jul 2024"}``).

  Raises:
    ValueError: no template or end token, or the template does not split cleanly (rendered at
      once ≠ rendered turn by turn), or the observation frame alone exceeds ``max_obs_tokens``.
  """

  def __init__(self, tokenizer, *, tool_format: str = "tags",
               tools: Sequence[dict] | None = None, system: str | None = None,
               chat_template: str | None = None, end_token: str | None = None,
               max_obs_tokens: int = 0, template_kwargs: dict | None = None):
    if tool_format not in TOOL_FORMATS:
      raise ValueError(f"tool_format={tool_format!r}: unknown format; allowed values: "
                       f"{', '.join(map(repr, TOOL_FORMATS))}")
    self.tokenizer = tokenizer
    self.template = chat_template or tokenizer.chat_template
    if not self.template:
      raise ValueError("chat rendering needs a chat template: the tokenizer has none "
                       "(tokenizer_config.json chat_template / chat_template.jinja)")
    self.tool_format = tool_format
    self.tools = [dict(t) for t in tools] if tools and tool_format != "tags" else None
    self.system = system or None
    self.end_token = end_token or tokenizer.special_tokens.get("eos_token")
    if not self.end_token:
      raise ValueError("chat rendering needs the token that ends the model's turn: the tokenizer "
                       "has no eos token (pass end_token=...)")
    if len(tokenizer.encode(self.end_token)) != 1:
      raise ValueError(f"end_token={self.end_token!r} is not a single token of this vocabulary "
                       f"(it encodes to {tokenizer.encode(self.end_token)})")
    self.max_obs_tokens = int(max_obs_tokens)
    self.template_kwargs = dict(template_kwargs or {})
    # An observation is rendered after this history: its text up to the assistant's end token.
    self._history = self.messages(_PROBE_PROMPT) + [self.assistant_message(
        call=(self._tool_name, _PROBE_CALLS[0]))]
    text = self.render_text(self._history)
    self._prefix = text[:self._end_of_turn(text, len(self.render_text(self._history[:-1], True)))]
    self.check()

  # --- messages ---------------------------------------------------------------------------------
  @property
  def _tool_name(self) -> str:
    return self.tools[0]["function"]["name"] if self.tools else "calculator"

  def messages(self, prompt: str) -> list[dict]:
    """The first prompt's messages: ``[system?, user]``."""
    head = [{"role": "system", "content": self.system}] if self.system else []
    return head + [{"role": "user", "content": prompt}]

  def assistant_message(self, content: str = "", call: tuple[str, Any] | None = None) -> dict:
    """An assistant turn: ``content``, then the tool call ``(name, arguments)`` if any (``tags``:
    written into the content as ``<tool>NAME: INPUT</tool>``, INPUT the only argument's value;
    ``qwen`` / ``llama3``: a ``tool_calls`` entry with the arguments object)."""
    if call is None:
      return {"role": "assistant", "content": content}
    name, arguments = call
    if self.tool_format == "tags":
      value = arguments if isinstance(arguments, str) else next(iter(arguments.values()))
      return {"role": "assistant", "content": f"{content}<tool>{name}: {value}</tool>"}
    return {"role": "assistant", "content": content, "tool_calls": [
        {"type": "function", "function": {"name": name, "arguments": dict(arguments)}}]}

  def observation_message(self, text: str) -> dict:
    """The environment's answer as a message: ``tool`` (``qwen`` / ``llama3``) or ``user``."""
    return {"role": "user" if self.tool_format == "tags" else "tool", "content": text}

  # --- rendering --------------------------------------------------------------------------------
  def render_text(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """The template's text of ``messages`` (with the tools and template variables)."""
    return self.tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, chat_template=self.template,
        tools=self.tools, **self.template_kwargs)

  def render_ids(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of :meth:`render_text` (as transformers' ``apply_chat_template(...,
    tokenize=True)``: the template writes its own bos)."""
    return self.tokenizer.encode(self.render_text(messages, add_generation_prompt))

  def prompt_ids(self, prompt: str) -> list[int]:
    """The first prompt's ids: ``[system?, user]`` with the generation prompt."""
    return self.render_ids(self.messages(prompt), add_generation_prompt=True)

  def render(self, example, prompt: str) -> list[int]:
    """``run_episodes``'s ``render`` hook: ``(example, first prompt text) → ids``."""
    del example
    return self.prompt_ids(prompt)

  def observation_ids(self, text: str) -> list[int]:
    """``run_episodes``'s ``encode_observation`` hook: the ids appended after an action's end
    token, i.e. the template's text after that token (tool or user message with ``text``, next
    generation prompt). With ``max_obs_tokens`` the tool output is cut to fit."""
    ids = self._observation(text)
    content = self.tokenizer.encode(text) if self.max_obs_tokens else []
    while self.max_obs_tokens and len(ids) > self.max_obs_tokens and content:
      content = content[:max(0, len(content) - (len(ids) - self.max_obs_tokens))]
      ids = self._observation(self.tokenizer.decode(content, skip_special_tokens=False))
    return ids

  def _observation(self, text: str) -> list[int]:
    full = self.render_text(self._history + [self.observation_message(text)], True)
    if not full.startswith(self._prefix):
      raise ValueError(_not_prefix("adding a tool message", self._prefix, full))
    return self.tokenizer.encode(full[len(self._prefix):])

  def conversation_ids(self, messages: Sequence[dict]) -> list[int]:
    """A whole conversation's ids, rendered at once, as an episode holds it: with the
    generation prompt when it ends with an observation; when it ends with an assistant turn,
    up to that turn's end token (the template's text after it is not part of the episode)."""
    if messages[-1]["role"] != "assistant":
      return self.render_ids(messages, add_generation_prompt=True)
    text = self.render_text(messages)
    start = len(self.render_text(messages[:-1], True))
    return self.tokenizer.encode(text[:self._end_of_turn(text, start)])

  def turn_ids(self, messages: Sequence[dict]) -> list[list[int]]:
    """A conversation rendered turn by turn: ``[prompt, action 1, observation 1, action 2,
    ...]`` ids, each the text a rendering adds to the previous one (an action up to its end
    token). Raises ``ValueError`` where a rendering changes the text before it."""
    messages = list(messages)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not turns:
      return [self.render_ids(messages, add_generation_prompt=True)]
    done = self.render_text(messages[:turns[0]], True)
    pieces = [done]
    for k, i in enumerate(turns):
      if k:  # the observation: the messages since the last action, and the generation prompt
        text = self.render_text(messages[:i], True)
        if not text.startswith(done):
          raise ValueError(_not_prefix(f"adding message {turns[k - 1] + 1}", done, text))
        pieces.append(text[len(done):])
        done = text
      text = self.render_text(messages[:i + 1])
      if not text.startswith(done):
        raise ValueError(_not_prefix(f"adding assistant message {i}", done, text))
      end = self._end_of_turn(text, len(done))
      pieces.append(text[len(done):end])
      done = text[:end]
    if turns[-1] < len(messages) - 1:
      text = self.render_text(messages, True)
      if not text.startswith(done):
        raise ValueError(_not_prefix("adding the last messages", done, text))
      pieces.append(text[len(done):])
    return [self.tokenizer.encode(p) for p in pieces]

  def _end_of_turn(self, text: str, start: int) -> int:
    """The index after the assistant message's end token in ``text`` (the message starts at
    ``start``)."""
    i = text.rfind(self.end_token)
    if i < start:
      raise ValueError(
          f"the chat template does not end an assistant message with {self.end_token!r} (the "
          f"token where the model's turn stops: the tokenizer's eos): it wrote "
          f"{text[start:][-80:]!r}; use a tokenizer whose eos_token is the template's end of turn")
    return i + len(self.end_token)

  # --- the check --------------------------------------------------------------------------------
  def probe_conversation(self) -> list[dict]:
    """The check's 3-turn conversation: user, tool call, tool, tool call, tool, answer."""
    out = self.messages(_PROBE_PROMPT)
    for args, result in zip(_PROBE_CALLS, _PROBE_OUTPUTS):
      out += [self.assistant_message(call=(self._tool_name, args)),
              self.observation_message(result if self.tool_format != "tags"
                                       else f"<obs>{result}</obs>")]
    return out + [self.assistant_message(_PROBE_ANSWER)]

  def check(self, messages: Sequence[dict] | None = None) -> None:
    """Raises ``ValueError`` unless ``messages`` (default :meth:`probe_conversation`) rendered at
    once equals, token for token, its turns rendered one by one, and its observations equal
    :meth:`observation_ids` of their text (an observation does not depend on the turn)."""
    if self.max_obs_tokens and len(self._observation("")) > self.max_obs_tokens:
      raise ValueError(f"max_obs_tokens={self.max_obs_tokens} is less than the template's frame "
                       f"of an observation ({len(self._observation(''))} tokens)")
    messages = list(messages or self.probe_conversation())
    pieces = self.turn_ids(messages)
    whole, flat = self.conversation_ids(messages), [t for p in pieces for t in p]
    if flat != whole:
      i = next((j for j, (a, b) in enumerate(zip(flat, whole)) if a != b), min(len(flat),
                                                                               len(whole)))
      dec = lambda ids: [self.tokenizer.decode([t], skip_special_tokens=False)  # noqa: E731
                         for t in ids[max(0, i - 3):i + 3]]
      raise ValueError(
          f"the chat template does not split cleanly into turns: from token {i}, rendered at "
          f"once the tokens are {dec(whole)}, rendered turn by turn {dec(flat)} (a token merges "
          f"across a turn boundary, or the tokenizer adds a prefix to each piece)")
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    answers = [m for m in messages[first:] if m["role"] != "assistant"]  # one message a turn
    for m, piece in zip(answers, pieces[2::2]):
      if self._observation(m["content"]) != piece:
        raise ValueError(
            f"the chat template renders the observation {m['content']!r} differently later in the "
            f"conversation ({self.tokenizer.decode(piece, skip_special_tokens=False)!r}) than "
            f"after the first turn")


def _not_prefix(what: str, before: str, after: str) -> str:
  i = next((j for j, (a, b) in enumerate(zip(before, after)) if a != b), len(before))
  return (f"the chat template is not prefix-consistent: {what} changes the text before it at "
          f"character {i} ({before[max(0, i - 40):i + 40]!r} becomes "
          f"{after[max(0, i - 40):i + 40]!r}); its turns cannot be appended one by one")


@functools.lru_cache(maxsize=8)
def _cached_renderer(tokenizer, tool_format: str, tools_json: str, system: str | None,
                     max_obs_tokens: int) -> ChatRenderer:
  return ChatRenderer(tokenizer, tool_format=tool_format, tools=json.loads(tools_json) or None,
                      system=system, max_obs_tokens=max_obs_tokens)


def episode_renderer(setup, envs: Sequence[Any] = ()) -> ChatRenderer | None:
  """The renderer of a run's episodes (``rlx.runtime.rollouts.sample_episodes``), built once
  per tokenizer and settings: with ``data.prompt_format = "chat"``, a :class:`ChatRenderer` in
  ``env.tool_format`` with the system message of the run's ``ChatFormat`` and, for the JSON
  tool formats, the schemas of the environments' tools (``env.tool_schemas()``); None with plain
  prompts (the first prompt is ``data``'s plain format and observations are encoded as
  they are)."""
  run = setup.run
  if getattr(run.data.prompt_format, "value", run.data.prompt_format) != "chat":
    return None
  tool_format = run.env.tool_format
  schemas = envs[0].tool_schemas() if envs and hasattr(envs[0], "tool_schemas") else []
  if tool_format == "tags":
    schemas = []
  return _cached_renderer(setup.tokenizer, tool_format, json.dumps(schemas, sort_keys=True),
                          getattr(setup.formatter, "system", None), run.env.max_obs_tokens)


__all__ = ["ChatRenderer", "episode_renderer", "tool_schema"]
