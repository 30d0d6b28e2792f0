"""Aggregate scores across envs and seeds the way Agarwal et al. (2021, "Deep RL at the edge of the
statistical precipice") recommend: interquartile mean (IQM), median, mean and optimality gap with
stratified-bootstrap confidence intervals, and performance profiles.

Written with numpy; the point estimates follow ``rliable.metrics`` and the intervals
``rliable.library.get_interval_estimates`` (percentile intervals of a bootstrap that resamples the
runs of each task independently), which the tests check on a fixed table.

Scores of one algorithm are a list of 1-D arrays, one per task (env), each holding one score per
run (seed); tasks may have different numbers of runs. Scores across envs are made comparable by
normalizing each env to [0, 1] (:func:`normalize`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Scores = Sequence[np.ndarray]  # one array of run scores per task
Metric = Callable[[Scores], float]


def _flat(scores: Scores) -> np.ndarray:
    return np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in scores])


def iqm(scores: Scores) -> float:
    """Interquartile mean of all runs of all tasks: the mean of the middle 50% (``int(0.25 n)`` trimmed
    from each end, as ``scipy.stats.trim_mean(x, 0.25)``)."""
    x = np.sort(_flat(scores))
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def _task_means(scores: Scores) -> np.ndarray:
    return np.array([np.asarray(s, dtype=np.float64).mean() for s in scores])


def mean(scores: Scores) -> float:
    """Mean over tasks of each task's mean run score (every task weighs the same)."""
    return float(_task_means(scores).mean())


def median(scores: Scores) -> float:
    """Median over tasks of each task's mean run score (as ``rliable.metrics.aggregate_median``)."""
    return float(np.median(_task_means(scores)))


def optimality_gap(scores: Scores, gamma: float = 1.0) -> float:
    """Mean shortfall below the target ``gamma`` (normalized scores above it count as ``gamma``)."""
    return float(np.maximum(gamma - _flat(scores), 0.0).mean())


METRICS: dict[str, Metric] = {"IQM": iqm, "Median": median, "Mean": mean, "Optimality gap": optimality_gap}


