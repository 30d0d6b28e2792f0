"""One writer per run folder: an OS-level lock held for the life of the writing process.

``train``, ``train --resume`` (and anything else that writes a run folder) take
:func:`acquire` on ``<run>/.writer.lock`` before writing anything. The lock is a POSIX record lock
(``fcntl.lockf``): the kernel releases it when the process exits or is killed (SIGKILL, OOM, node
reboot of a local disk), so no stale lock is ever left behind. The file itself stays and holds the
host and pid of the last writer, which a refused second writer names in its error.

Shared file systems: POSIX locks work on NFSv4 (locking is part of the protocol) and on NFSv3 when
``lockd``/``rpc.statd`` run on client and server (mount without ``nolock``; ``local_lock=none``).
Lustre needs the ``flock`` mount option and BeeGFS ``tuneUseGlobalFileLocks``. ``flock(2)`` is
emulated with POSIX locks by Linux NFS clients, so both calls behave the same there.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from rlzoo.zoo.errors import ZooError

LOCK_FILE = ".writer.lock"

#: Locks this process holds: resolved run folder -> open file descriptor. POSIX locks do not conflict
#: within one process, so a second writer in the same process is refused from this table.
_HELD: dict[str, int] = {}


def _holder(fd: int) -> str:
    """``pid N on host H`` as written by the holder (or ``another process`` when unreadable).

    The holder writes its name just after taking the lock: an empty file is read again for a moment."""
    for _ in range(20):
        try:
            text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
        if "pid" in fields and "host" in fields:
            return f"pid {fields['pid']} on host {fields['host']}"
        time.sleep(0.05)
    return "another process"


def _lock(path: Path) -> int | str:
    """Lock ``path`` (created if missing) without waiting: the open descriptor, with this process's name
    written in the file, or the holder's name when another process has it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise ZooError(f"cannot open the lock file {path}: {e.strerror}") from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _holder(fd) if e.errno in (errno.EACCES, errno.EAGAIN) else ""
        os.close(fd)
        if holder:
            return holder
        if e.errno == errno.ENOLCK:
            raise ZooError(f"cannot lock {path}: the file system offers no locks (on NFS: NFSv4, or NFSv3 "
                           "with lockd running; see README 'Runs on a cluster')") from None
        raise ZooError(f"cannot lock {path}: {e.strerror}") from None
    try:
        data = f"pid={os.getpid()} host={socket.gethostname()}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # disk full: the lock holds all the same, only the holder's name is missing
    return fd


def acquire(run_dir: str | os.PathLike) -> None:
    """Take the writer lock of ``run_dir`` for this process.

    Raises :class:`ZooError` naming the holder's host and pid when another process (or another
    writer in this process) holds it.
    """
    key = str(Path(run_dir).resolve())
    path = Path(run_dir) / LOCK_FILE
    if key in _HELD:
        raise ZooError(f"{run_dir} is already being written by this process (pid {os.getpid()} on host "
                       f"{socket.gethostname()}); one writer per run folder")
    fd = _lock(path)
    if isinstance(fd, str):
        raise ZooError(f"{run_dir} is being written by {fd} (lock {path}); "
                       "one writer per run folder: wait for it to end or stop it first")
    _HELD[key] = fd


def release(run_dir: str | os.PathLike) -> None:
    """Release the lock of ``run_dir`` if this process holds it (process exit releases it too)."""
    fd = _HELD.pop(str(Path(run_dir).resolve()), None)
    if fd is not None:
        try:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def held(run_dir: str | os.PathLike) -> bool:
    """Whether this process holds the lock of ``run_dir``."""
    return str(Path(run_dir).resolve()) in _HELD


def claim(path: str | os.PathLike) -> str | None:
    """Take an exclusive lock on the file ``path`` for the rest of this process (or until :func:`release`),
    without waiting: ``None`` when taken, else who holds it (``pid N on host H``).

    The same POSIX lock as :func:`acquire`, so the kernel frees it when the holder dies. ``rlzoo train
    --resume-or-new`` claims its (algo, env, seed) with it: two sweeps or requeued batch tasks over the
    same runs never run one twice."""
    key = str(Path(path).resolve())
    if key in _HELD:
        return f"pid {os.getpid()} on host {socket.gethostname()}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(Path(path))
    if isinstance(fd, str):
        return fd
    _HELD[key] = fd
    return None
