"""Sandbox (docs/algorithms.md §10): violations score 0 and are counted; the rest of the batch is fine."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from rlx.rewards import SandboxConfig, get_reward, reward_metrics, run_python, sandbox_capabilities
from rlx.rewards.testing import make_batch

CFG = SandboxConfig(timeout=1.5, memory_mb=512, max_processes=32)
OS = sandbox_capabilities()
needs_os = pytest.mark.skipif(not OS.get("network"), reason="no OS isolation on this machine")

NETWORK = """
import socket
s = socket.create_connection(("1.1.1.1", 80), timeout=1)
print("connected")
"""
WRITE_TMP = """
with open("/tmp/rlx_sandbox_escape.txt", "w") as f:
    f.write("escaped")
print("wrote")
"""
WRITE_REPO = f"""
with open({os.path.abspath(__file__ + '.escape')!r}, "w") as f:
    f.write("escaped")
"""
LOOP = "while True:\n    pass\n"
FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
BIG_ALLOC = "x = bytearray(10 * 1024 ** 3)\nprint(len(x))\n"
SECRET = """
import glob, os
leak = "RLX_TEST_SECRET_VALUE" in repr(dict(os.environ))
for p in glob.glob("/proc/*/environ"):
    try:
        leak |= "RLX_TEST_SECRET_VALUE" in open(p, errors="replace").read()
    except OSError:
        pass
print("LEAK" if leak else "clean")
assert not leak
"""
# An attack that needs the parent's secret to pass its tests.
STEAL = """
import os
secret = os.environ.get("RLX_TEST_SECRET")
if secret is None:
    secret = open("/proc/%d/environ" % os.getppid()).read()
