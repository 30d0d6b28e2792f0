"""The results plotter: read ``*.monitor.csv`` files and plot learning curves."""

from rlzoo.envs.monitor import load_results, plot_results, ts2xy

__all__ = ["load_results", "ts2xy", "plot_results"]