def stratified_bootstrap(scores: Scores, metric: Metric, reps: int = 2000, confidence: float = 0.95,
                         seed: int | None = 0) -> tuple[float, float, float]:
    """``(point estimate, low, high)``: percentile interval of ``metric`` over ``reps`` resamplings that
    draw, for every task independently, as many runs as it has, with replacement."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(s, dtype=np.float64).ravel() for s in scores]
    values = np.empty(reps)
    for r in range(reps):
        values[r] = metric([t[rng.integers(0, t.size, size=t.size)] for t in tasks])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return metric(tasks), float(low), float(high)


def score_distribution(scores: Scores, taus: np.ndarray) -> np.ndarray:
    """Performance profile: for each threshold tau, the fraction of runs scoring above tau, averaged
    over tasks (every task weighs the same, as ``rliable``'s run-score distribution)."""
    taus = np.asarray(taus, dtype=np.float64)
    return np.mean([(np.asarray(s, dtype=np.float64).ravel()[:, None] > taus[None, :]).mean(axis=0)
                    for s in scores], axis=0)


def profile_bootstrap(scores: Scores, taus: np.ndarray, reps: int = 1000, confidence: float = 0.95,
                      seed: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Performance profile with pointwise stratified-bootstrap percentile bands: ``(curve, low, high)``."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(s, dtype=np.float64).ravel() for s in scores]
    curves = np.stack([score_distribution([t[rng.integers(0, t.size, size=t.size)] for t in tasks], taus)
                       for _ in range(reps)])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(curves, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return score_distribution(tasks, taus), low, high


def normalize(raw: dict[str, dict[str, np.ndarray]], bounds: dict[str, tuple[float, float]] | None = None
              ) -> tuple[dict[str, list[np.ndarray]], list[str], dict[str, tuple[float, float]]]:
    """``raw[algo][env]`` -> ``(normalized[algo] = per-env arrays in env order, envs, bounds used)``.

    Each env is mapped to [0, 1] with ``bounds[env] = (low, high)`` when given (e.g. random and expert
    scores), else with the lowest and highest score of any run of any algorithm on that env (so
    0 = the worst run, 1 = the best run seen). Only envs every algorithm ran on are kept.
    """
    bounds = dict(bounds or {})
    algos = sorted(raw)
    envs = sorted(set.intersection(*(set(raw[a]) for a in algos))) if algos else []
    used: dict[str, tuple[float, float]] = {}
    for env in envs:
        if env in bounds:
            used[env] = (float(bounds[env][0]), float(bounds[env][1]))
        else:
            everything = np.concatenate([np.asarray(raw[a][env], dtype=np.float64) for a in algos])
            used[env] = (float(everything.min()), float(everything.max()))
    out: dict[str, list[np.ndarray]] = {}
    for algo in algos:
        out[algo] = []
        for env in envs:
            low, high = used[env]
            span = high - low if high != low else 1.0
            out[algo].append((np.asarray(raw[algo][env], dtype=np.float64) - low) / span)
    return out, envs, used


def summarize(scores: dict[str, list[np.ndarray]], reps: int = 2000, seed: int | None = 0
              ) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Every metric of :data:`METRICS` with its interval, per algorithm."""
    return {algo: {name: stratified_bootstrap(s, metric, reps=reps, seed=seed) for name, metric in METRICS.items()}
            for algo, s in scores.items()}


def plot_aggregate(scores: dict[str, list[np.ndarray]], envs: list[str], output: Any, reps: int = 2000,
                   seed: int | None = 0, title: str | None = None) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Draw the metric intervals (top row) and the performance profiles (bottom) into ``output``
    (PNG or SVG by its suffix); returns the figures of :func:`summarize`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(scores, reps=reps, seed=seed)
    algos = sorted(scores)
    colors = {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(algos)}
    fig = plt.figure(figsize=(14, 7.5))
    grid = fig.add_gridspec(2, len(METRICS), height_ratios=[1, 1.4], hspace=0.45, wspace=0.25)
    for col, name in enumerate(METRICS):
        ax = fig.add_subplot(grid[0, col])
        for row, algo in enumerate(algos):
            point, low, high = summary[algo][name]
            ax.barh(row, high - low, left=low, height=0.6, color=colors[algo], alpha=0.75)
            ax.vlines(point, row - 0.3, row + 0.3, color="black", linewidth=2)
        ax.set_yticks(range(len(algos)))
        ax.set_yticklabels(algos if col == 0 else [""] * len(algos))
        ax.set_title(name)
        ax.set_xlabel("normalized score")
        ax.grid(axis="x", alpha=0.3)
    ax = fig.add_subplot(grid[1, :])
    taus = np.linspace(0.0, 1.0, 101)
    for algo in algos:
        curve, band_low, band_high = profile_bootstrap(scores[algo], taus, reps=max(reps // 2, 100), seed=seed)
        ax.plot(taus, curve, color=colors[algo], label=algo, linewidth=2)
        ax.fill_between(taus, band_low, band_high, color=colors[algo], alpha=0.2, linewidth=0)
    ax.set_xlabel(r"normalized score $\tau$")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_title("performance profile")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    n_runs = {a: sum(len(s) for s in scores[a]) for a in algos}
    fig.suptitle((title + "\n" if title else "") + f"{len(envs)} envs ({', '.join(envs)}); runs: "
                 + ", ".join(f"{a} {n}" for a, n in n_runs.items())
                 + "; 95% stratified-bootstrap CIs")
    from pathlib import Path

    from rlzoo.fileio import atomic_path

    output = Path(output)
    try:
        with atomic_path(output, suffix=output.suffix) as tmp:
            fig.savefig(tmp, format=output.suffix.lower().lstrip("."), dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return summary


def format_summary(summary: dict[str, dict[str, tuple[float, float, float]]]) -> str:
    """The figures as text: one line per algorithm, ``metric point [low, high]``."""
    lines = []
    for algo, metrics in sorted(summary.items()):
        parts = [f"{name} {p:.3f} [{lo:.3f}, {hi:.3f}]" for name, (p, lo, hi) in metrics.items()]
        lines.append(f"{algo}: " + "; ".join(parts))
    return "\n".join(lines)
