"""JSONL / Parquet sources with column mappings, presets and malformed input."""

import json

import pytest

from rlx.data import GSM8K, MATH, ColumnMapping, DataFormatError, JsonlSource, ParquetSource
from rlx.data import TaskSource, generate_example, gsm8k_answer, last_boxed

MAPPING = ColumnMapping(prompt="q", answer="a", solution="sol", difficulty="lvl", pair_id="uid",
                        task="mine")


def _write_jsonl(path, lines):
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path


def _row(i):
  return json.dumps({"q": f"question {i}", "a": str(i), "sol": f"because {i}", "lvl": i % 3,
                     "uid": f"id-{i}", "extra": [1, 2]})


def test_jsonl_column_mapping(tmp_path):
  path = _write_jsonl(tmp_path / "d.jsonl", [_row(0), "", _row(1), _row(2)])
  src = JsonlSource(path, MAPPING)
  assert len(src) == 3 and src.num_skipped == 0
  ex = src[1]
  assert (ex.prompt, ex.answer, ex.solution, ex.difficulty, ex.pair_id, ex.task) == (
      "question 1", "1", "because 1", 1, "id-1", "mine")
  # Without a pair-id column the id is "<file>/<row>".
  assert JsonlSource(path, ColumnMapping(prompt="q", answer="a"))[2].pair_id == "d.jsonl/2"


def test_jsonl_malformed_line_names_file_and_line(tmp_path):
  path = _write_jsonl(tmp_path / "bad.jsonl", [_row(0), _row(1), '{"q": "x", "a": ', _row(3)])
  with pytest.raises(DataFormatError, match=r"bad\.jsonl:3: malformed record"):
    JsonlSource(path, MAPPING)


def test_jsonl_missing_column_and_non_object_name_the_line(tmp_path):
  path = _write_jsonl(tmp_path / "cols.jsonl", [_row(0), json.dumps({"q": "only"})])
  with pytest.raises(DataFormatError, match=r"cols\.jsonl:2: .*missing column"):
    JsonlSource(path, MAPPING)
  path = _write_jsonl(tmp_path / "list.jsonl", ["[1, 2]"])
  with pytest.raises(DataFormatError, match=r"list\.jsonl:1: .*JSON object"):
    JsonlSource(path, MAPPING)


def test_jsonl_skip_and_count(tmp_path):
  path = _write_jsonl(tmp_path / "bad.jsonl",
                      [_row(0), "not json", _row(2), json.dumps({"q": "no answer"}), _row(4)])
  src = JsonlSource(path, MAPPING, on_error="skip")
  assert len(src) == 3 and src.num_skipped == 2
  assert src.skipped == [f"{path}:2", f"{path}:4"]
  assert [ex.pair_id for ex in src] == ["id-0", "id-2", "id-4"]


def test_parquet_column_mapping(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq
  rows = [json.loads(_row(i)) for i in range(4)]
  pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
  src = ParquetSource(tmp_path / "d.parquet", MAPPING)
  assert len(src) == 4 and src[3].prompt == "question 3" and src[3].difficulty == 0
  with pytest.raises(DataFormatError, match=r"d\.parquet: missing column.*'nope'"):
    ParquetSource(tmp_path / "d.parquet", ColumnMapping(prompt="nope"))


def test_gsm8k_and_math_presets(tmp_path):
  gsm = {"question": "Tom has 3 apples...", "answer": "3 + 1,200 = 1,203\n#### 1,203"}
  math = {"problem": "Find x.", "solution": "So $x = \\boxed{\\frac{1}{2}}$.", "level": "Level 4",
          "type": "Algebra"}
  g = JsonlSource(_write_jsonl(tmp_path / "gsm.jsonl", [json.dumps(gsm)]), GSM8K)[0]
  assert (g.prompt, g.answer, g.task) == (gsm["question"], "1203", "gsm8k")
  assert g.solution == gsm["answer"]
  m = JsonlSource(_write_jsonl(tmp_path / "math.jsonl", [json.dumps(math)]), MATH)[0]
  assert (m.answer, m.difficulty, m.task) == ("\\frac{1}{2}", 4, "math")
  assert gsm8k_answer(b"x #### 7") == "7"
  assert last_boxed("\\boxed{1} then \\boxed{a{b}c}") == "a{b}c" and last_boxed("none") == ""


def test_task_source_is_random_access_and_deterministic():
  src = TaskSource("sort", size=10, seed=7, difficulty=(3, 4))
  assert len(src) == 10
  assert src[4] == generate_example("sort", 7, 4, (3, 4)) == src[4]
  assert {src[i].difficulty for i in range(10)} <= {3, 4}
  with pytest.raises(IndexError):
    src[10]
