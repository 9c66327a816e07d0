"""SIGTERM / SIGINT handling: the loop checks a flag after each step, checkpoints and returns.

On a multi-host run the signal may reach one host only (a preempted VM, a ``kill`` on one
worker). :meth:`PreemptionGuard.stop_requested` agrees on the flag across hosts at each step
boundary, so every host saves the same step and returns together; without it the others would
block forever in the next step's collectives.
"""

from __future__ import annotations

import signal
import threading


class PreemptionGuard:
  """Context manager: while active, SIGTERM/SIGINT set ``requested`` instead of killing the process
  (a second SIGINT restores the default behaviour and interrupts)."""

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self.signals = signals
    self.requested = False
    self.signal_name = ""
    self._previous = {}

  def _handler(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = True
    self.signal_name = signal.Signals(signum).name

  def stop_requested(self) -> bool:
    """``requested`` on any host (a cross-host reduction when there are several processes:
    call it at the same step boundary on every host)."""
    from rlx.runtime.distributed import agree_any  # jax only when a run uses it
    stop = agree_any(self.requested)
    if stop and not self.requested:
      self.requested, self.signal_name = True, "peer"
    return stop

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.signal(s, self._handler)
    return self

  def __exit__(self, *exc):
    for s, h in self._previous.items():
      signal.signal(s, h)
    self._previous.clear()
    return False
