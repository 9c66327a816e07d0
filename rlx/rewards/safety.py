"""Contained execution of reward functions.

Every reward call goes through here, so a bad reward never stops training:
- ``run_per_sample``: a per-sample function runs once per sample, in threads (default) or in
  killable worker processes, each with its own timeout; an exception, a timeout or a malformed /
  non-finite value scores ``default`` for that sample only and is counted.
- ``SafeReward``: wraps any batch reward; an exception, a timeout, a wrong shape or NaNs give
  ``default`` scores (for the whole batch or the affected samples) with ``failures`` counted. It
  never raises.

Threads cannot be killed: a per-sample function that hangs in a thread is abandoned (its result
is ignored, its slot is released) and keeps running in the background until it returns. Use
``executor="process"`` for functions that may spin forever; those workers are killed on timeout.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import logging
import math
import multiprocessing as mp
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlx.rewards.base import Reward, RewardInput, RewardOutput, Scorer

log = logging.getLogger("rlx.rewards")

# Failure kinds counted per sample.
EXCEPTION, TIMEOUT, MALFORMED, NONFINITE = "exception", "timeout", "malformed", "nonfinite"


class WorkerTimeout(Exception):
  """The worker did not answer within its time limit and was killed."""


def _worker_main(conn, warm):
  import importlib
  for module in warm:  # warm imports before the first timed task
    importlib.import_module(module)
  conn.send("ready")
  while True:
    try:
      msg = conn.recv()
    except EOFError:
      return
    if msg is None:
      return
    fn, args = msg
    try:
      conn.send(("ok", fn(*args)))
    except BaseException as e:  # noqa: BLE001 - report everything to the parent
      conn.send(("err", f"{type(e).__name__}: {e}"))


_STARTUP_TIMEOUT = 120.0


class ProcessPool:
  """A small pool of spawned worker processes; a call that runs past its timeout kills its worker.

  ``run(fn, args, timeout)`` may be called from many threads at once; each call takes one idle
  worker (started lazily), so the time limit counts from when the work starts, not queueing.
  ``fn`` and ``args`` must be picklable (module-level functions). Workers import ``warm`` modules
  before taking work, so start-up never counts against a time limit.
  """

  def __init__(self, num_workers: int = 2, warm: tuple[str, ...] = ("rlx.rewards",)):
    self.num_workers = num_workers
    self.warm = tuple(warm)
    self._ctx = mp.get_context("spawn")
    self._idle: list[tuple[Any, Any]] = []
    self._started = 0
    self._cond = threading.Condition()
    self._closed = False

  def _acquire(self):
    with self._cond:
      while not self._idle and self._started >= self.num_workers:
        self._cond.wait()
      if self._idle:
        return self._idle.pop()
      self._started += 1
    try:
      parent, child = self._ctx.Pipe()
      proc = self._ctx.Process(target=_worker_main, args=(child, self.warm), daemon=True)
      proc.start()
      child.close()
      # Start-up (interpreter + imports) does not count against a task's time limit.
      if not parent.poll(_STARTUP_TIMEOUT) or parent.recv() != "ready":
        _kill(proc, parent)
        raise RuntimeError(f"worker did not start within {_STARTUP_TIMEOUT}s")
      return proc, parent
    except BaseException:
      with self._cond:
        self._started -= 1
        self._cond.notify()
      raise

  def _release(self, worker, alive: bool):
    proc, conn = worker
    with self._cond:
      if alive and not self._closed:
        self._idle.append(worker)
      else:
        self._started -= 1
        _kill(proc, conn)
      self._cond.notify()

  def run(self, fn: Callable[..., Any], args: tuple = (), timeout: float | None = None):
    """Returns ``fn(*args)`` computed in a worker; raises WorkerTimeout or RuntimeError."""
    worker = self._acquire()
    proc, conn = worker
    try:
      conn.send((fn, args))
      if not conn.poll(timeout):
        self._release(worker, alive=False)
        raise WorkerTimeout(f"no answer within {timeout}s; worker killed")
      status, value = conn.recv()
    except (EOFError, OSError, BrokenPipeError) as e:
      self._release(worker, alive=False)
      raise RuntimeError(f"worker died: {e}") from e
    except WorkerTimeout:
      raise
    except BaseException:
      self._release(worker, alive=False)
      raise
    self._release(worker, alive=True)
    if status == "err":
      raise RuntimeError(value)
    return value

  def close(self):
    with self._cond:
      self._closed = True
      idle, self._idle = self._idle, []
    for proc, conn in idle:
      _kill(proc, conn)


def _kill(proc, conn):
  try:
    conn.close()
  except OSError:
    pass
  if proc.is_alive():
    proc.kill()
  proc.join(timeout=1.0)


_POOLS: dict[str, ProcessPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(name: str, num_workers: int = 2,
                warm: tuple[str, ...] = ("rlx.rewards",)) -> ProcessPool:
  """A process-wide pool by name (created on first use, closed at exit); ``warm`` modules are
  imported by each worker before it takes work."""
  with _POOLS_LOCK:
    if name not in _POOLS:
      _POOLS[name] = ProcessPool(num_workers, warm)
    return _POOLS[name]


@atexit.register
def _close_pools():
  for pool in list(_POOLS.values()):
    pool.close()


def _as_score(value: Any) -> float:
  """A finite float from a per-sample return value (bool, int, float, 0-d array); else raises."""
  if isinstance(value, (bool, np.bool_)):
    return float(value)
  if isinstance(value, (int, float, np.integer, np.floating)) or (
      isinstance(value, np.ndarray) and value.shape == ()):
    v = float(value)
    if not math.isfinite(v):
      raise FloatingPointError(f"non-finite score {v}")
    return v
  raise TypeError(f"expected a number, got {type(value).__name__}: {value!r:.80}")


def run_per_sample(fn: Callable[..., Any], args: Sequence[tuple], *, timeout: float = 10.0,
                   executor: str = "thread", max_workers: int = 8, default: float = 0.0,
                   name: str = "reward", pool: ProcessPool | None = None,
                   describe: Callable[[int], str] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, list[str | None], list[Any]]:
  """Runs ``fn(*args[i])`` for every sample i, each contained and with its own timeout.

  Args:
    fn: returns a number (score) or a tuple ``(score, info)``; ``info`` is passed through.
    args: B argument tuples.
    timeout: seconds per sample, counted from when the sample starts running.
    executor: ``"thread"`` (hung samples are abandoned) or ``"process"`` (hung workers killed;
      ``fn`` must be picklable).
    describe: ``describe(i)`` gives a short text of sample i for the failure log.
  Returns:
    (scores [B] f32, failed [B] int32, failure kinds (None where fine), infos).
  """
  n = len(args)
  scores = np.full(n, default, np.float32)
  failed = np.zeros(n, np.int32)
  kinds: list[str | None] = [None] * n
  infos: list[Any] = [None] * n
  if n == 0:
    return scores, failed, kinds, infos

  def record(i, value=None, error=None, kind=None):
    if error is None:
      try:
        if isinstance(value, tuple) and len(value) == 2:
          value, infos[i] = value
        scores[i] = _as_score(value)
        return
      except FloatingPointError as e:
        error, kind = e, NONFINITE
      except TypeError as e:
        error, kind = e, MALFORMED
    failed[i], kinds[i] = 1, kind
    log.warning("reward %s failed on sample %d (%s): %s%s", name, i, kind, error,
                f"; sample: {describe(i)!r}" if describe else "")

  if executor == "process":
    pool = pool or shared_pool("per_sample", max_workers)

    def call(i):
      try:
        record(i, pool.run(fn, args[i], timeout))
      except WorkerTimeout as e:
        record(i, error=e, kind=TIMEOUT)
      except Exception as e:  # noqa: BLE001
        record(i, error=e, kind=EXCEPTION)

    with cf.ThreadPoolExecutor(min(max_workers, n)) as ex:
      list(ex.map(call, range(n)))
    return scores, failed, kinds, infos

  if executor != "thread":
    raise ValueError(f"executor must be 'thread' or 'process', got {executor!r}")
  # One daemon thread per sample, at most max_workers running; an abandoned (timed-out) thread
  # gives its slot back so that later samples still run.
  results: dict[int, tuple] = {}
  done = threading.Condition()
  started: dict[int, float] = {}
  pending = list(range(n))[::-1]
  running: set[int] = set()

  def target(i):
    try:
      out = ("ok", fn(*args[i]))
    except BaseException as e:  # noqa: BLE001
      out = ("err", e, traceback.format_exc(limit=3))
    with done:
      results.setdefault(i, out)
      done.notify_all()

  with done:
    while pending or running:
      while pending and len(running) < max_workers:
        i = pending.pop()
        running.add(i)
        started[i] = time.monotonic()
        threading.Thread(target=target, args=(i,), daemon=True, name=f"{name}-{i}").start()
      now = time.monotonic()
      for i in list(running):
        if i in results:
          running.discard(i)
        elif now - started[i] > timeout:
          results[i] = ("timeout",)
          running.discard(i)
      if running:
        wake = min(started[i] + timeout for i in running) - time.monotonic()
        done.wait(timeout=max(min(wake, 0.05), 0.001))
  for i in range(n):
    res = results[i]
    if res[0] == "ok":
      record(i, res[1])
    elif res[0] == "timeout":
      record(i, error=TimeoutError(f"sample ran past {timeout}s"), kind=TIMEOUT)
    else:
      record(i, error=res[1], kind=EXCEPTION)
  return scores, failed, kinds, infos


def failure_extras(kinds: Sequence[str | None]) -> dict[str, np.ndarray]:
  """Per-sample failure indicators by kind, [B] float32 each, plus the total ``failures``."""
  kinds = list(kinds)
  out = {"failures": np.array([k is not None for k in kinds], np.float32)}
  for k in (EXCEPTION, TIMEOUT, MALFORMED, NONFINITE):
    out[f"failures_{k}"] = np.array([x == k for x in kinds], np.float32)
  return out


def _call_with_timeout(fn, timeout):
  """Runs fn() in a daemon thread; returns ('ok', v) | ('err', e) | ('timeout',)."""
  box: list = []

  def target():
    try:
      box.append(("ok", fn()))
    except BaseException as e:  # noqa: BLE001
      box.append(("err", e))

  t = threading.Thread(target=target, daemon=True, name="reward-call")
  t.start()
  t.join(timeout)
  return box[0] if box else ("timeout",)


class SafeReward:
  """Contains a batch reward: it never raises, and bad outputs become counted defaults.

  - exception or timeout (whole call): every sample scores ``default``, all counted as failures;
  - ``scores`` not of shape [B] or not numeric: whole batch ``default`` (``malformed``);
  - NaN/inf entries: those samples ``default`` (``nonfinite``), the rest keep their scores;
  - ``token_scores`` of the wrong shape are dropped (counted), NaNs in them zeroed;
  - extras of the wrong shape are dropped.
  Failures already reported by the reward itself (per-sample containment) are added.
  """

  def __init__(self, reward: Reward, *, timeout: float | None = 60.0, default: float = 0.0):
    self.reward = reward
    self.name = getattr(reward, "name", type(reward).__name__)
    self.timeout = timeout
    self.default = default

  def __getattr__(self, item):  # state_dict / load_state_dict and friends of the inner reward
    if item == "reward":
      raise AttributeError(item)
    return getattr(self.reward, item)

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    b = batch.batch_size
    res = _call_with_timeout(lambda: self.reward(batch, scorer), self.timeout)
    kinds: list[str | None] = [None] * b
    if res[0] != "ok":
      kind = TIMEOUT if res[0] == "timeout" else EXCEPTION
      detail = "" if res[0] == "timeout" else f"{type(res[1]).__name__}: {res[1]}"
      log.warning("reward %s failed on the whole batch (%s) %s", self.name, kind, detail)
      return self._default(b, kind)
    out = res[1]
    if not isinstance(out, RewardOutput):
      out = RewardOutput(scores=out)
    try:
      scores = np.asarray(out.scores, np.float64).reshape(np.shape(out.scores))
      if scores.shape != (b,):
        raise ValueError(f"scores shape {scores.shape} != ({b},)")
    except (TypeError, ValueError) as e:
      log.warning("reward %s returned malformed scores: %s", self.name, e)
      return self._default(b, MALFORMED)
    bad = ~np.isfinite(scores)
    for i in np.flatnonzero(bad):
      kinds[i] = NONFINITE
      log.warning("reward %s gave a non-finite score on sample %d: %r", self.name, i,
                  batch.completions[i][:200])
    if out.failures is not None and np.shape(out.failures) == (b,):
      inner = np.asarray(out.failures) > 0
      for i in np.flatnonzero(inner):
        kinds[i] = kinds[i] or EXCEPTION
    scores = np.where(bad, self.default, scores).astype(np.float32)
    token_scores = out.token_scores
    if token_scores is not None:
      t_shape = None if batch.completion_mask is None else np.shape(batch.completion_mask)
      ts = np.asarray(token_scores, np.float32)
      if ts.ndim != 2 or ts.shape[0] != b or (t_shape is not None and ts.shape != t_shape):
        log.warning("reward %s: token_scores shape %s dropped", self.name, ts.shape)
        token_scores = None
        kinds = [k or MALFORMED for k in kinds]
      else:
        token_scores = np.nan_to_num(ts, nan=0.0, posinf=0.0, neginf=0.0)
    extras = {k: np.asarray(v) for k, v in out.extras.items() if np.shape(v) == (b,)}
    extras.update(failure_extras(kinds))
    mask = out.sample_mask
    if mask is not None and np.shape(mask) != (b,):
      mask = None
    return RewardOutput(scores=scores, token_scores=token_scores, extras=extras,
                        sample_mask=mask, aux=dict(out.aux),
                        failures=np.array([k is not None for k in kinds], np.int32))

  def _default(self, b, kind):
    kinds = [kind] * b
    return RewardOutput(scores=np.full(b, self.default, np.float32), extras=failure_extras(kinds),
                        failures=np.ones(b, np.int32))


class PerSampleReward:
  """A reward from ``fn(completion, meta, prompt) -> score | (score, info)``, run per sample.

  Each sample is contained on its own (see ``run_per_sample``): one bad sample does not zero the
  batch. ``info`` (a dict of numbers) becomes per-sample extras (missing entries are 0).
  """

  def __init__(self, fn: Callable[..., Any], name: str | None = None, *, timeout: float = 10.0,
               executor: str = "thread", max_workers: int = 8, default: float = 0.0):
    self.fn = fn
    self.name = name or getattr(fn, "__name__", "reward")
    self.timeout = timeout
    self.executor = executor
    self.max_workers = max_workers
    self.default = default

  def __call__(self, batch: RewardInput, scorer: Scorer | None = None) -> RewardOutput:
    args = [(batch.completions[i], dict(batch.meta(i)), batch.prompts[i])
            for i in range(batch.batch_size)]
    scores, failed, kinds, infos = run_per_sample(
        self.fn, args, timeout=self.timeout, executor=self.executor,
        max_workers=self.max_workers, default=self.default, name=self.name,
        describe=lambda i: batch.completions[i][:200])
    extras = failure_extras(kinds)
    keys = sorted({k for info in infos if isinstance(info, dict) for k in info})
    for k in keys:
      extras[k] = np.array([float(info.get(k, 0.0)) if isinstance(info, dict) else 0.0
                            for info in infos], np.float32)
    return RewardOutput(scores=scores, extras=extras, failures=failed)

  def __repr__(self):
    return f"PerSampleReward({self.name}, executor={self.executor}, timeout={self.timeout})"
