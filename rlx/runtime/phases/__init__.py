"""The phases of a run, each a ``rlx.runtime.phase.Phase`` driven by ``run_phase``.

``MAIN_PHASES`` maps an algorithm to the phase class of its main phase; ``sft_schedule`` gives
the SFT phase (the warm start, or the whole run for ``algo.name="sft"``).
"""

from rlx.config import Algorithm
from rlx.runtime.phases.iterative_dpo import IterativeDPOPhase
from rlx.runtime.phases.offline import OfflinePreferencePhase
from rlx.runtime.phases.rejection_sft import RejectionSFTPhase
from rlx.runtime.phases.rl import RLPhase
from rlx.runtime.phases.sft import SFTPhase, SFTSchedule, sft_schedule

MAIN_PHASES = {
    **{a: RLPhase for a in Algorithm if a not in (Algorithm.SFT, Algorithm.DPO, Algorithm.RM,
                                                 Algorithm.ITERATIVE_DPO,
                                                 Algorithm.REJECTION_SFT)},
    Algorithm.DPO: OfflinePreferencePhase,
    Algorithm.RM: OfflinePreferencePhase,
    Algorithm.ITERATIVE_DPO: IterativeDPOPhase,
    Algorithm.REJECTION_SFT: RejectionSFTPhase,
}

__all__ = ["IterativeDPOPhase", "MAIN_PHASES", "OfflinePreferencePhase", "RLPhase",
           "RejectionSFTPhase", "SFTPhase", "SFTSchedule", "sft_schedule"]
