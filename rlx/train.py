r"""Entry point: ``python -m rlx.train --config configs/NAME.py --workdir DIR``.

Overrides: ``--config.algo.beta=0.01``. The config is locked: a misspelt override fails. A
configuration error (unknown field, bad value, missing config file, a workdir that is a file or
whose checkpoints another config wrote) prints one line, ``rlx: config.algo.betaa: unknown
field; did you mean beta?``, and exits with status 2; ``--verbosity=1`` adds the traceback
(``rlx.cli``). A run stopped by SIGTERM/SIGINT checkpoints, says where, and exits 0; running the
same command again resumes from the workdir's latest checkpoint and says which.
"""

from absl import flags
from ml_collections import config_flags

from rlx import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/NAME.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv  # rlx.cli.run refuses positional arguments
  cli.check_directory("workdir", _WORKDIR.value)
  from rlx.runtime.run import train
  train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
