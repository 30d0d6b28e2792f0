"""Console-script entry point ``rlzoo``: the stop handlers of ``rlzoo train`` go in before anything else.

Importing :mod:`rlzoo.zoo.cli` builds the Typer app and loads the command plugins (tuning, sweeps),
which takes a while; a SIGTERM in that time must already be recorded, not kill the job silently.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Install the SIGINT/SIGTERM handlers for ``rlzoo train``, then run the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["train"]:
        from rlzoo.zoo import stop_flag

        stop_flag.install()
    from rlzoo.zoo.cli import main as cli_main

    cli_main(args)
