"""Atomic file writes shared by every layer: a crash or kill mid-write leaves the old file intact.

Data goes to a temporary file in the destination folder, is flushed to disk, then renamed over
the destination with ``os.replace`` (atomic on POSIX and Windows). This module imports nothing
from rlzoo, so the lowest layers (``rlzoo.envs``) may use it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

PathLike = str | os.PathLike[str]


def _file_mode() -> int:
    """Permissions of a new regular file under the current umask (``mkstemp`` alone gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` lets writers that pick a format from the file name (``np.savez``, ``savefig``) see it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=suffix or ".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, _file_mode())
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
