"""Ctrl-C (SIGINT) and SIGTERM ask the loop to stop at the next step boundary, where it writes a final
checkpoint and the exported generator. SIGTERM is what SLURM, Kubernetes and cloud preemption send before they
kill a job, so a preempted run resumes exactly with `ganforge train --resume RUN_DIR`. A second signal aborts
at once (KeyboardInterrupt)."""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    def __init__(self):
        self.set = False
        self.name = ""          # which signal asked to stop
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set, self.name = True, signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
