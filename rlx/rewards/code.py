"""Code execution reward: run the completion's program against tests in the sandbox (§10)."""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from rlx.rewards.base import Reward
from rlx.rewards.safety import PerSampleReward
from rlx.rewards.sandbox import OK, SandboxConfig, require_isolation, run_python


_FENCED = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)

# Where a completion that continues a HumanEval-style prompt ends (Chen et al., 2021: the first
# line at column 0 that starts a new class, function, comment, if-block or print).
CONTINUATION_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def extract_code(completion: str) -> str:
  """The last fenced code block (```python … ``` or ``` … ```), else the whole completion."""
  blocks = _FENCED.findall(completion)
  return blocks[-1] if blocks else completion


def build_program(completion: str, meta: Mapping[str, Any],
                  stop: tuple[str, ...] = CONTINUATION_STOP) -> str:
  """The program a completion stands for.

  Without ``meta["prefix"]``: :func:`extract_code`. With a prefix (HumanEval-style problems: the
  prompt's imports, signature and docstring), the completion continues it: ``prefix +
  completion`` cut at the first of ``stop``; a completion with a fenced code block gives
  ``prefix`` followed by that block (a block that redefines ``meta["entry_point"]`` replaces the
  prompt's function, whose docstring alone is a valid body).
  """
  prefix = meta.get("prefix") or ""
  if not prefix:
    return extract_code(completion)
  blocks = _FENCED.findall(completion)
  if blocks:
    return f"{prefix}\n{blocks[-1]}"
  cut = min((i for i in (completion.find(s) for s in stop) if i >= 0), default=len(completion))
  return prefix + completion[:cut]


