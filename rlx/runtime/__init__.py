"""Runtime: the phase driver (``phase.Phase``, ``phase.run_phase``) and the phases of a run
(``phases``), checkpointing, metrics, preemption, mesh layouts. The train state and optimizer
live below the algorithms, in ``rlx.optim`` (re-exported here)."""

from rlx.optim import (OptimizerDef, TrainState, apply_updates, init_train_state, make_optimizer,
                       unit_schedule)
from rlx.runtime.checkpoint import Checkpointer, from_json, restore_params, to_json
from rlx.runtime.metrics import MetricsWriter, read_metrics
from rlx.runtime.phase import Phase, run_phase
from rlx.runtime.preemption import PreemptionGuard

__all__ = [
    "Checkpointer", "MetricsWriter", "OptimizerDef", "Phase", "PreemptionGuard", "TrainState",
    "apply_updates", "from_json", "init_train_state", "make_optimizer", "read_metrics",
    "restore_params", "run_phase", "to_json", "unit_schedule",
]
