import pathlib

from rlx.notebooks import NOTEBOOKS_DIR, run_notebook


def test_compose_losses_notebook_runs_and_saves_its_figure(tmp_path):
  figures = run_notebook(NOTEBOOKS_DIR / "compose_losses.ipynb", tmp_path / "figures")
  png = pathlib.Path(figures) / "clipped_objective.png"
  assert png.exists() and png.stat().st_size > 10_000
