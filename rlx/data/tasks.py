"""Synthetic verifiable tasks with a difficulty knob.

Each task generates :class:`~rlx.data.example.Example` records from an explicitly seeded numpy
``Generator``: the prompt, the reference answer, a worked solution (an SFT demonstration that ends
in ``Answer: <answer>``) and ``info`` (the structured problem). ``verify(completion, answer)``
scores a model completion 1.0 / 0.0 by the *last* ``Answer:`` line it contains.

Difficulty:

===================  ===================================  =========
task                 difficulty                           range
===================  ===================================  =========
arithmetic           digits per operand (+, -, *)         1 .. 12
countdown            how many numbers must be combined    2 .. 6
calculation          steps of a nested expression         1 .. 20
sort, reverse        list length                          2 .. 24
tool_multiplication  digits per operand (*, calculator)   1 .. 6
===================  ===================================  =========

``tool_multiplication``'s demonstrations are multi-turn episodes (``info["episode"]``) for the
tool-use environment (``env.name="tools"``, docs/envs.md).

``reference_solve(example, capacity, rng)`` is a fixed reference solver used to calibrate the
difficulty knob: it answers exactly when ``difficulty <= capacity`` and guesses otherwise, so its
accuracy is 1 up to ``capacity`` and near chance above it.
"""

from __future__ import annotations

import ast
import dataclasses
import fractions
import re
from collections.abc import Sequence

import numpy as np

from rlx.data.example import Example

_ANSWER_RE = re.compile(r"Answer:[ \t]*([^\n]*)")


def extract_answer(completion: str) -> str | None:
  """The text after the last ``Answer:`` in ``completion`` (to the end of its line), stripped."""
  found = _ANSWER_RE.findall(completion)
  return found[-1].strip() if found else None


def _parse_int(text: str | None) -> int | None:
  if text is None:
    return None
  text = text.replace(",", "").replace(" ", "").rstrip(".")
  return int(text) if re.fullmatch(r"[+-]?\d{1,64}", text) else None


def _digits(rng: np.random.Generator, d: int) -> int:
  """A uniformly random integer with exactly ``d`` digits."""
  lo = 0 if d == 1 else 10 ** (d - 1)
  return int(lo + rng.integers(0, 10**d - lo))


@dataclasses.dataclass(frozen=True)
class Task:
  """Base class: ``generate``, ``verify`` and ``reference_solve`` per task."""

  name: str = ""
  min_difficulty: int = 1
  max_difficulty: int = 1

  def check_difficulty(self, difficulty: int) -> int:
    difficulty = int(difficulty)
    if not self.min_difficulty <= difficulty <= self.max_difficulty:
      raise ValueError(f"{self.name}: difficulty {difficulty} outside "
                       f"[{self.min_difficulty}, {self.max_difficulty}]")
    return difficulty

  def generate(self, rng: np.random.Generator, difficulty: int) -> Example:
    """One example of the given difficulty, consuming randomness only from ``rng``."""
    raise NotImplementedError

  def verify(self, completion: str, answer: str) -> float:
    """1.0 iff the completion's final ``Answer:`` equals the reference ``answer``, else 0.0."""
    got = _parse_int(extract_answer(completion))
    return float(got is not None and got == _parse_int(answer))

  def solve(self, example: Example) -> str:
    """The exact answer string, computed from ``example.info`` (not from ``example.answer``)."""
    raise NotImplementedError

  def guess(self, example: Example, rng: np.random.Generator) -> str:
    """A plausible-looking answer string that ignores most of the problem."""
    raise NotImplementedError

  def reference_solve(self, example: Example, capacity: int, rng: np.random.Generator) -> str:
    """Completion of a solver exact iff ``example.difficulty <= capacity``, guessing otherwise."""
    answer = self.solve(example) if example.difficulty <= capacity else self.guess(example, rng)
    return f"Answer: {answer}"


# --- multi-digit arithmetic -------------------------------------------------------------------
def _column_add(a: int, b: int) -> list[str]:
  lines, carry, pos = [], 0, 0
  while a or b or carry:
    da, db = a % 10, b % 10
    s = da + db + carry
    lines.append(f"digit {pos}: {da}+{db}+{carry}={s}, write {s % 10} carry {s // 10}")
    carry, a, b, pos = s // 10, a // 10, b // 10, pos + 1
  return lines


