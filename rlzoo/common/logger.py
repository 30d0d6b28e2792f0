"""Key/value logger: algorithms ``record`` scalars during an iteration and ``dump`` them once.

Output formats (``format_strings``):
  ``stdout``       an aligned table grouped by key prefix (``rollout/``, ``train/``, ``time/``)
  ``log``          the same table appended to ``log.txt``
  ``csv``          ``progress.csv``; a key seen for the first time adds a column (file rewritten)
  ``json``         ``progress.json``, one JSON object per dump
  ``tensorboard``  event files written by ``torch.utils.tensorboard.SummaryWriter``

Values may be python numbers, numpy scalars or 0-d torch tensors (possibly on the GPU); tensors
are converted only in :meth:`Logger.dump`, with a single device synchronisation per device.
"""
from __future__ import annotations

import csv
import datetime
import json
import os
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import numpy as np
import torch

from rlzoo.fileio import atomic_path, atomic_write_text

DEBUG, INFO, WARN, ERROR, DISABLED = 10, 20, 30, 40, 50
FORMATS = ("stdout", "log", "csv", "json", "tensorboard")

Exclude = str | tuple[str, ...] | None


class KVWriter:
    """One output format. ``name`` is what ``record(..., exclude=...)`` refers to."""

    name: str = ""

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """Write one dump of ``key_values`` (already converted to python values)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files."""


def _included(key: str, key_excluded: dict[str, tuple[str, ...]], name: str) -> bool:
    return name not in key_excluded.get(key, ())


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, np.ndarray):
        return f"array{tuple(value.shape)}"
    return str(value)


class HumanOutputFormat(KVWriter):
    """An aligned ASCII table, keys grouped by their ``prefix/``; writes to stdout or a text file."""

    max_width = 36

    def __init__(self, target: str | TextIO | None = None, name: str = "stdout") -> None:
        """``target``: a file path (appended to), an open text stream, or None for the current
        ``sys.stdout`` (looked up at every write, so a live progress bar can redirect it)."""
        self.name = name
        self._own = isinstance(target, str)
        self._file: TextIO | None = open(target, "a", encoding="utf-8") if isinstance(target, str) else target

    @property
    def file(self) -> TextIO:
        """The stream written to."""
        return self._file if self._file is not None else sys.stdout

    def _short(self, text: str) -> str:
        return text if len(text) <= self.max_width else text[: self.max_width - 3] + "..."

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key in sorted(key_values):
            if not _included(key, key_excluded, self.name):
                continue
            group, _, leaf = key.rpartition("/")
            groups[group].append((self._short(leaf), self._short(_fmt_value(key_values[key]))))
        if not groups:
            return
        rows: list[tuple[str, str]] = []
        for group in sorted(groups):
            if group:
                rows.append((self._short(group + "/"), ""))
            indent = "  " if group else ""
            rows.extend((indent + leaf, val) for leaf, val in groups[group])
        kw = max(len(k) for k, _ in rows)
        vw = max(max(len(v) for _, v in rows), 8)
        rule = "+" + "-" * (kw + 2) + "+" + "-" * (vw + 2) + "+"
        lines = [rule]
        for key, val in rows:
            if val == "" and key.endswith("/"):
                lines.append(f"| {key:<{kw + vw + 3}} |")
            else:
                lines.append(f"| {key:<{kw}} | {val:<{vw}} |")
        lines.append(rule)
        self.file.write("\n".join(lines) + "\n")
        self.file.flush()

    def write_text(self, text: str) -> None:
        """Write a free-form line (used by :meth:`Logger.log`)."""
        self.file.write(text + "\n")
        self.file.flush()

    def close(self) -> None:
        if self._own:
            self.file.close()


class CSVOutputFormat(KVWriter):
    """``progress.csv``. A new key adds a column: the file is rewritten (atomically) with the wider header."""

    name = "csv"

    def __init__(self, path: str, append: bool = False) -> None:
        self.path = path
        self.keys: list[str] = []
        if append and os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), None)
            self.keys = list(header or [])
        else:
            atomic_write_text(path, "")

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        items = {k: v for k, v in key_values.items()
                 if _included(k, key_excluded, self.name) and not isinstance(v, np.ndarray)}
        new_keys = sorted(k for k in items if k not in self.keys)
        if new_keys:
            self._widen(new_keys)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(["" if items.get(k) is None else items[k] for k in self.keys])

    def _widen(self, new_keys: list[str]) -> None:
        """Rewrite the file with ``new_keys`` appended to the header; old rows get empty cells."""
        old_rows: list[list[str]] = []
        if self.keys and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                old_rows = list(csv.reader(f))[1:]
        self.keys.extend(new_keys)
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(self.keys)
            for row in old_rows:
                writer.writerow(row + [""] * (len(self.keys) - len(row)))


