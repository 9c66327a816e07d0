"""Trains the synthetic-task SentencePiece tokenizer shipped in rlx/data/assets/task_tokenizer.

    python scripts/train_tokenizer.py            # rewrite the shipped files
    python scripts/train_tokenizer.py --check    # exit 1 if a fresh run differs from them
    python scripts/train_tokenizer.py --out_dir /tmp/tok --vocab_size 384

Training is deterministic (fixed corpus seed, one thread, unshuffled input).
"""

import argparse
import os
import sys

from rlx.data import task_tokenizer


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", default=task_tokenizer.ASSET_DIR)
  parser.add_argument("--vocab_size", type=int, default=task_tokenizer.VOCAB_SIZE)
  parser.add_argument("--check", action="store_true",
                      help="compare a fresh training run with the files in --out_dir")
  args = parser.parse_args(argv)
  if args.check:
    with open(os.path.join(args.out_dir, "tokenizer.model"), "rb") as f:
      same = f.read() == task_tokenizer.train_task_tokenizer(args.vocab_size)
    print("tokenizer up to date" if same else "tokenizer differs from a fresh training run")
    return 0 if same else 1
  out = task_tokenizer.write_task_tokenizer(args.out_dir, args.vocab_size)
  tok = task_tokenizer.load_tokenizer(out)
  print(f"wrote {out} (vocab {tok.vocab_size}, "
        f"{os.path.getsize(os.path.join(out, 'tokenizer.model'))} bytes)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
