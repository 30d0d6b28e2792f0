"""Graceful interruption: SIGINT/SIGTERM set a flag that a callback checks after every env step.

The handlers live in :mod:`rlzoo.zoo.stop_flag` (standard library only), so ``rlzoo train``
installs them before its heavy imports; the flag is the same from the first instant to the last
save. The handler itself does nothing but record the signal, so training stops *between* two steps
and the model can be saved in a consistent state. A loop that makes no env steps (a rollout that
collects nothing) still reads the flag at every rollout start and end. A second signal while
stopping forces the exit.
"""
from __future__ import annotations

from rlzoo.callbacks import BaseCallback
from rlzoo.zoo import stop_flag
from rlzoo.zoo.stop_flag import HANDLED, StopRequested

__all__ = ["HANDLED", "SignalGuard", "StopRequested"]


class SignalGuard(BaseCallback):
    """Install SIGINT/SIGTERM handlers (``with`` block) and stop training at the next step after one.

    ``received`` is the signal number (or None); ``stopped`` tells whether training was cut short by it
    (a signal during the very last update lets the run finish). ``rollout_start_timesteps`` is the model's step count
    when the current rollout began (on-policy rollouts cut short are thrown away, so a resumed run
    counts from there).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stopped = False  # True once training was actually cut short by a signal
        self.rollout_start_timesteps: int | None = None
        self._installed_here = False

    def __enter__(self) -> SignalGuard:
        self._installed_here = stop_flag.install()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed_here:
            stop_flag.restore()
            self._installed_here = False

    @property
    def received(self) -> int | None:
        """The signal number received since the handlers were installed (None when none)."""
        return stop_flag.received()

    @property
    def signal_name(self) -> str | None:
        """Name of the received signal (``SIGTERM``), or None."""
        return stop_flag.signal_name()

    def should_stop(self) -> bool:
        """True (and ``stopped`` set) once a signal arrived: for loops outside the env steps (evaluation)."""
        if stop_flag.received() is not None:
            self.stopped = True
            return True
        return False

    @staticmethod
    def _stop_requested() -> StopRequested:
        """The exception for the signal that :meth:`should_stop` just saw."""
        signum = stop_flag.received()
        assert signum is not None  # only called after should_stop() returned True
        return StopRequested(int(signum))

    # ------------------------------------------------------------------ callback hooks
    def _on_training_start(self) -> None:
        self.rollout_start_timesteps = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        self.rollout_start_timesteps = self.model.num_timesteps
        if self.should_stop():  # e.g. a loop whose rollouts make no steps: never reaches _on_step
            raise self._stop_requested()

    def _on_rollout_end(self) -> None:
        if self.should_stop():
            raise self._stop_requested()

    def _on_step(self) -> bool:
        return not self.should_stop()