class JSONOutputFormat(KVWriter):
    """``progress.json``: one JSON object per line and dump."""

    name = "json"

    def __init__(self, path: str) -> None:
        self.file = open(path, "w", encoding="utf-8")

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        items = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                 for k, v in key_values.items() if _included(k, key_excluded, self.name)}
        self.file.write(json.dumps(items) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TensorBoardOutputFormat(KVWriter):
    """Scalars (and histograms for arrays, text for strings) through ``SummaryWriter``."""

    name = "tensorboard"

    def __init__(self, folder: str) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported lazily: costs ~0.2 s

        _quiet_tensorboard_threads()
        self.folder = folder
        self.failed: str | None = None
        self.writer = SummaryWriter(log_dir=folder)

    def _give_up(self, error: BaseException) -> None:
        """A write failed (disk full, folder gone): warn once and stop writing TensorBoard files."""
        self.failed = f"{type(error).__name__}: {error}"
        print(f"warning: TensorBoard logging to {self.folder} stopped ({' '.join(self.failed.split())[:200]})",
              file=sys.stderr, flush=True)

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        if self.failed is not None:
            return
        try:
            for key, value in key_values.items():
                if not _included(key, key_excluded, self.name) or value is None:
                    continue
                if isinstance(value, (bool, int, float)):
                    self.writer.add_scalar(key, value, step)
                elif isinstance(value, np.ndarray):
                    if value.size:
                        self.writer.add_histogram(key, value, step)
                elif isinstance(value, str):
                    self.writer.add_text(key, value, step)
            self.writer.flush()
        except Exception as e:  # noqa: BLE001 - the writer thread's error resurfaces here: log, never crash
            self._give_up(e)

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception as e:  # noqa: BLE001
            if self.failed is None:
                self._give_up(e)


_TB_HOOKED = False


def _quiet_tensorboard_threads() -> None:
    """TensorBoard writes event files from a background thread; an OSError there (disk full) would print
    a thread traceback. Such errors are dropped here: the next write in the main thread sees them and
    :class:`TensorBoardOutputFormat` reports them in one line."""
    global _TB_HOOKED
    if _TB_HOOKED:
        return
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, OSError):
            return
        previous(args)

    threading.excepthook = hook
    _TB_HOOKED = True


def make_output_format(fmt: str, folder: str | None, append: bool = False) -> KVWriter:
    """Build one writer; ``folder`` is needed by every format except ``stdout``."""
    if fmt == "stdout":
        return HumanOutputFormat(None, name="stdout")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: choose from {', '.join(FORMATS)}")
    if folder is None:
        raise ValueError(f"log format {fmt!r} needs a folder")
    os.makedirs(folder, exist_ok=True)
    if fmt == "log":
        return HumanOutputFormat(os.path.join(folder, "log.txt"), name="log")
    if fmt == "csv":
        return CSVOutputFormat(os.path.join(folder, "progress.csv"), append=append)
    if fmt == "json":
        return JSONOutputFormat(os.path.join(folder, "progress.json"))
    return TensorBoardOutputFormat(folder)


def _f32(number: float) -> float:
    """Shortest decimal of a single-precision number (0.123, not 0.12300000339746475)."""
    return float(str(np.float32(number)))


def _to_python(values: dict[str, Any]) -> dict[str, Any]:
    """Convert recorded values to python numbers; all tensors of one device in one transfer."""
    out: dict[str, Any] = {}
    by_device: dict[torch.device, list[str]] = defaultdict(list)
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() == 1:
                by_device[value.device].append(key)
            else:
                out[key] = value.detach().float().cpu().numpy()
        elif isinstance(value, np.ndarray):
            out[key] = value.item() if value.size == 1 else value
        elif isinstance(value, np.generic):
            out[key] = _f32(value.item()) if value.dtype in (np.float32, np.float16) else value.item()
        else:
            out[key] = value
    for device, keys in by_device.items():
        dtype = torch.float32 if device.type == "mps" else torch.float64
        numbers = torch.stack([values[k].detach().reshape(()).to(dtype) for k in keys]).cpu().tolist()
        for key, number in zip(keys, numbers, strict=True):
            dt = values[key].dtype
            if dt == torch.bool:
                out[key] = bool(number)
            elif dt.is_floating_point:
                out[key] = number if dt == torch.float64 else _f32(number)
            else:
                out[key] = int(number)
    return out


