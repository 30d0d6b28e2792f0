"""Run folders ``logs/<algo>/<EnvId>_<N>``: creation without races, ``run.json``, atomic writes."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from rlzoo.fileio import atomic_write_text  # re-exported: zoo modules write via rf.*
from rlzoo.zoo.errors import ZooError

RUN_FILE = "run.json"
CONFIG_FILE = "config.yml"
MODEL_FILE = "model.zip"
BEST_MODEL_FILE = "best_model.zip"
CHECKPOINT_DIR = "checkpoints"
MONITOR_DIR = "monitor"
TB_DIR = "tb"
VECNORMALIZE_FILE = "vecnormalize.safetensors"


# ----------------------------------------------------------------------------- atomic writes
def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ----------------------------------------------------------------------------- naming
#: a run folder's name: ``<EnvId>_<N>``, or ``<EnvId>_<N>_<uuid4>`` for runs trained with ``--uuid``
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RUN_NAME_RE = re.compile(rf"^(?P<env>.+?)_(?P<n>\d+)(?:_(?P<uuid>{_UUID}))?$")


def env_folder_name(env_id: str) -> str:
    """Folder-safe name of an env id: ``"pkg:My-v0"`` -> ``"My-v0"``, ``"ALE/Pong-v5"`` -> ``"ALE-Pong-v5"``."""
    if ":" in env_id:
        env_id = env_id.split(":", 1)[1]
    return env_id.replace("/", "-").replace("\\", "-")


def list_runs(log_folder: str | os.PathLike, algo: str, env_id: str) -> list[tuple[int, Path]]:
    """All run folders of ``algo`` on ``env_id`` under ``log_folder``, sorted by run number."""
    base = Path(log_folder) / algo
    name = env_folder_name(env_id)
    runs = []
    if base.is_dir():
        for entry in base.iterdir():
            m = RUN_NAME_RE.match(entry.name)
            if m and m.group("env") == name and entry.is_dir():
                runs.append((int(m.group("n")), entry))
    return sorted(runs)


def create_run_dir(log_folder: str | os.PathLike, algo: str, env_id: str, unique: bool = False) -> Path:
    """Create and return ``<log_folder>/<algo>/<EnvId>_<N>`` with N = 1 + highest existing run number
    (``unique``: ``<EnvId>_<N>_<uuid4>``, a name no other machine's run can have, for array jobs whose
    log folders are merged later).

    ``os.mkdir`` fails when the folder exists, so two runs started at the same moment each get their
    own folder: the loser of a race simply tries the next number.
    """
    base = Path(log_folder) / algo
    base.mkdir(parents=True, exist_ok=True)
    name = env_folder_name(env_id)
    runs = list_runs(log_folder, algo, env_id)
    n = runs[-1][0] + 1 if runs else 1
    for _ in range(10_000):
        path = base / (f"{name}_{n}_{uuid.uuid4()}" if unique else f"{name}_{n}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1
    raise ZooError(f"could not create a run folder under {base}")


def find_run(log_folder: str | os.PathLike, algo: str, env_id: str, exp_id: int = 0) -> Path:
    """The run folder ``<EnvId>_<exp_id>``, or the latest one when ``exp_id`` is 0."""
    if not Path(log_folder).is_dir():
        raise ZooError(f"log folder '{log_folder}' does not exist (use -f to point at your logs)")
    runs = list_runs(log_folder, algo, env_id)
    if not runs:
        raise ZooError(
            f"no {algo} runs on {env_id} in {Path(log_folder) / algo} "
            f"(train one with: rlzoo train --algo {algo} --env {env_id})"
        )
    if exp_id == 0:
        return runs[-1][1]
    for n, path in runs:
        if n == exp_id:
            return path
    have = ", ".join(str(n) for n, _ in runs)
    raise ZooError(f"no run {env_folder_name(env_id)}_{exp_id} of {algo} in {log_folder} (runs: {have})")


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(steps, path)`` of every ``checkpoints/<steps>.zip`` of a run, sorted by steps."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    out = []
    if folder.is_dir():
        for p in folder.glob("*.zip"):
            if p.stem.isdigit():
                out.append((int(p.stem), p))
    return sorted(out)


# ----------------------------------------------------------------------------- run.json
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Versions of Python, rlzoo and the main libraries, for ``run.json``."""
    versions = {"python": platform.python_version()}
    for name in ("rlzoo", "torch", "gymnasium", "numpy", "ale_py", "mujoco", "Box2D"):
        module = sys.modules.get(name)
        if module is None and name in ("rlzoo", "torch", "gymnasium", "numpy"):
            try:
                module = __import__(name)
            except ImportError:
                module = None
        version = getattr(module, "__version__", None) if module is not None else None
        if version is None:
            try:
                from importlib.metadata import version as _v

                version = _v(name)
            except Exception:
                continue
        versions[name] = str(version)
    versions["platform"] = platform.platform()
    return versions


