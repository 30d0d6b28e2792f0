"""Optuna storages for ``rlzoo optimize``: a journal file (appends under a lock file, safe on a shared
file system) or any RDB URL, with a ``--max-total-trials`` cap taken under a lock and heartbeats that
let a live worker fail and re-queue the trial of a killed one (see :mod:`rlzoo.zoo.tune`)."""
from __future__ import annotations

import contextlib
import functools
import threading
import time
import warnings
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.errors import ZooError

DEFAULT_STORAGE_FILE = "optuna.log"
HEARTBEAT_ATTR = "rlzoo:heartbeat"


class MaxTrialsReached(Exception):
    """Raised by a capped storage instead of creating a trial beyond ``--max-total-trials``."""


def is_rdb_url(storage: str) -> bool:
    """True for an SQLAlchemy URL (``sqlite:///x.db``, ``postgresql://...``), False for a journal file."""
    return "://" in storage


def default_storage(log_folder: str, algo: str, env_id: str) -> str:
    """``<log_folder>/<algo>/<EnvId>/optuna.log``: the journal file used when ``--storage`` is not given."""
    return str(Path(log_folder) / algo / rf.env_folder_name(env_id) / DEFAULT_STORAGE_FILE)


def default_study_name(algo: str, env_id: str) -> str:
    """``<algo>_<EnvId>``: the study name used when ``--study-name`` is not given."""
    return f"{algo}_{rf.env_folder_name(env_id)}"


