"""Code blocks the docs mark runnable (a ``<!-- runnable ... -->`` line right above a ```python
block) run as written, so the README's and the docs' examples cannot drift from the API."""

import ast
import glob
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
BLOCK = re.compile(r"<!-- runnable[^\n]*-->\n```python\n(.*?)\n```", re.DOTALL)


def runnable_blocks():
  for path in DOCS:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    for i, m in enumerate(BLOCK.finditer(text)):
      yield pytest.param(m.group(1), id=f"{os.path.relpath(path, ROOT)}#{i}")


BLOCKS = list(runnable_blocks())


def test_the_readme_has_a_runnable_block():
  assert any(p.id.startswith("README.md") for p in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS)
def test_runnable_block_runs(code):
  namespace = {"__name__": "__docs__"}
  exec(compile(code, "<docs>", "exec"), namespace)  # pylint: disable=exec-used  # raises if broken
  # It ran to the end: every name the block binds at top level exists.
  bound = {t.id for node in ast.parse(code).body if isinstance(node, ast.Assign)
           for t in ast.walk(node) if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)}
  assert bound <= namespace.keys(), bound - namespace.keys()
