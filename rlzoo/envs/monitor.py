"""Episode monitor (reward, length, time per episode) and the results plotter reading its CSV files.

A monitor file ``<name>.monitor.csv`` holds one ``#`` line with a JSON header (``t_start``,
``env_id``), then the CSV header ``r,l,t`` (plus any ``info_keywords``), then one line per episode;
``t`` is the wall time in seconds since ``t_start``.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, SupportsFloat

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Monitor", "MonitorFile", "get_monitor_files", "load_results", "plot_results", "ts2xy"]

MONITOR_EXT = "monitor.csv"
X_TIMESTEPS, X_EPISODES, X_WALLTIME = "timesteps", "episodes", "walltime_hrs"


class MonitorFile:
    """One ``<name>.monitor.csv`` file: the JSON header line, the CSV header, then one flushed line per
    episode. Used by :class:`Monitor` and by the native vector envs (one file per sub-environment).

    :param filename: file (without or with the ``.monitor.csv`` suffix) or directory (new unique file in it)
    :param t_start: wall time the episode times are relative to
    :param env_id: environment id written in the header
    :param info_keywords: extra columns after ``r,l,t``
    :param override_existing: start a new file; if False, append to an existing one (resume)
    """

    def __init__(self, filename: str | os.PathLike, t_start: float, env_id: str | None,
                 info_keywords: Sequence[str] = (), override_existing: bool = True) -> None:
        filename = os.fspath(filename)
        if os.path.isdir(filename):
            filename = os.path.join(filename, f"{uuid.uuid4().hex[:12]}.{MONITOR_EXT}")
        elif not filename.endswith(MONITOR_EXT):
            filename = f"{filename}.{MONITOR_EXT}"
        parent = os.path.dirname(filename)
        if parent:
            os.makedirs(parent, exist_ok=True)
        append = not override_existing and os.path.isfile(filename) and os.path.getsize(filename) > 0
        self.filename = filename
        self._file = open(filename, "a" if append else "w", newline="")  # noqa: SIM115 (kept open)
        self._writer = csv.writer(self._file)
        if not append:
            header = {"t_start": t_start, "env_id": env_id}
            self._file.write(f"#{json.dumps(header)}\n")
            self._writer.writerow(("r", "l", "t", *info_keywords))
            self._file.flush()

    def write(self, row: Sequence[Any]) -> None:
        """Append one episode line and flush it."""
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class Monitor(gym.Wrapper):
    """Records the return, length and wall time of every episode.

    At the end of an episode ``info["episode"] = {"r": return, "l": length, "t": seconds since the
    monitor was created}`` (plus the ``info_keywords`` values) and, when ``filename`` is given, a line
    is appended and flushed to ``<filename>.monitor.csv`` (or to a new uniquely named file inside
    ``filename`` if it is a directory).

    :param env: the environment
    :param filename: file (without or with the ``.monitor.csv`` suffix) or directory; None: no file
    :param allow_early_resets: allow ``reset`` in the middle of an episode
    :param info_keywords: keys of the final ``info`` to copy into the episode record and the CSV
    :param override_existing: start a new file; if False, append to an existing one (resume)
    """

    def __init__(self, env: gym.Env, filename: str | os.PathLike | None = None, allow_early_resets: bool = True,
                 info_keywords: Sequence[str] = (), override_existing: bool = True) -> None:
        super().__init__(env)
        self.t_start = time.time()
        self.allow_early_resets = allow_early_resets
        self.info_keywords = tuple(info_keywords)
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.episode_times: list[float] = []
        self.total_steps = 0
        self._ep_return = 0.0
        self._ep_len = 0
        self._out: MonitorFile | None = None
        self.filename: str | None = None
        if filename is not None:
            spec = self.env.spec
            self._out = MonitorFile(filename, t_start=self.t_start, env_id=spec.id if spec is not None else None,
                                    info_keywords=self.info_keywords, override_existing=override_existing)
            self.filename = self._out.filename

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the environment (and the episode counters)."""
        if not self.allow_early_resets and self._ep_len > 0:
            raise RuntimeError("Monitor: reset in the middle of an episode; pass allow_early_resets=True to allow it")
        self._ep_return = 0.0
        self._ep_len = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the environment and record the episode when it ends."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._ep_return += float(reward)
        self._ep_len += 1
        if terminated or truncated:
            self._end_episode(info)
        return obs, reward, terminated, truncated, info

    def _end_episode(self, info: dict[str, Any]) -> None:
        ep_return, ep_len = float(self._ep_return), self._ep_len
        ep_time = round(time.time() - self.t_start, 6)
        record = {"r": round(ep_return, 6), "l": ep_len, "t": ep_time}
        for key in self.info_keywords:
            record[key] = info[key]
        self.episode_returns.append(ep_return)
        self.episode_lengths.append(ep_len)
        self.episode_times.append(ep_time)
        self.total_steps += ep_len
        self._ep_return = 0.0
        self._ep_len = 0
        if self._out is not None:
            self._out.write(list(record.values()))
        info["episode"] = record

    def get_episode_rewards(self) -> list[float]:
        """Returns of all finished episodes."""
        return self.episode_returns

    def get_episode_lengths(self) -> list[int]:
        """Lengths of all finished episodes."""
        return self.episode_lengths

    def get_episode_times(self) -> list[float]:
        """End times (seconds since creation) of all finished episodes."""
        return self.episode_times

    def get_total_steps(self) -> int:
        """Steps taken in all finished episodes plus the current one."""
        return self.total_steps + self._ep_len

    def close(self) -> None:
        """Close the environment and the monitor file."""
        super().close()
        if self._out is not None:
            self._out.close()
            self._out = None


