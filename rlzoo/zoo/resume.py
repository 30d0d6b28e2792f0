"""Where ``--resume`` continues from: the newest intact saved model of a run, walking back past broken ones.

A candidate (``model.zip`` or ``checkpoints/<steps>.zip``) is intact when its zip reads back and the
files saved with it are there: VecNormalize statistics for a normalized run, the replay buffer for
an off-policy algorithm. Every newer candidate that was skipped is reported with the reason.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.config import ZooConfig


def _side_files(path: Path) -> tuple[Path, Path]:
    from rlzoo.zoo.experiment import replay_buffer_path, vecnormalize_path

    return vecnormalize_path(path), replay_buffer_path(path)


def _model_problem(path: Path, config: ZooConfig, cls: type) -> tuple[str | None, int]:
    """Why a saved model cannot be resumed from (None when intact), and its timesteps."""
    import zipfile

    from rlzoo.common.save_format import read_model_zip

    try:
        metadata, _ = read_model_zip(str(path))
        steps = int(metadata.get("num_timesteps", 0))
    except Exception as e:  # noqa: BLE001 - any reason a model file cannot be read makes it unusable
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}", 0
    stats, buffer = _side_files(path)
    if config.normalize is not None and not stats.is_file():
        return f"its VecNormalize statistics {stats.name} are missing", steps
    if hasattr(cls, "load_replay_buffer"):
        if not buffer.is_file():
            return f"its replay buffer {buffer.name} is missing", steps
        try:
            with zipfile.ZipFile(buffer) as z:
                z.namelist()
        except (OSError, zipfile.BadZipFile) as e:
            return f"its replay buffer {buffer.name} is unreadable ({e})", steps
    return None, steps


def resume_point(run_dir: Path, config: ZooConfig, cls: type) -> tuple[Path | None, int, list[str]]:
    """The newest intact saved model of a run (``model.zip`` or a checkpoint), its timesteps, and a note
    for every newer file that was skipped and why."""
    candidates: list[tuple[int, bool, Path]] = [(steps, False, p) for steps, p in rf.list_checkpoints(run_dir)]
    model = run_dir / rf.MODEL_FILE
    notes: list[str] = []
    checked: dict[Path, tuple[str | None, int]] = {}
    if model.exists():
        checked[model] = problem, steps = _model_problem(model, config, cls)
        candidates.append((steps if problem is None else 1 << 62, True, model))  # unreadable: newest, reported first
    for _steps, _, path in sorted(candidates, key=lambda c: (c[0], c[1]), reverse=True):
        problem, real_steps = checked.get(path) or _model_problem(path, config, cls)
        rel = path.relative_to(run_dir)
        if problem is None:
            if notes:
                notes.append(f"resuming from {rel} ({real_steps} timesteps)")
            return path, real_steps, notes
        notes.append(f"{rel} cannot be resumed from: {problem}")
    return None, 0, notes


def latest_model(run_dir: Path) -> tuple[Path | None, int]:
    """The saved model of a run with the most timesteps: ``model.zip`` or the last checkpoint (readable only)."""
    from rlzoo.common.save_format import read_model_zip

    candidates: list[tuple[int, Path]] = []
    for _steps, path in [*rf.list_checkpoints(run_dir), (-1, run_dir / rf.MODEL_FILE)]:
        if path.is_file():
            try:
                metadata, _ = read_model_zip(str(path))
                candidates.append((int(metadata.get("num_timesteps", 0)), path))
            except Exception:  # noqa: BLE001 - unreadable: not a candidate
                pass
    if not candidates:
        return None, 0
    steps, path = max(candidates, key=lambda c: (c[0], c[1].name == rf.MODEL_FILE))
    return path, steps


def restart_from_scratch(run_dir: Path) -> None:
    """A resumed run that never saved a model starts over: drop the logs of the attempt that died."""
    for name in (rf.MONITOR_DIR, rf.TB_DIR, rf.CHECKPOINT_DIR):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in ("evaluations.csv", rf.BEST_MODEL_FILE, rf.MODEL_FILE):
        (run_dir / name).unlink(missing_ok=True)


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest readable checkpoint (the divergence guard checks the weights before every checkpoint save,
    so every checkpoint written is finite); None when there is none."""
    from rlzoo.common.save_format import read_model_zip

    for _, path in reversed(rf.list_checkpoints(run_dir)):
        try:
            read_model_zip(str(path))
        except Exception:  # noqa: BLE001 - unreadable: not a candidate
            continue
        return path
    return None
