"""Chat-template rendering with the same jinja2 environment as Hugging Face transformers.

Templates come from `tokenizer_config.json` (`chat_template`) or a `chat_template.jinja` file. They
are rendered in a sandboxed jinja2 environment with `trim_blocks` and `lstrip_blocks`, the
`loopcontrols` extension, a `tojson` filter that does not HTML-escape, and the globals
`raise_exception`, `strftime_now`, `dict` and `namespace`, as `transformers.apply_chat_template`
does; the special tokens (`bos_token`, `eos_token`, ...) are template variables.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class _GenerationTag(jinja2.ext.Extension):
  """Accepts `{% generation %}...{% endgeneration %}` blocks (rendered as their body)."""

  tags = {"generation"}

  def parse(self, parser):
    lineno = next(parser.stream).lineno
    body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
    return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

  def _body(self, caller):
    return caller()


def _raise_exception(message):
  raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
  return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                    sort_keys=sort_keys)


def _strftime_now(fmt):
  return datetime.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=32)
def compile_chat_template(template: str) -> jinja2.Template:
  """Compiles `template` once (cached) in the transformers-compatible sandbox."""
  env = ImmutableSandboxedEnvironment(
      trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols])
  env.filters["tojson"] = _tojson
  env.globals["raise_exception"] = _raise_exception
  env.globals["strftime_now"] = _strftime_now
  return env.from_string(template)


def render_chat_template(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    special_tokens: Mapping[str, str | None] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> str:
  """Renders a conversation with a jinja2 chat template.

  Args:
    template: the jinja2 source (e.g. `tokenizer_config.json["chat_template"]`).
    messages: `[{"role": ..., "content": ...}, ...]`; an assistant's tool calls as
      `{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": ...,
      "arguments": {...}}}]}`, their results as `{"role": "tool", "content": ...}`.
    add_generation_prompt: appends the template's assistant header (for sampling).
    special_tokens: `{"bos_token": "<s>", "eos_token": "</s>", ...}`; None values are omitted.
    tools: the tools' JSON schemas (`{"type": "function", "function": {"name", "description",
      "parameters"}}`), written where the template puts them (e.g. Qwen2.5's system message,
      Llama 3.1's first user message). Like transformers, `tools` and `documents` are always
      template variables (None when not given).
    documents: retrieval documents (`[{"title": ..., "text": ...}]`) for templates that take them.
    **kwargs: further template variables (e.g. `enable_thinking`, `date_string`).

  Returns:
    The rendered text. Template errors (including `raise_exception`) raise
    `jinja2.exceptions.TemplateError`.
  """
  for tool in tools or ():
    if not isinstance(tool, Mapping):
      raise TypeError(f"tools: each tool is a JSON schema (a mapping), got {type(tool).__name__}")
  variables = {k: v for k, v in (special_tokens or {}).items() if v is not None}
  variables.update(kwargs)
  messages = [dict(m) for m in messages]
  return compile_chat_template(template).render(
      messages=messages, add_generation_prompt=add_generation_prompt,
      tools=None if tools is None else [dict(t) for t in tools],
      documents=None if documents is None else [dict(d) for d in documents], **variables)