# ---------------------------------------------------------------------------------------------
# results plotter
# ---------------------------------------------------------------------------------------------
def get_monitor_files(path: str | os.PathLike) -> list[str]:
    """All ``*.monitor.csv`` files in folder ``path`` (or ``[path]`` if it is a monitor file)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    return sorted(glob.glob(os.path.join(glob.escape(path), f"*{MONITOR_EXT}")))


def _read_monitor_file(path: str) -> tuple[pd.DataFrame, float]:
    import pandas as pd

    with open(path) as f:
        first = f.readline()
        if not first.startswith("#"):
            raise ValueError(f"{path}: not a monitor file (first line should be a '#' JSON header)")
        try:
            t_start = float(json.loads(first[1:])["t_start"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: bad monitor header ({e})") from None
        try:
            df = pd.read_csv(f)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise ValueError(f"{path}: unreadable monitor file ({str(e).strip().splitlines()[0]})") from None
    if not {"r", "l", "t"} <= set(df.columns):
        raise ValueError(f"{path}: monitor file lacks the columns r,l,t (has {list(df.columns)})")
    return df, t_start


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read every ``*.monitor.csv`` in folder ``path`` into one DataFrame.

    Episodes of all files are sorted by absolute end time; column ``t`` is then made relative to the
    earliest ``t_start``. Columns: ``r`` (return), ``l`` (length), ``t`` (seconds), index 0..n-1.

    :raises FileNotFoundError: when the folder holds no monitor file
    """
    import pandas as pd

    files = get_monitor_files(path)
    if not files:
        raise FileNotFoundError(f"no *.{MONITOR_EXT} files found in {os.fspath(path)!r}")
    frames, starts = [], []
    for file in files:
        df, t_start = _read_monitor_file(file)
        df["t"] = df["t"].astype(np.float64) + t_start
        frames.append(df)
        starts.append(t_start)
    data = pd.concat(frames, ignore_index=True)
    data = data.sort_values("t", kind="stable").reset_index(drop=True)
    data["t"] -= min(starts)
    return data


def ts2xy(data_frame: pd.DataFrame, x_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn monitor results into ``(x, y)`` arrays; ``y`` is the episode return.

    :param x_axis: "timesteps" (cumulative env steps), "episodes" (episode index) or
        "walltime_hrs" (hours since start)
    """
    y = data_frame["r"].to_numpy(dtype=np.float64)
    if x_axis == X_TIMESTEPS:
        x = np.cumsum(data_frame["l"].to_numpy(dtype=np.int64))
    elif x_axis == X_EPISODES:
        x = np.arange(len(data_frame))
    elif x_axis == X_WALLTIME:
        x = data_frame["t"].to_numpy(dtype=np.float64) / 3600.0
    else:
        raise ValueError(f"unknown x_axis {x_axis!r}; use one of {X_TIMESTEPS!r}, {X_EPISODES!r}, {X_WALLTIME!r}")
    return x, y


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    return (cumsum[window:] - cumsum[:-window]) / window


def plot_results(dirs: Sequence[str | os.PathLike], num_timesteps: int | None, x_axis: str, task_name: str,
                 figsize: tuple[float, float] = (8, 2), window: int = 100):
    """Plot the episode returns of the monitor folders ``dirs`` (one colour each) on one figure.

    Points are the episode returns, lines their moving average over ``window`` episodes (when there
    are enough). Uses :class:`matplotlib.figure.Figure` directly (no pyplot state, any backend);
    save it with ``fig.savefig("curves.png")``.

    :param num_timesteps: only episodes within the first ``num_timesteps`` steps (None: all)
    :return: the matplotlib figure
    """
    from matplotlib.figure import Figure

    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    for i, folder in enumerate(dirs):
        df = load_results(folder)
        if num_timesteps is not None:
            df = df[df["l"].cumsum() <= num_timesteps]
        x, y = ts2xy(df, x_axis)
        color = f"C{i % 10}"
        ax.scatter(x, y, s=2, color=color, alpha=0.4)
        if len(y) >= window:
            ax.plot(x[window - 1:], _moving_average(y, window), color=color, label=os.path.basename(os.fspath(folder)))
    if num_timesteps is not None and x_axis == X_TIMESTEPS:
        ax.set_xlim(0, num_timesteps)
    ax.set_title(task_name)
    ax.set_xlabel({X_TIMESTEPS: "Timesteps", X_EPISODES: "Episodes", X_WALLTIME: "Walltime (hrs)"}[x_axis])
    ax.set_ylabel("Episode return")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
