r"""Export a run's policy as a Hugging Face checkpoint.

    python -m rlx.export --config configs/NAME.py --workdir DIR --out HF_DIR [--step N]

Reads the latest checkpoint of ``DIR`` (or step ``N``) and writes ``config.json`` and safetensors
to ``HF_DIR``; transformers and ``rlx.models.load_hf`` load the result. Nothing else is written
(``DIR`` is only read). Configuration errors print one line and exit with status 2 (``rlx.cli``).
"""

from absl import flags
from ml_collections import config_flags

from rlx import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The run's config file (defines the architecture).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (holds checkpoints/).")
_OUT = flags.DEFINE_string("out", None, "Output directory for the Hugging Face checkpoint.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.mark_flags_as_required(["config", "workdir", "out"])


def main(argv):
  del argv  # rlx.cli.run refuses positional arguments
  workdir, out, step = _WORKDIR.value, _OUT.value, _STEP.value
  cli.usable_checkpoints(workdir, step)
  cli.check_directory("out", out)
  from rlx.runtime.run import export
  print(f"wrote {export(_CONFIG.value, workdir, out, step)}")


if __name__ == "__main__":
  cli.run(main)
