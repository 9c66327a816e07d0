"""Forward-pass throughput of rlx.models against the machine's measured float32 matmul peak.

    python benchmarks/forward.py            # print the table
    python benchmarks/forward.py --record   # also append the rows to docs/benchmarks.md

For a ~10M and a ~100M parameter Llama-style config, times the jitted forward pass (logits for
every position, float32) after a warm-up call, with `block_until_ready`, and reports tokens/s and
achieved FLOP/s. FLOPs per token follow the PaLM convention, `rlx.models.flops_per_token` with
context = S (2 per matmul weight, LM head included, plus 4·L·H·E·S for attention; the masked
S×S attention the implementation computes). XLA's own count (`cost_analysis`) is shown beside
it. The peak is a 2048×2048 float32 matmul measured in the same run (before and after each
config; the best is kept, as the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import rlx.models as M  # noqa: E402

CONFIGS = {
    # 12.6M parameters: the reference model of docs/PERFORMANCE.md.
    "llama-10m": M.ModelConfig(vocab_size=8192, d_model=384, n_layers=6, n_heads=6, n_kv_heads=2,
                               head_dim=64, d_ff=1024, rope_theta=500_000.0,
                               tie_embeddings=True),
    # 100M parameters, tied embeddings.
    "llama-100m": M.ModelConfig(vocab_size=32_000, d_model=768, n_layers=12, n_heads=12,
                                n_kv_heads=4, head_dim=64, d_ff=2048, rope_theta=500_000.0,
                                tie_embeddings=True),
}
SHAPES = {"llama-10m": (8, 256), "llama-100m": (4, 256)}  # (batch, sequence)


def bench_forward(name: str, reps: int) -> dict:
  config = CONFIGS[name]
  batch, seq = SHAPES[name]
  graphdef, params = M.init_params(config, seed=0)
  tokens = np.random.default_rng(0).integers(0, config.vocab_size, (batch, seq)).astype(np.int32)
  positions = np.broadcast_to(np.arange(seq, dtype=np.int32), (batch, seq)).copy()
  mask = np.ones((batch, seq), np.int32)
  fwd = jax.jit(lambda p, t, q, m: M.apply(graphdef, p, t, q, m)[0])
  compiled = fwd.lower(params, tokens, positions, mask).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  seconds = common.time_call(compiled, params, tokens, positions, mask, reps=reps)
  n_tokens = batch * seq
  flops = M.flops_per_token(config, seq) * n_tokens
  return dict(name=name, params=M.count_params(config), batch=batch, seq=seq,
              tokens_per_s=n_tokens / seconds, flops_per_s=flops / seconds,
              xla_flops_per_s=float(cost.get("flops", float("nan"))) / seconds, ms=seconds * 1e3)


def table(peak: float, rows: list[dict]) -> str:
  lines = [f"float32 matmul 2048x2048 peak: {peak / 1e9:.1f} GFLOP/s",
           "| config | params | batch x seq | ms/forward | tokens/s | GFLOP/s | XLA GFLOP/s | % of peak |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['name']} | {r['params'] / 1e6:.1f}M | {r['batch']}x{r['seq']} | {r['ms']:.1f} | "
                 f"{r['tokens_per_s']:,.0f} | {r['flops_per_s'] / 1e9:.1f} | "
                 f"{r['xla_flops_per_s'] / 1e9:.1f} | {100 * r['flops_per_s'] / peak:.0f}% |")
  return "\n".join(lines)


_SECTION = "## Forward pass (benchmarks/forward.py)"
_HEADER = ("| date | commit | machine | config | params | batch x seq | tokens/s | GFLOP/s "
           "| matmul peak GFLOP/s | % of peak |\n|---|---|---|---|---|---|---|---|---|---|")


def record(peak: float, rows: list[dict]) -> None:
  """Append one row per config to the forward-pass table of docs/benchmarks.md."""
  common.append_rows(_SECTION, _HEADER, [
      f"{common.stamp()}| {r['name']} | "
      f"{r['params'] / 1e6:.1f}M | {r['batch']}x{r['seq']} | {r['tokens_per_s']:,.0f} | "
      f"{r['flops_per_s'] / 1e9:.1f} | {peak / 1e9:.1f} | {100 * r['flops_per_s'] / peak:.0f}% |"
      for r in rows])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
  args = parser.parse_args()
  # The machine is shared: measure the peak around every config and keep the best.
  peaks, rows = [common.matmul_peak()], []
  for name in args.configs:
    rows.append(bench_forward(name, args.reps))
    peaks.append(common.matmul_peak())
  peak = max(peaks)
  print(table(peak, rows))
  if args.record:
    record(peak, rows)


if __name__ == "__main__":
  main()
