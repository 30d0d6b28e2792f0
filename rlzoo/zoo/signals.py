"""Graceful interruption: SIGINT/SIGTERM set a flag that a callback checks after every env step.

The handler itself does nothing but record the signal, so training stops *between* two steps and
the model can be saved in a consistent state. A second signal while stopping forces the exit.
"""
from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any, Optional

from rlzoo.callbacks import BaseCallback

HANDLED = (signal.SIGINT, signal.SIGTERM)


class SignalGuard(BaseCallback):
    """Install SIGINT/SIGTERM handlers (``with`` block) and stop training at the next step after one.

    ``received`` is the signal number (or None); ``stopped`` tells whether training was cut short by it
    (a signal during the very last update lets the run finish). ``rollout_start_timesteps`` is the model's step count
    when the current rollout began (on-policy rollouts cut short are thrown away, so a resumed run
    counts from there).
    """

    def __init__(self) -> None:
        super().__init__()
        self.received: Optional[int] = None
        self.stopped = False  # True once training was actually cut short by a signal
        self.rollout_start_timesteps: Optional[int] = None
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------------ handlers
    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.received is not None:  # second signal: stop now (atomic writes keep files intact)
            print(f"\nreceived {signal.Signals(signum).name} again: exiting immediately", file=sys.stderr, flush=True)
            raise SystemExit(128 + signum)
        self.received = signum
        print(f"\nreceived {signal.Signals(signum).name}: saving the model after this step "
              "(send it again to exit immediately)", file=sys.stderr, flush=True)

    def __enter__(self) -> "SignalGuard":
        for sig in HANDLED:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, training runs unguarded
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def signal_name(self) -> Optional[str]:
        """Name of the received signal (``SIGTERM``), or None."""
        return None if self.received is None else signal.Signals(self.received).name

    # ------------------------------------------------------------------ callback hooks
    def _on_training_start(self) -> None:
        self.rollout_start_timesteps = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        self.rollout_start_timesteps = self.model.num_timesteps

    def _on_step(self) -> bool:
        if self.received is not None:
            self.stopped = True
            return False
        return True