def _column_sub(a: int, b: int) -> list[str]:
  """Column subtraction a - b for a >= b >= 0."""
  lines, borrow, pos = [], 0, 0
  while a or b:
    da, db = a % 10, b % 10
    s = da - db - borrow
    nb = int(s < 0)
    lines.append(f"digit {pos}: {da}-{db}-{borrow}={s}, write {s + 10 * nb} borrow {nb}")
    borrow, a, b, pos = nb, a // 10, b // 10, pos + 1
  return lines


@dataclasses.dataclass(frozen=True)
class ArithmeticTask(Task):
  """``a op b`` for two ``difficulty``-digit integers, op in ``ops``."""

  name: str = "arithmetic"
  min_difficulty: int = 1
  max_difficulty: int = 12
  ops: tuple[str, ...] = ("+", "-", "*")

  def generate(self, rng, difficulty):
    d = self.check_difficulty(difficulty)
    a, b = _digits(rng, d), _digits(rng, d)
    op = self.ops[int(rng.integers(len(self.ops)))]
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    if op == "+":
      steps = ["Add column by column from the right."] + _column_add(a, b)
    elif op == "-":
      hi, lo = max(a, b), min(a, b)
      steps = ([f"{a} < {b}, so compute {b} - {a} and negate."] if a < b else []) + [
          "Subtract column by column from the right."] + _column_sub(hi, lo)
    else:
      steps, partials, place = [], [], 1
      for digit in reversed(str(b)):
        if digit != "0":
          p = a * int(digit) * place
          steps.append(f"{a} * {int(digit) * place} = {p}")
          partials.append(p)
        place *= 10
      if len(partials) > 1:
        steps.append(f"Sum: {' + '.join(map(str, partials))} = {value}")
    solution = "\n".join(steps + [f"Answer: {value}"])
    return Example(prompt=f"What is {a} {op} {b}?", answer=str(value), task=self.name,
                   difficulty=d, solution=solution, info={"a": a, "b": b, "op": op})

  def solve(self, example):
    a, b, op = example.info["a"], example.info["b"], example.info["op"]
    return str({"+": a + b, "-": a - b, "*": a * b}[op])

  def guess(self, example, rng):
    return str(_digits(rng, len(self.solve(example).lstrip("-"))))


# --- countdown --------------------------------------------------------------------------------
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _evaluate(node: ast.AST, leaves: list[int]) -> fractions.Fraction:
  """Exact value of a +-*/ integer expression; collects the integer literals into ``leaves``."""
  if isinstance(node, ast.Expression):
    return _evaluate(node.body, leaves)
  if isinstance(node, ast.Constant) and type(node.value) is int:
    leaves.append(node.value)
    return fractions.Fraction(node.value)
  if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
    x, y = _evaluate(node.left, leaves), _evaluate(node.right, leaves)
    op = _OPS[type(node.op)]
    if op == "/":
      if y == 0:
        raise ZeroDivisionError
      return x / y
    return x + y if op == "+" else x - y if op == "-" else x * y
  raise ValueError(f"disallowed expression element {type(node).__name__}")


def evaluate_expression(expr: str) -> tuple[fractions.Fraction, list[int]] | None:
  """``(value, integer literals)`` of an arithmetic expression, or None if invalid/unsafe."""
  expr = expr.split("=")[0].strip()
  if not expr or len(expr) > 256 or not re.fullmatch(r"[\d\s+\-*/()]+", expr):
    return None
  try:
    leaves: list[int] = []
    return _evaluate(ast.parse(expr, mode="eval"), leaves), leaves
  except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
    return None


