"""``rlzoo benchmark``: a Markdown table of final rewards across seeds, per algorithm and env.

A run's final reward is its last evaluation (``evaluations.csv``: mean reward of the deterministic
evaluation episodes at the end of training); a run without evaluations uses the mean reward of its
last 100 training episodes (``monitor/``), marked with ``*``. Only finished runs count unless
``--all-runs``. The table lists, per algorithm and env: the number of runs (seeds), the mean
training steps, the final reward as mean ± std across runs, and the mean wall time of a run.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.errors import ZooError

LAST_EPISODES = 100


@dataclass
class RunResult:
    """What the table needs from one run folder."""

    path: Path
    algo: str
    env: str
    seed: int | None
    timesteps: int
    wall_time_s: float | None
    final_reward: float
    from_eval: bool


def final_reward(run_dir: Path) -> tuple[float, bool] | None:
    """``(reward, from_eval)``: the last evaluation's mean reward, else the last training episodes' mean."""
    path = run_dir / "evaluations.csv"
    if path.is_file():
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if r.get("mean_reward")]
            if rows:
                return float(rows[-1]["mean_reward"]), True
        except (OSError, ValueError, csv.Error):
            pass
    try:
        from rlzoo.results import load_results

        data = load_results(run_dir / rf.MONITOR_DIR)
    except (FileNotFoundError, ValueError, OSError):
        return None
    if len(data) == 0:
        return None
    return float(data["r"].to_numpy()[-LAST_EPISODES:].mean()), False


def collect(log_folders: list[str], algos: list[str], envs: list[str], all_runs: bool = False) -> list[RunResult]:
    """Every run folder (``<algo>/<EnvId>_<N>`` with ``run.json``) under ``log_folders`` that matches."""
    wanted_algos = {a.lower() for a in algos}
    wanted_envs = {rf.env_folder_name(e) for e in envs}
    out = []
    for folder in log_folders:
        root = Path(folder)
        if not root.is_dir():
            raise ZooError(f"log folder '{folder}' does not exist")
        for info_path in sorted(root.glob(f"*/*/{rf.RUN_FILE}")):
            run_dir = info_path.parent
            try:
                info = rf.read_run_info(run_dir)
            except ZooError:
                continue
            algo, env = str(info.get("algo", run_dir.parent.name)), str(info.get("env", ""))
            if wanted_algos and algo.lower() not in wanted_algos:
                continue
            if wanted_envs and rf.env_folder_name(env) not in wanted_envs:
                continue
            if not all_runs and info.get("status") != "finished":
                continue
            score = final_reward(run_dir)
            if score is None:
                continue
            wall = info.get("wall_time_s")
            out.append(RunResult(run_dir, algo, env, info.get("seed"), int(info.get("num_timesteps", 0)),
                                 float(wall) if wall is not None else None, score[0], score[1]))
    return out


def _steps(n: float) -> str:
    """Training steps to 3 significant digits: 100096 -> ``100k``, 1234567 -> ``1.23M``."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(round(n)))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h {m:02d}m" if hours else f"{m}m {s:02d}s" if m else f"{s}s"


def markdown_table(results: list[RunResult], iqm: bool = False) -> str:
    """The benchmark table (Markdown), one row per (algorithm, env), sorted by env then algorithm;
    ``iqm``: add the interquartile mean of the seeds' final rewards with its 95% bootstrap interval."""
    import numpy as np

    from rlzoo.zoo.aggregate import iqm as _iqm
    from rlzoo.zoo.aggregate import stratified_bootstrap

    groups: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
    for r in results:
        groups[(r.env, r.algo)].append(r)
    lines = ["| algo | env | seeds | timesteps | final reward (mean ± std) |"
             + (" IQM [95% CI] |" if iqm else "") + " wall time / run |",
             "|------|-----|------:|----------:|--------------------------:|"
             + ("-------------:|" if iqm else "") + "----------------:|"]
    any_train = False
    for (env, algo), runs in sorted(groups.items()):
        rewards = np.array([r.final_reward for r in runs])
        mark = "" if all(r.from_eval for r in runs) else "*"
        any_train |= bool(mark)
        walls = [r.wall_time_s for r in runs if r.wall_time_s is not None]
        lines.append(f"| {algo} | {env} | {len(runs)} | {_steps(float(np.mean([r.timesteps for r in runs])))} "
                     f"| {rewards.mean():.1f} ± {rewards.std():.1f}{mark} "
                     + (f"| {_iqm_cell(rewards, _iqm, stratified_bootstrap)} " if iqm else "")
                     + f"| {_duration(float(np.mean(walls)) if walls else None)} |")
    lines.append("")
    if iqm:
        lines.append("IQM: interquartile mean of the runs' final rewards, 95% percentile bootstrap interval "
                     "(2000 resamplings of the runs).")
    lines.append("Final reward: each run's last evaluation (deterministic episodes), mean ± std across runs"
                 + (f"; * some runs without evaluations: mean of their last {LAST_EPISODES} training episodes."
                    if any_train else "."))
    return "\n".join(lines) + "\n"


def _iqm_cell(rewards: Any, iqm: Any, bootstrap: Any) -> str:
    point, low, high = bootstrap([rewards], iqm, reps=2000, seed=0)
    return f"{point:.1f} [{low:.1f}, {high:.1f}]"


def benchmark(log_folders: list[str], algos: list[str] | None = None, envs: list[str] | None = None,
              output: Path | None = None, all_runs: bool = False, iqm: bool = False) -> str:
    """Build the table (and write it to ``output``); returns the Markdown text."""
    results = collect(log_folders, algos or [], envs or [], all_runs)
    if not results:
        what = "runs" if all_runs else "finished runs"
        raise ZooError(f"no {what} with rewards found in {', '.join(log_folders)}")
    text = markdown_table(results, iqm=iqm)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        rf.atomic_write_text(output, text)
    return text


def register(app: Any) -> None:
    """Add ``rlzoo benchmark`` to the Typer app (called by ``rlzoo.zoo.cli``)."""
    import typer

    @app.command("benchmark")
    def benchmark_command(
        log_folder: list[str] = typer.Option(["logs"], "-f", "--log-folder", help="Log folder(s) to scan."),
        algo: list[str] | None = typer.Option(None, "--algo", help="Algorithms to include (default: all)."),
        env: list[str] | None = typer.Option(None, "--env", help="Env ids to include (default: all)."),
        output: Path | None = typer.Option(None, "-o", "--output", help="Also write the table to this file."),
        all_runs: bool = typer.Option(False, "--all-runs", help="Include unfinished (interrupted, failed) runs."),
        iqm: bool = typer.Option(False, "--iqm", help="Add the IQM of the seeds with its 95% bootstrap CI."),
    ) -> None:
        """Markdown table of mean ± std final reward across seeds, per algorithm and env."""
        typer.echo(benchmark(log_folder, algo or [], env or [], output, all_runs, iqm), nl=False)
        if output is not None:
            typer.echo(f"wrote {output}")
