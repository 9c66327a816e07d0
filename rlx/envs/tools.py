"""Tools and the tool-use environment.

Tool-call formats (``ToolEnv(tool_format=...)``, config ``env.tool_format``):

- ``"tags"`` (a plain tag format): the model writes ``<tool>NAME: INPUT</tool>``; the environment
  answers ``<obs>OUTPUT</obs>``.
- ``"qwen"`` (Qwen2.5 / Hermes): ``<tool_call>\n{"name": NAME, "arguments": {...}}\n</tool_call>``;
- ``"llama3"`` (Llama 3.1 JSON tool calling): a turn that is a JSON object ``{"name": NAME,
  "parameters": {...}}``, optionally after ``<|python_tag|>``.

With ``qwen`` / ``llama3`` the observation is the tool's output alone: the chat template wraps it
in its tool message (``rlx.envs.chat.ChatRenderer``). Only a turn's first call runs. A tool takes
one string: the value of its argument key (``TOOL_ARGS``: ``expression``, ``code``, ``query``;
``input`` for tools given as callables), or the value of the only argument whatever its key. A
turn with no tool call is the final answer: the episode ends and the answer is scored.

Every tool call is contained: a tool that raises, runs past ``tool_timeout`` seconds or prints
more than ``max_obs_chars`` ends only that turn, with an error observation, and is counted
(``info["tool_error"]``).
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import json
import math
import operator
import re
from typing import Any, Callable

from rlx.envs.base import Environment, StepResult, register_env

_CALL = re.compile(r"<tool>\s*([A-Za-z_][\w-]*)\s*:(.*?)</tool>", re.S)


def parse_tool_call(action: str) -> tuple[str, str] | None:
  """The first ``<tool>NAME: INPUT</tool>`` of ``action`` as ``(NAME, INPUT)``, or None."""
  m = _CALL.search(action)
  return None if m is None else (m.group(1), m.group(2).strip())


TOOL_FORMATS = ("tags", "qwen", "llama3")
_QWEN_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_PYTHON_TAG = "<|python_tag|>"


@dataclasses.dataclass
class ToolCall:
  """A turn's tool call: ``name`` and ``arguments`` (the input string in the tags format, the
  JSON arguments object in the others), or ``error`` (a malformed call: what is wrong)."""

  name: str = ""
  arguments: Any = None
  error: str = ""


def _json_call(body: str, keys: tuple[str, ...]) -> ToolCall:
  """``{"name": ..., KEY: {...}}`` at the start of ``body`` (KEY the first of ``keys`` present)."""
  try:
    obj, _ = json.JSONDecoder().raw_decode(body.strip())
  except json.JSONDecodeError as e:
    return ToolCall(error=f"malformed tool call (invalid JSON: {e.msg} at char {e.pos})")
  if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
    return ToolCall(error='malformed tool call (a JSON object with a "name" string is needed)')
  args = next((obj[k] for k in keys if k in obj), {})
  if isinstance(args, str):  # some models write the arguments object as a JSON string
    try:
      args = json.loads(args)
    except json.JSONDecodeError:
      pass
  return ToolCall(name=obj["name"], arguments=args)


def find_tool_call(action: str, tool_format: str = "tags") -> ToolCall | None:
  """The first tool call of ``action`` (a turn's decoded text) in ``tool_format``; None when the
  turn calls no tool (its final answer), a ``ToolCall`` with ``error`` set when it tries and the
  call is malformed (e.g. invalid JSON).

  - ``tags``: ``<tool>NAME: INPUT</tool>`` (arguments: the INPUT string);
  - ``qwen``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (a missing closing tag
    is accepted: the turn may end at its stop token);
  - ``llama3``: the turn (after an optional ``<|python_tag|>``) is ``{"name": ...,
    "parameters": {...}}``; a turn starting with ``{`` is a call attempt.
  """
  if tool_format == "tags":
    call = parse_tool_call(action)
    return None if call is None else ToolCall(name=call[0], arguments=call[1])
  if tool_format == "qwen":
    m = _QWEN_CALL.search(action)
    return None if m is None else _json_call(m.group(1), ("arguments", "parameters"))
  if tool_format == "llama3":
    body = action.split(_PYTHON_TAG, 1)[1] if _PYTHON_TAG in action else action
    if _PYTHON_TAG not in action and not body.lstrip().startswith("{"):
      return None
    return _json_call(body, ("parameters", "arguments"))
  raise ValueError(f"tool_format={tool_format!r}: unknown format; allowed values: "
                   f"{', '.join(map(repr, TOOL_FORMATS))}")


# ----- calculator -----

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculator(expression: str) -> str:
  """Arithmetic on numbers: ``+ - * / // % **`` and parentheses (no names, no calls).
  Exponents above 1000 and results above 1e300 in magnitude are refused."""
  def ev(node):
    if isinstance(node, ast.Expression):
      return ev(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(
        node.value, bool):
      return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
      return _UNARY[type(node.op)](ev(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
      a, b = ev(node.left), ev(node.right)
      if isinstance(node.op, ast.Pow) and abs(b) > 1000:
        raise ValueError("exponent too large")
      out = _BINARY[type(node.op)](a, b)
      if isinstance(out, complex) or abs(out) > 1e300:
        raise ValueError("result out of range")
      return out
    raise ValueError(f"unsupported expression: {ast.dump(node)[:60]}")
  value = ev(ast.parse(expression.replace("^", "**"), mode="eval"))
  if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
    value = int(value)
  return repr(value) if isinstance(value, float) and not math.isfinite(value) else str(value)


# ----- python -----

_MARK = "__rlx_cell_output_starts__"


def python_tool(sandbox_config=None):
  """A Python interpreter whose state lasts an episode: each call runs the episode's earlier
  cells that ran cleanly (output discarded) and then the new one, in the kernel-isolated
  sandbox (``rlx.rewards.sandbox``); the observation is the new cell's stdout, or its error."""
  from rlx.rewards.sandbox import SandboxConfig, run_python
  config = sandbox_config or SandboxConfig(timeout=2.0)
  cells: list[str] = []

  def run(code: str) -> str:
    program = "\n".join(cells + [f"print({_MARK!r})", code])
    result = run_python(program, config=config)
    out = result.stdout.split(_MARK + "\n", 1)[-1] if _MARK in result.stdout else ""
    if result.status != "ok":
      err = result.stderr.strip().splitlines()[-1:] or [result.status]
      raise RuntimeError(f"{result.status}: {err[0]}" + (f"\n{out}" if out else ""))
    cells.append(code)
    return out
  return run


def _search(documents=None, k: int = 3, max_chars: int = 400, **_):
  from rlx.data.retrieval import search_tool
  if documents is None:
    raise ValueError("the search tool needs a document collection: env.kwargs.tool_kwargs = "
                     "{'search': {'documents': PATH}}")
  return search_tool(documents, k=k, max_chars=max_chars)


# name -> factory(**kwargs) of the tool callable (str -> str), made once per episode.
TOOLS: dict[str, Callable[..., Callable[[str], str]]] = {
    "calculator": lambda **_: calculator,
    "python": lambda sandbox_config=None, **_: python_tool(sandbox_config),
    "search": _search,
}

# name -> (its one argument's key in JSON tool calls, its description for the chat template).
TOOL_ARGS: dict[str, tuple[str, str]] = {
    "calculator": ("expression", "Evaluates an arithmetic expression (+ - * / // % ** and "
                   "parentheses on numbers) and returns its value."),
    "python": ("code", "Runs Python code in a stateful interpreter (variables persist between "
               "calls) and returns what it prints."),
    "search": ("query", "Searches the document collection and returns the best matches."),
}
_DEFAULT_ARG = "input"  # the argument key of tools given as callables


def tool_schema(name: str, description: str | None = None, arg: str | None = None) -> dict:
  """The JSON schema of tool ``name`` (one string argument) that chat templates list:
  ``{"type": "function", "function": {"name", "description", "parameters"}}``."""
  key, text = TOOL_ARGS.get(name, (_DEFAULT_ARG, f"The {name} tool."))
  key, text = arg or key, description or text
  return {"type": "function", "function": {
      "name": name, "description": text,
      "parameters": {"type": "object", "properties": {key: {"type": "string"}},
                     "required": [key]}}}


def _tool_input(name: str, arguments: Any) -> str:
  """A JSON call's arguments → the tool's one string: the value of its key (``TOOL_ARGS``), else
  of the only argument; a bare string is taken as it is. Raises ``ValueError`` otherwise."""
  key = TOOL_ARGS.get(name, (_DEFAULT_ARG,))[0]
  if isinstance(arguments, str):
    return arguments
  if isinstance(arguments, dict):
    value = arguments.get(key, next(iter(arguments.values())) if len(arguments) == 1 else None)
    if value is not None:
      return value if isinstance(value, str) else json.dumps(value)
  raise ValueError(f"{name} takes one argument {key!r}; got arguments {json.dumps(arguments)}")


# ----- the environment -----

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="rlx-tool")


def _final_answer_score(example, action: str) -> float:
  from rlx.rewards.math_verify import extract_answer, math_equal
  answer = example["answer"] if isinstance(example, dict) else example.answer
  pred = extract_answer(action)
  return float(pred is not None and math_equal(pred, str(answer)))


class ToolEnv(Environment):
  """A question answered with tools: each turn either calls one tool (the episode goes on with
  its output as the observation) or answers (the episode ends; reward = ``score(example,
  answer_text)``, by default 1 if the answer's last number / boxed value equals
  ``example.answer``).

  Args:
    tools: names of ``TOOLS`` or ``{name: callable(str) -> str}``.
    tool_kwargs: ``{name: {keyword: value}}`` for the ``TOOLS`` factories (e.g. the ``search``
      tool's ``documents`` path and ``k``).
    score: ``(example, final_action_text) -> float``.
    tool_timeout: seconds a tool call may take (then an error observation).
    max_obs_chars: longer tool output is cut (and counted as ``obs_truncated``).
    instructions: text put after the example's prompt (names the tools and the format).
    tool_format: how calls are written: ``"tags"``, ``"qwen"`` or ``"llama3"`` (module
      docstring); with the JSON formats a malformed call is a tool error (an error observation,
      counted), and the observation is the bare tool output for the chat template to wrap.
  """

  def __init__(self, tools=("calculator",), score: Callable[[Any, str], float] | None = None, *,
               tool_timeout: float = 5.0, max_obs_chars: int = 1000,
               instructions: str | None = None, sandbox_config=None,
               tool_kwargs: dict | None = None, tool_format: str = "tags"):
    if tool_format not in TOOL_FORMATS:
      raise ValueError(f"tool_format={tool_format!r}: unknown format; allowed values: "
                       f"{', '.join(map(repr, TOOL_FORMATS))}")
    kw = {name: dict(v) for name, v in (tool_kwargs or {}).items()}
    self.tools = ({name: TOOLS[name](sandbox_config=sandbox_config, **kw.get(name, {}))
                   for name in tools} if not isinstance(tools, dict) else dict(tools))
    self.score = score or _final_answer_score
    self.tool_timeout, self.max_obs_chars = tool_timeout, max_obs_chars
    self.instructions = instructions
    self.tool_format = tool_format
    self.example = None

  def tool_schemas(self) -> list[dict]:
    """The JSON schemas of this environment's tools (``tool_schema``), for the chat template."""
    return [tool_schema(name) for name in self.tools]

  def reset(self, example) -> str:
    self.example = example
    prompt = example["prompt"] if isinstance(example, dict) else example.prompt
    if self.instructions is None:
      return prompt
    return f"{prompt}\n{self.instructions}"

  def step(self, action: str) -> StepResult:
    call = find_tool_call(action, self.tool_format)
    if call is None:
      return StepResult(reward=float(self.score(self.example, action)), done=True,
                        info={"tool_calls": 0})
    name = call.name
    info = {"tool_calls": 1, "tool_error": 0, "obs_truncated": 0}
    arg = call.arguments
    if not call.error and self.tool_format != "tags" and name in self.tools:
      try:
        arg = _tool_input(name, call.arguments)
      except ValueError as e:
        call.error = str(e)
    if call.error:
      out, info["tool_error"] = f"error: {call.error}", 1
    elif name not in self.tools:
      out, info["tool_error"] = f"error: unknown tool {name!r} (tools: {sorted(self.tools)})", 1
    else:
      future = _POOL.submit(self.tools[name], arg)
      try:
        out = str(future.result(timeout=self.tool_timeout))
      except concurrent.futures.TimeoutError:
        out, info["tool_error"] = f"error: {name} ran past {self.tool_timeout} s", 1
      except Exception as e:  # noqa: BLE001 - a tool's failure is the model's observation
        out, info["tool_error"] = f"error: {type(e).__name__}: {e}", 1
    if len(out) > self.max_obs_chars:
      out, info["obs_truncated"] = out[:self.max_obs_chars], 1
    return StepResult(observation=f"<obs>{out}</obs>" if self.tool_format == "tags" else out,
                      info=info)


register_env("tools", ToolEnv)
