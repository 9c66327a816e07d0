"""Math answer extraction, normalisation and equivalence (docs/algorithms.md §8, "math answer";
docs/rewards.md, "Maths equivalence").

``extract_answer``: the last ``\\boxed{…}`` (nested braces), else ``#### x``, else "answer is x",
else the last number. ``normalize_answer``: strips ``$``, spaces, ``\\left``/``\\right``, ``\\!``,
units text, trailing ``.``; rewrites ``\\dfrac``/``\\tfrac``/``\\frac12``; drops thousands
separators (``1,000``, ``10{,}000``); ``x=3`` → ``3``. ``math_equal``, in order:

1. the normalised strings match (case-insensitively);
2. both are numbers (integers, decimals, ``1e3``, ``\\frac{a}{b}``, ``a/b``, mixed numbers
   ``2\\frac{1}{2}``, ``x%``): equal within 1e-6 relative, two integers exactly;
3. both are lists with the same brackets: tuples and intervals element by element, sets
   (``\\{…\\}``) and bare lists of solutions (``1, 2``) in any order;
4. symbolic: Hugging Face ``math-verify`` parses both LaTeX answers into sympy (sets, intervals,
   matrices, relations, logs, complex numbers) and compares them (``verify(gold, pred)``), under
   a per-call CPU-time limit (``call_with_cpu_limit``) and a bound on the size of exact numbers
   (``_check_size``), so that the verdict does not depend on how busy the machine is.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
import re
import threading
import time
from fractions import Fraction

_BOXED = ("\\boxed", "\\fbox")


def last_boxed_content(text: str) -> str | None:
  """Content of the last ``\\boxed{…}`` / ``\\fbox{…}`` (nested braces), or ``\\boxed x``."""
  start = max(text.rfind(b) for b in _BOXED)
  if start < 0:
    return None
  i = start + (6 if text.startswith("\\boxed", start) else 5)
  while i < len(text) and text[i] == " ":
    i += 1
  if i < len(text) and text[i] == "{":
    depth = 0
    for j in range(i, len(text)):
      if text[j] == "{":
        depth += 1
      elif text[j] == "}":
        depth -= 1
        if depth == 0:
          return text[i + 1:j]
    return None  # unbalanced
  m = re.match(r"\s*([^\s$]+)", text[i:])
  return m.group(1) if m else None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def extract_answer(text: str | None) -> str | None:
  """The final answer of a completion, as a raw string; None when there is none."""
  if not text:
    return None
  boxed = last_boxed_content(text)
  if boxed is not None:
    return boxed.strip()
  if "####" in text:
    tail = text[text.rfind("####") + 4:].strip().split("\n")[0].strip()
    if tail:
      return tail
  m = list(re.finditer(r"answer is[:\s]*", text, re.IGNORECASE))
  if m:
    tail = text[m[-1].end():].split("\n")[0].strip()
    tail = re.sub(r"[.\s]+$", "", tail)
    if tail:
      return tail
  nums = _NUMBER.findall(text)
  if nums:
    return nums[-1].rstrip(",")
  return None


_UNIT_WORDS = (r"(?:cm|mm|km|m|kg|g|mg|s|sec|seconds?|minutes?|hours?|days?|weeks?|years?|"
               r"meters?|inches|inch|feet|foot|ft|miles?|dollars?|cents?|units?|degrees?|"
               r"square|sq|cubic|mph|pounds?|lbs?|ounces?|oz|liters?|l|ml|percent)")
# \text{ cm}, \mbox{ square units}, \mathrm{kg} and a power after it (\text{ m}^2, ^{3})
_TEXT_UNIT = r"\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z ]*\}(?:\^\{?\d\}?)?"


def _drop_text_units(s: str) -> str:
  """Drops unit text after a number or at the end of an expression: ``5\\text{ cm}`` → ``5``,
  ``20\\text{ m}^2`` → ``20``, ``36\\pi\\text{ square units}`` → ``36\\pi``."""
  s = re.sub(r"(\d)\s*" + _TEXT_UNIT, r"\1", s)
  return re.sub(r"([\w})])\s*" + _TEXT_UNIT + r"\s*$", r"\1", s)


def _fix_fracs(s: str) -> str:
  # \frac12 -> \frac{1}{2}; \frac1{2} -> \frac{1}{2}; \frac{1}2 -> \frac{1}{2}
  s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
  s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
  s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}", s)
  return s


def normalize_answer(ans: str | None) -> str | None:
  """A canonical string for an answer; None for an empty or missing answer."""
  if ans is None:
    return None
  s = str(ans).strip()
  s = s.replace("\n", " ")
  s = re.sub(r"(?<=\d)\{,\}(?=\d)", ",", s)  # MATH's 10{,}000
  for a, b in (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
               ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""), ("\\ ", ""), ("\\displaystyle", ""),
               ("\\$", ""), ("$", ""), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""),
               ("^\\circ", ""), ("^{\\circ}", ""), ("°", ""), ("\\%", "%"), ("\\cdot", "*"),
               ("\\times", "*"), ("−", "-"), ("\\varnothing", "\\emptyset")):
    s = s.replace(a, b)
  s = re.sub(r"(?<!\\)\\([{}])", r"\1", s)  # set braces \{ \} -> { }
  # \text{..}, \mbox{..}, \mathrm{..}: units after a number, or trailing an expression, are
  # dropped (5\text{ cm}, 20\text{ m}^2, 36\pi\text{ square units}); other text is kept.
  s = _drop_text_units(s)
  s = re.sub(r"\\(?:text|mbox|mathrm|textbf|mathbf)\{([^{}]*)\}", r"\1", s)
  s = _fix_fracs(s)
  s = s.strip()
  s = re.sub(r"[.\s]+$", "", s)
  # x = 3 -> 3 (one variable on the left)
  m = re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(.+)", s)
  if m:
    s = m.group(1).strip()
  # trailing unit words after a number: "5 cm" -> "5"
  s = re.sub(r"^(-?[\d.,/]+%?)\s*" + _UNIT_WORDS + r"(?:\^?\d)?$", r"\1", s, flags=re.IGNORECASE)
  # leading currency / trailing period again
  s = re.sub(r"^(?:rs\.?|usd)\s*", "", s, flags=re.IGNORECASE)
  s = s.replace(" ", "")
  # thousands separators: 1,000,000 or 1,234.5 (only the well-formed grouping)
  if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?", s):
    s = s.replace(",", "")
  s = re.sub(r"\.$", "", s)
  # 2.50 -> 2.5, 3.0 -> 3 for plain decimals
  if re.fullmatch(r"-?\d+\.\d*?0+", s):
    s = s.rstrip("0").rstrip(".")
  if s.startswith("+"):
    s = s[1:]
  return s or None


def parse_number(s: str | None, *, percent: str = "strip") -> Fraction | float | None:
  """A number from a normalised answer: ints, decimals, ``1e3``, ``a/b``, ``\\frac{a}{b}``,
  mixed numbers ``a\\frac{b}{c}`` = a + b/c (b < c), ``1.5\\times10^{3}`` and ``10^{-3}``
  (exponents up to 3 digits), ``x%``.

  ``percent``: ``"strip"`` reads ``50%`` as 50; ``"fraction"`` reads it as 0.5.
  """
  if s is None:
    return None
  s = s.strip()
  scale = Fraction(1)
  if s.endswith("%"):
    s = s[:-1]
    if percent == "fraction":
      scale = Fraction(1, 100)
  neg = False
  if s.startswith("-"):
    neg, s = True, s[1:]
  m = re.fullmatch(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", s) or re.fullmatch(
      r"(-?\d+(?:\.\d+)?)/(-?\d+(?:\.\d+)?)", s)
  mixed = re.fullmatch(r"(\d+)\\frac\{(\d+)\}\{(\d+)\}", s)
  sci = re.fullmatch(r"(?:(\d+(?:\.\d*)?|\.\d+)\*)?10\^(?:\{([-+]?\d{1,3})\}|(\d))", s)
  try:
    if m:
      den = Fraction(m.group(2))
      if den == 0:
        return None
      v = Fraction(m.group(1)) / den
    elif mixed:
      whole, num, den = (int(g) for g in mixed.groups())
      if not 0 < num < den:
        return None
      v = whole + Fraction(num, den)
    elif sci:
      v = Fraction(sci.group(1) or 1) * Fraction(10) ** int(sci.group(2) or sci.group(3))
    elif re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", s):
      v = Fraction(s)
    elif re.fullmatch(r"\d+(?:\.\d*)?[eE][-+]?\d+", s):
      v = Fraction(float(s))
    else:
      return None
  except (ValueError, ZeroDivisionError, OverflowError):
    return None
  v = v * scale
  return -v if neg else v


def numbers_close(a, b, rel_tol: float = 1e-6) -> bool:
  """``|a − b| ≤ rel_tol · max(|a|, |b|)``; two integers must be equal exactly (so that 999999
  never equals 1000000)."""
  if a == b:
    return True
  if all(isinstance(x, Fraction) and x.denominator == 1 for x in (a, b)):
    return False
  return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=0.0)


# ----- a CPU-time limit for a call in the current thread -----

class CpuTimeExceeded(Exception):
  """A call ran past its CPU-time limit (``call_with_cpu_limit``)."""


class _Interrupt(BaseException):
  """Raised asynchronously in a thread over its limit. A BaseException, so that the
  ``except Exception`` clauses of sympy and math-verify do not swallow it."""


_POLL_S = 0.005
_WATCH = threading.Condition()
_WATCHED: dict[int, tuple[int | None, float]] = {}  # thread id -> (CPU clock id, deadline)
_WATCHER: list[threading.Thread] = []
_GC_HOLDERS: set[int] = set()  # threads in a limited call (automatic gc is off while any is)
_GC_WAS_ON = [True]  # whether automatic gc was on when the first of them started


def _reset_after_fork():
  global _WATCH, _WATCHED
  _WATCH, _WATCHED = threading.Condition(), {}
  _WATCHER.clear()
  if _GC_HOLDERS and _GC_WAS_ON[0]:
    gc.enable()
  _GC_HOLDERS.clear()


def _hold_gc(tid: int, on: bool) -> None:
  """Automatic garbage collection is off while any limited call runs (call under ``_WATCH``).

  A collection triggered by the watched thread's allocations runs the process's gc callbacks
  (JAX registers one) in that thread, and an interrupt delivered inside one is swallowed there
  as an "Exception ignored" report and cuts the callback short. Cycles made meanwhile are
  collected at the next automatic collection after the last limited call ends. Idempotent, so
  that ``_unwatch`` can repeat it after an interrupt lands halfway through.
  """
  if on:
    if not _GC_HOLDERS:
      _GC_WAS_ON[0] = gc.isenabled()
      gc.disable()
    _GC_HOLDERS.add(tid)
  else:
    _GC_HOLDERS.discard(tid)
    if not _GC_HOLDERS and _GC_WAS_ON[0]:
      gc.enable()


if hasattr(os, "register_at_fork"):
  os.register_at_fork(after_in_child=_reset_after_fork)


def _thread_clock(tid: int) -> int | None:
  """The CPU-time clock of thread ``tid``; None where the platform has none (then wall time)."""
  try:
    return time.pthread_getcpuclockid(tid)
  except (AttributeError, OSError):
    return None


def _clock_now(clock: int | None) -> float:
  return time.monotonic() if clock is None else time.clock_gettime(clock)


def _async_raise(tid: int, exc: type[BaseException] | None) -> None:
  """Schedules ``exc`` in thread ``tid`` at its next bytecode boundary (None: cancels)."""
  ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                             None if exc is None else ctypes.py_object(exc))


def _watch() -> None:
  """The watcher thread: every 5 ms, interrupts each watched thread past its CPU deadline (again
  at every poll until it stops watching, in case library code catches the interrupt)."""
  cond = _WATCH
  with cond:
    while True:
      for tid, (clock, deadline) in list(_WATCHED.items()):
        try:
          over = _clock_now(clock) >= deadline
        except OSError:  # the thread is gone
          over = False
        if over:
          _async_raise(tid, _Interrupt)
      cond.wait(_POLL_S if _WATCHED else None)


def _unwatch(tid: int) -> None:
  while True:
    try:
      with _WATCH:
        _WATCHED.pop(tid, None)
        _async_raise(tid, None)  # an interrupt scheduled but not yet delivered
        _hold_gc(tid, False)  # after: a collection from here on runs callbacks uninterrupted
      return
    except _Interrupt:  # delivered while unwatching: unwatch again
      pass


def call_with_cpu_limit(fn, *args, seconds: float):
  """``fn(*args)``, interrupted once the calling thread has spent ``seconds`` of CPU time in it;
  then raises ``CpuTimeExceeded``.

  The limit counts this thread's CPU time (``pthread_getcpuclockid``), not wall time: a call
  gets the same budget of work on an idle machine and on one busy with other processes or
  threads (wall time instead where the platform has no thread CPU clock). A watcher thread
  checks every 5 ms and raises an exception in the thread (``PyThreadState_SetAsyncExc``), so it
  works in any thread, unlike ``signal.alarm`` (main thread only). It cannot stop a single long
  C call that holds the GIL (e.g. a huge integer power): bound such work beforehand
  (``_check_size``). Nested calls in one thread run under the outermost limit; ``seconds=None``
  runs ``fn`` without a limit.
  """
  tid = threading.get_ident()
  if seconds is None or tid in _WATCHED:  # only this thread adds or removes its own entry
    return fn(*args)
  with _WATCH:
    if not _WATCHER or not _WATCHER[0].is_alive():
      _WATCHER[:] = [threading.Thread(target=_watch, daemon=True, name="rlx-cpu-limit")]
      _WATCHER[0].start()
  try:
    try:
      clock = _thread_clock(tid)
      with _WATCH:
        _hold_gc(tid, True)
        _WATCHED[tid] = (clock, _clock_now(clock) + seconds)
        _WATCH.notify_all()
      return fn(*args)
    finally:
      _unwatch(tid)
  except _Interrupt:
    raise CpuTimeExceeded(f"ran past {seconds} s of CPU time") from None


# ----- symbolic equivalence: math-verify under the CPU-time limit -----

_MAX_SYMBOLIC_CHARS = 1000  # longer answers are compared as strings and numbers only
_MAX_BITS = 1 << 17         # exact numbers above 2^(2^17) are never computed
_MAX_NODES = 5000
_MAX_POWER = 10_000         # (x + 1)^n with n above this is not expanded
_ELEMENTARY = frozenset({"exp", "log", "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos",
                         "atan", "acot", "sinh", "cosh", "tanh", "Abs", "sign", "re", "im",
                         "arg", "conjugate", "floor", "ceiling", "Max", "Min"})


class _TooBig(Exception):
  pass


def _check_size(expr) -> None:
  """Raises ``_TooBig`` when comparing ``expr`` could need an exact number above 2^(2^17)
  (``9^{9^{9}}``, ``(10^{10})!``) or expand a power above ``_MAX_POWER``: such work runs in
  single C calls that no time limit interrupts.

  Bound: ``B(e)`` ≥ log2 of the size of ``e``'s exact value, bottom-up: an integer or rational
  p/q gives log2 max(|p|, |q|); a sum max + log2(#terms); a product the sum; ``b^x`` gives
  |x|·B(b); ``n!`` (and other non-elementary functions) n·log2(n); symbols have no bound. A
  product ``\\prod`` over more than ``_MAX_POWER`` terms is refused too."""
  from sympy import Basic, Function, MatrixBase, S
  count = [0]

  def bound(e):
    count[0] += 1
    if count[0] > _MAX_NODES:
      raise _TooBig("too many nodes")
    if isinstance(e, MatrixBase):
      for x in e:
        bound(x)
      return None
    if not isinstance(e, Basic):
      return None
    if e.is_Rational:
      return math.log2(max(abs(int(e.p)), abs(int(e.q)), 1))
    if e.is_Float:
      return 0.0 if not e.is_finite or e == 0 else max(0.0, math.log2(abs(float(e)) + 1))
    if e.is_NumberSymbol or e is S.ImaginaryUnit:
      return 2.0
    if e.is_Symbol or not e.args:
      return None
    if type(e).__name__ == "Product":  # ∏ over a numeric range: a factorial-sized product
      ends = [bound(x) for lim in e.limits for x in lim[1:]]
      if any(b is not None and 2.0 ** min(b, 1000.0) > _MAX_POWER for b in ends):
        raise _TooBig("product")
    if e.is_Pow or type(e).__name__ == "MatPow":
      base, ex = bound(e.args[0]), bound(e.args[1])
      if ex is None:
        return None
      x = 2.0 ** min(ex, 1000.0)
      if base is None:
        if x > _MAX_POWER and not e.args[0].is_Symbol:
          raise _TooBig("power of an expression")
        return None
      if x * base > _MAX_BITS:
        raise _TooBig("power")
      return x * base
    bounds = [bound(a) for a in e.args]
    if any(b is None for b in bounds):
      return None
    if e.is_Add:
      return max(bounds) + math.log2(len(bounds))
    if e.is_Mul:
      return sum(bounds)
    if isinstance(e, Function):
      name = type(e).__name__
      if name == "exp":
        return 1.5 * 2.0 ** min(max(bounds), 1000.0)
      if name not in _ELEMENTARY:
        n = 2.0 ** min(max(bounds), 1000.0)
        if n * math.log2(n + 1) > _MAX_BITS:
          raise _TooBig(name)
        return n * math.log2(n + 1)
    return max(bounds)

  try:
    bound(expr)
  except RecursionError:
    raise _TooBig("too deep") from None


class _QuietTimeoutWarning(logging.Filter):
  """math-verify warns once that its own (signal-based) timeout is off: rlx applies its own."""

  def filter(self, record):
    return not str(record.msg).startswith("Timeout is disabled")


_LOGGERS_QUIET = []


def _parse_latex(s: str) -> list:
  """sympy objects of a LaTeX answer via math-verify's LaTeX extraction (its normalisation and
  latex2sympy; never sympy's ``parse_expr``, which evaluates Python)."""
  from latex2sympy2_extended import NormalizationConfig
  from math_verify import parse
  from math_verify.parser import LatexExtractionConfig
  if not _LOGGERS_QUIET:
    for name in ("math_verify.parser", "math_verify.grader"):
      logging.getLogger(name).addFilter(_QuietTimeoutWarning())
    _LOGGERS_QUIET.append(True)
  # math-verify's own unit stripping is off: it reads 2ab as 2 (ab is a unit there); rlx drops
  # unit text itself, and numbers with unit words never get here.
  config = LatexExtractionConfig(normalization_config=NormalizationConfig(
      basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all",
      equations=False))
  s = _drop_text_units(re.sub(r"(?<=\d)\{,\}(?=\d)", ",", s.replace("−", "-")))
  return parse(f"\\boxed{{{s}}}", extraction_config=[config], fallback_mode="no_fallback",
               parsing_timeout=None)


def symbolic_equal(pred: str, ref: str) -> bool:
  """math-verify's ``verify(gold=ref, pred)`` on both answers parsed from LaTeX, after the size
  check (no time limit here: call ``sympy_equal_with_timeout``)."""
  from math_verify import verify
  if max(len(pred), len(ref)) > _MAX_SYMBOLIC_CHARS or any(
      box in pred or box in ref for box in _BOXED):  # an extracted answer has no box left
    return False
  gold, target = _parse_latex(ref), _parse_latex(pred)
  if not gold or not target:
    return False
  try:
    for e in gold + target:
      _check_size(e)
  except _TooBig:
    return False
  return bool(verify(gold, target, timeout_seconds=None))


def sympy_equal_with_timeout(a: str, b: str, timeout: float = 2.0) -> bool:
  """``symbolic_equal(a, b)`` (a: prediction, b: reference) within ``timeout`` s of this
  thread's CPU time (``call_with_cpu_limit``); past it, or on any error, False."""
  try:
    return bool(call_with_cpu_limit(symbolic_equal, a, b, seconds=timeout))
  except Exception:  # noqa: BLE001 - time limits and parse errors mean "not proven equal"
    return False


def _split_top_level(s: str) -> list[str] | None:
  """Splits ``(a,b)``/``[a,b)``/``a,b`` at top-level commas; None if there is no comma."""
  depth, parts, cur = 0, [], ""
  for ch in s:
    if ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    if ch == "," and depth == 0:
      parts.append(cur)
      cur = ""
    else:
      cur += ch
  parts.append(cur)
  return parts if len(parts) > 1 else None


def _unwrap(s: str) -> tuple[str, str, str]:
  """(opening bracket, inside, closing bracket) when one bracket pair encloses all of ``s``."""
  if len(s) >= 2 and s[0] in "([{" and s[-1] in ")]}":
    depth = 0
    for k, ch in enumerate(s):
      depth += (ch in "([{") - (ch in ")]}")
      if depth == 0 and k < len(s) - 1:
        return "", s, ""
    return s[0], s[1:-1], s[-1]
  return "", s, ""


def _match_all(xs: list[str], ys: list[str], equal) -> bool:
  """Every x pairs with its own y (greedy, in order)."""
  free = list(ys)
  for x in xs:
    k = next((k for k, y in enumerate(free) if equal(x, y)), None)
    if k is None:
      return False
    free.pop(k)
  return True


def _lists_equal(a: str, b: str, equal) -> bool | None:
  """Lists with the same brackets: tuples/intervals element-wise in order, sets ``{…}`` and bare
  lists (``1, 2``: all solutions) in any order (a pairing both ways). None if neither is a list;
  False if only one is or the brackets or lengths differ."""
  (oa, ia, ca), (ob, ib, cb) = _unwrap(a), _unwrap(b)
  pa, pb = _split_top_level(ia), _split_top_level(ib)
  if pa is None and pb is None:
    return None
  if pa is None or pb is None or len(pa) != len(pb) or (oa, ca) != (ob, cb):
    return False
  if oa in ("", "{"):
    return _match_all(pa, pb, equal) and _match_all(pb, pa, lambda y, x: equal(x, y))
  return all(equal(x, y) for x, y in zip(pa, pb))


_FUNCTION_WORDS = r"\\[a-zA-Z]+|\{(?:[pbvBV]?matrix|array|cases)\}|sqrt|sin|cos|tan|log|exp|pi"


def math_equal(pred: str | None, ref: str | None, *, percent_as_fraction: bool = False,
               rel_tol: float = 1e-6, use_sympy: bool = True, sympy_timeout: float = 2.0,
               normalize: bool = True) -> bool:
  """Whether a predicted answer equals the reference (steps 1-4 of the module docstring).

  Args:
    pred, ref: raw answers (already extracted); None or empty never equals anything.
    percent_as_fraction: if True, ``50\\%`` also equals ``0.5``; it always equals ``50``.
    rel_tol: relative tolerance for numbers.
    use_sympy: try the symbolic comparison (step 4) when steps 1-3 do not find them equal;
      never for answers with ``%`` or ordinary words (4+ letters).
    sympy_timeout: CPU seconds for the symbolic comparison of one pair (then "not equal").
  """
  a = normalize_answer(pred) if normalize else pred
  b = normalize_answer(ref) if normalize else ref
  if not a or not b:
    return False
  if a == b or a.lower() == b.lower():
    return True
  # numbers (with both readings of a percentage when allowed)
  modes = ("strip", "fraction") if percent_as_fraction else ("strip",)
  na = [parse_number(a, percent=p) for p in modes]
  nb = [parse_number(b, percent=p) for p in modes]
  if all(x is not None for x in na + nb):
    return any(numbers_close(x, y, rel_tol) for x in na for y in nb)
  # lists: element-wise without sympy first
  same = _lists_equal(a, b, lambda x, y: math_equal(
      x, y, percent_as_fraction=percent_as_fraction, rel_tol=rel_tol, use_sympy=False,
      normalize=False))
  if same or not use_sympy or "%" in a or "%" in b:
    return bool(same)
  if re.search(r"[a-zA-Z]{4,}", re.sub(_FUNCTION_WORDS, "", a + " " + b)):
    return False  # words, not math
  if pred is None or ref is None:
    return False
  return sympy_equal_with_timeout(str(pred), str(ref), sympy_timeout)