# The function-style test harness (run by the sandbox in place of the program; never on disk).
# It reads the tests and a per-run nonce from stdin, compiles the tests and captures private
# references to everything it needs, then loads solution.py as ``__main__`` in this interpreter
# (stdin is /dev/null by then), runs every test in a namespace with pristine builtins, and only
# after all of them writes ``<nonce> <flag> <one 0/1 per test>`` to its private record pipe and
# exits. The parent scores from that record only: exiting early (any way), printing, or closing
# the pipe leaves no record (score 0). Tracing/profiling, audit hooks, gc/frame-table walks and
# ctypes are denied; those, and rebinding a builtin or a common test module's attribute, set the
# tamper flag (score 0, counted as a violation). Every callable of the solution the tests can name
# returns plain data (exact builtin types, recursively) or raises: a result object whose ``__eq__``
# (``__lt__``, ``__bool__``, ...) answers what the test wants fails the test instead.
HARNESS = r'''
def _rlx_harness(rec):
    import builtins, collections, functools, heapq, itertools, json, math, operator, os, re
    import string, sys, types
    _read, _write, _exit, _fstat, _dup2, _open, _close = (
        os.read, os.write, os._exit, os.fstat, os.dup2, os.open, os.close)
    _exec, _compile, _dict, _PE, _RE, _SE, _ME, _mt = (
        exec, compile, dict, PermissionError, RuntimeError, SystemExit, MemoryError,
        types.ModuleType)
    _gettrace, _getprofile, _switch = sys.gettrace, sys.getprofile, sys.setswitchinterval
    _list, _callable, _isinstance, _type, _id, _TE = list, callable, isinstance, type, id, TypeError
    _plain = frozenset({type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set,
                        frozenset})
    _seqs = frozenset({list, tuple, set, frozenset})

    def _is_plain(x):
        # Exact builtin types all the way down: an object of the program's own class (or a
        # subclass of a builtin) could answer ``==``, ``<``, ``bool()`` or ``abs()`` as it likes.
        stack, seen = [x], set()
        while stack:
            v = stack.pop()
            t = _type(v)
            if t not in _plain:
                return False
            if t in _seqs or t is dict:
                if _id(v) in seen:  # (every object here lives inside x: ids are not reused)
                    continue
                seen.add(_id(v))
                if t is dict:
                    stack.extend(v.keys())
                    stack.extend(v.values())
                else:
                    stack.extend(v)
        return True

    def _checked(fn, name):
        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            if not _is_plain(out):
                raise _TE("%s returned a %s, not plain data" % (name, _type(out).__name__))
            return out
        return call
    _stdout = sys.stdout
    chunks = []
    while True:
        b = _read(0, 1 << 16)
        if not b:
            break
        chunks.append(b)
    nul = _open(os.devnull, os.O_RDONLY)
    _dup2(nul, 0)
    _close(nul)
    payload = json.loads(b"".join(chunks))
    nonce = payload["nonce"]
    codes = []
    for i, t in enumerate(payload["tests"]):
        try:
            codes.append(_compile(t, "<test %d>" % i, "exec"))
        except BaseException:
            codes.append(None)
    del payload, chunks
    path = os.path.join(os.getcwd(), "solution.py")
    with open(path) as f:
        src = f.read()
    st = _fstat(rec)
    rec_id = (st.st_dev, st.st_ino)
    pristine = _dict(builtins.__dict__)
    watched = [(m, _dict(m.__dict__)) for m in (builtins, collections, functools, heapq,
                                                 itertools, math, operator, re, string)]
    tamper = []
    deny = frozenset({"sys.settrace", "sys.setprofile", "sys._current_frames", "gc.get_objects",
                      "gc.get_referrers", "gc.get_referents", "ctypes.dlopen", "ctypes.dlsym",
                      "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata",
                      "ctypes.cdata/buffer", "ctypes.string_at", "ctypes.wstring_at",
                      "ctypes.addressof", "sys.monitoring.register_callback"})

    def hook(event, args):
        if event in deny:
            tamper.append(event)
            raise _PE("sandbox harness: %s denied" % event)
        if event == "sys.addaudithook":
            tamper.append(event)
            raise _RE("sandbox harness: audit hooks denied")

    def clean():
        if _gettrace() is not None or _getprofile() is not None:
            return False
        for m, snap in watched:
            d = m.__dict__
            for k in snap:
                if d.get(k, snap) is not snap[k]:
                    return False
        return True

    sys.addaudithook(hook)
    mod = _mt("__main__")
    mod.__file__ = path
    sys.modules["__main__"] = mod
    loaded = True
    try:
        _exec(_compile(src, "solution.py", "exec"), mod.__dict__)
    except _SE:
        pass
    except _ME:
        raise  # the sandbox reports status "memory"
    except:
        loaded = False
    ok = clean()
    results = []
    ns = _dict(mod.__dict__)
    for k in pristine:
        if k[:2] != "__" and k in ns:
            del ns[k]
    for k, v in _list(ns.items()):  # every callable the tests can name returns plain data
        if k[:2] != "__" and _callable(v) and not _isinstance(v, (type, _mt)):
            ns[k] = _checked(v, k)
    ns["__builtins__"] = _dict(pristine)
    for code in codes:
        r = "0"
        if loaded and ok and code is not None:
            try:
                _exec(code, ns)
                r = "1"
            except _ME:
                raise
            except:
                pass
            ok = ok and clean()
        results.append(r)
    _switch(1000.0)
    line = nonce + (" - " if ok and not tamper else " T ") + "".join(results) + "\n"
    st = _fstat(rec)
    if (st.st_dev, st.st_ino) == rec_id:
        _write(rec, line.encode())
    try:
        _stdout.flush()
    except:
        pass
    _exit(0)


_rlx_harness(RECORD_FD)
'''

_BAD = ("timeout", "memory", "violation", "output_limit", "setup_error")


def run_function_tests(code: str, tests: list[str], config: SandboxConfig = SandboxConfig()):
  """Runs ``code`` as ``solution.py`` under ``HARNESS`` with ``tests`` (Python source strings).

  Returns ``(results, res, tampered)``: ``results`` is one bool per test from the harness's
  record (all False when there is no valid record), ``res`` the ``SandboxResult``.
  """
  nonce = secrets.token_hex(16)
  res = run_python(code, stdin=json.dumps({"nonce": nonce, "tests": list(tests)}),
                   config=config, harness=HARNESS)
  lines = [ln for ln in res.record.decode("utf-8", "replace").splitlines()
           if ln.split(" ", 1)[0] == nonce]
  fail = [False] * len(tests)
  if res.status in _BAD or len(lines) != 1:
    return fail, res, False
  parts = lines[0].split(" ")
  if len(parts) != 3 or parts[1] not in ("-", "T") or len(parts[2]) != len(tests):
    return fail, res, False
  if parts[1] == "T":
    return fail, res, True
  return [c == "1" for c in parts[2]], res, False


