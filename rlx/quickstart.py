"""The CPU quickstart: ``python -m rlx.quickstart``.

Until the training loop lands this executes ``notebooks/compose_losses.ipynb`` (objectives built
from ``rlx.core``) and prints where its figures went.
"""

from __future__ import annotations

import sys

from rlx.notebooks import NOTEBOOKS_DIR, run_notebook


def main() -> int:
  notebook = NOTEBOOKS_DIR / "compose_losses.ipynb"
  if not notebook.exists():
    print(f"{notebook} not found: run the quickstart from a source checkout (pip install -e .)",
          file=sys.stderr)
    return 1
  figures = run_notebook(notebook)
  print(f"Executed {notebook}")
  for png in sorted(figures.glob("clipped_objective*.png")):
    print(f"figure: {png}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
