"""``rlzoo plot``: learning curves of run folders as one PNG or SVG (matplotlib, Agg backend).

One panel per env; one colour per algorithm; the runs of an algorithm on an env (seeds) are drawn as
their mean with a ±1 std band over a common x grid (their shared range), a single run as a line.
Curves come from the training episodes (``monitor/``, ``--source train``) or from the evaluations
(``evaluations.csv``, ``--source eval``: reward, episode length or success rate of the deterministic
evaluation episodes). ``--aggregate`` draws IQM/median/mean intervals and performance profiles
across envs and seeds instead (:mod:`rlzoo.zoo.aggregate`).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from rlzoo.fileio import atomic_path
from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.errors import ZooError

_X_LABELS = {"timesteps": "timesteps", "episodes": "episodes", "walltime": "wall time (hours)"}
_Y_LABELS = {"reward": "episode reward", "length": "episode length", "success": "success rate"}
_EVAL_COLUMNS = {"reward": "mean_reward", "length": "mean_ep_length", "success": "success_rate"}
FORMATS = (".png", ".svg")


def find_runs(log_folders: list[str], algos: list[str], envs: list[str],
              source: str = "train") -> dict[tuple[str, str], list[Path]]:
    """Run folders with monitor logs (``source="eval"``: with ``evaluations.csv``), grouped by
    (algo, env folder name)."""
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
                has = ((run / "evaluations.csv").is_file() if source == "eval"
                       else any((run / rf.MONITOR_DIR).glob("*.monitor.csv")))
                if has:
                    groups[(algo_dir.name, m.group("env"))].append(run)
    return dict(groups)


def run_curve(run: Path, x_axis: str, window: int, y_axis: str = "reward") -> tuple[np.ndarray, np.ndarray] | None:
    """``(x, smoothed episode reward or length)`` of one run, or None when it has no finished episode."""
    from rlzoo.results import load_results

    try:
        data = load_results(run / rf.MONITOR_DIR)
    except (FileNotFoundError, ValueError):
        return None
    if len(data) == 0:
        return None
    y = data["l" if y_axis == "length" else "r"].to_numpy(dtype=np.float64)
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


def eval_curve(run: Path, y_axis: str = "reward") -> tuple[np.ndarray, np.ndarray] | None:
    """``(timesteps, value)`` of a run's evaluations (``evaluations.csv``), or None without any value."""
    import csv

    column = _EVAL_COLUMNS[y_axis]
    try:
        with open(run / "evaluations.csv", newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r.get(column) not in (None, "")]
        if not rows:
            return None
        x = np.array([float(r["timesteps"]) for r in rows])
        y = np.array([float(r[column]) for r in rows])
    except (OSError, ValueError, KeyError, csv.Error):
        return None
    return x, y


