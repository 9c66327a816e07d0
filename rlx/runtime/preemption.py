"""SIGTERM / SIGINT handling: the loop checks a flag after each step, checkpoints and returns."""

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
