"""Learning-curve plots of a run, written as PNG from its metrics JSONL (process 0, end of run)."""

from __future__ import annotations

import os

import numpy as np

from rlx.runtime.metrics import read_metrics

# (metric key, panel title); panels whose metric a run never logged are left out.
CURVES = (
    ("loss", "SFT loss"),
    ("reward/mean", "reward (train batch)"),
    ("eval/greedy_accuracy", "held-out accuracy (greedy)"),
    ("eval/pass@1", "held-out pass@1 (sampled)"),
    ("rollout/length", "completion length"),
    ("kl/rollout", "KL(policy ‖ reference)"),
    ("entropy", "entropy"),
    ("clipfrac", "clip fraction"),
)


def plot_learning_curves(metrics_path: str, out_path: str, curves=CURVES) -> str | None:
  """Plot every metric of ``curves`` (default :data:`CURVES`; ``(key, title)`` pairs) found in
  ``metrics_path`` against the step.

  Returns the PNG path, or None when the file has none of the metrics.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = read_metrics(metrics_path) if os.path.exists(metrics_path) else []
  series = []
  for key, title in curves:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    if points:
      series.append((title, points))
  if not series:
    return None
  cols = min(4, len(series))
  rows = -(-len(series) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
  for ax, (title, points) in zip(axes.flat, series):
    steps, values = zip(*points)
    if len(points) < 30:
      ax.plot(steps, values, marker="o", lw=1)
    else:  # raw values faint, a moving average over ~2% of the run on top
      ax.plot(steps, values, lw=0.6, alpha=0.3)
      w = max(len(values) // 50, 2)
      smooth = np.convolve(values, np.ones(w) / w, mode="valid")
      ax.plot(steps[w - 1:], smooth, lw=1.5)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(series):]:
    ax.axis("off")
  fig.tight_layout()
  os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
  fig.savefig(out_path, dpi=90)
  plt.close(fig)
  return out_path