def aggregate(curves: list[tuple[np.ndarray, np.ndarray]],
              n_points: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of several curves on a common grid spanning the range all of them cover."""
    start = max(c[0][0] for c in curves)
    stop = min(c[0][-1] for c in curves)
    if stop <= start:  # no overlap: fall back to the union, each curve held at its ends
        start, stop = min(c[0][0] for c in curves), max(c[0][-1] for c in curves)
    grid = np.linspace(start, stop, n_points)
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(axis=0), ys.std(axis=0)


def check_output(output: Path) -> None:
    """PNG or SVG, chosen by the file's suffix."""
    if Path(output).suffix.lower() not in FORMATS:
        raise ZooError(f"the output file must end with .png or .svg, got '{output}'")


def plot_runs(log_folders: list[str], algos: list[str], envs: list[str], output: Path, window: int = 10,
              x_axis: str = "timesteps", title: str | None = None, source: str = "train",
              y_axis: str = "reward") -> Path:
    """Draw the learning curves of the matching runs into ``output`` (PNG or SVG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output)
    check_output(output)
    if source == "train" and y_axis == "success":
        raise ZooError("success rates come from the evaluations: use --source eval with -y success")
    if source == "eval" and x_axis != "timesteps":
        raise ZooError("evaluation curves are drawn over timesteps (drop -x or use --source train)")
    groups = find_runs(log_folders, algos, envs, source)
    curves: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for key, runs in groups.items():
        if source == "eval":
            got = [c for c in (eval_curve(run, y_axis) for run in runs) if c is not None]
        else:
            got = [c for c in (run_curve(run, x_axis, window, y_axis) for run in runs) if c is not None]
        if got:
            curves[key] = got
    if not curves:
        what = " ".join(filter(None, [", ".join(algos), ", ".join(envs)])) or "any run"
        found = {"train": "finished episodes", "eval": f"evaluations with {_EVAL_COLUMNS[y_axis]}"}[source]
        raise ZooError(f"no {found} found for {what} in {', '.join(log_folders)}")

    env_names = sorted({env for _, env in curves})
    algo_names = sorted({algo for algo, _ in curves})
    colors = {algo: plt.get_cmap("tab10")(i % 10) for i, algo in enumerate(algo_names)}
    ncols = min(len(env_names), 3)
    nrows = math.ceil(len(env_names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 4 * nrows), squeeze=False)
    for ax, env in zip(axes.flat, env_names, strict=False):  # the grid may have more axes than envs
        for algo in algo_names:
            env_curves = curves.get((algo, env))
            if not env_curves:
                continue
            color = colors[algo]
            if len(env_curves) == 1:
                x, y = env_curves[0]
                ax.plot(x, y, color=color, label=f"{algo}")
            else:
                grid, mean, std = aggregate(env_curves)
                ax.plot(grid, mean, color=color, label=f"{algo} ({len(env_curves)} runs)")
                ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        ax.set_title(env)
        ax.set_xlabel(_X_LABELS[x_axis])
        if source == "eval":
            ax.set_ylabel(f"evaluation {_Y_LABELS[y_axis]}")
        else:
            ax.set_ylabel(_Y_LABELS[y_axis] + (f" (moving avg, {window} ep.)" if window > 1 else ""))
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    for ax in list(axes.flat)[len(env_names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_path(output, suffix=output.suffix) as tmp:
            fig.savefig(tmp, format=output.suffix.lower().lstrip("."), dpi=100)
    finally:
        plt.close(fig)
    return output


def plot_aggregate_runs(log_folders: list[str], algos: list[str], envs: list[str], output: Path,
                        bounds: dict[str, tuple[float, float]] | None = None, reps: int = 2000,
                        seed: int = 0, title: str | None = None, all_runs: bool = False) -> str:
    """``--aggregate``: final scores of every finished run (last evaluation, as ``rlzoo benchmark``),
    normalized per env, as IQM/median/mean/optimality-gap intervals and performance profiles.
    Returns the text summary (raw per-env figures, then the normalized aggregates)."""
    from rlzoo.zoo import aggregate as agg
    from rlzoo.zoo.benchmark import collect

    output = Path(output)
    check_output(output)
    results = collect(log_folders, algos, envs, all_runs)
    if not results:
        raise ZooError(f"no finished runs with rewards found in {', '.join(log_folders)}")
    raw: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        raw[r.algo][rf.env_folder_name(r.env)].append(r.final_reward)
    arrays = {a: {e: np.array(v) for e, v in per_env.items()} for a, per_env in raw.items()}
    scores, env_names, used = agg.normalize(arrays, bounds)
    if not env_names:
        raise ZooError("no env was run by every algorithm: nothing to aggregate (filter with --algo/--env)")
    summary = agg.plot_aggregate(scores, env_names, output, reps=reps, seed=seed, title=title)
    lines = []
    for env in env_names:
        low, high = used[env]
        per_algo = ", ".join(f"{a} {np.mean(arrays[a][env]):.1f} (IQM {agg.iqm([arrays[a][env]]):.1f}, "
                             f"{len(arrays[a][env])} runs)" for a in sorted(arrays))
        lines.append(f"{env}: normalized with [{low:.1f}, {high:.1f}]; final reward mean {per_algo}")
    lines.append(agg.format_summary(summary))
    return "\n".join(lines)