MAX_RUN_FILE_BYTES = 1 << 20     # run.json of a run folder
MAX_CONFIG_BYTES = 64 << 10      # config.yml (rlzoo writes a few hundred bytes; YAML parsing is slow)
MAX_CONFIG_NODES = 100_000       # values in config.yml, aliases counted as copies (YAML alias bombs)
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "algo": (str,), "env": (str,), "run": (str,), "command": (str,), "argv": (list,), "cwd": (str,), "host": (str,),
    "seed": (int,), "n_timesteps": (int,), "num_timesteps": (int,), "status": (str,), "started_at": (str,),
    "ended_at": (str, type(None)), "versions": (dict,), "segments": (list,), "gym_packages": (list,),
    "trained_agent": (str,), "wall_time_s": (int, float)}


def read_text_capped(path: Path, what: str, limit: int = MAX_RUN_FILE_BYTES) -> str:
    """The UTF-8 text of a run-folder file, read with a bounded read (one-line :class:`ZooError`)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ZooError(f"cannot read {path}: larger than {limit} bytes")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ZooError(f"cannot read {what} {path}: {' '.join(str(e).split())[:200]}") from None


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``run.json`` of a run folder: the fields rlzoo uses are type-checked (``gym_packages`` must be
    dotted module names); any problem is a one-line :class:`ZooError`."""
    from rlzoo.common.safe_io import load_json

    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise ZooError(f"{run_dir} is not a run folder (no {RUN_FILE})")
    try:
        info = load_json(read_text_capped(path, "run file"), str(path))
    except ValueError as e:
        raise ZooError(f"cannot read {path}: {e}") from None
    if not isinstance(info, dict):
        raise ZooError(f"cannot read {path}: not a JSON object")
    for key, types in _RUN_TYPES.items():
        if key in info and (not isinstance(info[key], types) or (isinstance(info[key], bool) and bool not in types)):
            raise ZooError(f"{path}: {key!r} must be {' or '.join(t.__name__ for t in types)}, "
                           f"got {type(info[key]).__name__} {repr(info[key])[:60]}")
    for key in ("seed", "n_timesteps", "num_timesteps"):
        if key in info and not 0 <= info[key] < 1 << 63:
            raise ZooError(f"{path}: {key!r} is out of range")
    if "wall_time_s" in info and not 0 <= info["wall_time_s"] < 1e300:
        raise ZooError(f"{path}: 'wall_time_s' is out of range")
    packages = info.get("gym_packages", [])
    if len(packages) > 64 or not all(isinstance(p, str) and len(p) < 200 and _MODULE_NAME.match(p) for p in packages):
        raise ZooError(f"{path}: 'gym_packages' must be a list of dotted module names")
    return info


def check_config(path: Path) -> None:
    """Read a run's ``config.yml`` before the zoo does: at most MAX_CONFIG_BYTES, YAML (safe loader) no
    deeper than 64 levels and with at most MAX_CONFIG_NODES values once aliases are expanded."""
    from rlzoo.zoo.hyperparams_files import parse_yaml

    try:
        data = parse_yaml(read_text_capped(path, "config file", MAX_CONFIG_BYTES), str(path))
    except RecursionError:
        raise ZooError(f"{path}: YAML nested too deeply") from None
    check_config_size(data, str(path))


def check_config_size(data: Any, where: str) -> None:
    """Refuse parsed YAML with more than MAX_CONFIG_NODES values (aliases expanded) or 64 levels of nesting."""
    count, stack = 0, [(data, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ZooError(f"{where}: more than {MAX_CONFIG_NODES} values (YAML aliases expanded)")
        if depth > 64:
            raise ZooError(f"{where}: values nested more than 64 levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in (*value.keys(), *value.values()))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)


def new_run_info(algo: str, env_id: str, run_dir: Path, seed: int, n_timesteps: int, argv: list[str]) -> dict:
    """The initial ``run.json`` content (status ``running``)."""
    import shlex

    return {
        "algo": algo,
        "env": env_id,
        "run": run_dir.name,
        "command": shlex.join(["rlzoo", *argv]),
        "argv": list(argv),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "seed": int(seed),
        "n_timesteps": int(n_timesteps),
        "num_timesteps": 0,
        "status": "running",
        "started_at": _now(),
        "ended_at": None,
        "versions": package_versions(),
        "segments": [{"started_at": _now(), "from_timesteps": 0, "command": shlex.join(["rlzoo", *argv])}],
    }


def update_run_info(run_dir: str | os.PathLike, **changes: Any) -> dict:
    """Apply ``changes`` to ``run.json`` and rewrite it atomically; stamps ``ended_at`` on final statuses."""
    info = read_run_info(run_dir)
    info.update(changes)
    if changes.get("status") in ("finished", "interrupted", "failed"):
        info["ended_at"] = _now()
    atomic_write_json(Path(run_dir) / RUN_FILE, info)
    return info


def now() -> str:
    """Current local time, ISO format (for run.json entries)."""
    return _now()
