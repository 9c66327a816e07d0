"""Math answer extraction, normalisation and equivalence (docs/algorithms.md §8, "math answer").

``extract_answer``: the last ``\\boxed{…}`` (nested braces), else ``#### x``, else "answer is x",
else the last number. ``normalize_answer``: strips ``$``, spaces, ``\\left``/``\\right``, ``\\!``,
units text, trailing ``.``; rewrites ``\\dfrac``/``\\tfrac``/``\\frac12``; drops thousands commas;
``x=3`` → ``3``. ``math_equal``: equal if the normalised strings match, or both are numbers equal
within 1e-6 relative (two integers: exactly; fractions ``\\frac{a}{b}``, ``a/b``, percentages),
or sympy proves the difference zero within a time limit (in a killable worker process).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BOXED = ("\\boxed", "\\fbox")


def _last_boxed(text: str) -> str | None:
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
  boxed = _last_boxed(text)
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
  for a, b in (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""),
               ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""), ("\\ ", ""), ("\\displaystyle", ""),
               ("\\$", ""), ("$", ""), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""),
               ("^\\circ", ""), ("^{\\circ}", ""), ("°", ""), ("\\%", "%"), ("\\cdot", "*"),
               ("\\times", "*"), ("−", "-")):
    s = s.replace(a, b)
  # \text{..}, \mbox{..}, \mathrm{..}: units after a number are dropped, other text is kept.
  s = re.sub(r"(\d)\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z ]*\}", r"\1", s)
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
  """A number from a normalised answer: ints, decimals, ``a/b``, ``\\frac{a}{b}``, ``x%``.

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
  try:
    if m:
      den = Fraction(m.group(2))
      if den == 0:
        return None
      v = Fraction(m.group(1)) / den
    elif re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", s):
      v = Fraction(s)
    elif re.fullmatch(r"\d+(?:\.\d*)?[eE][-+]?\d+", s):
      v = Fraction(float(s))
    else:
      return None
  except (ValueError, ZeroDivisionError):
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


# ----- sympy (run in a worker process with a time limit) -----

def latex_to_sympy_str(s: str) -> str:
  """A best-effort LaTeX → sympy-parsable expression string (no antlr needed)."""
  s = s.replace("\\pi", "pi").replace("\\infty", "oo").replace("^", "**")
  s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/")
  for _ in range(10):
    new = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
    new = re.sub(r"\\sqrt\[([^\]]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", new)
    new = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", new)
    new = re.sub(r"\\sqrt(\d)", r"sqrt(\1)", new)
    if new == s:
      break
    s = new
  s = re.sub(r"\\(sin|cos|tan|log|ln|exp)", r"\1", s)
  s = s.replace("{", "(").replace("}", ")")
  if "\\" in s:
    raise ValueError(f"unsupported LaTeX: {s}")
  return s


_SYMPY_NAMES = {"sqrt", "pi", "oo", "sin", "cos", "tan", "log", "ln", "exp", "E", "I"}


def _safe_expression(expr: str) -> str:
  """Allows only arithmetic on numbers, one-letter symbols and a few functions (other names are
  split into one-letter products): sympy's ``parse_expr`` calls ``eval``, and answers come from
  the policy."""
  if len(expr) > 500 or not re.fullmatch(r"[0-9a-zA-Z+\-*/().,\s]*", expr):
    raise ValueError(f"not a plain math expression: {expr[:80]!r}")
  if re.search(r"[a-zA-Z)]\s*\.", expr):
    raise ValueError("attribute access is not allowed")
  # other multi-letter names become products of one-letter symbols: "ab" -> "a*b", "eval" -> e*v*a*l
  return re.sub(r"[a-zA-Z]{2,}",
                lambda m: m.group(0) if m.group(0) in _SYMPY_NAMES else "*".join(m.group(0)), expr)


def sympy_equal(a: str, b: str) -> bool:
  """True when sympy proves ``a − b`` is zero (or both sides equal as relations). Slow: call it
  through ``sympy_equal_with_timeout``."""
  import sympy
  from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application,
                                          parse_expr, standard_transformations)

  tr = standard_transformations + (implicit_multiplication_application, convert_xor)

  def parse(x):
    return parse_expr(_safe_expression(latex_to_sympy_str(x)), transformations=tr, evaluate=True)

  ea, eb = parse(a), parse(b)
  diff = sympy.simplify(ea - eb)
  if diff == 0:
    return True
  try:
    return bool(abs(complex(sympy.N(diff))) < 1e-9)
  except (TypeError, ValueError):
    return False


_SYMPY_WARM = ("rlx.rewards.math_verify", "sympy", "sympy.parsing.sympy_parser")


def sympy_equal_with_timeout(a: str, b: str, timeout: float = 2.0) -> bool:
  """``sympy_equal`` in a worker process that is killed after ``timeout`` s (then False).

  Inside a reward worker process (which cannot have children, and is itself killed at its
  per-sample timeout) sympy runs inline."""
  import multiprocessing
  from rlx.rewards.safety import shared_pool
  try:
    if multiprocessing.current_process().daemon:
      return bool(sympy_equal(a, b))
    return bool(shared_pool("sympy", 2, _SYMPY_WARM).run(sympy_equal, (a, b), timeout))
  except Exception:  # noqa: BLE001 - timeouts and parse errors mean "not proven equal"
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


def math_equal(pred: str | None, ref: str | None, *, percent_as_fraction: bool = False,
               rel_tol: float = 1e-6, use_sympy: bool = True, sympy_timeout: float = 2.0,
               normalize: bool = True) -> bool:
  """Whether a predicted answer equals the reference.

  Args:
    pred, ref: raw answers (already extracted); None or empty never equals anything.
    percent_as_fraction: if True, ``50\\%`` also equals ``0.5``; it always equals ``50``.
    rel_tol: relative tolerance for numbers.
    use_sympy: try a symbolic proof (in a worker process) when strings and numbers disagree.
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
  # one number, one not: a number never equals an expression with text in it unless sympy says so
  # tuples / intervals: brackets must match, then element-wise
  (oa, ia, ca), (ob, ib, cb) = _unwrap(a), _unwrap(b)
  pa, pb = _split_top_level(ia), _split_top_level(ib)
  if pa is not None or pb is not None:
    if pa is None or pb is None or len(pa) != len(pb) or (oa, ca) != (ob, cb):
      return False
    return all(math_equal(x, y, percent_as_fraction=percent_as_fraction, rel_tol=rel_tol,
                          use_sympy=use_sympy, sympy_timeout=sympy_timeout, normalize=False)
               for x, y in zip(pa, pb))
  if not use_sympy or "%" in a or "%" in b:
    return False
  if re.search(r"[a-zA-Z]{4,}", re.sub(r"\\[a-zA-Z]+|sqrt|sin|cos|tan|log|exp|pi", "", a + " " + b)):
    return False  # words, not math
  return sympy_equal_with_timeout(a, b, sympy_timeout)
