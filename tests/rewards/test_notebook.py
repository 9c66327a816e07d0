"""notebooks/reward_tour.ipynb runs top to bottom and saves its figure."""

import pathlib

from rlx.notebooks import NOTEBOOKS_DIR, run_notebook


def test_reward_tour_notebook_runs_and_saves_its_figure(tmp_path):
  figures = run_notebook(NOTEBOOKS_DIR / "reward_tour.ipynb", tmp_path / "figures")
  png = pathlib.Path(figures) / "reward_tour.png"
  assert png.exists() and png.stat().st_size > 10_000
