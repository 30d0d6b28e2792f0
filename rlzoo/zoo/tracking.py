"""Experiment tracking with Weights & Biases (``rlzoo train --track``, ``rlzoo optimize --track``).

What a tracked run sends (``pip install "rlzoo[tracking]"``):

* the configuration: algorithm, env, seed, run folder and every hyperparameter of ``config.yml``;
* every scalar rlzoo's logger writes to TensorBoard (``rollout/ep_rew_mean``, ``train/*``,
  ``eval/mean_reward``, ``eval/success_rate`` ...), each with ``global_step`` = env timesteps: a
  :class:`WandbOutputFormat` is added to the model's logger, so W&B sees the same values as ``tb/``;
* at the end: the evaluations (``evaluations.csv`` as a table, last and best mean reward in the
  summary) and the final model as a ``model`` artifact (``model.zip``, ``best_model.zip``,
  VecNormalize statistics, ``config.yml``).

The W&B run lives in ``<run folder>/wandb/``. ``WANDB_MODE=offline`` needs no network or account:
the run is written to ``wandb/offline-run-*`` and uploaded later with ``wandb sync <that folder>``.
:func:`read_offline_run` reads such a folder back (config, history rows, summary).
"""
from __future__ import annotations

import csv
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlzoo.common.callbacks import BaseCallback
from rlzoo.common.logger import KVWriter
from rlzoo.zoo.errors import ZooError

MISSING_WANDB = "experiment tracking needs wandb: pip install 'rlzoo[tracking]'"
STEP_KEY = "global_step"


def require_wandb() -> Any:
    """Import ``wandb`` or fail with a one-line error naming the extra."""
    try:
        import wandb
    except ImportError:
        raise ZooError(MISSING_WANDB) from None
    return wandb


@dataclass
class TrackingOptions:
    """Where a tracked run goes: W&B project, entity (user or team), tags and group."""

    project: str = "rlzoo"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)
    group: str | None = None


class WandbOutputFormat(KVWriter):
    """Logger output format sending numeric scalars to a W&B run, stepped by env timesteps."""

    name = "wandb"

    def __init__(self, run: Any) -> None:
        self.run = run

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """Log the scalars TensorBoard would get (keys excluded from ``tensorboard`` are skipped)."""
        row: dict[str, Any] = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key, ())
            if "tensorboard" in excluded or self.name in excluded:
                continue
            if isinstance(value, (bool, int, float, np.integer, np.floating)) and not isinstance(value, str):
                row[key] = float(value) if isinstance(value, (float, np.floating)) else int(value)
        if row:
            row[STEP_KEY] = int(step)
            self.run.log(row)

    def close(self) -> None:
        """Nothing to close: the run is finished by :meth:`Tracker.finish`."""


class WandbCallback(BaseCallback):
    """Adds a :class:`WandbOutputFormat` to the model's logger when training starts."""

    def __init__(self, run: Any) -> None:
        super().__init__(verbose=0)
        self.run = run

    def _on_training_start(self) -> None:
        formats = self.model.logger.output_formats
        if not any(isinstance(f, WandbOutputFormat) for f in formats):
            formats.append(WandbOutputFormat(self.run))

    def _on_step(self) -> bool:
        return True


