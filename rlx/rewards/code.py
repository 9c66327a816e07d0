"""Code execution reward: run the completion's program against tests in the sandbox (§10)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from rlx.rewards.base import Reward
from rlx.rewards.safety import PerSampleReward
from rlx.rewards.sandbox import OK, SandboxConfig, run_python


def extract_code(completion: str) -> str:
  """The last fenced code block (```python … ``` or ``` … ```), else the whole completion."""
  blocks = re.findall(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", completion, re.DOTALL)
  return blocks[-1] if blocks else completion


def _same_output(got: str, want: str) -> bool:
  norm = lambda s: [line.rstrip() for line in s.strip().splitlines()]
  return norm(got) == norm(want)


def code_tests_score(completion: str, meta: Mapping[str, Any], prompt: str = "", *,
                     tests_key: str = "tests", partial_credit: bool = False,
                     config: SandboxConfig = SandboxConfig()):
  """Runs the extracted program against ``meta[tests_key]``.

  Tests are either a string / list of strings of Python (``assert f(2) == 4``), appended to the
  program and run once, or a list of ``{"input": stdin, "output": expected stdout}`` cases, each
  run separately. Score: 1 if all pass (or the passed fraction with ``partial_credit``).
  Returns ``(score, info)`` with per-sample counts of timeouts, memory errors, violations.
  """
  code = extract_code(completion)
  tests = meta.get(tests_key) or []
  if isinstance(tests, str):
    tests = [tests]
  info = {"timeout": 0.0, "memory": 0.0, "violation": 0.0, "output_limit": 0.0, "setup_error": 0.0}
  if not tests:
    return 0.0, info
  if all(isinstance(t, str) for t in tests):
    runs = [(code + "\n\n" + "\n".join(tests) + "\n", "", None)]
  else:
    runs = [(code, str(t.get("input", "")), str(t.get("output", ""))) for t in tests]
  passed = 0
  for program, stdin, want in runs:
    res = run_python(program, stdin=stdin, config=config)
    if res.status in info:
      info[res.status] += 1.0
    ok = res.status == OK and (want is None or _same_output(res.stdout, want))
    passed += ok
    if not ok and not partial_credit:
      break
  score = passed / len(runs) if partial_credit else float(passed == len(runs))
  return score, info


def code_tests(*, tests_key: str = "tests", partial_credit: bool = False, timeout: float = 5.0,
               memory_mb: int = 1024, max_processes: int = 64, isolation: str = "auto",
               max_workers: int = 4) -> Reward:
  """Code reward: sandboxed execution against tests; a timeout, crash or violation scores 0 and is
  counted in ``reward/code/{timeout,memory,violation}``."""
  cfg = SandboxConfig(timeout=timeout, memory_mb=memory_mb, max_processes=max_processes,
                      isolation=isolation)
  fn = functools.partial(code_tests_score, tests_key=tests_key, partial_credit=partial_credit,
                         config=cfg)
  n_runs_budget = timeout * 20 + 30  # per-sample containment budget; the sandbox kills earlier
  return PerSampleReward(fn, "code", timeout=n_runs_budget, max_workers=max_workers)