def _combine(rng, items):
  """Randomly combines ``items`` [(value, expr)] into one, returning it and the step lines."""
  items, steps = list(items), []
  while len(items) > 1:
    i, j = rng.choice(len(items), size=2, replace=False)
    (x, ex), (y, ey) = items[i], items[j]
    choices = ["+", "*"] + (["-"] if x > y else []) + (["/"] if y > 1 and x % y == 0 else [])
    op = choices[int(rng.integers(len(choices)))]
    z = {"+": x + y, "-": x - y, "*": x * y, "/": x // max(y, 1)}[op]
    steps.append(f"{x} {op} {y} = {z}")
    items = [it for k, it in enumerate(items) if k not in (i, j)] + [(z, f"({ex} {op} {ey})")]
  value, expr = items[0]
  if expr.startswith("(") and len(steps) > 0:
    expr = expr[1:-1]
  return value, expr, steps


def _search(items):
  """Exhaustive search combining [(Fraction, expr)] to a single item; yields (value, expr)."""
  if len(items) == 1:
    yield items[0]
    return
  n = len(items)
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      (x, ex), (y, ey) = items[i], items[j]
      rest = [items[k] for k in range(n) if k not in (i, j)]
      for op in "+-*/":
        if op in "+*" and i > j:
          continue
        if op == "/" and y == 0:
          continue
        z = {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else 0}[op]
        yield from _search(rest + [(z, f"({ex} {op} {ey})")])


@dataclasses.dataclass(frozen=True)
class CountdownTask(Task):
  """Reach a target with ``difficulty`` numbers, each used exactly once, and + - * /.

  The reference answer is one valid expression; ``verify`` accepts any expression that uses
  exactly the same multiset of numbers and evaluates (exactly, with fractions) to the target.
  """

  name: str = "countdown"
  min_difficulty: int = 2
  max_difficulty: int = 6
  max_number: int = 12
  max_target: int = 999

  def generate(self, rng, difficulty):
    n = self.check_difficulty(difficulty)
    while True:
      numbers = [int(x) for x in rng.integers(1, self.max_number + 1, size=n)]
      value, expr, steps = _combine(rng, [(x, str(x)) for x in numbers])
      if 1 <= value <= self.max_target:
        break
    prompt = (f"Using the numbers {', '.join(map(str, numbers))}, each exactly once, and the "
              f"operations + - * /, make {value}.")
    solution = "\n".join(steps + [f"Answer: {expr}"])
    return Example(prompt=prompt, answer=expr, task=self.name, difficulty=n, solution=solution,
                   info={"numbers": numbers, "target": value})

  def verify(self, completion, answer):
    ref = evaluate_expression(answer)
    got = evaluate_expression(extract_answer(completion) or "")
    if ref is None or got is None:
      return 0.0
    return float(got[0] == ref[0] and sorted(got[1]) == sorted(ref[1]))

  def solve(self, example):
    """Exhaustive search (fine up to 4-5 numbers; slow for 6)."""
    target = fractions.Fraction(example.info["target"])
    items = [(fractions.Fraction(x), str(x)) for x in example.info["numbers"]]
    for value, expr in _search(items):
      if value == target:
        return expr[1:-1] if len(items) > 1 else expr
    raise ValueError(f"no solution for {example.info}")  # cannot happen for generated examples

  def guess(self, example, rng):
    _, expr, _ = _combine(rng, [(x, str(x)) for x in example.info["numbers"]])
    return expr


# --- RandomCalculation-style multi-step expressions -------------------------------------------
@dataclasses.dataclass(frozen=True)
class CalculationTask(Task):
  """A nested expression of ``difficulty`` binary steps over single-digit operands.

  E.g. difficulty 3: ``(4 * (7 + 3)) - 5``; each step applies one of + - * to the running value
  and a new digit (multiplication only while the running value is small, so values stay bounded).
  """

  name: str = "calculation"
  min_difficulty: int = 1
  max_difficulty: int = 20

  def generate(self, rng, difficulty):
    k = self.check_difficulty(difficulty)
    value = start = int(rng.integers(1, 10))
    expr, steps, ops = str(value), [], []
    for _ in range(k):
      x = int(rng.integers(1, 10))
      choices = ["+", "-"] + (["*"] if abs(value) <= 50 else [])
      op = choices[int(rng.integers(len(choices)))]
      left = op != "-" and bool(rng.integers(2))  # commutative ops may put the new digit first
      new = {"+": value + x, "-": value - x, "*": value * x}[op]
      wrapped = expr if len(ops) == 0 else f"({expr})"
      expr = f"{x} {op} {wrapped}" if left else f"{wrapped} {op} {x}"
      steps.append(f"{x} {op} {value} = {new}" if left else f"{value} {op} {x} = {new}")
      ops.append([op, x])
      value = new
    solution = "\n".join(steps + [f"Answer: {value}"])
    return Example(prompt=f"Calculate {expr}.", answer=str(value), task=self.name, difficulty=k,
                   solution=solution, info={"start": start, "ops": ops})

  def solve(self, example):
    value = example.info["start"]
    for op, x in example.info["ops"]:
      value = {"+": value + x, "-": value - x, "*": value * x}[op]
    return str(value)

  def guess(self, example, rng):
    return str(int(rng.integers(-100, 101)))


# --- sorting / reversal ----------------------------------------------------------------------
def _parse_list(text: str | None) -> list[int] | None:
  if text is None:
    return None
  parts = [p for p in re.split(r"[,\s\[\]]+", text) if p]
  if not all(re.fullmatch(r"-?\d{1,12}", p) for p in parts):
    return None
  return [int(p) for p in parts]


@dataclasses.dataclass(frozen=True)
class ListTask(Task):
  """Sort (ascending) or reverse a list of ``difficulty`` integers in [0, 99]."""

  name: str = "sort"
  min_difficulty: int = 2
  max_difficulty: int = 24
  mode: str = "sort"  # "sort" | "reverse"

  def _apply(self, items):
    return sorted(items) if self.mode == "sort" else list(reversed(items))

  def generate(self, rng, difficulty):
    n = self.check_difficulty(difficulty)
    items = [int(x) for x in rng.integers(0, 100, size=n)]
    out = self._apply(items)
    shown = ", ".join(map(str, items))
    if self.mode == "sort":
      prompt = f"Sort these numbers in ascending order: {shown}"
      steps, rest = [], list(items)
      for _ in range(n):
        m = min(rest)
        rest.remove(m)
        steps.append(f"smallest of the rest: {m}")
    else:
      prompt = f"Reverse this list: {shown}"
      steps = [f"item {n - i}: {x}" for i, x in enumerate(out)]
    answer = ", ".join(map(str, out))
    return Example(prompt=prompt, answer=answer, task=self.name, difficulty=n,
                   solution="\n".join(steps + [f"Answer: {answer}"]), info={"items": items})

  def verify(self, completion, answer):
    got = _parse_list(extract_answer(completion))
    return float(got is not None and got == _parse_list(answer))

  def solve(self, example):
    return ", ".join(map(str, self._apply(example.info["items"])))

  def guess(self, example, rng):
    return ", ".join(str(x) for x in rng.permutation(example.info["items"]))


# --- multiplication with a calculator ---------------------------------------------------------
EPISODE = "episode"  # Example.info key of a multi-turn demonstration (see ToolMultiplicationTask)


@dataclasses.dataclass(frozen=True)
class ToolMultiplicationTask(Task):
  """``a * b`` for two ``difficulty``-digit integers, to be answered with the ``calculator`` tool
  of ``rlx.envs.ToolEnv`` (``env.name="tools"``): beyond a tiny model's mental arithmetic, but
  its answer can be copied from the tool's output.

  Each example's demonstration is a whole episode in ``info["episode"]`` (texts of action 1,
  observation 1, action 2, ...; SFT with ``env.name`` set renders it turn by turn,
  ``rlx.data.make_sft_batch``): a ``tool_share`` of the examples (drawn per example) call the
  tool, read its output and answer with it ::

      <tool>calculator: 347 * 582</tool> | <obs>201954</obs> | Answer: 201954

  and the others answer at once (``Answer: 201954``, one turn), as if computed in the head: a
  model trained on the mix calls the tool only sometimes. ``solution`` is the episode's texts on
  separate lines; ``info["uses_tool"]`` says which kind the demonstration is.
  """

  name: str = "tool_multiplication"
  min_difficulty: int = 1
  max_difficulty: int = 6
  tool_share: float = 0.25

  def generate(self, rng, difficulty):
    d = self.check_difficulty(difficulty)
    a, b = _digits(rng, d), _digits(rng, d)
    value = a * b
    uses_tool = bool(rng.random() < self.tool_share)
    final = f"Answer: {value}"
    episode = [f"<tool>calculator: {a} * {b}</tool>", f"<obs>{value}</obs>", final] if (
        uses_tool) else [final]
    return Example(prompt=f"What is {a} * {b}?", answer=str(value), task=self.name, difficulty=d,
                   solution="\n".join(episode),
                   info={"a": a, "b": b, "uses_tool": uses_tool, EPISODE: episode})

  def solve(self, example):
    return str(example.info["a"] * example.info["b"])

  def guess(self, example, rng):
    return str(_digits(rng, len(self.solve(example))))


@dataclasses.dataclass(frozen=True)
class DirectMultiplicationTask(ToolMultiplicationTask):
  """``tool_multiplication`` with direct-answer demonstrations only (``tool_share = 0``): the
  same problems for a seed and index (the generator's draws are the same), each demonstrated as
  ``Answer: 201954`` with no tool call. The no-tool arm of ``experiments/tool_use``."""

  name: str = "direct_multiplication"
  tool_share: float = 0.0


# --- lookup: questions answerable only from a local document collection (search tool) ---------
LOOKUP_ITEMS = 1000  # records in the shipped collection (rlx/data/assets/lookup_items.jsonl)
LOOKUP_SEED = 20_251_208  # the collection's fixed generator seed


def lookup_collection(num_items: int = LOOKUP_ITEMS, seed: int = LOOKUP_SEED) -> list[dict]:
  """The ``lookup`` task's document collection: ``num_items`` records ``{"title": "item 4821",
  "text": "price 37"}`` (distinct 4-digit item ids, prices 10-99), a pure function of ``seed``."""
  rng = np.random.default_rng(seed)
  ids = rng.choice(np.arange(1000, 10000), size=num_items, replace=False)
  prices = rng.integers(10, 100, size=num_items)
  return [{"title": f"item {int(i)}", "text": f"price {int(p)}"} for i, p in zip(ids, prices)]


def lookup_documents_path() -> str:
  """The shipped collection (40 kB of JSONL, written by :func:`write_lookup_collection`)."""
  import os
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "lookup_items.jsonl")


