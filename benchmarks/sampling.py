"""Decode throughput of rlx.sampling against Hugging Face ``generate`` on the same weights.

    python benchmarks/sampling.py            # both workloads, print the tables
    python benchmarks/sampling.py --record   # also append rows to docs/benchmarks.md
    python benchmarks/sampling.py --workload longtail --reps 3

The reference model of PERFORMANCE.md: Llama-style, vocab 8192, d 384, 6 layers, 6 heads, 2 kv
heads, tied embeddings (12.6M parameters); batch 32, prompt 64, 128 new tokens, no stop token
(every row generates 128); greedy (the issue's figure: the two engines must agree token for
token) and sampled at temperature 1 with no filter (what an RL rollout does). The rlx weights are saved with ``save_hf`` and loaded by
transformers (PyTorch CPU, float32, eager attention off: its default SDPA), so both run the same
model. Each side is timed end to end (prefill + decode), warmed up, then the two are run in turn
``--reps`` times so that both see the same background load; medians are reported.

The long-tail workload (``--workload longtail``) is a GRPO sampling batch: 16 prompts × 8
samples of prompt 64, up to 512 new tokens, sampled at temperature 1, with ``LONGTAIL_STOPS``
stop ids. The random model's next token is near uniform, so each step stops a row with
probability ≈ 128/8192 and lengths are geometric (mean ≈ 64, a few rows run to several hundred
tokens): the static batch steps until its longest row ends, continuous batching
(``decode_slots``) refills a row as soon as its sample ends. Measured as useful new tokens/s
(tokens up to and including each row's stop token), for rlx static, rlx continuous (shared
prefixes in both; the two sample different streams of the same distribution, so each row of
the table counts its own completions' tokens) and HF ``generate`` (stops at the same ids; a finished row is padded until
the longest ends, like the static batch).
FLOPs count what a KV-cache decoder must do: ``flops_per_token(config, context)`` for every
prompt and generated token with its mean attended length; the machine's float32 matmul peak is
measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import rlx.models as M  # noqa: E402
from rlx.sampling import Buckets, SamplingParams, sample  # noqa: E402

CONFIG = M.ModelConfig(vocab_size=8192, d_model=384, n_layers=6, n_heads=6, n_kv_heads=2,
                       head_dim=64, d_ff=1024, rope_theta=500_000.0, tie_embeddings=True,
                       init_std=0.05)
BATCH, PROMPT, NEW = 32, 64, 128


def model_flops() -> float:
  prefill = sum(M.flops_per_token(CONFIG, t + 1) for t in range(PROMPT))
  decode = sum(M.flops_per_token(CONFIG, PROMPT + t + 1) for t in range(NEW))
  return BATCH * (prefill + decode)


def rlx_runner(graphdef, params, prompts, greedy=True):
  mask = np.ones_like(prompts)
  sp = SamplingParams(greedy=greedy, temperature=1.0, max_new_tokens=NEW)
  buckets = Buckets(prompt_lengths=(PROMPT,), batch_sizes=(BATCH,), new_tokens=(NEW,))
  return lambda: np.asarray(jax.block_until_ready(
      sample(graphdef, params, prompts, mask, sp, jax.random.key(0), buckets=buckets).completion_tokens))


def hf_model(path):
  import torch
  import transformers

  torch.set_num_threads(os.cpu_count())
  return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def hf_runner(model, prompts, greedy=True):
  import torch

  ids = torch.tensor(prompts)
  sampling = {} if greedy else dict(temperature=1.0, top_k=0, top_p=1.0)

  def run():
    torch.manual_seed(0)
    with torch.no_grad():
      out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW,
                           min_new_tokens=NEW, do_sample=not greedy, eos_token_id=None,
                           pad_token_id=0, **sampling)
    return out[:, PROMPT:].numpy()

  return run


def interleaved(runners: dict, reps: int) -> tuple[dict, dict]:
  """Warm each runner up, then time them in turn ``reps`` times: on a shared machine both see
  the same background load. Returns median seconds and the last outputs."""
  import time

  outputs = {name: run() for name, run in runners.items()}
  times = {name: [] for name in runners}
  for _ in range(reps):
    for name, run in runners.items():
      t0 = time.perf_counter()
      outputs[name] = run()
      times[name].append(time.perf_counter() - t0)
  return {name: float(np.median(t)) for name, t in times.items()}, outputs


LONGTAIL = dict(prompts=16, n=8, prompt=64, new=512)
LONGTAIL_STOPS = tuple(range(8192 - 128, 8192))  # 128 of 8192 ids: P(stop) ≈ 1/64 a step
LONGTAIL_SLOTS = (32, 64)


def _useful(tokens: np.ndarray) -> np.ndarray:
  """Per-row new tokens up to and including the first stop id (all of them if none)."""
  stop = np.isin(tokens, LONGTAIL_STOPS)
  first = np.where(stop.any(1), stop.argmax(1) + 1, tokens.shape[1])
  return first


def longtail(graphdef, params, hf, reps: int, record: bool):
  w = LONGTAIL
  prompts = np.random.default_rng(1).integers(3, 8192 - 128, (w["prompts"], w["prompt"]))
  prompts = prompts.astype(np.int32)
  mask = np.ones_like(prompts)
  sp = SamplingParams(temperature=1.0, max_new_tokens=w["new"], n=w["n"],
                      stop_token_ids=LONGTAIL_STOPS)
  rows = w["prompts"] * w["n"]
  buckets = Buckets(prompt_lengths=(w["prompt"],),
                    batch_sizes=(w["prompts"], rows) + LONGTAIL_SLOTS,
                    new_tokens=(w["new"],))

  def rlx(slots):
    def run():
      r = sample(graphdef, params, prompts, mask, sp, jax.random.key(0), buckets=buckets,
                 decode_slots=slots)
      return np.asarray(r.lengths)
    return run

  def hf_run():
    import torch
    ids = torch.tensor(np.repeat(prompts, w["n"], axis=0))
    torch.manual_seed(0)
    with torch.no_grad():
      out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=w["new"],
                        do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                        eos_token_id=list(LONGTAIL_STOPS), pad_token_id=0)
    return _useful(out[:, w["prompt"]:].numpy())

  runners = {"rlx static": rlx(0)} | {f"rlx continuous, {s} slots": rlx(s) for s in LONGTAIL_SLOTS}
  runners["HF generate"] = hf_run
  seconds, lengths = interleaved(runners, reps)
  static = lengths["rlx static"]
  slots = [name for name in runners if name.startswith("rlx continuous")]
  for name in slots:  # the same samples whatever the slot count (tests/sampling)
    assert np.array_equal(lengths[name], lengths[slots[0]]), name
  print(f"\nlong-tail GRPO batch: {w['prompts']} prompts × {w['n']}, prompt {w['prompt']}, up to "
        f"{w['new']} new tokens, temperature 1; lengths (mean / median / p90 / max): rlx static "
        f"{static.mean():.0f} / {np.median(static):.0f} / {np.percentile(static, 90):.0f} / "
        f"{static.max()}; " + "; ".join(
            f"{name} {lengths[name].mean():.0f} / {np.median(lengths[name]):.0f} / "
            f"{np.percentile(lengths[name], 90):.0f} / {lengths[name].max()}"
            for name in (slots[0], "HF generate")))
  print("| engine | seconds | useful new tokens/s | vs HF |\n|---|---|---|---|")
  hf_rate = lengths["HF generate"].sum() / seconds["HF generate"]
  table = []
  for name, s in seconds.items():
    rate = lengths[name].sum() / s
    table.append((name, s, rate, rate / hf_rate))
    print(f"| {name} | {s:.2f} | {rate:,.0f} | {rate / hf_rate:.2f}x |")
  if record:
    common.append_rows(
        "## Long-tail GRPO sampling (benchmarks/sampling.py --workload longtail)",
        "| date | commit | machine | engine | lengths mean / p90 / max | seconds | "
        "useful tok/s | vs HF |\n|---|---|---|---|---|---|---|---|",
        [f"{common.stamp()}| {name} | "
         f"{(lengths[name].mean()):.0f} / {np.percentile(lengths[name], 90):.0f} / "
         f"{lengths[name].max()} | {s:.2f} | {rate:,.0f} | {x:.2f}x |"
         for name, s, rate, x in table])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--record", action="store_true")
  parser.add_argument("--workload", choices=("reference", "longtail", "all"), default="all")
  args = parser.parse_args()

  graphdef, params = M.init_params(CONFIG, seed=0)
  if args.workload != "reference":
    with tempfile.TemporaryDirectory() as tmp:
      M.save_hf(tmp, CONFIG, params)
      longtail(graphdef, params, hf_model(tmp), args.reps, args.record)
    if args.workload == "longtail":
      return
  prompts = np.random.default_rng(0).integers(3, CONFIG.vocab_size, (BATCH, PROMPT)).astype(np.int32)
  peak = common.matmul_peak()
  with tempfile.TemporaryDirectory() as tmp:
    M.save_hf(tmp, CONFIG, params)
    hf = hf_model(tmp)
    # bfloat16 decoding (sampling.dtype="bfloat16"): the same weights cast, bfloat16 compute.
    graphdef16, _ = M.abstract(CONFIG.replace(dtype="bfloat16", param_dtype="bfloat16"))
    params16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    seconds, outputs = interleaved({"rlx": rlx_runner(graphdef, params, prompts),
                                    "hf": hf_runner(hf, prompts),
                                    "rlx sampled": rlx_runner(graphdef, params, prompts, False),
                                    "hf sampled": hf_runner(hf, prompts, False),
                                    "rlx bf16": rlx_runner(graphdef16, params16, prompts),
                                    "rlx bf16 sampled": rlx_runner(graphdef16, params16, prompts,
                                                                   False)}, args.reps)
  peak = max(peak, common.matmul_peak())
  rlx_s, hf_s = seconds["rlx"], seconds["hf"]
  agree = float(np.mean(outputs["rlx"] == outputs["hf"]))
  flops = model_flops()
  new_tokens = BATCH * NEW
  rlx_t, hf_t = seconds["rlx sampled"], seconds["hf sampled"]
  b16, b16_t = seconds["rlx bf16"], seconds["rlx bf16 sampled"]
  rows = [("rlx sample, greedy (jit, while_loop)", rlx_s), ("HF generate, greedy (torch CPU)", hf_s),
          ("rlx sample, temperature 1", rlx_t), ("HF generate, temperature 1", hf_t),
          ("rlx sample bfloat16, greedy", b16), ("rlx sample bfloat16, temperature 1", b16_t)]
  print(f"{M.count_params(CONFIG) / 1e6:.1f}M params, batch {BATCH}, prompt {PROMPT}, {NEW} new "
        f"tokens, greedy and temperature 1; float32 matmul peak {peak / 1e9:.1f} GFLOP/s")
  print("| engine | seconds | new tokens/s | GFLOP/s | % of peak |\n|---|---|---|---|---|")
  for name, s in rows:
    print(f"| {name} | {s:.2f} | {new_tokens / s:,.0f} | {flops / s / 1e9:.1f} | "
          f"{100 * flops / s / peak:.0f}% |")
  print(f"rlx / HF speed: greedy {hf_s / rlx_s:.2f}x, sampled {hf_t / rlx_t:.2f}x; greedy tokens "
        f"identical: {100 * agree:.1f}%; bfloat16 rlx / HF (float32): greedy {hf_s / b16:.2f}x, "
        f"sampled {hf_t / b16_t:.2f}x")
  if args.record:
    common.append_rows(
        "## Sampling (benchmarks/sampling.py)",
        "| date | commit | machine | rlx new tok/s | HF new tok/s | rlx/HF | rlx GFLOP/s | "
        "peak GFLOP/s | rlx % of peak | same tokens | sampled: rlx tok/s | HF tok/s | rlx/HF |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        [f"{common.stamp()}| "
         f"{new_tokens / rlx_s:,.0f} | {new_tokens / hf_s:,.0f} | {hf_s / rlx_s:.2f}x | "
         f"{flops / rlx_s / 1e9:.1f} | {peak / 1e9:.1f} | {100 * flops / rlx_s / peak:.0f}% | "
         f"{100 * agree:.1f}% | {new_tokens / rlx_t:,.0f} | {new_tokens / hf_t:,.0f} | "
         f"{hf_t / rlx_t:.2f}x |"])
    common.append_rows(
        "## bfloat16 decoding (benchmarks/sampling.py)",
        "| date | commit | machine | float32 greedy tok/s | bfloat16 greedy tok/s | bf16/HF greedy | "
        "float32 sampled tok/s | bfloat16 sampled tok/s | bf16/HF sampled |\n"
        "|---|---|---|---|---|---|---|---|---|",
        [f"{common.stamp()}| "
         f"{new_tokens / rlx_s:,.0f} | {new_tokens / b16:,.0f} | {hf_s / b16:.2f}x | "
         f"{new_tokens / rlx_t:,.0f} | {new_tokens / b16_t:,.0f} | {hf_t / b16_t:.2f}x |"])


if __name__ == "__main__":
  main()
