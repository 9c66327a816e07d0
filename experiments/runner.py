"""The sweep runner: a study spec → runs → results table, learning curves and the study's README.

A study (``experiments/<name>/spec.py``, attribute ``STUDY``) names a base config (a function
returning an rlx ``ConfigDict``, the small version; ``paper_base`` is the paper-scale one), named
variants (config overrides), seeds, and the metrics to tabulate and plot. ``run_study``:

1. plans the runs. Each (variant, seed) is a chain of *nodes*, one rlx run each:
   - an SFT warm start when the config has ``warm_start.sft_steps > 0``: factored out into an SFT
     run of its own whose checkpoint starts the RL run (``checkpoint.init_from``). Its work
     directory is named by a hash of the SFT config alone, so every variant (and every study)
     with the same model, data, optimizer and seed shares one SFT run;
   - the RL run of the variant, then optional further rounds (``Variant.stages``), each started
     from the previous round's checkpoint (ThinkPrune's iterative token limits). Intermediate
     rounds are also named by hash, so two variants that begin with the same round share it.
2. runs the nodes, dependencies first, sequentially in this process (``workers=0``) or in up to
   ``workers`` child processes. A node whose work directory holds ``summary.json`` is finished and
   skipped; an interrupted one (SIGINT/SIGTERM, or a killed process) resumes from its last rlx
   checkpoint when the command is run again.
3. aggregates ``metrics.jsonl`` of every run into ``results.csv`` / ``results.md`` (mean ± sample
   std over seeds), ``runs.csv`` (per seed), learning-curve PNGs (variant mean with a ±1 std band
   over seeds, against the step and, for studies that filter, against the samples drawn) and the
   study's ``README.md`` (table, plots, exact command, machine, date, git commit, findings).

Tables hold only quantities that a rerun reproduces (same machine, same seeds); wall-clock times
go to a separate timing table.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime
import hashlib
import importlib
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Any

import numpy as np

EXPERIMENTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(EXPERIMENTS_DIR)
DEFAULT_ROOT = os.path.join(EXPERIMENTS_DIR, "_runs")
SUMMARY = "summary.json"
NODE = "node.json"  # the hash of the config a work directory belongs to


# ---------------------------------------------------------------------------------------------
# Study specs.


@dataclasses.dataclass(frozen=True)
class Variant:
  """One arm of a study.

  Attributes:
    name: short identifier (a directory name).
    overrides: dotted config field → value, applied to the base config in order; a value may be
      a callable ``f(cfg) -> value`` of the config built so far (scale-dependent values, e.g. a
      buffer that is a fraction of the generation budget).
    stages: further RL rounds after the first, each a dict of overrides applied on top of the
      previous round's config; round k+1 starts from round k's final checkpoint.
    description: one line for the README.
  """

  name: str
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  stages: Sequence[Mapping[str, Any]] = ()
  description: str = ""


@dataclasses.dataclass(frozen=True)
class Metric:
  """A table column: ``reduce`` of metric ``key`` over one run's records.

  reduce: ``final`` (last logged value), ``initial`` (first), ``delta`` (final − initial),
  ``mean_last`` (mean over the last ``frac`` of the run's RL steps that logged it), ``mean``
  (mean over all), ``max``.
  Derived keys: ``samples/drawn`` (cumulative sampled completions: filter/num_groups × group
  size, summed over steps) and ``steps/updates`` (steps with a non-empty update).
  """

  key: str
  label: str
  reduce: str = "final"
  fmt: str = ".3f"
  frac: float = 0.2


@dataclasses.dataclass(frozen=True)
class Curve:
  """A learning-curve panel: metric ``key`` against the step (and the samples drawn)."""

  key: str
  label: str
  smooth: int = 0  # moving-average window over steps before averaging seeds (0 = none)


@dataclasses.dataclass
class Study:
  """A study spec (see the module docstring)."""

  name: str
  title: str
  question: str
  base: Callable[[], Any]
  variants: Sequence[Variant]
  metrics: Sequence[Metric]
  curves: Sequence[Curve]
  seeds: Sequence[int] = (0, 1, 2)
  paper_base: Callable[[], Any] | None = None
  paper: str = ""  # citation and the claim the study tests
  setup: str = ""  # what the small version runs, in prose
  findings: str = ""  # written after the runs, from the measured table
  finding: str = ""  # one line for experiments/README.md
  samples_axis: bool = False  # also plot against the samples drawn
  status: str = ""  # e.g. "not yet run: ..." (shown instead of results when there are none)
  module: str = ""  # import path of the spec module (set by load_study; child processes use it)


def load_study(name: str) -> Study:
  """The ``STUDY`` of ``experiments/<name>/spec.py`` (or of a dotted module path)."""
  module = name if "." in name else f"experiments.{name}.spec"
  study = importlib.import_module(module).STUDY
  study.module = module
  return study


def study_names() -> list[str]:
  """Every study folder under experiments/ (those with a ``spec.py``), sorted."""
  return sorted(d for d in os.listdir(EXPERIMENTS_DIR)
                if os.path.isfile(os.path.join(EXPERIMENTS_DIR, d, "spec.py")))


# ---------------------------------------------------------------------------------------------
# Configs.


def _set(cfg, dotted: str, value) -> None:
  *path, field = dotted.split(".")
  node = cfg
  for p in path:
    node = getattr(node, p)
  if callable(value):
    value = value(cfg)
  if isinstance(value, dict):
    import ml_collections
    value = ml_collections.ConfigDict(value)
  setattr(node, field, value)


def apply_overrides(cfg, overrides: Mapping[str, Any]):
  """Apply dotted ``field → value`` overrides in order (``algo.name`` via ``apply_algorithm``
  when given as ``algorithm``, so the preset's fields come first and later keys refine them)."""
  from rlx import config as rlx_config
  for k, v in overrides.items():
    if k == "algorithm":
      rlx_config.apply_algorithm(cfg, v)
    else:
      _set(cfg, k, v)
  return cfg


def variant_configs(study: Study, variant: Variant, seed: int, *, scale: str = "small",
                    extra: Mapping[str, Any] | None = None) -> list:
  """The RL config of each round of ``variant`` at ``seed`` (before warm-start factoring)."""
  base = study.base if scale == "small" else study.paper_base
  if base is None:
    raise ValueError(f"study {study.name!r} has no {scale} config")
  cfg = base()
  cfg.seed = int(seed)  # first, so an override may depend on it (a reward's own seed)
  cfg = apply_overrides(cfg, variant.overrides)
  if extra:
    apply_overrides(cfg, extra)
  cfg.seed = int(seed)
  out = [cfg]
  for stage in variant.stages:
    nxt = apply_overrides(copy.deepcopy(out[-1]), stage)
    if extra:
      apply_overrides(nxt, extra)
    out.append(nxt)
  return out


def sft_config(cfg):
  """The standalone SFT run equivalent to ``cfg``'s warm start: same seed, model, data and
  optimizer (at the warm start's learning rate and batch); nothing of the RL algorithm."""
  from rlx import config as rlx_config
  s = rlx_config.default_config()
  s.seed = cfg.seed
  s.model = copy.deepcopy(cfg.model)
  s.model.value_head = False
  s.data = copy.deepcopy(cfg.data)
  s.optim = copy.deepcopy(cfg.optim)
  s.env = copy.deepcopy(cfg.env)  # an episode run's demonstrations are episodes
  default_env = rlx_config.default_config().env
  for field in ("self_play", "seat", "opponent"):  # who plays the RL games, not the demos
    s.env[field] = default_env[field]
  rlx_config.apply_algorithm(s, "sft")
  s.num_steps = cfg.warm_start.sft_steps
  s.optim.learning_rate = cfg.warm_start.learning_rate
  s.algo.batch_size = cfg.warm_start.batch_size
  s.checkpoint.every_steps = max(cfg.warm_start.sft_steps, 1)
  s.checkpoint.keep = 1
  return s


def _flat(d: Mapping, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping) and v and k != "kwargs":
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_hash(cfg, parent: str | None = None) -> str:
  """Hash of the fields that differ from ``rlx.config.default_config()`` (so a field added to
  rlx later, with its default, does not rename finished runs), leaving out logging and checkpoint
  cadence; the parent's hash stands for ``checkpoint.init_from`` (independent of the root)."""
  from rlx import config as rlx_config
  default = _flat(json.loads(rlx_config.default_config().to_json_best_effort()))
  mine = _flat(json.loads(cfg.to_json_best_effort()))
  diff = {k: v for k, v in mine.items() if k not in default or default[k] != v}
  diff = {k: v for k, v in diff.items() if not k.startswith(("logging.", "checkpoint."))}
  diff["checkpoint.init_from"] = parent or cfg.checkpoint.init_from
  text = json.dumps(diff, sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclasses.dataclass
class Node:
  """One rlx run of the plan."""

  key: str  # hash (unique id)
  label: str  # for logs: "<variant>/seed<k>/round<j>" or "sft/seed<k>"
  workdir: str
  cfg: Any
  parent: str | None
  kind: str  # "sft" or "rl"
  variant: str | None = None
  seed: int = 0
  round: int = 0

  def finished(self) -> bool:
    """``summary.json`` exists and belongs to this config (same hash)."""
    return self.owner() == self.key and os.path.exists(os.path.join(self.workdir, SUMMARY))

  def owner(self) -> str | None:
    """The hash of the config that last used the work directory (None if unused)."""
    for name in (SUMMARY, NODE):
      path = os.path.join(self.workdir, name)
      if os.path.exists(path):
        with open(path) as f:
          return json.load(f).get("key")
    return None

  def claim(self, log: Callable[[str], None] = print) -> None:
    """Make the work directory this config's: a directory left by a different config (the
    spec changed) is moved aside to ``<dir>.old-<hash>``, never resumed or reported."""
    owner = self.owner()
    if owner is not None and owner != self.key:
      aside = f"{self.workdir}.old-{owner}"
      os.rename(self.workdir, aside)
      log(f"{self.label}: config changed; moved the previous run to {aside}")
    os.makedirs(self.workdir, exist_ok=True)
    with open(os.path.join(self.workdir, NODE), "w") as f:
      json.dump({"key": self.key, "label": self.label}, f)


def plan(study: Study, root: str, *, scale: str = "small", seeds: Sequence[int] | None = None,
         variants: Sequence[str] | None = None, extra: Mapping[str, Any] | None = None
         ) -> tuple[dict[str, Node], dict[tuple[str, int], list[str]]]:
  """All nodes (by key) and, per (variant, seed), the keys of its RL rounds in order."""
  nodes: dict[str, Node] = {}
  chains: dict[tuple[str, int], list[str]] = {}
  seeds = list(study.seeds if seeds is None else seeds)
  chosen = [v for v in study.variants if variants is None or v.name in variants]
  for v in chosen:
    for seed in seeds:
      cfgs = variant_configs(study, v, seed, scale=scale, extra=extra)
      parent = None
      if cfgs[0].warm_start.sft_steps > 0:
        s = sft_config(cfgs[0])
        h = config_hash(s)
        parent = f"sft-{h}"
        if parent not in nodes:
          nodes[parent] = Node(parent, f"sft/seed{seed}", os.path.join(
              root, "_shared", f"sft_seed{seed}_{h}"), s, None, "sft", seed=seed)
      keys = []
      for j, c in enumerate(cfgs):
        c.warm_start.sft_steps = 0
        h = config_hash(c, parent)
        last = j == len(cfgs) - 1
        key = f"rl-{h}"
        workdir = (os.path.join(root, study.name, v.name, f"seed{seed}") if last else
                   os.path.join(root, "_shared", f"{study.name}_{v.name}_round{j}_seed{seed}_{h}"))
        if key in nodes and not last:
          pass  # a shared earlier round
        else:
          c.checkpoint.init_from = "" if parent is None else os.path.join(
              nodes[parent].workdir, "checkpoints")
          nodes[key] = Node(key, f"{v.name}/seed{seed}" + (f"/round{j}" if len(cfgs) > 1 else ""),
                            workdir, c, parent, "rl", variant=v.name, seed=seed, round=j)
        keys.append(key)
        parent = key
      chains[(v.name, seed)] = keys
  for n in nodes.values():  # run settings that do not change the numbers
    n.cfg.logging.tensorboard = False
    n.cfg.logging.stdout = True
    n.cfg.checkpoint.keep = 1
  return nodes, chains


# ---------------------------------------------------------------------------------------------
# Running.


def enable_compilation_cache(root: str) -> None:
  """JAX's persistent compilation cache under the results root, or ``$RLX_EXPERIMENTS_JAX_CACHE``
  (seeds of a variant share programs; the numbers do not change)."""
  import jax
  jax.config.update("jax_compilation_cache_dir", os.environ.get(
      "RLX_EXPERIMENTS_JAX_CACHE", os.path.join(root, "_jax_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run_node(node: Node, root: str) -> dict:
  """Train one node in this process and write its ``summary.json``; returns the summary."""
  from rlx import config as rlx_config
  from rlx.runtime import run as rlx_run
  enable_compilation_cache(root)
  t0 = time.time()
  run = rlx_config.validate(node.cfg)
  out = rlx_run.train(run, node.workdir)
  if out.get("preempted"):
    return {"preempted": True}
  summary = {"key": node.key, "label": node.label, "kind": node.kind, "seed": node.seed,
             "variant": node.variant, "round": node.round, "evals": out.get("evals", []),
             "wall_s": round(time.time() - t0, 1), "resumed_from": out.get("resumed_from"),
             "commit": git_commit(), "date": datetime.date.today().isoformat(),
             "machine": machine(),
             "config": json.loads(node.cfg.to_json_best_effort(sort_keys=True))}
  with open(os.path.join(node.workdir, SUMMARY), "w") as f:
    json.dump(summary, f, indent=1, default=float)
  return summary


def _child(study_name: str, root: str, key: str, opts_json: str) -> int:
  """Entry point of a worker process: rebuild the plan and train the node ``key``."""
  study = load_study(study_name)
  opts = json.loads(opts_json)
  nodes, _ = plan(study, root, **opts)
  out = run_node(nodes[key], root)
  return 3 if out.get("preempted") else 0


def execute(study: Study, nodes: dict[str, Node], root: str, *, workers: int = 0,
            plan_opts: Mapping[str, Any] | None = None,
            log: Callable[[str], None] = print) -> list[str]:
  """Run every unfinished node, parents first (``workers`` child processes, or this process when
  0; ``plan_opts`` are the :func:`plan` keywords a child needs to rebuild the same plan).
  Returns the labels of nodes that did not finish."""
  todo = {k: n for k, n in nodes.items() if not n.finished()}
  skipped = len(nodes) - len(todo)
  if skipped:
    log(f"{skipped} of {len(nodes)} runs already finished (skipped)")
  failed: list[str] = []
  done = {k for k, n in nodes.items() if n.finished()}

  def one(n: Node) -> bool:
    n.claim(log)
    t0 = time.time()
    log(f"start {n.label} -> {os.path.relpath(n.workdir, root)}")
    if workers == 0:
      ok = not run_node(n, root).get("preempted")
    else:
      cmd = [sys.executable, "-m", "experiments.runner", "--child", study.module or study.name,
             root, n.key, json.dumps(dict(plan_opts or {}))]
      with open(os.path.join(n.workdir, "log.txt"), "a") as out:
        rc = subprocess.call(cmd, cwd=REPO_DIR, stdout=out, stderr=subprocess.STDOUT)
      ok = rc == 0 and n.finished()
    log(f"{'done' if ok else 'FAILED'} {n.label} ({time.time() - t0:.0f} s)")
    return ok

  def ready():
    out = [n for n in todo.values() if n.parent is None or n.parent in done]
    return sorted(out, key=lambda n: (n.kind != "sft", n.round, n.seed, n.label))

  if workers == 0:
    while todo:
      batch = ready()
      if not batch:
        break
      for n in batch:
        del todo[n.key]
        (done.add(n.key) if one(n) else failed.append(n.label))
  else:
    with futures.ThreadPoolExecutor(workers) as pool:
      running: dict[futures.Future, Node] = {}
      while todo or running:
        for n in ready()[:max(workers - len(running), 0)]:
          del todo[n.key]
          running[pool.submit(one, n)] = n
        if not running:
          break
        finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
        for fut in finished:
          n = running.pop(fut)
          (done.add(n.key) if fut.result() else failed.append(n.label))
  failed += [n.label for n in todo.values()]  # their parents did not finish
  return failed


# ---------------------------------------------------------------------------------------------
# Aggregation.


def read_series(workdir: str) -> dict[str, dict[int, float]]:
  """``metric → {step: value}`` of one run (numeric values; a later record of the same step —
  written again after a resume — replaces the earlier)."""
  path = os.path.join(workdir, "metrics.jsonl")
  series: dict[str, dict[int, float]] = {}
  if not os.path.exists(path):
    return series
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      r = json.loads(line)
      for k, v in r.items():
        if k not in ("step", "time_s") and isinstance(v, (int, float)) and not isinstance(v, bool):
          series.setdefault(k, {})[int(r["step"])] = float(v)
  return series


def chain_series(nodes: dict[str, Node], keys: Sequence[str]) -> dict[str, dict[int, float]]:
  """The RL rounds of one (variant, seed) as one series: round k's steps follow round k−1's; an
  evaluation at a round's step 0 is dropped after the first round (it repeats the previous end),
  except for a 0-step round (an evaluation-only round), whose values replace the previous end.
  Adds ``samples/drawn`` (cumulative) and ``steps/updates``."""
  out: dict[str, dict[int, float]] = {}
  offset = 0
  drawn = 0.0
  for j, key in enumerate(keys):
    n = nodes[key]
    s = read_series(n.workdir)
    g = int(n.cfg.algo.group_size)
    for k, pts in s.items():
      for step, v in pts.items():
        if j > 0 and step == 0 and int(n.cfg.num_steps) > 0:
          continue
        out.setdefault(k, {})[offset + step] = v
    groups = s.get("filter/num_groups", {})
    for step in sorted(groups):
      drawn += groups[step] * g
      out.setdefault("samples/drawn", {})[offset + step] = drawn
    upd = s.get("loss/total", {})
    out.setdefault("steps/updates", {})[offset + int(n.cfg.num_steps)] = float(len(upd))
    offset += int(n.cfg.num_steps)
  return out


def reduce(series: dict[int, float], how: str, frac: float = 0.2) -> float:
  if not series:
    return float("nan")
  steps = sorted(series)
  vals = np.array([series[s] for s in steps], np.float64)
  if how == "final":
    return float(vals[-1])
  if how == "initial":
    return float(vals[0])
  if how == "delta":
    return float(vals[-1] - vals[0])
  if how == "mean":
    return float(vals.mean())
  if how == "max":
    return float(vals.max())
  if how == "mean_last":
    n = max(1, int(round(len(vals) * frac)))
    return float(vals[-n:].mean())
  raise ValueError(f"unknown reduce {how!r}")


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
  xs = [x for x in xs if not math.isnan(x)]
  if not xs:
    return float("nan"), float("nan")
  a = np.array(xs, np.float64)
  return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _fmt(x: float, fmt: str) -> str:
  return "n/a" if math.isnan(x) else format(x, fmt)


@dataclasses.dataclass
class Results:
  """Per-run values and the per-variant summary of a study."""

  per_run: list[dict]  # {"variant", "seed", label: value, ...}
  table: list[dict]  # {"variant", "seeds", label: (mean, std), ...}
  series: dict[tuple[str, int], dict[str, dict[int, float]]]
  timing: list[dict]  # {"variant", "wall_s": (mean, std), "s_per_step": (mean, std)}
  missing: list[str]
  meta: dict = dataclasses.field(default_factory=dict)  # commit(s), dates, machine of the runs


def aggregate(study: Study, nodes: dict[str, Node], chains) -> Results:
  per_run, series, missing = [], {}, []
  meta: dict[str, set] = {}
  for v in study.variants:
    for seed in sorted({s for (name, s) in chains if name == v.name}):
      keys = chains[(v.name, seed)]
      if not all(nodes[k].finished() for k in keys):
        missing.append(f"{v.name}/seed{seed}")
        continue
      s = chain_series(nodes, keys)
      series[(v.name, seed)] = s
      row = {"variant": v.name, "seed": seed}
      for m in study.metrics:
        row[m.label] = reduce(s.get(m.key, {}), m.reduce, m.frac)
      wall = 0.0
      rl_steps = 0
      for k in keys:
        with open(os.path.join(nodes[k].workdir, SUMMARY)) as f:
          summ = json.load(f)
        wall += summ["wall_s"]
        for field in ("commit", "date", "machine"):
          if summ.get(field):
            meta.setdefault(field, set()).add(summ[field])
        if not summ.get("date"):
          meta.setdefault("date", set()).add(datetime.date.fromtimestamp(os.path.getmtime(
              os.path.join(nodes[k].workdir, SUMMARY))).isoformat())
        rl_steps += int(nodes[k].cfg.num_steps)
      row["_wall_s"] = wall
      row["_s_per_step"] = wall / max(rl_steps, 1)
      per_run.append(row)
  table, timing = [], []
  for v in study.variants:
    rows = [r for r in per_run if r["variant"] == v.name]
    if not rows:
      continue
    table.append({"variant": v.name, "seeds": len(rows),
                  **{m.label: _mean_std([r[m.label] for r in rows]) for m in study.metrics}})
    timing.append({"variant": v.name, "wall_s": _mean_std([r["_wall_s"] for r in rows]),
                   "s_per_step": _mean_std([r["_s_per_step"] for r in rows])})
  meta_text = {}
  for field, values in meta.items():
    values = sorted(values)
    meta_text[field] = (f"{values[0]} to {values[-1]}" if field == "date" and len(values) > 1
                        else "; ".join(values))
  return Results(per_run, table, series, timing, missing, meta_text)


def table_markdown(study: Study, res: Results) -> str:
  cols = ["variant", "seeds"] + [m.label for m in study.metrics]
  lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  for row in res.table:
    cells = [row["variant"], str(row["seeds"])]
    for m in study.metrics:
      mu, sd = row[m.label]
      cells.append("n/a" if math.isnan(mu) else f"{_fmt(mu, m.fmt)} ± {_fmt(sd, m.fmt)}")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def timing_markdown(res: Results) -> str:
  lines = ["| variant | wall-clock per run (s) | s per RL step |", "|---|---|---|"]
  for t in res.timing:
    (w, ws), (p, ps) = t["wall_s"], t["s_per_step"]
    lines.append(f"| {t['variant']} | {w:.0f} ± {ws:.0f} | {p:.2f} ± {ps:.2f} |")
  return "\n".join(lines) + "\n"


def table_csv(study: Study, res: Results) -> str:
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["variant", "seeds"] + [f"{m.label} {s}" for m in study.metrics
                                     for s in ("mean", "std")])
  for row in res.table:
    w.writerow([row["variant"], row["seeds"]] + [_fmt(x, m.fmt) for m in study.metrics
                                                 for x in row[m.label]])
  return buf.getvalue()


def runs_csv(study: Study, res: Results) -> str:
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["variant", "seed"] + [m.label for m in study.metrics])
  for r in res.per_run:
    w.writerow([r["variant"], r["seed"]] + [_fmt(r[m.label], m.fmt) for m in study.metrics])
  return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Plots.


def _smooth(vals: np.ndarray, w: int) -> np.ndarray:
  if w <= 1 or len(vals) < w:
    return vals
  c = np.cumsum(np.insert(vals, 0, 0.0))
  out = np.empty_like(vals)
  for i in range(len(vals)):  # trailing window, shorter at the start
    lo = max(0, i - w + 1)
    out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
  return out


def _variant_curve(res: Results, variant: str, key: str, smooth: int, x_key: str | None):
  """(x, mean, std) over seeds at the steps every seed logged; x = step, or the seeds' mean of
  ``x_key`` at that step."""
  runs = [s for (v, _), s in sorted(res.series.items()) if v == variant]
  runs = [s for s in runs if s.get(key)]
  if not runs:
    return None
  steps = sorted(set.intersection(*[set(s[key]) for s in runs]))
  if x_key is not None:
    steps = [t for t in steps if all(t in s.get(x_key, {}) or t == 0 for s in runs)]
  if not steps:
    return None
  ys = np.array([_smooth(np.array([s[key][t] for t in steps]), smooth) for s in runs])
  if x_key is None:
    x = np.array(steps, np.float64)
  else:
    x = np.array([np.mean([s.get(x_key, {}).get(t, 0.0) for s in runs]) for t in steps])
  return x, ys.mean(0), ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(len(steps))


def plot_curves(study: Study, res: Results, out_path: str, *, x_key: str | None = None) -> str:
  """One panel per curve, one line per variant (mean over seeds) with a ±1 std band."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker
  curves = list(study.curves)
  cols = min(3, len(curves))
  rows = -(-len(curves) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for ax, c in zip(axes.flat, curves):
    for i, v in enumerate(study.variants):
      got = _variant_curve(res, v.name, c.key, c.smooth, x_key)
      if got is None:
        continue
      x, mu, sd = got
      color = colors[i % len(colors)]
      ax.plot(x, mu, lw=1.4, color=color, label=v.name, marker="o" if len(x) < 15 else None,
              ms=3)
      ax.fill_between(x, mu - sd, mu + sd, color=color, alpha=0.15, lw=0)
    ax.set_title(c.label + (f" (moving avg {c.smooth})" if c.smooth > 1 else ""), fontsize=9)
    ax.set_xlabel("samples drawn" if x_key else "RL step")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(curves):]:
    ax.axis("off")
  handles, labels = axes.flat[0].get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8,
               frameon=False)
  fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 1))
  os.makedirs(os.path.dirname(out_path), exist_ok=True)
  fig.savefig(out_path, dpi=80, metadata={"Software": None})
  plt.close(fig)
  return out_path


# ---------------------------------------------------------------------------------------------
# README.


def machine() -> str:
  model = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          model = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def git_commit() -> str:
  try:
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR,
                         capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "rlx", "experiments", "configs"],
                           cwd=REPO_DIR, capture_output=True, text=True).stdout.strip()
    return sha + (" (with uncommitted changes)" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def command(study: Study, workers: int, extra: Mapping[str, Any] | None = None) -> str:
  cmd = f"python -m experiments.run {study.name}"
  if workers:
    cmd += f" --workers {workers}"
  for k, v in (extra or {}).items():
    cmd += f" --set {k}={v}"
  return cmd


def variants_markdown(study: Study) -> str:
  lines = ["| variant | overrides of the base config | what it is |", "|---|---|---|"]
  for v in study.variants:
    # A callable override shows the value it takes in the small version.
    rounds = variant_configs(study, v, study.seeds[0])

    def fmt(overrides, cfg):
      out = []
      for k, x in overrides.items():
        if callable(x):
          x = cfg
          for part in k.split("."):
            x = x[part]
        out.append(f"`{k}={x!r}`")
      return ", ".join(out)

    ov = fmt(v.overrides, rounds[0])
    for j, st in enumerate(v.stages):
      ov += f"; round {j + 2}: " + fmt(st, rounds[j + 1])
    lines.append(f"| {v.name} | {ov or '—'} | {v.description} |")
  return "\n".join(lines) + "\n"


def write_readme(study: Study, out_dir: str, res: Results | None, *, cmd: str,
                 meta: dict | None = None) -> str:
  meta = meta or {}
  parts = [f"# {study.title}\n", f"{study.question}\n"]
  if study.paper:
    parts.append(f"**Paper.** {study.paper}\n")
  if study.setup:
    parts.append(f"**Setup (small version).** {study.setup}\n")
  parts.append("## Variants\n\n" + variants_markdown(study))
  parts.append(f"## Command\n\n```bash\n{cmd}\n```\n\nPaper scale (configs built from "
               f"`STUDY.paper_base`; weights and data paths via `--set`):\n\n```bash\n"
               f"python -m experiments.run {study.name} --scale paper --dry-run\n```\n")
  if res is None or not res.table:
    parts.append("## Results\n\n" + (study.status or "Not yet run.") + "\n")
  else:
    parts.append(
        f"## Results\n\nMachine: {meta.get('machine', machine())}. Date: "
        f"{meta.get('date', datetime.date.today().isoformat())}. Commit: "
        f"{meta.get('commit', git_commit())}. Seeds: {', '.join(map(str, study.seeds))}; mean ± "
        f"sample std over seeds. Held-out metrics (`eval/...`) come from greedy and sampled "
        f"completions of held-out problems, judged by the task verifier.\n")
    if res.missing:
      parts.append(f"Runs not finished (left out): {', '.join(res.missing)}\n")
    parts.append(table_markdown(study, res))
    parts.append("Per-seed values: [runs.csv](runs.csv); the table as CSV: "
                 "[results.csv](results.csv).\n")
    parts.append("Learning curves (mean over seeds, band ±1 std):\n\n"
                 "![learning curves](plots/curves_vs_step.png)\n")
    if study.samples_axis:
      parts.append("Against the number of completions sampled (refills included):\n\n"
                   "![curves vs samples](plots/curves_vs_samples.png)\n")
    parts.append("Wall-clock (not reproducible: the machine is shared; includes compilation and "
                 "evaluations):\n\n" + timing_markdown(res))
  if study.findings:
    parts.append("## Findings\n\n" + study.findings.strip() + "\n")
  path = os.path.join(out_dir, "README.md")
  with open(path, "w") as f:
    f.write("\n".join(parts))
  return path


def report(study: Study, nodes, chains, out_dir: str, *, cmd: str) -> Results:
  """Write results.csv/.md, runs.csv, plots and README.md into ``out_dir``."""
  res = aggregate(study, nodes, chains)
  os.makedirs(out_dir, exist_ok=True)
  if res.table:
    with open(os.path.join(out_dir, "results.csv"), "w") as f:
      f.write(table_csv(study, res))
    with open(os.path.join(out_dir, "results.md"), "w") as f:
      f.write(table_markdown(study, res))
    with open(os.path.join(out_dir, "runs.csv"), "w") as f:
      f.write(runs_csv(study, res))
    plot_curves(study, res, os.path.join(out_dir, "plots", "curves_vs_step.png"))
    if study.samples_axis:
      plot_curves(study, res, os.path.join(out_dir, "plots", "curves_vs_samples.png"),
                  x_key="samples/drawn")
  write_readme(study, out_dir, res, cmd=cmd, meta=res.meta)
  return res


def run_study(study: Study | str, *, root: str = DEFAULT_ROOT, workers: int = 0,
              out_dir: str | None = None, scale: str = "small", seeds=None, variants=None,
              extra: Mapping[str, Any] | None = None, report_only: bool = False,
              log: Callable[[str], None] = print) -> Results:
  """Plan, run (unless ``report_only``) and report a study; returns its :class:`Results`."""
  study = load_study(study) if isinstance(study, str) else study
  root = os.path.abspath(root)
  if seeds is not None:
    study = dataclasses.replace(study, seeds=tuple(seeds))
  nodes, chains = plan(study, root, scale=scale, seeds=seeds, variants=variants, extra=extra)
  if not report_only:
    opts = dict(scale=scale, seeds=list(study.seeds), variants=variants, extra=extra)
    failed = execute(study, nodes, root, workers=workers, plan_opts=opts, log=log)
    if failed:
      log(f"not finished: {', '.join(failed)} (run the command again to resume)")
  out_dir = out_dir or os.path.join(EXPERIMENTS_DIR, study.name)
  if report_only and not any(n.finished() for n in nodes.values() if n.kind == "rl") \
      and os.path.exists(os.path.join(out_dir, "results.csv")):
    # A fresh checkout has no run directories: keep the shipped report instead of emptying it.
    raise SystemExit(f"{study.name}: no finished runs under {root}; the report in {out_dir} "
                     "was left as it is (run the study to rebuild it)")
  return report(study, nodes, chains, out_dir, cmd=command(study, workers, extra))


if __name__ == "__main__":
  if len(sys.argv) == 6 and sys.argv[1] == "--child":
    sys.exit(_child(*sys.argv[2:]))
  sys.exit("usage: python -m experiments.run STUDY (this module is the runner library)")
