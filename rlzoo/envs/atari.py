"""Standard Atari 2600 preprocessing (Mnih et al. 2015; Machado et al. 2018) and ``make_atari_env``.

:class:`AtariWrapper` = gymnasium's ``AtariPreprocessing`` (no-op reset, frame skip with max-pool
of the last two frames, 84x84 grayscale) + episodic life + fire reset + reward clipping:

    raw env (frameskip=1) -> [Monitor] -> AtariPreprocessing -> EpisodicLife -> FireReset -> ClipReward
"""

from __future__ import annotations

import os
from typing import Any, Protocol, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.wrappers import AtariPreprocessing

from rlzoo.envs.make import get_env_spec, make_vec_env, register_ale

__all__ = ["AtariWrapper", "ClipRewardEnv", "EpisodicLifeEnv", "FireResetEnv", "is_atari_env_id", "make_atari_env"]


class _ALEInterface(Protocol):
    def lives(self) -> int: ...


class _ALEEnv(Protocol):
    """The unwrapped ale_py ``AtariEnv`` (ale_py ships no type information)."""

    ale: _ALEInterface

    def get_action_meanings(self) -> list[str]: ...


def _ale_env(env: gym.Env) -> _ALEEnv:
    """The raw Atari environment under ``env``'s wrappers."""
    return cast(_ALEEnv, env.unwrapped)


class EpisodicLifeEnv(gym.Wrapper):
    """A lost life ends the episode for learning (``terminated=True``) but the game itself is only
    reset when it is really over (or when ``reset`` gets a seed); otherwise ``reset`` just takes a
    no-op step and the game goes on (Mnih et al. 2015)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = _ale_env(self.env).ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.game_over or kwargs.get("seed") is not None:
            obs, info = self.env.reset(**kwargs)
        else:  # only a life was lost: continue the same game
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = _ale_env(self.env).ale.lives()
        return obs, info


class FireResetEnv(gym.Wrapper):
    """Presses FIRE (then action 2) after every reset, for games that wait for it to start."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = _ale_env(env).get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireResetEnv needs a game whose action 1 is FIRE, got actions {meanings}")

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


class ClipRewardEnv(gym.RewardWrapper):
    """Clips the reward to {-1, 0, +1} by its sign."""

    def reward(self, reward: SupportsFloat) -> float:
        return float(np.sign(float(reward)))


def _has_fire(env: gym.Env) -> bool:
    meanings = _ale_env(env).get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


class AtariWrapper(gym.Wrapper):
    """The standard Atari preprocessing, observations ``(screen_size, screen_size, 1)`` uint8.

    :param env: an ALE environment with ``frameskip=1`` (e.g. ``PongNoFrameskip-v4``)
    :param noop_max: at most this many random no-ops at reset (0: none)
    :param frame_skip: repeat each action this many frames, max-pool the last two
    :param screen_size: side of the square grayscale observation
    :param terminal_on_life_loss: a lost life ends the learning episode (the game continues)
    :param clip_reward: clip rewards to their sign
    """

    def __init__(self, env: gym.Env, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84,
                 terminal_on_life_loss: bool = True, clip_reward: bool = True) -> None:
        if not hasattr(env.unwrapped, "ale"):
            raise ValueError(f"AtariWrapper needs an ALE (Atari) environment, got {env.unwrapped}")
        if frame_skip > 1 and getattr(env.unwrapped, "_frameskip", 1) != 1:
            raise ValueError("AtariWrapper does its own frame skipping: create the env with frameskip=1 "
                             "(e.g. PongNoFrameskip-v4, or env_kwargs={'frameskip': 1})")
        wrapped: gym.Env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
                                              terminal_on_life_loss=False, grayscale_obs=True, grayscale_newaxis=True)
        if terminal_on_life_loss:
            wrapped = EpisodicLifeEnv(wrapped)
        if _has_fire(env):
            wrapped = FireResetEnv(wrapped)
        if clip_reward:
            wrapped = ClipRewardEnv(wrapped)
        super().__init__(wrapped)


