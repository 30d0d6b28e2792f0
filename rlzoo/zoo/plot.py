"""``rlzoo plot``: learning curves of run folders as one PNG (matplotlib, Agg backend).

One panel per env; one colour per algorithm; the runs of an algorithm on an env (seeds) are drawn as
their mean with a ±1 std band over a common x grid (their shared range), a single run as a line.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from rlzoo.fileio import atomic_path
from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.errors import ZooError

_X_LABELS = {"timesteps": "timesteps", "episodes": "episodes", "walltime": "wall time (hours)"}


def find_runs(log_folders: list[str], algos: list[str], envs: list[str]) -> dict[tuple[str, str], list[Path]]:
    """Run folders with monitor logs, grouped by (algo, env folder name)."""
    wanted_algos = {a.lower() for a in algos}
    wanted_envs = {rf.env_folder_name(e) for e in envs}
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for folder in log_folders:
        root = Path(folder)
        if not root.is_dir():
            raise ZooError(f"log folder '{folder}' does not exist")
        for algo_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if wanted_algos and algo_dir.name.lower() not in wanted_algos:
                continue
            for run in sorted(p for p in algo_dir.iterdir() if p.is_dir()):
                m = rf.RUN_NAME_RE.match(run.name)
                if not m or (wanted_envs and m.group("env") not in wanted_envs):
                    continue
                if any((run / rf.MONITOR_DIR).glob("*.monitor.csv")):
                    groups[(algo_dir.name, m.group("env"))].append(run)
    return dict(groups)


def run_curve(run: Path, x_axis: str, window: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``(x, smoothed episode reward)`` of one run, or None when it has no finished episode."""
    from rlzoo.results import load_results

    try:
        data = load_results(run / rf.MONITOR_DIR)
    except (FileNotFoundError, ValueError):
        return None
    if len(data) == 0:
        return None
    y = data["r"].to_numpy(dtype=np.float64)
    if x_axis == "timesteps":
        x = np.cumsum(data["l"].to_numpy(dtype=np.float64))
    elif x_axis == "episodes":
        x = np.arange(1, len(y) + 1, dtype=np.float64)
    else:
        x = data["t"].to_numpy(dtype=np.float64) / 3600.0
    if window > 1:
        # trailing moving average; the first points average what exists so far
        csum = np.cumsum(np.insert(y, 0, 0.0))
        idx = np.arange(1, len(y) + 1)
        lo = np.maximum(idx - window, 0)
        y = (csum[idx] - csum[lo]) / (idx - lo)
    return x, y


def aggregate(curves: list[tuple[np.ndarray, np.ndarray]], n_points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of several curves on a common grid spanning the range all of them cover."""
    start = max(c[0][0] for c in curves)
    stop = min(c[0][-1] for c in curves)
    if stop <= start:  # no overlap: fall back to the union, each curve held at its ends
        start, stop = min(c[0][0] for c in curves), max(c[0][-1] for c in curves)
    grid = np.linspace(start, stop, n_points)
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(axis=0), ys.std(axis=0)


def plot_runs(log_folders: list[str], algos: list[str], envs: list[str], output: Path, window: int = 10,
              x_axis: str = "timesteps", title: Optional[str] = None) -> Path:
    """Draw the learning curves of the matching runs into ``output`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise ZooError(f"the output file must end with .png, got '{output}'")
    groups = find_runs(log_folders, algos, envs)
    curves: dict[tuple[str, str], list] = {}
    for key, runs in groups.items():
        got = [c for c in (run_curve(run, x_axis, window) for run in runs) if c is not None]
        if got:
            curves[key] = got
    if not curves:
        what = " ".join(filter(None, [", ".join(algos), ", ".join(envs)])) or "any run"
        raise ZooError(f"no finished episodes found for {what} in {', '.join(log_folders)}")

    env_names = sorted({env for _, env in curves})
    algo_names = sorted({algo for algo, _ in curves})
    colors = {algo: plt.get_cmap("tab10")(i % 10) for i, algo in enumerate(algo_names)}
    ncols = min(len(env_names), 3)
    nrows = math.ceil(len(env_names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 4 * nrows), squeeze=False)
    for ax, env in zip(axes.flat, env_names):
        for algo in algo_names:
            runs = curves.get((algo, env))
            if not runs:
                continue
            color = colors[algo]
            if len(runs) == 1:
                x, y = runs[0]
                ax.plot(x, y, color=color, label=f"{algo}")
            else:
                grid, mean, std = aggregate(runs)
                ax.plot(grid, mean, color=color, label=f"{algo} ({len(runs)} runs)")
                ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        ax.set_title(env)
        ax.set_xlabel(_X_LABELS[x_axis])
        ax.set_ylabel("episode reward" + (f" (moving avg, {window} ep.)" if window > 1 else ""))
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    for ax in list(axes.flat)[len(env_names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_path(output, suffix=output.suffix) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return output