def _same_output(got: str, want: str) -> bool:
  norm = lambda s: [line.rstrip() for line in s.strip().splitlines()]
  return norm(got) == norm(want)


def code_tests_score(completion: str, meta: Mapping[str, Any], prompt: str = "", *,
                     tests_key: str = "tests", partial_credit: bool = False,
                     config: SandboxConfig = SandboxConfig(),
                     stop: tuple[str, ...] = CONTINUATION_STOP):
  """Runs the completion's program (:func:`build_program`) against ``meta[tests_key]``.

  Tests are either a string / list of strings of Python (``assert f(2) == 4``), or a list of
  ``{"input": stdin, "output": expected stdout}`` cases, each run separately with the program's
  stdout compared in this process. Python tests never reach the program: the program is the only
  file of the sandbox (``solution.py``), and ``HARNESS`` loads it, runs the tests in order (each
  in the shared test namespace, in which builtin names are the pristine builtins) and writes its
  own record after all of them; a test passes only if it ran without raising, and the score is
  read from that record only (exit status and output never count). Score: 1 if all pass (or the
  passed fraction with ``partial_credit``). Returns ``(score, info)`` with per-sample counts of
  timeouts, memory errors, violations (tampering with the harness counts as a violation).

  HumanEval-style problems (``rlx.data.sources.HumanEvalSource``) put the prompt in
  ``meta["prefix"]`` and one test, ``<test source>`` then ``check(<entry_point>)``; MBPP-style
  problems (``rlx.data.sources.MbppSource``) put their asserts in ``meta["tests"]``.
  """
  code = build_program(completion, meta, tuple(stop))
  tests = meta.get(tests_key) or []
  if isinstance(tests, str):
    tests = [tests]
  info = {"timeout": 0.0, "memory": 0.0, "violation": 0.0, "output_limit": 0.0, "setup_error": 0.0}
  if not tests:
    return 0.0, info
  if all(isinstance(t, str) for t in tests):
    results, res, tampered = run_function_tests(code, tests, config)
    if res.status in info:
      info[res.status] += 1.0
    elif tampered:
      info["violation"] += 1.0
    passed = sum(results)
    score = passed / len(tests) if partial_credit else float(passed == len(tests))
    return score, info
  runs = [(str(t.get("input", "")), str(t.get("output", ""))) for t in tests]
  passed = 0
  for stdin, want in runs:
    res = run_python(code, stdin=stdin, config=config)
    if res.status in info:
      info[res.status] += 1.0
    ok = res.status == OK and _same_output(res.stdout, want)
    passed += ok
    if not ok and not partial_credit:
      break
  score = passed / len(runs) if partial_credit else float(passed == len(runs))
  return score, info


def code_tests(*, tests_key: str = "tests", partial_credit: bool = False, timeout: float = 5.0,
               memory_mb: int = 1024, max_processes: int = 64, isolation: str = "auto",
               max_workers: int = 4, stop: tuple[str, ...] = CONTINUATION_STOP) -> Reward:
  """Code reward: sandboxed execution against tests; a timeout, crash or violation scores 0 and is
  counted in ``reward/code/{timeout,memory,violation}``. ``timeout``: CPU seconds per process
  (``SandboxConfig.timeout``). ``isolation``: ``SandboxConfig.isolation``; building the reward
  raises when this machine cannot provide it. ``stop``: where a completion continuing a
  ``meta["prefix"]`` (HumanEval-style) is cut (:func:`build_program`)."""
  cfg = SandboxConfig(timeout=timeout, memory_mb=memory_mb, max_processes=max_processes,
                      isolation=isolation)
  require_isolation(cfg.isolation)  # fail at build time, not as a batch of zero rewards
  fn = functools.partial(code_tests_score, tests_key=tests_key, partial_credit=partial_credit,
                         config=cfg, stop=tuple(stop))
  n_runs_budget = timeout * 20 + 30  # per-sample containment budget; the sandbox kills earlier
  return PerSampleReward(fn, "code", timeout=n_runs_budget, max_workers=max_workers)
