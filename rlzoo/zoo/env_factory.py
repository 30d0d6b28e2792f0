"""The zoo's vector envs: make one from a configuration (Monitor, Atari/user wrappers, frame stack),
wrap it in VecNormalize, check that an env builds, make the configured action noise.

Used by ``rlzoo train`` (:mod:`rlzoo.zoo.experiment`), ``enjoy``, ``record-gif`` and ``optimize``.
"""
from __future__ import annotations

import functools
import signal
from pathlib import Path
from typing import Any

import gymnasium as gym

from rlzoo.zoo.config import ZooConfig
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.resolve import is_atari


def _make_registered(env_id: str, modules: tuple[str, ...], **kwargs: Any) -> gym.Env:
    """``gym.make`` after importing the modules that register ``env_id`` (also in subprocess workers)."""
    import importlib

    for module in modules:
        importlib.import_module(module)
    return gym.make(env_id, **kwargs)


def _wrap_env(env: gym.Env, atari: bool, wrappers: tuple[tuple[Any, dict[str, Any]], ...],
              ignore_sigint: bool) -> gym.Env:
    """Wrappers applied on top of each sub-env's Monitor: Atari preprocessing, then the user's."""
    if ignore_sigint:  # subprocess workers: Ctrl-C goes to the whole process group; the parent handles it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if atari:
        from rlzoo.envs import AtariWrapper

        env = AtariWrapper(env)
    for wrapper_cls, kwargs in wrappers:
        env = wrapper_cls(env, **kwargs)
    return env


def make_env(config: ZooConfig, n_envs: int, seed: int | None, vec_env: str = "dummy",
             monitor_dir: Path | None = None, start_index: int = 0, render_mode: str | None = None,
             env_kwargs: dict[str, Any] | None = None) -> Any:
    """The vector env of ``config`` without normalization: Monitor, Atari/user wrappers, frame stack."""
    from rlzoo.envs import VecFrameStack, get_env_spec, make_vec_env

    atari = is_atari(config.env_id)
    kwargs = {**config.env_kwargs, **(env_kwargs or {})}
    if atari and get_env_spec(config.env_id).kwargs.get("frameskip", 1) != 1:
        kwargs.setdefault("frameskip", 1)  # AtariWrapper skips frames itself
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    wrappers = tuple(config.env_wrappers())
    # no per-env wrapper when there is nothing to wrap, so that "auto"/"native" can use a native vector env
    wrap = (functools.partial(_wrap_env, atari=atari, wrappers=wrappers, ignore_sigint=vec_env == "subproc")
            if atari or wrappers or vec_env == "subproc" else None)
    try:
        if atari and vec_env == "native":
            from rlzoo.envs import make_atari_env

            if wrappers or config.env_modules:
                raise ValueError("--vec-env native cannot apply env_wrapper/gym_packages to Atari envs")
            kwargs.pop("frameskip", None)
            venv = make_atari_env(config.env_id, n_envs=n_envs, seed=seed, start_index=start_index,
                                  monitor_dir=monitor_dir, env_kwargs=kwargs, vec_env_cls="native")
        else:
            env_fn = (functools.partial(_make_registered, config.env_id, tuple(config.env_modules))
                      if config.env_modules else config.env_id)
            venv = make_vec_env(env_fn, n_envs=n_envs, seed=seed, start_index=start_index, monitor_dir=monitor_dir,
                                wrapper_class=wrap, env_kwargs=kwargs, vec_env_cls=vec_env)
    except TypeError as e:  # a wrong env_kwargs name surfaces as TypeError from the env constructor
        raise ZooError(f"cannot create {config.env_id}: {e}") from None
    except ValueError as e:  # --vec-env native/envpool for an env without one
        raise ZooError(f"cannot create {config.env_id} with --vec-env {vec_env}: {e}") from None
    if config.frame_stack:
        venv = VecFrameStack(venv, config.frame_stack)
    return venv


def normalize_env(venv: Any, config: ZooConfig, stats: Path | None = None, training: bool = True) -> Any:
    """Wrap ``venv`` in VecNormalize (new, or with saved statistics); evaluation mode when not training."""
    if config.normalize is None:
        return venv
    from rlzoo.envs import VecNormalize

    if stats is not None:
        venv = VecNormalize.load(stats, venv)
    else:
        venv = VecNormalize(venv, **config.normalize)
    venv.training = training
    if not training:
        venv.norm_reward = False
    return venv

def make_action_noise(noise: tuple[str, float] | None, action_space: Any) -> Any:
    """``noise_type``/``noise_std`` -> an action-noise object for the action space (None without)."""
    if noise is None:
        return None
    import numpy as np

    from rlzoo.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    kind, std = noise
    shape = action_space.shape
    if not shape:
        raise ZooError(f"noise_type needs a Box action space, got {action_space}")
    mean, sigma = np.zeros(shape, dtype=np.float64), np.full(shape, std, dtype=np.float64)
    return NormalActionNoise(mean, sigma) if kind == "normal" else OrnsteinUhlenbeckActionNoise(mean, sigma)


def check_env_builds(config: ZooConfig, where: str, env_kwargs: dict[str, Any] | None = None) -> None:
    """Build the env once (one copy, no Monitor) so that arguments it rejects fail before anything is written."""
    try:
        env = make_env(config, 1, 0, "dummy", None, env_kwargs=env_kwargs)
    except ZooError as e:
        raise ZooError(f"{where}: {e}") from None
    except Exception as e:  # noqa: BLE001 - whatever the env constructor raises is a bad argument
        raise ZooError(f"{where}: cannot create {config.env_id} with env_kwargs {config.env_kwargs}: "
                       f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    close_envs([env])


def close_envs(envs: list[Any]) -> None:
    """Close each env, ignoring errors (closing must not hide the result of a run)."""
    for env in envs:
        try:
            env.close()
        except Exception:  # closing must not hide the result of the run
            pass
