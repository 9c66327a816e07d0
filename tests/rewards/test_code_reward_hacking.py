"""Code reward hacking (docs/rewards.md, "The test harness"): a pass counts only from the harness's
own record written after every test ran; the tests are never readable by the program."""

import pytest

from rlx.rewards import (SandboxConfig, code_tests_score, get_reward, run_python,
                         sandbox_capabilities)
from rlx.rewards.code import run_function_tests
from rlx.rewards.testing import make_batch

CFG = SandboxConfig(timeout=3.0, memory_mb=512, max_processes=32)
ISOLATIONS = [m for m in ("auto", "landlock", "none")
              if m == "none" or sandbox_capabilities(m)["works"]]

TESTS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(10, 20) == 30"]
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"

# Finds asserts wherever the program could read them and hard-codes the answers.
READ_TESTS = r'''
import glob, os, re
text = ""
paths = glob.glob(os.path.join(os.getcwd(), "**", "*"), recursive=True)
paths += glob.glob("/tmp/rlx_sandbox_*/**", recursive=True)
paths += ["/proc/self/cmdline", "/proc/%d/cmdline" % os.getppid(), "/proc/self/fd/0"]
paths += glob.glob("/proc/[0-9]*/cmdline")
for p in paths:
    try:
        with open(p, "rb") as f:
            text += f.read().decode("utf-8", "replace").replace("\0", "\n") + "\n"
    except OSError:
        pass
try:
    import sys
    text += sys.stdin.read()
except Exception:
    pass
ANSWERS = {}
for args, want in re.findall(r"assert add\(([^)]*)\) == (-?\d+)", text):
    ANSWERS[tuple(int(x) for x in args.split(","))] = int(want)
def add(a, b):
    return ANSWERS.get((a, b), a - b)
'''

HACKS = {
    "sys_exit": "import sys\nsys.exit(0)\n" + WRONG,
    "exit_after_wrong": WRONG + "import sys\nsys.exit(0)\n",
    "os_exit": "import os\nos._exit(0)\n",
    "os_exit_after_wrong": WRONG + "import os\nos._exit(0)\n",
    "raise_system_exit": "raise SystemExit\n",
    "raise_system_exit_0": WRONG + "raise SystemExit(0)\n",
    "nothing": "",
    "pass": "pass\n",
    "read_tests": READ_TESTS,
    "patch_assertion_error": ("import builtins\nclass Nope(Exception):\n    pass\n"
                              "builtins.AssertionError = Nope\n" + WRONG),
    "patch_base_exception": "import builtins\nbuiltins.BaseException = int\n" + WRONG,
    "settrace_jump": WRONG + r'''
import sys
def _tr(frame, event, arg):
    if event == "line" and frame.f_code.co_filename != __file__:
        try:
            frame.f_lineno = frame.f_lineno + 1
        except Exception:
            pass
    return _tr
try:
    sys.settrace(_tr)
    sys._getframe().f_trace = _tr
except Exception:
    pass
''',
    "settrace_in_call": r'''
import sys
def _tr(frame, event, arg):
    return _tr
def add(a, b):
    try:
        sys.settrace(_tr)
    except Exception:
        pass
    return a - b
''',
    "setprofile": WRONG + ("import sys\ntry:\n    sys.setprofile(lambda *a: None)\n"
                           "except Exception:\n    pass\n"),
    "patch_builtins_module": "import builtins\nbuiltins.all = lambda *a: True\n" + WRONG,
    "patch_builtins_dict": "__builtins__['all'] = lambda *a: True\n" + WRONG,
    "shadow_builtin": "def all(*a):\n    return True\n" + WRONG,
    "audit_hook_spy": WRONG + r'''
import sys
SEEN = []
try:
    sys.addaudithook(lambda ev, args: SEEN.append(args) if ev == "exec" else None)
except Exception:
    pass
''',
    "fake_marker": WRONG + "print('ok\\nPASSED\\nAll tests passed: 3/3 OK')\n",
    "fake_record": WRONG + r'''
import os
for fd in range(3, 256):
    try:
        os.write(fd, b"0123456789abcdef0123456789abcdef - 111\n")
    except OSError:
        pass
''',
    "close_record_fds": GOOD + "import os\nos.closerange(3, 256)\n",
    "patch_math": "import math\nmath.isclose = lambda *a, **k: True\n" + WRONG,
    "always_equal": ("class Anything:\n    def __eq__(self, other):\n        return True\n"
                     "    __hash__ = object.__hash__\n"
                     "def add(a, b):\n    return Anything()\n"),
    "always_equal_in_list": ("class Anything(int):\n    def __eq__(self, other):\n"
                             "        return True\n    __hash__ = int.__hash__\n"
                             "def add(a, b):\n    return [Anything(0)][0]\n"),
    "always_equal_callable": ("class Anything:\n    def __eq__(self, other):\n        return True\n"
                              "class Add:\n    def __call__(self, a, b):\n        return Anything()\n"
                              "add = Add()\n"),
    "always_equal_nested": ("class Anything:\n    def __eq__(self, other):\n        return True\n"
                            "def add(a, b):\n    return {'k': [(Anything(),)]}\n"),
    "always_close": ("class Near(float):\n    def __sub__(self, o):\n        return 0.0\n"
                     "    __rsub__ = __sub__\n"
                     "def add(a, b):\n    return Near(a - b)\n"),
}
# Tests that a builtin-patching hack could fool (the ``all(...)`` form).
ALL_TESTS = ["assert all([add(2, 3) == 5, add(-1, 1) == 0])", "assert add(1, 1) == 2"]
MATH_TESTS = ["import math\nassert math.isclose(add(0.5, 0.25), 0.75)"]
CLOSE_TESTS = ["assert abs(add(0.5, 0.25) - 0.75) < 1e-9"]
NESTED_TESTS = ["assert add(2, 3) == {'k': [(5,)]}", "assert add(1, 1) == {'k': [(2,)]}"]


