"""``make_vec_env``: environment id (or factory) -> Monitor-wrapped, seeded vector environment."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec, find_highest_version, get_env_id, parse_env_id
from gymnasium.vector import VectorEnv

from rlzoo.envs.monitor import Monitor
from rlzoo.envs.vec_env import DummyVecEnv, SubprocVecEnv

__all__ = ["VEC_ENV_CLASSES", "VEC_ENV_KINDS", "UnknownEnvError", "get_env_spec", "make_vec_env"]

VEC_ENV_CLASSES: dict[str, type[VectorEnv]] = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}
# "auto": the fastest vector env that gives the Python stack's observations (native if there is one, else
# dummy); "native": rlzoo's numpy/C++ vector env of the env family; "envpool": EnvPool's C++ pool
VEC_ENV_KINDS = ("auto", "native", "envpool", "dummy", "subproc")


class UnknownEnvError(ValueError, gym.error.Error):
    """An environment id that is not registered (one-line message, with gymnasium's suggestion)."""


_ale_registered = False


def register_ale() -> bool:
    """Register the Atari (ALE) environments of ``ale-py`` with gymnasium; False if not installed."""
    global _ale_registered
    if not _ale_registered:
        try:
            import ale_py
        except ImportError:
            return False
        gym.register_envs(ale_py)
        _ale_registered = True
    return True


def _spec(name: str) -> EnvSpec:
    """``gym.spec`` that, like ``gym.make``, resolves an id without version to its latest version."""
    namespace, base, version = parse_env_id(name)
    if version is None:
        latest = find_highest_version(namespace, base)
        if latest is not None:
            name = get_env_id(namespace, base, latest)
    return gym.spec(name)


def get_env_spec(env_id: str) -> EnvSpec:
    """The registry entry of ``env_id`` (``"module:EnvId"`` imports ``module`` first; Atari ids
    register ``ale-py``).

    :raises UnknownEnvError: (a ``ValueError``) with a one-line message when the id is unknown
    """
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UnknownEnvError(f"cannot import module {module!r} for environment {env_id!r}: {e}") from None
    try:
        return _spec(name)
    except gym.error.Error as first_error:
        if register_ale():
            try:
                return _spec(name)
            except gym.error.Error:
                pass
        msg = " ".join(str(first_error).split())
        raise UnknownEnvError(f"unknown environment {env_id!r}: {msg}") from None


def _resolve_vec_env_cls(vec_env_cls: type[VectorEnv] | str | None) -> Callable[..., VectorEnv] | str:
    """The vector env class to build (called with the env functions), or a native kind name."""
    if vec_env_cls is None:
        return "auto"
    if isinstance(vec_env_cls, str):
        if vec_env_cls in ("auto", "native", "envpool"):
            return vec_env_cls
        try:
            return VEC_ENV_CLASSES[vec_env_cls]
        except KeyError:
            raise ValueError(f"unknown vec_env_cls {vec_env_cls!r}; use one of {list(VEC_ENV_KINDS)}") from None
    return vec_env_cls


def _make_native(kind: str, env_id: Any, n_envs: int, seed: int | None, start_index: int, monitor_dir: str | None,
                 wrapper_class: Any, env_kwargs: dict[str, Any], vec_env_kwargs: dict[str, Any] | None,
                 monitor_kwargs: dict[str, Any]) -> VectorEnv | None:
    """The native (``"auto"``/``"native"``) or EnvPool vector env for these arguments, or None when
    there is none (``"native"``/``"envpool"`` then raise a one-line ``ValueError``)."""
    from rlzoo.envs import native

    plain = isinstance(env_id, str) and wrapper_class is None and not vec_env_kwargs and \
        set(monitor_kwargs) <= {"override_existing"}
    spec = get_env_spec(env_id) if isinstance(env_id, str) else None
    common: dict[str, Any] = {"spec": spec, "monitor_dir": monitor_dir, "start_index": start_index,
                              "monitor_kwargs": monitor_kwargs}
    if kind == "envpool":
        task = spec.id if spec is not None else None
        if not plain or task is None or not native.envpool_has(task):
            raise ValueError(f"no EnvPool env for {env_id!r} (needs `pip install envpool`, an id EnvPool has, "
                             "and no wrapper_class/vec_env_kwargs/info_keywords)")
        venv: VectorEnv = native.EnvPoolVecEnv(task, n_envs, seed=None if seed is None else seed + start_index,
                                               **common, **env_kwargs)
        return venv
    cls = native.native_env_for(spec, env_kwargs) if plain and spec is not None else None
    if cls is None:
        if kind == "native":
            raise ValueError(f"no native vector env for {env_id!r} with these arguments (rlzoo has one for "
                             "CartPole; Atari: make_atari_env; no wrapper_class/vec_env_kwargs/info_keywords)")
        return None
    assert spec is not None  # a native class is only found for a registered id
    kwargs = dict(env_kwargs)
    if cls is native.CartPoleNativeVecEnv and spec.max_episode_steps is not None:
        kwargs.setdefault("max_episode_steps", spec.max_episode_steps)
    return cls(n_envs, **common, **kwargs)


def make_vec_env(
    env_id: str | Callable[..., gym.Env],
    n_envs: int = 1,
    seed: int | None = None,
    start_index: int = 0,
    monitor_dir: str | os.PathLike | None = None,
    wrapper_class: Callable[..., gym.Env] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: type[VectorEnv] | str | None = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """Create ``n_envs`` copies of an environment, each wrapped in :class:`Monitor` then in
    ``wrapper_class``, inside a vector env (default :class:`DummyVecEnv`).

    :param env_id: registered id (``"CartPole-v1"``, ``"module:EnvId"``) or a function returning an env
    :param n_envs: number of sub-environments
    :param seed: if given, sub-env ``i`` is reset with ``seed + start_index + i`` and its action space
        seeded the same way, so later ``reset()`` calls (without seed) are reproducible
    :param start_index: rank of the first sub-environment (seed offset and monitor file name)
    :param monitor_dir: folder of the ``<rank>.monitor.csv`` files (None: no files)
    :param wrapper_class: ``wrapper_class(env, **wrapper_kwargs)`` applied on top of the Monitor
    :param env_kwargs: keyword arguments of ``gym.make`` / of the env factory
    :param vec_env_cls: a vector env class, or "auto" (default: rlzoo's native vector env when the env
        has one that gives the Python stack's observations, e.g. CartPole; else DummyVecEnv), "native"
        (error if none), "envpool" (EnvPool's C++ pool; other RNG), "dummy" or "subproc"
    :param vec_env_kwargs: keyword arguments of the vector env class
    :param monitor_kwargs: keyword arguments of :class:`Monitor`
    :param wrapper_kwargs: keyword arguments of ``wrapper_class``
    """
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    env_kwargs = dict(env_kwargs or {})
    monitor_kwargs = dict(monitor_kwargs or {})
    wrapper_kwargs = dict(wrapper_kwargs or {})
    vec_cls: Callable[..., VectorEnv] | str = _resolve_vec_env_cls(vec_env_cls)
    if isinstance(env_id, str):
        get_env_spec(env_id)  # fail early, in this process, with a one-line message
    elif isinstance(env_id, gym.Env):
        raise TypeError("make_vec_env needs an env id or a function creating an env, not an env instance")
    elif not callable(env_id):
        raise TypeError(f"env_id must be a string or a callable, got {type(env_id).__name__}")
    if monitor_dir is not None:
        monitor_dir = os.fspath(monitor_dir)
        os.makedirs(monitor_dir, exist_ok=True)
    if isinstance(vec_cls, str):
        native_venv = _make_native(vec_cls, env_id, n_envs, seed, start_index, monitor_dir, wrapper_class,
                                   env_kwargs, vec_env_kwargs, monitor_kwargs)
        if native_venv is not None:
            if seed is not None:
                native_venv.reset(seed=seed + start_index)
                native_venv.action_space.seed(seed + start_index)
            return native_venv
        vec_cls = DummyVecEnv

    def make_env(rank: int) -> Callable[[], gym.Env]:
        def _init() -> gym.Env:
            if isinstance(env_id, str):
                get_env_spec(env_id)  # registers the env's module in a fresh worker process
                env = gym.make(env_id, **env_kwargs)
            else:
                env = env_id(**env_kwargs)
            if seed is not None:
                env.action_space.seed(seed + rank)
            path = os.path.join(monitor_dir, str(rank)) if monitor_dir is not None else None
            env = Monitor(env, filename=path, **monitor_kwargs)
            if wrapper_class is not None:
                env = wrapper_class(env, **wrapper_kwargs)
            return env

        return _init

    venv = vec_cls([make_env(start_index + i) for i in range(n_envs)], **(vec_env_kwargs or {}))
    if seed is not None:
        venv.reset(seed=seed + start_index)
        venv.action_space.seed(seed + start_index)
    return venv
