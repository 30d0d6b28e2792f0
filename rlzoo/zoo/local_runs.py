"""The ``rlzoo train`` processes of a local ``rlzoo sweep``, and how a signal to the sweep reaches them."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rlzoo.zoo import stop_flag


class LocalRuns:
    """The ``rlzoo train`` processes a local sweep has running, and a stop that reaches them.

    SIGINT or SIGTERM to the sweep (a cluster or container stopping the job, which signals only the
    sweep, or Ctrl-C) is passed on to every running run, which saves and marks itself ``interrupted``
    while the sweep waits for it; runs not yet started are not started. A second signal is passed on
    too, and the runs exit at once. (A scheduler that signals every process delivers the first signal
    twice, directly and through the sweep: ``rlzoo train`` counts a repeat within a second as one.)"""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._procs: set[subprocess.Popen[str]] = set()
        self.stopped_by: int | None = None  # the signal that stopped the sweep

    def start(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[str] | None:
        """Start ``cmd`` (None, starting nothing, once the sweep was stopped)."""
        with self._lock:
            if self.stopped_by is not None:
                return None
            proc: subprocess.Popen[str] = subprocess.Popen(cmd, **kwargs)
            self._procs.add(proc)
            return proc

    def ended(self, proc: subprocess.Popen[str]) -> None:
        """Forget ``proc`` (it exited): later signals are not sent to it."""
        with self._lock:
            self._procs.discard(proc)

    def stop(self, signum: int, frame: Any = None) -> None:
        """Signal handler: pass ``signum`` on to every running run and start no more."""
        with self._lock:
            if self.stopped_by is None:
                self.stopped_by = signum
                print(f"\nsweep: received {signal.Signals(signum).name}: {len(self._procs)} running run(s) save "
                      "and stop, no new run starts (send it again to stop them at once)", file=sys.stderr, flush=True)
            for proc in self._procs:
                if proc.poll() is None:
                    proc.send_signal(signum)

    @contextmanager
    def forwarding_signals(self) -> Iterator[LocalRuns]:
        """Install :meth:`stop` for the signals ``rlzoo train`` handles (main thread only) for the ``with`` block."""
        previous: dict[int, Any] = {}
        try:
            for sig in stop_flag.HANDLED:
                previous[sig] = signal.signal(sig, self.stop)
        except ValueError:  # not the main thread: the caller handles signals
            pass
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class SweepStopped(Exception):
    """The local sweep was stopped by a signal (its running runs saved themselves)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