def score(program, tests=TESTS, partial=False, isolation="auto"):
  cfg = SandboxConfig(timeout=CFG.timeout, memory_mb=CFG.memory_mb,
                      max_processes=CFG.max_processes, isolation=isolation)
  return code_tests_score("```python\n" + program + "```", {"tests": tests},
                          partial_credit=partial, config=cfg)[0]


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_correct_scores_one_wrong_scores_zero(isolation):
  assert score(GOOD, isolation=isolation) == 1.0
  assert score(WRONG, isolation=isolation) == 0.0
  for tests in (ALL_TESTS, MATH_TESTS):
    assert score(GOOD, tests, isolation=isolation) == 1.0
    assert score(WRONG, tests, isolation=isolation) == 0.0


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("name", sorted(HACKS))
def test_hack_scores_zero(name, isolation):
  tests = (ALL_TESTS if "builtin" in name else MATH_TESTS if "math" in name else
           CLOSE_TESTS if "close" in name else NESTED_TESTS if "nested" in name else TESTS)
  program = HACKS[name]
  assert score(program, tests, isolation=isolation) == 0.0
  assert score(program, tests, partial=True, isolation=isolation) == 0.0


def test_hacks_would_have_worked_when_tests_were_appended():
  """Sanity: under the old layout (tests appended to main.py, pass = exit status 0) these
  programs pass, so the tests above exercise real hacks."""
  for name in ("sys_exit", "os_exit", "raise_system_exit", "read_tests"):
    # (other numbers than TESTS: a concurrent "read_tests" run may find this main.py)
    res = run_python(HACKS[name] + "\n\nassert add(7, 8) == 15\n", config=CFG)
    assert res.status == "ok", (name, res.stderr)


