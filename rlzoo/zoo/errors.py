"""User-facing errors of the zoo: one line, no traceback."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Bad input from the user (option, file, name). The CLI prints ``error: <message>`` and exits 2."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> str:
    """Return ``"; did you mean 'x'?"`` (or ``"; did you mean 'x' or 'y'?"``) or ``""`` when nothing is close."""
    choices = list(choices)
    matches = difflib.get_close_matches(name, choices, n=n, cutoff=cutoff)
    if not matches:
        lowered = {c.lower(): c for c in choices}
        matches = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=cutoff)]
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"


class RunFailed(Exception):
    """A run that could not go on (disk full, diverged): the CLI prints ``error: <message>`` and exits 1.

    The run's ``run.json`` already records the status and the reason."""