class Logger:
    """Collects key/value pairs and writes them to every output format on :meth:`dump`."""

    def __init__(self, folder: str | None, output_formats: Sequence[KVWriter]) -> None:
        self.dir = folder
        self.output_formats: list[KVWriter] = list(output_formats)
        self.name_to_value: dict[str, Any] = {}
        self.name_to_count: dict[str, int] = defaultdict(int)
        self.name_to_excluded: dict[str, tuple[str, ...]] = {}
        self.level = INFO

    @staticmethod
    def _exclude(exclude: Exclude) -> tuple[str, ...]:
        if exclude is None:
            return ()
        return (exclude,) if isinstance(exclude, str) else tuple(exclude)

    def record(self, key: str, value: Any, exclude: Exclude = None) -> None:
        """Set ``key`` to ``value`` for the next dump (the last value wins)."""
        self.name_to_value[key] = value
        self.name_to_excluded[key] = self._exclude(exclude)

    def record_mean(self, key: str, value: Any, exclude: Exclude = None) -> None:
        """Average ``value`` with the other values recorded under ``key`` since the last dump.

        Works on device tensors without synchronising (running mean computed in torch)."""
        if value is None:
            return
        count = self.name_to_count[key]
        if count == 0 or key not in self.name_to_value:
            self.name_to_value[key] = value
        else:
            old = self.name_to_value[key]
            self.name_to_value[key] = old + (value - old) / (count + 1)
        self.name_to_count[key] = count + 1
        self.name_to_excluded[key] = self._exclude(exclude)

    def dump(self, step: int = 0) -> None:
        """Convert the recorded values, write them to every format, then clear them."""
        if self.name_to_value and self.level < DISABLED and self.output_formats:
            values = _to_python(self.name_to_value)
            for fmt in self.output_formats:
                fmt.write(values, self.name_to_excluded, int(step))
        self.name_to_value.clear()
        self.name_to_count.clear()
        self.name_to_excluded.clear()

    def log(self, *args: Any, level: int = INFO) -> None:
        """Print a message to the human formats (stdout, log.txt) when ``level`` >= the logger level."""
        if level >= self.level:
            text = " ".join(map(str, args))
            for fmt in self.output_formats:
                if isinstance(fmt, HumanOutputFormat):
                    fmt.write_text(text)

    def debug(self, *args: Any) -> None:
        """:meth:`log` at DEBUG level."""
        self.log(*args, level=DEBUG)

    def info(self, *args: Any) -> None:
        """:meth:`log` at INFO level."""
        self.log(*args, level=INFO)

    def warn(self, *args: Any) -> None:
        """:meth:`log` at WARN level."""
        self.log(*args, level=WARN)

    def error(self, *args: Any) -> None:
        """:meth:`log` at ERROR level."""
        self.log(*args, level=ERROR)

    def set_level(self, level: int) -> None:
        """Messages below ``level`` are dropped; DISABLED also stops dumps."""
        self.level = level

    def get_dir(self) -> str | None:
        """The folder files are written to (None for a stdout-only logger)."""
        return self.dir

    def close(self) -> None:
        """Close every output format."""
        for fmt in self.output_formats:
            fmt.close()

    def __repr__(self) -> str:
        names = ", ".join(fmt.name for fmt in self.output_formats)
        return f"Logger(folder={self.dir!r}, formats=[{names}])"


def configure(folder: str | None = None, format_strings: Iterable[str] | None = ("stdout",),
              append: bool = False) -> Logger:
    """Build a :class:`Logger`.

    :param folder: where file formats write; when None and a file format is asked for, a fresh
        folder under ``$RLZOO_LOGDIR`` or the system temp dir is used.
    :param format_strings: any of ``stdout``, ``log``, ``csv``, ``json``, ``tensorboard``
        (None reads the comma-separated ``$RLZOO_LOG_FORMAT``, default ``stdout``).
    :param append: continue an existing ``progress.csv`` instead of starting it over.
    """
    if format_strings is None:
        format_strings = os.environ.get("RLZOO_LOG_FORMAT", "stdout").split(",")
    formats = [f.strip() for f in format_strings if f.strip()]
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown log format {fmt!r}: choose from {', '.join(FORMATS)}")
    if folder is None and any(f != "stdout" for f in formats):
        stamp = datetime.datetime.now().strftime("rlzoo-%Y-%m-%d-%H-%M-%S-%f")
        folder = os.path.join(os.environ.get("RLZOO_LOGDIR", tempfile.gettempdir()), stamp)
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
    return Logger(folder, [make_output_format(f, folder, append=append) for f in formats])


def get_latest_run_id(log_path: str, log_name: str = "") -> int:
    """Highest ``N`` among folders ``<log_path>/<log_name>_<N>`` (0 when there is none)."""
    if not os.path.isdir(log_path):
        return 0
    prefix = f"{log_name}_"
    best = 0
    for entry in os.listdir(log_path):
        suffix = entry[len(prefix):] if entry.startswith(prefix) else ""
        if suffix.isdigit() and os.path.isdir(os.path.join(log_path, entry)):
            best = max(best, int(suffix))
    return best


def configure_logger(verbose: int = 0, tensorboard_log: str | None = None, tb_log_name: str = "",
                     reset_num_timesteps: bool = True) -> Logger:
    """The logger an algorithm's ``learn`` uses.

    stdout when ``verbose >= 1``; with ``tensorboard_log``, TensorBoard events in a new numbered
    folder ``<tensorboard_log>/<tb_log_name>_<N>``, or in the latest one when
    ``reset_num_timesteps`` is False (continuing the same curve).
    """
    formats = ["stdout"] if verbose >= 1 else []
    folder = None
    if tensorboard_log is not None:
        latest = get_latest_run_id(tensorboard_log, tb_log_name)
        run_id = latest if (not reset_num_timesteps and latest > 0) else latest + 1
        folder = os.path.join(tensorboard_log, f"{tb_log_name}_{run_id}")
        formats.append("tensorboard")
    return configure(folder, formats)
