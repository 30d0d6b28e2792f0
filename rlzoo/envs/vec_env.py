"""Vector environments and the per-step helpers the algorithms use.

Everything follows the gymnasium (>= 1.0) vector API with **same-step autoreset**: when a
sub-environment finishes, ``step`` already returns the first observation of its next episode and
the last observation / info of the finished one sit in ``infos["final_obs"]`` /
``infos["final_info"]``. Layout (from ``gymnasium.vector.VectorEnv._add_info``)::

    infos["final_obs"]          object array (num_envs,), the final observation or None
    infos["_final_obs"]         bool mask (num_envs,)
    infos["final_info"]         dict of batched arrays, e.g. ["episode"]["r"] with mask ["_episode"]
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper

__all__ = [
    "DummyVecEnv",
    "SubprocVecEnv",
    "VecEnvWrapper",
    "episode_stats",
    "final_observations",
    "unwrap_vec_wrapper",
    "is_image_space",
    "is_image_space_channels_first",
]

EnvFn = Callable[[], gym.Env]
W = TypeVar("W")


class DummyVecEnv(SyncVectorEnv):
    """Runs the sub-environments one after the other in this process.

    A :class:`gymnasium.vector.SyncVectorEnv` whose autoreset mode is fixed to ``SAME_STEP``.

    :param env_fns: functions that each create one environment
    :param copy: return a copy of the observation buffer from ``reset``/``step``
    :param observation_mode: "same" or "different" (see gymnasium)
    """

    def __init__(self, env_fns: Sequence[EnvFn], copy: bool = True, observation_mode: str = "same") -> None:
        if len(env_fns) == 0:
            raise ValueError("DummyVecEnv needs at least one environment function")
        super().__init__(env_fns, copy=copy, observation_mode=observation_mode,
                         autoreset_mode=AutoresetMode.SAME_STEP)


def _quiet_worker(*args: Any) -> None:
    """gymnasium's worker loop, made quiet when its parent goes away.

    SIGINT/SIGTERM are ignored: Ctrl-C or a scheduler's SIGTERM reach the whole process group, and the
    parent decides (it closes its envs, or dies, and the worker then sees the pipe close). A pipe
    closed by a parent that died ends the worker silently instead of printing a BrokenPipeError
    traceback per worker."""
    import os
    import signal

    from gymnasium.vector.async_vector_env import _async_worker

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    try:
        _async_worker(*args)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        os._exit(0)  # the parent is gone: no traceback, no queue flush to a closed pipe


def _default_start_method() -> str:
    # forkserver is safe with torch (and its threads) already imported in the parent; fork is not.
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class SubprocVecEnv(AsyncVectorEnv):
    """Runs each sub-environment in its own process (``SAME_STEP`` autoreset).

    :param env_fns: functions that each create one environment (handed to the worker processes by
        gymnasium's AsyncVectorEnv; nothing is read from files)
    :param start_method: multiprocessing start method; default "forkserver" (or "spawn")
    :param kwargs: forwarded to :class:`gymnasium.vector.AsyncVectorEnv` (``shared_memory``, ``daemon`` ...)
    """

    def __init__(self, env_fns: Sequence[EnvFn], start_method: str | None = None, **kwargs: Any) -> None:
        if len(env_fns) == 0:
            raise ValueError("SubprocVecEnv needs at least one environment function")
        if "autoreset_mode" in kwargs:
            raise ValueError("SubprocVecEnv always uses same-step autoreset; do not pass autoreset_mode")
        start_method = start_method or _default_start_method()
        if start_method == "forkserver":
            # the fork server imports rlzoo once; each worker is then forked from it instead of
            # importing gymnasium/torch again (this has no effect if the server is already running)
            multiprocessing.get_context("forkserver").set_forkserver_preload(["__main__", "rlzoo.envs"])
        kwargs.setdefault("worker", _quiet_worker)
        super().__init__(env_fns, context=start_method, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)


class SupportsEnvCalls(Protocol):
    """A vector env that forwards calls and attribute access to its sub-environments
    (gymnasium's Sync/AsyncVectorEnv and rlzoo's wrappers; not declared on ``VectorEnv`` itself)."""

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]: ...

    def get_attr(self, name: str) -> tuple[Any, ...]: ...

    def set_attr(self, name: str, values: Any) -> None: ...


class VecEnvWrapper(VectorWrapper):
    """Base class of rlzoo's vector wrappers: a :class:`gymnasium.vector.VectorWrapper` that also
    forwards ``call``/``get_attr``/``set_attr`` and exposes the wrapped env as ``.venv``."""

    @property
    def venv(self) -> VectorEnv:
        """The wrapped vector environment (alias of ``.env``)."""
        return self.env

    def _inner_calls(self) -> SupportsEnvCalls:
        # every vector env rlzoo wraps (Sync/Async, native, wrappers) has call/get_attr/set_attr
        return cast(SupportsEnvCalls, self.env)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call method ``name`` of every sub-environment."""
        return self._inner_calls().call(name, *args, **kwargs)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Attribute ``name`` of every sub-environment."""
        return self._inner_calls().get_attr(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute ``name`` of the sub-environments (one value, or one per env)."""
        return self._inner_calls().set_attr(name, values)


# ---------------------------------------------------------------------------------------------
# helpers called every step by the algorithms
# ---------------------------------------------------------------------------------------------
def episode_stats(infos: dict[str, Any]) -> list[dict[str, Any]]:
    """Monitor episode records ``{"r", "l", "t", ...}`` of the episodes that ended in this step.

    Reads ``infos["final_info"]["episode"]`` (same-step autoreset layout); returns ``[]`` when no
    sub-environment finished an episode (a single dict lookup on the common path).
    """
    final_info = infos.get("final_info")
    if final_info is None:
        return []
    episode = final_info.get("episode")
    if episode is None:
        return []
    idx = np.flatnonzero(final_info["_episode"])
    keys = [k for k in episode if not k.startswith("_")]
    out = []
    for i in idx:
        rec = {k: episode[k][i] for k in keys}
        rec["r"], rec["l"], rec["t"] = float(rec["r"]), int(rec["l"]), float(rec["t"])
        out.append(rec)
    return out


def final_observations(infos: dict[str, Any],
                       indices: np.ndarray | Sequence[int]) -> np.ndarray | dict[str, np.ndarray]:
    """Stack the final observations of sub-environments ``indices`` (int indices or a bool mask).

    These envs must have finished in this step. Returns an array ``(len(indices), *obs_shape)``, or a
    dict of such arrays for Dict observations. Used to bootstrap the value of truncated episodes.
    """
    indices = np.asarray(indices)
    if indices.dtype == np.bool_:
        indices = np.flatnonzero(indices)
    if "final_obs" not in infos:
        raise ValueError("infos has no 'final_obs': no sub-environment finished in this step")
    finals = infos["final_obs"][indices]
    if len(finals) == 0:
        raise ValueError("final_observations needs at least one index")
    if any(f is None for f in finals):
        raise ValueError(f"some of the sub-environments {indices.tolist()} did not finish in this step")
    if isinstance(finals[0], dict):
        return {k: np.stack([f[k] for f in finals]) for k in finals[0]}
    return np.stack(finals)


def unwrap_vec_wrapper(venv: VectorEnv, cls: type[W]) -> W | None:
    """The outermost wrapper of class ``cls`` in the chain of vector wrappers (or None)."""
    env = venv
    while True:
        if isinstance(env, cls):
            return env
        if not isinstance(env, VectorWrapper):
            return None
        env = env.env


def is_image_space(space: gym.Space, check_channels: bool = False) -> bool:
    """True for a uint8 ``Box`` of rank 3 with bounds [0, 255] (channels-last or channels-first).

    :param check_channels: also require 1, 3 or 4 channels on the first or last axis
    """
    if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or len(space.shape) != 3:
        return False
    if np.any(space.low != 0) or np.any(space.high != 255):
        return False
    if check_channels:
        return space.shape[-1] in (1, 3, 4) or space.shape[0] in (1, 3, 4)
    return True


def is_image_space_channels_first(space: spaces.Box) -> bool:
    """Guess the layout of an image space: channels-first when the first axis is the smallest."""
    shape = space.shape
    return shape[0] < shape[-1] and shape[0] <= shape[1]
