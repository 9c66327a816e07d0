"""BM25 retrieval: scores equal the formula computed by hand; the search tool through ToolEnv."""

import json
import math

import pytest

from rlx.envs import BM25, ToolEnv, load_documents

DOCS = ["the cat sat on the mat", "the dog chased the cat", "a bird sang"]


def test_bm25_scores_equal_the_formula_by_hand():
  index = BM25(DOCS)
  n, avgdl, k1, b = 3, (6 + 5 + 3) / 3, 1.5, 0.75
  idf_cat = math.log(1 + (n - 2 + 0.5) / (2 + 0.5))
  idf_dog = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))

  def term(idf, f, dl):
    return idf * f * (k1 + 1) / (f + k1 * (1 - b + b * dl / avgdl))

  got = index.scores("cat dog")
  want = [term(idf_cat, 1, 6), term(idf_cat, 1, 5) + term(idf_dog, 1, 5), 0.0]
  assert got == pytest.approx(want, rel=1e-12)
  assert index.search("cat dog", k=3) == [1, 0]  # the bird document scores 0: left out
  assert index.search("Bird!") == [2] and index.search("zebra") == []


def test_search_tool_reads_a_local_collection(tmp_path):
  path = tmp_path / "docs.jsonl"
  rows = [{"title": "Zorblat", "text": "The capital of Zorblat is Quenth."},
          {"title": "Mivra", "text": "Mivra's capital is Ostel; it exports glass."},
          {"text": "Glass is made from sand."}]
  path.write_text("\n".join(json.dumps(r) for r in rows))
  assert load_documents(str(path))[0] == "Zorblat: The capital of Zorblat is Quenth."
  env = ToolEnv(tools=("search",), tool_kwargs={"search": {"documents": str(path), "k": 2}})
  env.reset({"prompt": "What is the capital of Mivra?", "answer": "Ostel"})
  r = env.step("<tool>search: capital of Mivra</tool>")
  assert r.observation.startswith("<obs>[1] Mivra: Mivra's capital is Ostel")
  assert r.observation.count("\n") == 1 and r.info["tool_error"] == 0  # k = 2 results
  assert "no results" in env.step("<tool>search: zebra</tool>").observation
  with pytest.raises(ValueError, match="document collection"):
    ToolEnv(tools=("search",))


def test_search_without_documents_is_a_config_error():
  from rlx import config as rlx_config
  from tests.runtime.test_loop import tiny_rl_config
  cfg = tiny_rl_config("grpo")
  cfg.env.name = "tools"
  cfg.env.tools = ("search",)
  with pytest.raises(ValueError, match="env.kwargs.tool_kwargs.search.documents"):
    rlx_config.validate(cfg)
  cfg.env.kwargs.tool_kwargs = {"search": {"documents": "/data/wiki.jsonl"}}
  assert rlx_config.validate(cfg).env.make_kwargs()["tool_kwargs"]["search"]["documents"]
