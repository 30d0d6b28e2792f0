"""Aggregate statistics over seeds: interquartile mean and its percentile bootstrap confidence interval
(Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice")."""
from __future__ import annotations

import numpy as np


def iqm(values: np.ndarray) -> float:
    """Mean of the middle 50% of the values, counting the boundary values fractionally (so that it is
    defined for any number of runs: with 4 runs the two middle ones, with 5 the middle three with the
    outer two of them weighted by a quarter)."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = len(x)
    if n == 0:
        return float("nan")
    # weight of each sorted value: the overlap of its slot [i/n, (i+1)/n] with [0.25, 0.75]
    edges = np.arange(n + 1) / n
    weights = np.clip(np.minimum(edges[1:], 0.75) - np.maximum(edges[:-1], 0.25), 0.0, None)
    return float((weights * x).sum() / weights.sum())


def iqm_ci(values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the IQM: resample the runs with replacement ``n_boot`` times."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if len(x) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, len(x), size=(n_boot, len(x)))]
    stats = np.array([iqm(s) for s in samples])
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))
