"""Run status that never lies: ``running``, ``finished``, ``interrupted``, ``failed``, ``diverged``.

:func:`write_status` records a status in ``run.json``. On a full disk it frees what it can in the
run folder (temporary files of interrupted atomic writes, checkpoint side files without their model)
and tries again; as a last resort it rewrites ``run.json`` in place, which needs no new blocks.
"""
from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlzoo.zoo import run_folder as rf

FINAL_STATUSES = ("finished", "interrupted", "failed", "diverged")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is a full disk or an exceeded quota."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
        seen += 1
    return False


def free_space(run_dir: str | os.PathLike) -> int:
    """Remove leftovers that only take space; returns the number of files removed.

    Leftovers: temporary files of atomic writes (``.<name>.<random>.tmp`` and the like) and, in
    ``checkpoints/``, statistics or replay buffers whose checkpoint model was never written.
    """
    removed = 0
    run_dir = Path(run_dir)
    for path in list(run_dir.rglob(".*")):
        if path.is_file() and path.name != ".writer.lock" and path.parent != run_dir.parent:
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    folder = run_dir / rf.CHECKPOINT_DIR
    if folder.is_dir():
        models = {p.stem for p in folder.glob("*.zip")}
        for path in folder.iterdir():
            stem = path.name.split(".", 1)[0].split("_", 1)[0]
            if path.suffix != ".zip" and stem.isdigit() and stem not in models:
                try:
                    path.unlink()
                    removed += 1
                except OSError:
                    pass
    return removed


def write_status(run_dir: str | os.PathLike, status: str, **changes: Any) -> dict | None:
    """Set ``status`` (and other fields) in ``run.json``, surviving a full disk as far as possible.

    Returns the new content, or None when even the last resort failed (a warning is printed).
    """
    changes = {"status": status, **changes}
    if status in FINAL_STATUSES:
        changes["ended_at"] = rf.now()
    last: OSError | None = None
    for _attempt in range(3):
        try:
            return rf.update_run_info(run_dir, **changes)
        except OSError as e:
            last = e
            if not is_disk_full(e):
                break
            free_space(run_dir)
    try:  # in place: truncating frees the file's blocks, which the new content reuses
        path = Path(run_dir) / rf.RUN_FILE
        info = json.loads(path.read_text("utf-8"))
        info.update(changes)
        data = (json.dumps(info, indent=2) + "\n").encode("utf-8")
        with open(path, "r+b") as f:
            f.truncate(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return info
    except (OSError, ValueError) as e:
        print(f"warning: could not record status '{status}' in {Path(run_dir) / rf.RUN_FILE}: {last or e}",
              file=sys.stderr, flush=True)
        return None