def is_atari_env_id(env_id: str) -> bool:
    """True when ``env_id`` is registered with the ALE (``ale_py``) entry point."""
    try:
        spec = get_env_spec(env_id)
    except ValueError:
        return False
    entry = spec.entry_point
    module = entry if isinstance(entry, str) else getattr(entry, "__module__", "")
    return module.startswith("ale_py")


def make_atari_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    start_index: int = 0,
    monitor_dir: str | os.PathLike | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: type[VectorEnv] | str | None = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """:func:`make_vec_env` for Atari: each sub-env is ``AtariWrapper(Monitor(gym.make(env_id)))``,
    so the Monitor records real game scores (unclipped, whole games).

    Ids with built-in frame skipping (``ALE/Pong-v5``, ``PongDeterministic-v4``) are created with
    ``frameskip=1`` unless ``env_kwargs`` says otherwise, so that AtariWrapper's skip is the only one.

    ``vec_env_cls="native"`` runs ale-py's C++ ``AtariVectorEnv`` instead (:class:`AtariNativeVecEnv`,
    same wrapper_kwargs); "auto" (the default) keeps the Python stack, whose frames the C++ resize
    does not reproduce bit for bit.

    :param wrapper_kwargs: keyword arguments of :class:`AtariWrapper`
    (other parameters: see :func:`make_vec_env`)
    """
    register_ale()
    spec = get_env_spec(env_id)
    env_kwargs = dict(env_kwargs or {})
    if vec_env_cls == "native":
        return _make_native_atari(spec, n_envs, seed, start_index, monitor_dir, dict(wrapper_kwargs or {}),
                                  env_kwargs, vec_env_kwargs, monitor_kwargs)
    if vec_env_cls in (None, "auto"):
        vec_env_cls = "dummy"
    if spec.kwargs.get("frameskip", 1) != 1 and "frameskip" not in env_kwargs:
        env_kwargs["frameskip"] = 1
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, start_index=start_index, monitor_dir=monitor_dir,
                        wrapper_class=AtariWrapper, env_kwargs=env_kwargs, vec_env_cls=vec_env_cls,
                        vec_env_kwargs=vec_env_kwargs, monitor_kwargs=monitor_kwargs, wrapper_kwargs=wrapper_kwargs)


def _make_native_atari(spec: Any, n_envs: int, seed: int | None, start_index: int,
                       monitor_dir: str | os.PathLike | None, wrapper_kwargs: dict[str, Any],
                       env_kwargs: dict[str, Any], vec_env_kwargs: dict[str, Any] | None,
                       monitor_kwargs: dict[str, Any] | None) -> VectorEnv:
    from rlzoo.envs.native import AtariNativeVecEnv

    game = spec.kwargs.get("game")
    unknown = set(env_kwargs) - {"repeat_action_probability", "full_action_space", "frameskip"}
    if game is None or unknown or set(monitor_kwargs or {}) - {"override_existing"}:
        raise ValueError(f"no native Atari env for {spec.id!r} with env_kwargs {sorted(env_kwargs)} "
                         "(supported: repeat_action_probability, full_action_space)")
    sticky = env_kwargs.get("repeat_action_probability", spec.kwargs.get("repeat_action_probability", 0.0))
    ale_kwargs = {"repeat_action_probability": sticky,
                  "full_action_space": env_kwargs.get("full_action_space", spec.kwargs.get("full_action_space", False))}
    if monitor_dir is not None:
        os.makedirs(monitor_dir, exist_ok=True)
    venv = AtariNativeVecEnv(game, n_envs, spec=spec, monitor_dir=monitor_dir, start_index=start_index,
                             monitor_kwargs=monitor_kwargs, **wrapper_kwargs, **(vec_env_kwargs or {}), **ale_kwargs)
    if seed is not None:
        venv.reset(seed=seed + start_index)
        venv.action_space.seed(seed + start_index)
    return venv
