"""A local retrieval tool: Okapi BM25 over a document collection the user provides (no network).

``BM25(docs).search(query, k)`` ranks documents by

    score(d, q) = Σ_{t ∈ q} idf(t) · f(t,d)·(k1 + 1) / (f(t,d) + k1·(1 − b + b·|d|/avgdl)),
    idf(t) = ln(1 + (N − n(t) + 0.5) / (n(t) + 0.5)),

with ``f(t,d)`` the count of term ``t`` in ``d``, ``n(t)`` the number of documents holding it,
``k1 = 1.5``, ``b = 0.75`` (Robertson & Zaragoza's defaults). Terms are lower-cased runs of
letters and digits. The ``search`` tool answers with the top ``k`` documents.
"""

from __future__ import annotations

import collections
import functools
import json
import math
import os
import re
from typing import Sequence

_TERM = re.compile(r"[a-z0-9]+")


def terms(text: str) -> list[str]:
  return _TERM.findall(text.lower())


class BM25:
  """An in-memory BM25 index of ``documents`` (strings)."""

  def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75):
    if not documents:
      raise ValueError("the retrieval collection is empty")
    self.documents, self.k1, self.b = list(documents), k1, b
    self.counts = [collections.Counter(terms(d)) for d in self.documents]
    self.lengths = [sum(c.values()) for c in self.counts]
    self.avgdl = sum(self.lengths) / len(self.lengths) or 1.0
    df = collections.Counter(t for c in self.counts for t in c)
    n = len(self.documents)
    self.idf = {t: math.log(1 + (n - m + 0.5) / (m + 0.5)) for t, m in df.items()}

  def scores(self, query: str) -> list[float]:
    q = terms(query)
    out = []
    for c, dl in zip(self.counts, self.lengths):
      norm = self.k1 * (1 - self.b + self.b * dl / self.avgdl)
      out.append(sum(self.idf.get(t, 0.0) * c[t] * (self.k1 + 1) / (c[t] + norm)
                     for t in q if c[t]))
    return out

  def search(self, query: str, k: int = 3) -> list[int]:
    """Indices of the ``k`` best documents with a positive score, best first (ties: lower
    index first)."""
    s = self.scores(query)
    ranked = sorted(range(len(s)), key=lambda i: (-s[i], i))
    return [i for i in ranked[:k] if s[i] > 0]


def load_documents(path: str) -> list[str]:
  """A JSONL file (one ``{"text": ..., "title": ...}`` per line; the title is put first), or a
  directory of ``.txt`` files (one document each, sorted by name)."""
  if os.path.isdir(path):
    names = sorted(n for n in os.listdir(path) if n.endswith(".txt"))
    return [open(os.path.join(path, n), encoding="utf-8").read() for n in names]
  docs = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.strip():
        row = json.loads(line)
        docs.append(f"{row['title']}: {row['text']}" if row.get("title") else row["text"])
  return docs


@functools.lru_cache(maxsize=8)
def _index(path: str) -> BM25:
  return BM25(load_documents(path))  # built once per collection and process, not per episode


def search_tool(documents: str | Sequence[str], k: int = 3, max_chars: int = 400):
  """The ``search`` tool: ``search(query)`` → the top ``k`` documents of ``documents`` (a path,
  see :func:`load_documents`, or the strings), each cut at ``max_chars``, one per line."""
  index = _index(documents) if isinstance(documents, str) else BM25(documents)

  def search(query: str) -> str:
    hits = index.search(query, k)
    if not hits:
      return "no results"
    return "\n".join(f"[{r + 1}] {index.documents[i][:max_chars]}" for r, i in enumerate(hits))
  return search