def count_used_trials(trials: list[Any]) -> int:
    """Trials that count towards the cap: all of them except failed trials that were re-queued."""
    from optuna.trial import TrialState

    retried: set[int] = set()
    for t in trials:
        retried.update(t.system_attrs.get("retry_history", ()))
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.number in retried))


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive lock file (``O_CREAT | O_EXCL``, NFS-safe; a lock older than 30 s is broken)."""
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(path, grace_period=30)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _rdb_cap_lock(engine: Any) -> Iterator[None]:
    """Cross-process lock of the trial cap of an RDB storage, by database kind."""
    backend = engine.url.get_backend_name()
    database = engine.url.database
    if backend == "sqlite" and database and database != ":memory:":
        with _file_lock(str(Path(database).resolve()) + ".cap"):
            yield
    elif backend in ("postgresql", "mysql", "mariadb"):
        import sqlalchemy

        key = 0x726C7A6F  # "rlzo"
        lock, unlock = (("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)")
                        if backend == "postgresql" else
                        ("SELECT GET_LOCK(CAST(:k AS CHAR), 60)", "SELECT RELEASE_LOCK(CAST(:k AS CHAR))"))
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(lock), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text(unlock), {"k": key})
    else:
        yield  # no cross-process lock known for this database: the cap is best effort


@functools.cache
def _zoo_storage_class() -> type[Any]:
    """:class:`ZooStorage`, built on first use so that importing this module (the CLI does) does not import
    Optuna."""
    import abc

    from optuna.storages import BaseStorage

    class ZooStorage(BaseStorage):
        """An Optuna storage (journal file or RDB) with the study-wide trial cap and rlzoo's heartbeat.

        Every storage method is the wrapped storage's, except ``create_new_trial``, which refuses to go past
        ``cap`` trials (counted under ``cap_lock``). Re-queued trials (``template_trial``, from the retry
        callback or ``enqueue_trial``) are not capped: they replace a failed trial that already counted.
        Heartbeats are trial system attributes, written by :func:`with_heartbeat` and read by
        :func:`fail_stale_trials`, for both storage kinds.
        """

        def __init__(self, inner: Any, cap_lock: Any, cap: int | None = None, heartbeat_interval: int | None = None,
                     grace_period: int = 0, stale_trial_callback: Any = None) -> None:
            self.inner, self.cap_lock, self.cap = inner, cap_lock, cap
            self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
            self.stale_trial_callback = stale_trial_callback

        def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
            """A new trial, unless the study has its ``cap`` trials (:class:`MaxTrialsReached`)."""
            if self.cap is None or template_trial is not None:
                return self.inner.create_new_trial(study_id, template_trial)
            with self.cap_lock():
                if count_used_trials(self.inner.get_all_trials(study_id, deepcopy=False)) >= self.cap:
                    raise MaxTrialsReached(f"the study has its {self.cap} trials (--max-total-trials)")
                return self.inner.create_new_trial(study_id, None)

        def record_heartbeat(self, trial_id: int) -> None:
            """Stamp a running trial with the current time."""
            try:
                self.inner.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except Exception:  # the trial was finished (e.g. failed as stale by another worker)
                pass

    def delegate(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.inner, name)(*args, **kwargs)

        method.__name__ = name
        method.__doc__ = f"The wrapped storage's ``{name}``."
        return method

    for name, value in vars(BaseStorage).items():
        if callable(value) and not name.startswith("_") and name not in vars(ZooStorage):
            setattr(ZooStorage, name, delegate(name))
    storage_class: type[Any] = ZooStorage  # abstract to the type checker; concrete once the methods are set
    abc.update_abstractmethods(storage_class)
    return storage_class


# what a database says when another worker created Optuna's tables (or their version row) first
_SCHEMA_RACE = ("already exists", "UNIQUE constraint failed", "Duplicate entry", "duplicate key value")


def fail_stale_trials(storage: Any, study: Any) -> None:
    """On a storage opened with a heartbeat, mark FAIL the running trials silent for longer than the grace
    period (their worker died) and hand each to the stale-trial callback, which re-queues it."""
    if not isinstance(storage, _zoo_storage_class()) or not storage.heartbeat_interval:
        return
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        # a re-queued trial inherits the old heartbeat attribute: its (re)start time counts too
        started = t.datetime_start.timestamp() if t.datetime_start is not None else now
        if now - max(float(t.system_attrs.get(HEARTBEAT_ATTR, 0.0)), started) <= storage.grace_period:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another worker failed it first
            continue
        if storage.stale_trial_callback is not None:
            storage.stale_trial_callback(study, storage.get_trial(trial_id))


def with_heartbeat(storage: Any, study: Any, objective: Any) -> Any:
    """``objective`` wrapped so that, on a storage opened with a heartbeat, a running trial records one every
    interval; any other storage gets ``objective`` back."""
    interval = storage.heartbeat_interval if isinstance(storage, _zoo_storage_class()) else None
    if not interval:
        return objective

    def run(trial: Any) -> Any:
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), trial.number)
        storage.record_heartbeat(trial_id)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                storage.record_heartbeat(trial_id)

        thread = threading.Thread(target=beat, name=f"rlzoo-heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            return objective(trial)
        finally:
            stop.set()
            thread.join()

    return run


def open_storage(storage: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int | None = 3, max_total_trials: int | None = None,
                 must_exist: bool = False) -> Any:
    """Open ``storage`` (journal file path or RDB URL) with the cap and heartbeat settings.

    ``heartbeat_interval`` None or 0 disables the heartbeat. ``must_exist``: error out (instead of
    creating an empty storage) when the journal or SQLite file does not exist.
    """
    import optuna

    zoo_storage = _zoo_storage_class()
    interval = int(heartbeat_interval) if heartbeat_interval else None
    grace = (grace_period or 2 * interval) if interval else 0  # seconds without heartbeat before a trial is failed
    callback = None
    if interval:
        retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) \
            or optuna.storages.RetryFailedTrialCallback
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            retry = retry_cls(max_retry=max_retry)

        def callback(study: Any, trial: Any) -> None:
            retry(study, trial)
            print(f"trial {trial.number} had no heartbeat for {grace} s (its worker died): marked FAIL and "
                  "re-queued with the same hyperparameters", flush=True)
    if not is_rdb_url(storage):
        path = Path(storage)
        if must_exist and not path.is_file():
            raise ZooError(f"journal file '{storage}' does not exist (run rlzoo optimize first, or pass --storage)")
        if path.is_dir():
            raise ZooError(f"--storage '{storage}' is a folder; give a journal file path "
                           f"(e.g. {path / DEFAULT_STORAGE_FILE})")
        path.parent.mkdir(parents=True, exist_ok=True)
        journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        return zoo_storage(journal, functools.partial(_file_lock, str(path) + ".cap"), max_total_trials, interval,
                           grace, callback)
    engine_kwargs: dict = {}
    if storage.startswith("sqlite"):
        database = storage.split(":///", 1)[1] if ":///" in storage else ""
        if database and database != ":memory:":
            if must_exist and not Path(database).is_file():
                raise ZooError(f"SQLite database '{database}' does not exist")
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(10):
        try:
            rdb = optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs)
            return zoo_storage(rdb, functools.partial(_rdb_cap_lock, rdb.engine), max_total_trials, interval,
                               grace, callback)
        except Exception as e:  # bad URL, missing driver, unreachable server
            # workers opening a fresh database together race to create its tables: the losers open it again
            if any(m in str(e) for m in _SCHEMA_RACE) and attempt < 9:
                time.sleep(0.1 * (attempt + 1))
                continue
            raise ZooError(f"cannot open storage '{storage}': {type(e).__name__}: {str(e).splitlines()[0]}") from None


def load_study(storage: Any, study_name: str, storage_text: str) -> Any:
    """Load an existing study (one-line error listing the studies that exist)."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise ZooError(f"no study '{study_name}' in {storage_text} (studies: {', '.join(names) or 'none'})") from None
