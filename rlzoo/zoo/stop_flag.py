"""The process-wide stop request: SIGINT/SIGTERM handlers installed from the first instant of a command.

This module imports only the standard library, so ``rlzoo train`` installs the handlers before
torch, gymnasium or the algorithms are imported. A first signal only records itself; every loop that
can run long (set-up steps, the learn loop's callbacks, evaluation episodes) reads :func:`received`
and stops at the next safe point. A second signal exits at once (writes are atomic, files stay intact),
except the same signal again within :data:`REPEAT_WINDOW_S`: a scheduler that signals every process of a
job delivers it to ``rlzoo train`` both directly and through the ``rlzoo sweep`` that started it.
"""
from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)
#: A repeat of the first signal within this many seconds counts as the same request
REPEAT_WINDOW_S = 1.0

_received: int | None = None
_received_at = 0.0
_installed: dict[int, Any] = {}


class StopRequested(Exception):
    """Raised at a safe point after SIGINT/SIGTERM when a loop cannot stop by returning normally."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _handle(signum: int, frame: FrameType | None) -> None:
    global _received, _received_at
    name = signal.Signals(signum).name
    if _received is not None:
        if signum == _received and time.monotonic() - _received_at < REPEAT_WINDOW_S:
            return  # the same request delivered twice (see the module docstring)
        print(f"\nreceived {name} again: exiting immediately", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)
    _received, _received_at = signum, time.monotonic()
    print(f"\nreceived {name}: stopping at the next safe point and saving "
          "(send it again to exit immediately)", file=sys.stderr, flush=True)


def install() -> bool:
    """Install the handlers (idempotent). Returns True when this call installed them.

    Outside the main thread nothing is installed (Python only allows handlers there).
    """
    if _installed:
        return False
    try:
        for sig in HANDLED:
            _installed[sig] = signal.signal(sig, _handle)
    except ValueError:  # not the main thread
        restore()
        return False
    return True


def restore() -> None:
    """Put back the handlers that were there before :func:`install` and forget the request."""
    global _received
    for sig, previous in _installed.items():
        try:
            signal.signal(sig, previous)
        except (ValueError, TypeError):
            pass
    _installed.clear()
    _received = None


def installed() -> bool:
    """Whether the handlers are installed."""
    return bool(_installed)


def received() -> int | None:
    """The signal number received (None when no stop was requested)."""
    return _received


def signal_name() -> str | None:
    """``SIGTERM``/``SIGINT`` or None."""
    return None if _received is None else signal.Signals(_received).name


def check() -> None:
    """Raise :class:`StopRequested` when a stop was requested (call at safe points of long loops)."""
    if _received is not None:
        raise StopRequested(_received)


def request(signum: int = signal.SIGTERM) -> None:
    """Record a stop request as if ``signum`` had arrived (tests, chaos script)."""
    global _received
    _received = signum