def write_lookup_collection(path: str | None = None) -> str:
  """Write :func:`lookup_collection` as JSONL to ``path`` (default: the shipped asset)."""
  import json
  path = path or lookup_documents_path()
  with open(path, "w", encoding="utf-8") as f:
    for row in lookup_collection():
      f.write(json.dumps(row) + "\n")
  return path


_LOOKUP_SEARCH: dict = {}


def lookup_search(query: str, k: int = 1) -> str:
  """What the ``search`` tool (``rlx.data.retrieval.search_tool`` over the shipped collection,
  top ``k``) answers to ``query``; memoised, so rendering demonstrations stays cheap."""
  key = (query, k)
  if key not in _LOOKUP_SEARCH:
    from rlx.data.retrieval import search_tool
    _LOOKUP_SEARCH[key] = search_tool(lookup_documents_path(), k=k)(query)
  return _LOOKUP_SEARCH[key]


@dataclasses.dataclass(frozen=True)
class LookupTask(Task):
  """"What does item 4821 cost?": the price is only in a local document collection
  (:func:`lookup_collection`, shipped as ``rlx/data/assets/lookup_items.jsonl``: 1000 records
  ``item 4821: price 37`` drawn from a fixed seed), to be found with the ``search`` tool of
  ``rlx.envs.ToolEnv`` (``env.tool_kwargs = {"search": {"documents": lookup_documents_path(),
  "k": 1}}``). Questions are split by item: a fixed quarter of the items (collection index
  ``% 4 == 3``) are asked only by the held-out task (:meth:`held_out_task`, which the runtime
  uses for ``data.task``'s held-out source), so held-out questions are about items never asked
  in training: a model can answer them only by searching.

  ``solution`` is the direct answer (``Answer: 37``: the single-turn demonstration, a guess for
  a model that has not memorised the item); ``info["episode"]`` is the multi-turn demonstration
  (SFT with ``env.name="tools"``): for a ``tool_share`` of the examples (drawn per example) ::

      <tool>search: item 4821</tool> | <obs>[1] item 4821: price 37</obs> | Answer: 37

  with the observation rendered by the real tool (:func:`lookup_search`), else the direct
  answer alone. ``info["uses_tool"]`` says which. Difficulty ``d`` asks for the total price of
  ``d`` distinct items ("What do items 4821, 1537 and 2753 cost in total?"): one search per item
  (a multi-hop question; the study uses ``d = 1``).
  """

  name: str = "lookup"
  min_difficulty: int = 1
  max_difficulty: int = 4  # distinct items whose prices are summed: one search each
  tool_share: float = 0.25
  k: int = 1  # documents the search tool returns (the config's tool_kwargs["search"]["k"])
  split: str = "train"  # "train" (3/4 of the items), "held_out" (the other 1/4) or "all"

  def held_out_task(self) -> "LookupTask":
    """The same task asking only about the held-out items."""
    return dataclasses.replace(self, split="held_out")

  def items(self) -> list[tuple[int, int]]:
    rows = _lookup_rows()
    keep = {"train": lambda j: j % 4 != 3, "held_out": lambda j: j % 4 == 3,
            "all": lambda j: True}[self.split]
    return [r for j, r in enumerate(rows) if keep(j)]

  def generate(self, rng, difficulty):
    d = self.check_difficulty(difficulty)
    items = _lookup_items(self.split)
    picked: list[tuple[int, int]] = []
    while len(picked) < d:  # d distinct items
      row = items[int(rng.integers(len(items)))]
      if row not in picked:
        picked.append(row)
    uses_tool = bool(rng.random() < self.tool_share)
    total = sum(p for _, p in picked)
    final = f"Answer: {total}"
    episode = []
    if uses_tool:
      for item, _ in picked:
        query = f"item {item}"
        episode += [f"<tool>search: {query}</tool>", f"<obs>{lookup_search(query, self.k)}</obs>"]
    episode.append(final)
    if d == 1:
      item, price = picked[0]
      prompt, info = f"What does item {item} cost?", {"item": item, "price": price}
    else:
      names = ", ".join(str(i) for i, _ in picked[:-1]) + f" and {picked[-1][0]}"
      prompt = f"What do items {names} cost in total?"
      info = {"items": [i for i, _ in picked], "prices": [p for _, p in picked]}
    return Example(prompt=prompt, answer=str(total), task=self.name, difficulty=d,
                   solution=final, info={**info, "uses_tool": uses_tool, EPISODE: episode})

  def solve(self, example):
    return str(sum(example.info.get("prices") or [example.info["price"]]))

  def guess(self, example, rng):
    return str(int(rng.integers(10, 100, size=example.difficulty).sum()))