class Tracker:
    """One W&B run for one rlzoo run folder (or one Optuna trial)."""

    def __init__(self, options: TrackingOptions, name: str, config: dict[str, Any], folder: Path,
                 job_type: str = "train") -> None:
        wandb = require_wandb()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(project=options.project, entity=options.entity, tags=list(options.tags) or None,
                                  group=options.group, name=name, config=config, dir=str(folder.resolve()),
                                  job_type=job_type,
                                  reinit="create_new")
        except Exception as e:  # noqa: BLE001 - no API key in online mode, a bad entity ...
            raise ZooError(f"cannot start the W&B run: {' '.join(str(e).split())} "
                           "(set WANDB_MODE=offline to record without an account)") from None
        self.run.define_metric(STEP_KEY)
        self.run.define_metric("*", step_metric=STEP_KEY)
        self.wandb = wandb

    def callback(self) -> WandbCallback:
        """The training callback that mirrors the logger's scalars to this run."""
        return WandbCallback(self.run)

    def log_evaluations(self, run_dir: Path) -> None:
        """``evaluations.csv`` as a W&B table, with the last and best mean reward in the summary."""
        path = run_dir / "evaluations.csv"
        if not path.is_file():
            return
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r.get("mean_reward")]
        if not rows:
            return
        columns = [c for c in ("timesteps", "mean_reward", "std_reward", "mean_ep_length", "success_rate")
                   if c in rows[0]]
        data = [[float(r[c]) if r.get(c) not in (None, "") else None for c in columns] for r in rows]
        self.run.log({"eval/table": self.wandb.Table(columns=columns, data=data)})
        rewards = [float(r["mean_reward"]) for r in rows]
        self.run.summary["eval/last_mean_reward"] = rewards[-1]
        self.run.summary["eval/best_mean_reward"] = max(rewards)

    def log_model(self, run_dir: Path, name: str) -> None:
        """The final model (and best model, VecNormalize statistics, config) as a ``model`` artifact."""
        files = [run_dir / n for n in ("model.zip", "best_model.zip", "vecnormalize.safetensors", "config.yml")]
        files = [p for p in files if p.is_file()]
        if not files:
            return
        artifact = self.wandb.Artifact(_artifact_name(name), type="model",
                                       metadata={"run_folder": str(run_dir)})
        for path in files:
            artifact.add_file(str(path), name=path.name)
        self.run.log_artifact(artifact)

    def finish(self, run_dir: Path | None = None, name: str = "", summary: dict[str, Any] | None = None,
               exit_code: int = 0) -> None:
        """Log the evaluations and model of ``run_dir`` (when given), the summary, and close the run."""
        try:
            if run_dir is not None:
                self.log_evaluations(run_dir)
                self.log_model(run_dir, name or run_dir.name)
            for key, value in (summary or {}).items():
                self.run.summary[key] = value
        finally:
            self.run.finish(exit_code=exit_code)


def _artifact_name(name: str) -> str:
    """W&B artifact names allow letters, digits, ``-``, ``_`` and ``.``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def start_training_run(options: TrackingOptions, algo: str, env_id: str, seed: int, run_dir: Path,
                       hyperparams: dict[str, Any]) -> Tracker:
    """The W&B run of ``rlzoo train``: named after the run folder, stored in ``<run folder>/wandb``."""
    config = {"algo": algo, "env": env_id, "seed": int(seed), "run_folder": str(run_dir), **plain_config(hyperparams)}
    return Tracker(options, f"{algo}_{run_dir.name}", config, run_dir)


def plain_config(value: Any) -> Any:
    """``value`` with only YAML/JSON types (other objects as their text), for a W&B config."""
    if isinstance(value, dict):
        return {str(k): plain_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_config(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# ----------------------------------------------------------------------------- reading offline runs
_BLOCK = 32 * 1024
_HEADER = 7  # crc32 (4 bytes), length (2 bytes), chunk type (1 byte)


def _records(path: Path) -> Any:
    """Raw protobuf records of a ``.wandb`` transaction log (a LevelDB-style log of 32 KiB blocks)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ZooError(f"{path} is not a W&B transaction log")
    pos, pending = 7, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        pos += _HEADER
        chunk = data[pos:pos + length]
        pos += length
        if kind == 1:  # full record
            yield chunk
        elif kind == 2:  # first chunk
            pending = chunk
        elif kind == 3:  # middle chunk
            pending += chunk
        elif kind == 4:  # last chunk
            yield pending + chunk
            pending = b""


def read_offline_run(folder: Path) -> dict[str, Any]:
    """Config, history rows, summary and saved file names of an offline run folder
    (``wandb/offline-run-*``), decoded with wandb's own protobuf schema."""
    import json

    from wandb.proto import wandb_internal_pb2

    logs = sorted(Path(folder).glob("*.wandb"))
    if not logs:
        raise ZooError(f"{folder} holds no .wandb file")
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "artifacts": [], "name": None, "tags": []}
    for data in _records(logs[0]):
        record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["tags"] = record.run.display_name, list(record.run.tags)
            out["project"], out["entity"] = record.run.project, record.run.entity
            out["config"].update({u.key: json.loads(u.value_json) for u in record.run.config.update if u.key})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update if u.key})
        elif kind == "history":
            out["history"].append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                                   for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({u.key: json.loads(u.value_json) for u in record.summary.update if u.key})
        elif kind == "artifact":
            out["artifacts"].append({"name": record.artifact.name, "type": record.artifact.type,
                                     "files": [m.path for m in record.artifact.manifest.contents]})
    out["config"].pop("_wandb", None)
    return out