assert "RLX_TEST_SECRET_VALUE" in secret
"""


def test_good_program_runs_in_its_own_dir():
  res = run_python("import os\nopen('out.txt', 'w').write('hi')\nprint(open('out.txt').read(), "
                   "os.getcwd())", config=CFG)
  assert res.status == "ok", res.stderr
  assert res.stdout.startswith("hi /") and "rlx_sandbox_" in res.stdout


def test_network_blocked():
  res = run_python(NETWORK, config=CFG)
  assert res.status == "violation" and "network" in res.violations
  assert "connected" not in res.stdout


@needs_os
def test_network_blocked_by_os_without_python_guards():
  res = run_python(NETWORK, config=SandboxConfig(timeout=3, python_guards=False))
  assert res.status == "failed" and "connected" not in res.stdout
  assert "unreachable" in res.stderr.lower() or "errno" in res.stderr.lower()


@pytest.mark.parametrize("program", [WRITE_TMP, WRITE_REPO])
def test_cannot_write_outside_workdir(program):
  res = run_python(program, config=CFG)
  assert res.status == "violation" and "filesystem" in res.violations
  assert not os.path.exists("/tmp/rlx_sandbox_escape.txt")
  assert not os.path.exists(__file__ + ".escape")


@needs_os
@pytest.mark.parametrize("program", [WRITE_TMP, WRITE_REPO])
def test_writes_do_not_escape_without_python_guards(program):
  run_python(program, config=SandboxConfig(timeout=3, python_guards=False))
  assert not os.path.exists("/tmp/rlx_sandbox_escape.txt")
  assert not os.path.exists(__file__ + ".escape")


@pytest.mark.parametrize("program", [LOOP, FORK_BOMB])
def test_killed_at_time_limit(program):
  t = time.monotonic()
  res = run_python(program, config=CFG)
  assert res.status == "timeout"  # the CPU limit, or for a tree of processes the wall backstop
  assert time.monotonic() - t < 3 * CFG.timeout + 2 + 3.0


def test_verdict_does_not_depend_on_load():
  """The limit is CPU time: a program using 0.6 s of CPU passes a 1 s limit on an idle machine and
  on one oversubscribed 3x (where it takes longer than 1 s of wall-clock time)."""
  burn = ("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\n"
          "print('done')\n")
  cfg = SandboxConfig(timeout=1.0, memory_mb=256)
  idle = run_python(burn, config=cfg)
  hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
          for _ in range(3 * len(os.sched_getaffinity(0)))]
  time.sleep(0.5)  # spinning, each in its own session (autogroup scheduling shares per session)
  try:
    busy = run_python(burn, config=cfg)
  finally:
    for h in hogs:
      h.kill()
      h.wait()
  assert idle.status == busy.status == "ok", (idle.stderr, busy.stderr)
  assert busy.wall_time > cfg.timeout  # a wall-clock limit would have failed it
  assert run_python(LOOP, config=cfg).status == "timeout"


def test_big_allocation_fails_fast():
  res = run_python(BIG_ALLOC, config=CFG)
  assert res.status == "memory"


def test_output_cap():
  res = run_python("while True:\n    print('x' * 1000)\n",
                   config=SandboxConfig(timeout=3, max_output_bytes=10_000))
  assert res.status == "output_limit" and len(res.stdout) <= 10_000


def test_parent_secrets_not_visible(monkeypatch):
  monkeypatch.setenv("RLX_TEST_SECRET", "RLX_TEST_SECRET_VALUE")
  res = run_python(SECRET, config=CFG)
  assert res.status == "ok" and res.stdout.strip() == "clean", (res.stdout, res.stderr)


def test_capabilities_reported():
  assert OS["works"] and OS["mode"] in ("namespace", "landlock")
  assert set(OS) >= {"network", "readonly_fs", "pid_namespace", "uid_drop", "landlock", "seccomp",
                     "unix_sockets_blocked", "signals_confined", "exec_confined", "process_sweep"}


def _fence(code):
  return "Here is my solution:\n```python\n" + code + "```\n"


def test_code_reward_batch_with_violations(monkeypatch):
  monkeypatch.setenv("RLX_TEST_SECRET", "RLX_TEST_SECRET_VALUE")
  good = "def add(a, b):\n    return a + b\n"
  wrong = "def add(a, b):\n    return a - b\n"
  attacks = {"network": NETWORK, "write": WRITE_TMP, "loop": LOOP, "fork": FORK_BOMB,
             "alloc": BIG_ALLOC, "secret": STEAL}
  progs = [good, wrong] + [good + a for a in attacks.values()] + [good, good]
  tests = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"]
  batch = make_batch(["write add"] * len(progs), [_fence(p) for p in progs],
                     metadata=[{"tests": tests} for _ in progs])
  reward = get_reward("code", timeout=1.5, memory_mb=512, max_processes=32, max_workers=4)
  t = time.monotonic()
  out = reward(batch)
  assert time.monotonic() - t < 20
  np.testing.assert_array_equal(out.scores, [1, 0, 0, 0, 0, 0, 0, 0, 1, 1])
  assert out.extras["violation"].tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
  assert out.extras["timeout"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
  assert out.extras["memory"].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
  m = reward_metrics(out)
  assert m["reward/violation"] == pytest.approx(0.3) and m["reward/failures"] == 0


def test_reading_another_process_environ_is_a_violation(monkeypatch):
  monkeypatch.setenv("RLX_TEST_SECRET", "RLX_TEST_SECRET_VALUE")
  res = run_python(STEAL, config=CFG)
  assert res.status == "violation" and res.violations == ["secrets"]


def test_code_reward_stdin_stdout_cases_partial_credit():
  prog = _fence("n = int(input())\nprint(n * 2 if n < 5 else 0)\n")
  tests = [{"input": "1\n", "output": "2"}, {"input": "3", "output": "6\n"},
           {"input": "7", "output": "14"}]
  batch = make_batch(["double"], [prog], metadata=[{"tests": tests}])
  assert get_reward("code", timeout=2.0, partial_credit=True)(batch).scores[0] == pytest.approx(2 / 3)
  assert get_reward("code", timeout=2.0)(batch).scores[0] == 0.0


@pytest.mark.parametrize("program,status", [(NETWORK, "violation"), (WRITE_TMP, "violation"),
                                            (WRITE_REPO, "violation"), (STEAL, "violation"),
                                            (BIG_ALLOC, "memory")])
def test_python_guards_without_kernel_isolation(program, status, monkeypatch):
  """With isolation="none" (asked for explicitly) the guards and rlimits still hold."""
  monkeypatch.setenv("RLX_TEST_SECRET", "RLX_TEST_SECRET_VALUE")
  res = run_python(program, config=SandboxConfig(timeout=1.5, memory_mb=512, isolation="none"))
  assert res.status == status and not res.enforced["network"]
  assert not os.path.exists("/tmp/rlx_sandbox_escape.txt")
  assert not os.path.exists(__file__ + ".escape")