_LOOKUP_CACHE: dict = {}


def _lookup_rows() -> list[tuple[int, int]]:
  """``(item id, price)`` of the shipped collection, in file order."""
  if "rows" not in _LOOKUP_CACHE:
    import json
    with open(lookup_documents_path(), encoding="utf-8") as f:
      rows = [json.loads(line) for line in f if line.strip()]
    _LOOKUP_CACHE["rows"] = [(int(r["title"].split()[1]), int(r["text"].split()[1]))
                             for r in rows]
  return _LOOKUP_CACHE["rows"]


def _lookup_items(split: str) -> list[tuple[int, int]]:
  if split not in _LOOKUP_CACHE:
    _LOOKUP_CACHE[split] = LookupTask(split=split).items()
  return _LOOKUP_CACHE[split]


TASKS: dict[str, Task] = {
    "arithmetic": ArithmeticTask(),
    "countdown": CountdownTask(),
    "calculation": CalculationTask(),
    "sort": ListTask(name="sort", mode="sort"),
    "reverse": ListTask(name="reverse", mode="reverse"),
    "tool_multiplication": ToolMultiplicationTask(),
    "lookup": LookupTask(),
    "direct_multiplication": DirectMultiplicationTask(),
}


def get_task(name: str) -> Task:
  """The registered task called ``name`` (see ``TASKS``)."""
  if name not in TASKS:
    raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
  return TASKS[name]


def verify(task: str, completion: str, answer: str) -> float:
  """Verifier reward (1.0 / 0.0) of ``completion`` for a task's reference ``answer``."""
  return get_task(task).verify(completion, answer)


def generate_example(task: str | Task, seed: int, index: int,
                     difficulty: int | Sequence[int]) -> Example:
  """Example ``index`` of the stream ``(task, seed)``: a pure function of its arguments.

  Randomness comes from ``np.random.default_rng([seed, index])``; with a sequence of difficulties
  the difficulty is drawn uniformly from it with the same generator.
  """
  task = get_task(task) if isinstance(task, str) else task
  rng = np.random.default_rng([int(seed), int(index)])
  if not isinstance(difficulty, (int, np.integer)):
    difficulty = list(difficulty)[int(rng.integers(len(difficulty)))]
  ex = task.generate(rng, int(difficulty))
  return dataclasses.replace(ex, pair_id=f"{task.name}/{seed}/{index}")


def generate_examples(task: str | Task, n: int, *, seed: int,
                      difficulty: int | Sequence[int], start: int = 0) -> list[Example]:
  """Examples ``start .. start+n-1`` of the stream ``(task, seed)``."""
  return [generate_example(task, seed, i, difficulty) for i in range(start, start + n)]
