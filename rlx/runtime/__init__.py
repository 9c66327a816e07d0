"""Runtime: train state, optimizer, checkpointing, metrics, preemption, the run driver and RL loop."""

from rlx.runtime.checkpoint import Checkpointer, from_json, restore_params, to_json
from rlx.runtime.metrics import MetricsWriter, read_metrics
from rlx.runtime.preemption import PreemptionGuard
from rlx.optim import (OptimizerDef, TrainState, apply_updates, init_train_state,
                               make_optimizer, unit_schedule)

__all__ = [
    "Checkpointer", "MetricsWriter", "OptimizerDef", "PreemptionGuard", "TrainState",
    "apply_updates", "from_json", "init_train_state", "make_optimizer", "read_metrics",
    "restore_params", "to_json", "unit_schedule",
]
