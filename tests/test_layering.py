"""The import graph of the ``rlx`` package goes one way (docs/architecture.md).

Every ``rlx/**/*.py`` is parsed with ``ast`` (imports inside functions included) and each import of
``rlx.X...`` is mapped to sub-package ``X``: a directory under ``rlx/`` or a top-level module file
(``rlx/config.py`` → ``config``). Checked: no cycle between sub-packages, and the allowed
directions below. Also: nothing cites spec files that are not in the repository.
"""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "rlx"

# sub-package -> the only rlx sub-packages it may import (None: no allow-list).
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "tokenizers": {"core"},
    "sampling": {"core", "models"},
}
# sub-package -> rlx sub-packages it must not import.
FORBIDDEN = {
    "rewards": {"algorithms", "runtime"},
    "algorithms": {"runtime"},
    "optim": {"algorithms", "runtime"},
    "envs": {"algorithms", "runtime"},
}


def _subpackages() -> set[str]:
  names = set()
  for p in PKG.iterdir():
    if p.is_dir() and not p.name.startswith(("_", ".")) and any(p.rglob("*.py")):
      names.add(p.name)
    elif p.suffix == ".py" and p.stem != "__init__":
      names.add(p.stem)
  return names


def _module_parts(path: pathlib.Path) -> list[str]:
  """``rlx/core/kl.py`` → ``["rlx", "core", "kl"]``; ``rlx/core/__init__.py`` → ``["rlx", "core"]``."""
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  return parts[:-1] if parts[-1] == "__init__" else parts


def _imported_modules(path: pathlib.Path) -> list[str]:
  """Absolute dotted names of every module (or ``module.name``) imported anywhere in ``path``."""
  tree = ast.parse(path.read_text(), filename=str(path))
  me = _module_parts(path)
  package = me if path.name == "__init__.py" else me[:-1]
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.extend(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        base = ".".join(base)
        module = f"{base}.{node.module}" if node.module else base
      else:
        module = node.module or ""
      # `from rlx import core` names sub-packages through the alias, not the module.
      out.append(module)
      out.extend(f"{module}.{a.name}" for a in node.names if a.name != "*")
  return out


def import_edges() -> dict[str, set[str]]:
  """``{sub-package: {rlx sub-packages it imports}}`` (self-imports left out)."""
  subs = _subpackages()
  edges: dict[str, set[str]] = {s: set() for s in subs}
  for path in sorted(PKG.rglob("*.py")):
    rel = path.relative_to(PKG).parts
    if len(rel) == 1 and rel[0] == "__init__.py":
      continue  # rlx/__init__.py: the package root, not a sub-package
    src = rel[0] if len(rel) > 1 else rel[0][:-3]
    for module in _imported_modules(path):
      parts = module.split(".")
      if len(parts) >= 2 and parts[0] == "rlx" and parts[1] in subs and parts[1] != src:
        edges[src].add(parts[1])
  return edges


def _format(pairs) -> str:
  return ", ".join(f"{a} -> {b}" for a, b in sorted(pairs)) or "none"


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
  colour: dict[str, int] = {}

  def dfs(u, path):
    colour[u] = 1
    for v in sorted(edges.get(u, ())):
      if colour.get(v) == 1:
        return path[path.index(v):] + [v]  # v is on the current path
      if not colour.get(v):
        found = dfs(v, path + [v])
        if found:
          return found
    colour[u] = 2
    return None

  for u in sorted(edges):
    if not colour.get(u):
      found = dfs(u, [u])
      if found:
        return found
  return None


def test_edges_are_found():
  edges = import_edges()
  # Sanity: the parser sees `from rlx import core` and `from rlx.x.y import z` style imports.
  assert "core" in edges["algorithms"], edges
  assert "core" in edges["rewards"], edges
  assert "runtime" in edges["train"], edges


def test_cycle_finder_reports_the_cycle():
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_no_import_cycles_between_subpackages():
  edges = import_edges()
  cycle = _find_cycle(edges)
  assert cycle is None, "import cycle between rlx sub-packages: " + " -> ".join(cycle) + \
      f"\nall edges: {_format((a, b) for a in edges for b in edges[a])}"


def test_imports_go_the_allowed_direction():
  edges = import_edges()
  bad = []
  for src, allowed in ALLOWED.items():
    bad.extend((src, dst) for dst in edges.get(src, set()) - allowed)
  for src, forbidden in FORBIDDEN.items():
    bad.extend((src, dst) for dst in edges.get(src, set()) & forbidden)
  assert not bad, f"imports against the layering: {_format(set(bad))}"


def test_no_references_to_spec_files_outside_the_repo():
  pattern = re.compile(r"\b(ALGORITHMS|DESIGN)\.md")
  files = list(PKG.rglob("*.py")) + list((ROOT / "docs").glob("*.md"))
  hits = []
  for p in files:
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
      if pattern.search(line):
        hits.append(f"{p.relative_to(ROOT)}:{lineno}")
  assert not hits, "references to ALGORITHMS.md / DESIGN.md (not in the repo): " + ", ".join(hits)


def test_runtime_and_algorithms_functions_stay_short():
  """No function in ``rlx/runtime`` or ``rlx/algorithms`` over 80 lines (the loops that grew
  as hand-copied phases are gone; a phase's own code is short)."""
  long = []
  for sub in ("runtime", "algorithms"):
    for p in (PKG / sub).rglob("*.py"):
      for node in ast.walk(ast.parse(p.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
          n = node.end_lineno - node.lineno + 1
          if n > 80:
            long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
  assert not long, "functions over 80 lines: " + "; ".join(long)
