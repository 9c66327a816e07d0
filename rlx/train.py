r"""Entry point: ``python -m rlx.train --config configs/NAME.py --workdir DIR``.

Overrides: ``--config.algo.beta=0.01``. The config is locked (a misspelt override fails). A run
stopped by SIGTERM/SIGINT checkpoints and exits 0; running the same command again resumes from
the workdir's latest checkpoint.
"""

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/NAME.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  from rlx.runtime.run import train
  train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
