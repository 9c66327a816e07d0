"""Execute the repository's notebooks (used by the tests)."""

from __future__ import annotations

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def run_notebook(path: str | os.PathLike, figures_dir: str | os.PathLike | None = None,
                 timeout: int = 600) -> pathlib.Path:
  """Runs every cell of the notebook at ``path`` in a fresh ``python3`` kernel.

  The kernel's working directory is the notebook's folder; ``RLX_FIGURES_DIR`` tells the notebook
  where to save figures (default ``<notebook folder>/figures``). A failing cell raises
  ``nbclient.exceptions.CellExecutionError`` naming the cell. Returns the figures directory.
  """
  import nbclient
  import nbformat

  path = pathlib.Path(path).resolve()
  figures = pathlib.Path(figures_dir or path.parent / "figures").resolve()
  figures.mkdir(parents=True, exist_ok=True)
  nb = nbformat.read(path, as_version=4)
  previous = os.environ.get("RLX_FIGURES_DIR")
  os.environ["RLX_FIGURES_DIR"] = str(figures)
  try:
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
  finally:
    if previous is None:
      os.environ.pop("RLX_FIGURES_DIR", None)
    else:
      os.environ["RLX_FIGURES_DIR"] = previous
  return figures