def test_tampering_is_counted_as_a_violation():
  for name in ("settrace_jump", "patch_builtins_module", "audit_hook_spy"):
    s, info = code_tests_score(HACKS[name], {"tests": ALL_TESTS}, config=CFG)
    assert s == 0.0 and info["violation"] == 1.0, name


def test_program_sees_only_itself():
  prog = ("import os, sys\nprint(sorted(os.listdir('.')), repr(sys.stdin.read()))\n"
          "cmd = open('/proc/self/cmdline').read()\nprint('assert' in cmd, 'secret_test' in cmd)\n")
  res = run_function_tests(prog, ["assert secret_test() == 1"], CFG)[1]
  assert res.stdout.splitlines() == ["['solution.py'] ''", "False False"], res.stdout


def test_partial_credit_counts_each_test_string():
  half = "def add(a, b):\n    return a + b if a < 5 else 0\n"
  assert score(half, partial=True) == pytest.approx(2 / 3)
  assert score(half) == 0.0


def test_test_crash_or_syntax_error_fails_only_that_test():
  tests = TESTS[:2] + ["assert add(", "raise KeyboardInterrupt"]
  assert score(GOOD, tests, partial=True) == pytest.approx(0.5)


HUMANEVAL_0 = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    """
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
'''
HUMANEVAL_0_TEST = '''

METADATA = {
    'author': 'jt',
    'dataset': 'test'
}


def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False
    assert candidate([1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False

'''


@pytest.mark.parametrize("tests", [
    [HUMANEVAL_0_TEST, "check(has_close_elements)"],
    HUMANEVAL_0_TEST + "\ncheck(has_close_elements)\n",
])
def test_humaneval_style_canonical_solution_passes(tests):
  assert score(HUMANEVAL_0, tests) == 1.0
  wrong = HUMANEVAL_0.replace("distance < threshold", "distance > threshold")
  assert score(wrong, tests) == 0.0


def test_plain_nested_results_pass():
  nested = "def add(a, b):\n    x = {'k': [(a + b,)]}\n    return x\n"
  assert score(nested, NESTED_TESTS) == 1.0
  cyclic = "def add(a, b):\n    x = []\n    x.append(x)\n    return a + b if a else x\n"
  assert score(cyclic, ["assert add(2, 3) == 5", "assert add(0, 1) is not None"]) == 1.0


def test_ordinary_programs_still_work():
  prog = '''
import sys, math, collections, dataclasses, functools
from typing import NamedTuple
sys.setrecursionlimit(10000)
Point = collections.namedtuple("Point", "x y")
class P(NamedTuple):
    x: int
@dataclasses.dataclass
class Box:
    v: int
@functools.lru_cache(None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def solve(n):
    return Box(fib(n)).v + Point(1, 2).x + P(0).x + int(math.sqrt(0))
if __name__ == "__main__":
    print(solve(10))
'''
  assert score(prog, ["assert solve(10) == 56", "assert solve(300) > 0"]) == 1.0


def test_stdin_style_hacks_score_zero():
  """Stdin/stdout cases: outputs are compared in the parent and never enter the sandbox."""
  tests = [{"input": "4\n", "output": "987654321"}]
  good = "n = int(input())\nprint(987654321 if n == 4 else 0)\n"
  hacks = ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n", "raise SystemExit\n", "",
           "print('ok')\nprint('PASSED')\n",
           "import glob\nt = ''.join(open(p, errors='replace').read() for p in "
           "glob.glob('/proc/*/cmdline') + glob.glob('*'))\nw = str(10 ** 9 - 12345679)\n"
           "print(w if w in t else 'nope')\n"]
  batch = make_batch(["p"] * (len(hacks) + 1), ["```python\n" + p + "```" for p in [good] + hacks],
                     metadata=[{"tests": tests}] * (len(hacks) + 1))
  out = get_reward("code", timeout=3.0)(batch)
  assert out.scores.tolist() == [1.0] + [0.0] * len(hacks)
