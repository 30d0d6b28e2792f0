"""Running the rlzoo CLI in a child process, as a user would (the sweep, train, optimize and contributing tests)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


#: The command line that starts the rlzoo CLI in a child process
CLI = [sys.executable, "-m", "rlzoo.zoo.cli"]
#: The checkout's root, put first on a child's PYTHONPATH by ``repo_env``
REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    """This process's environment, read now (ray.init() exports what a client needs to join its cluster:
    auth token ...), with one BLAS thread per run."""
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def repo_env() -> dict[str, str]:
    """This process's environment with the checkout first on PYTHONPATH (children import this rlzoo)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def rlzoo(*args: str, cwd: Path) -> str:
    """Run ``python -m rlzoo.zoo.cli <args>`` in ``cwd``; assert it exits 0 and return its stdout."""
    proc = subprocess.run([*CLI, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
