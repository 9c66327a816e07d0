"""Tools and the tool-use environment.

Tool-call format (a plain tag format): the model writes ``<tool>NAME: INPUT</tool>``; the
environment runs the tool and answers ``<obs>OUTPUT</obs>`` (loss mask 0). A turn with no tool
call is the final answer: the episode ends and the answer is scored.

Every tool call is contained: a tool that raises, runs past ``tool_timeout`` seconds or prints
more than ``max_obs_chars`` ends only that turn, with an error observation, and is counted
(``info["tool_error"]``).
"""

from __future__ import annotations

import ast
import concurrent.futures
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
  from rlx.envs.retrieval import search_tool
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
  """

  def __init__(self, tools=("calculator",), score: Callable[[Any, str], float] | None = None, *,
               tool_timeout: float = 5.0, max_obs_chars: int = 1000,
               instructions: str | None = None, sandbox_config=None,
               tool_kwargs: dict | None = None):
    kw = {name: dict(v) for name, v in (tool_kwargs or {}).items()}
    self.tools = ({name: TOOLS[name](sandbox_config=sandbox_config, **kw.get(name, {}))
                   for name in tools} if not isinstance(tools, dict) else dict(tools))
    self.score = score or _final_answer_score
    self.tool_timeout, self.max_obs_chars = tool_timeout, max_obs_chars
    self.instructions = instructions
    self.example = None

  def reset(self, example) -> str:
    self.example = example
    prompt = example["prompt"] if isinstance(example, dict) else example.prompt
    if self.instructions is None:
      return prompt
    return f"{prompt}\n{self.instructions}"

  def step(self, action: str) -> StepResult:
    call = parse_tool_call(action)
    if call is None:
      return StepResult(reward=float(self.score(self.example, action)), done=True,
                        info={"tool_calls": 0})
    name, arg = call
    info = {"tool_calls": 1, "tool_error": 0, "obs_truncated": 0}
    if name not in self.tools:
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
    return StepResult(observation=f"<obs>{out}</obs>", info=info)


register_env("tools", ToolEnv)
