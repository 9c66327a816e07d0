r"""Export a run's policy as a Hugging Face checkpoint.

    python -m rlx.export --config configs/NAME.py --workdir DIR --out HF_DIR [--step N]

Reads the latest checkpoint of ``DIR`` (or step ``N``) and writes ``config.json`` and safetensors
to ``HF_DIR``; transformers and ``rlx.models.load_hf`` load the result.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The run's config file (defines the architecture).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (holds checkpoints/).")
_OUT = flags.DEFINE_string("out", None, "Output directory for the Hugging Face checkpoint.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.mark_flags_as_required(["config", "workdir", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from rlx.runtime.run import export
  print(f"wrote {export(_CONFIG.value, _WORKDIR.value, _OUT.value, _STEP.value)}")


if __name__ == "__main__":
  app.run(main)
