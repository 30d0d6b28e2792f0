"""Stack the last ``n_stack`` observations of each sub-environment (Mnih et al. 2015, "phi" of DQN)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from rlzoo.envs.vec_env import VecEnvWrapper, is_image_space, is_image_space_channels_first

__all__ = ["VecFrameStack"]


class _Stacker:
    """Preallocated stack of one Box observation stream, shape ``(num_envs, *stacked_shape)``."""

    def __init__(self, space: spaces.Box, num_envs: int, n_stack: int, channels_order: str | None) -> None:
        if channels_order is None:
            first = is_image_space(space) and is_image_space_channels_first(space)
            channels_order = "first" if first else "last"
        if channels_order not in ("first", "last"):
            raise ValueError(f"channels_order must be 'first', 'last' or None, got {channels_order!r}")
        if len(space.shape) == 0:
            raise ValueError("VecFrameStack cannot stack scalar observations (Box of shape ())")
        self.channels_first = channels_order == "first"
        axis = 0 if self.channels_first else -1
        self.channels = space.shape[axis]
        low = np.concatenate([space.low] * n_stack, axis=axis)
        high = np.concatenate([space.high] * n_stack, axis=axis)
        self.space = spaces.Box(low=low, high=high, dtype=space.dtype)
        self.buffer = np.zeros((num_envs, *self.space.shape), dtype=space.dtype)

    def _last(self, arr: np.ndarray) -> np.ndarray:
        """View of the newest frame of ``arr`` (a stacked batch or a single stacked obs)."""
        if not self.channels_first:
            return arr[..., -self.channels:]
        index = [slice(None)] * arr.ndim
        index[arr.ndim - self.buffer.ndim + 1] = slice(-self.channels, None)
        return arr[tuple(index)]

    def reset(self, obs: np.ndarray) -> np.ndarray:
        """Restart every stack from zeros plus ``obs`` as the newest frame."""
        self.buffer[...] = 0
        self._last(self.buffer)[...] = obs
        return self.buffer.copy()

    def step(self, obs: np.ndarray, done_idx: np.ndarray, finals: np.ndarray | None,
             key: str | None) -> np.ndarray:
        """Push ``obs``, restart finished stacks and write stacked final obs into ``finals``."""
        c, buf = self.channels, self.buffer
        # shift everything one frame towards the front (numpy handles the overlap), newest at the end
        if self.channels_first:
            buf[:, :-c] = buf[:, c:]
            buf[:, -c:] = obs
        else:
            buf[..., :-c] = buf[..., c:]
            buf[..., -c:] = obs
        for i in done_idx:
            assert finals is not None  # done_idx is only non-empty when the step reported final obs
            # the finished episode's stack ends with its final obs; the new one starts from zeros
            stacked_final = buf[i].copy()
            self._last(stacked_final)[...] = finals[i] if key is None else finals[i][key]
            if key is None:
                finals[i] = stacked_final
            else:
                finals[i][key] = stacked_final
            buf[i] = 0
            self._last(buf[i])[...] = obs[i]
        return buf.copy()


class VecFrameStack(VecEnvWrapper):
    """Stacks the last ``n_stack`` observations of every sub-environment.

    Channels-last images and flat vectors are stacked along the last axis, channels-first images
    along the first. The stack of a sub-environment restarts (zeros + first obs) at its episode end,
    and ``infos["final_obs"]`` holds the stacked observation that ends the finished episode.
    Dict observations are stacked key by key.

    :param venv: the vector environment
    :param n_stack: number of observations to stack
    :param channels_order: "last", "first", or None to guess (channels-first only for images whose
        first axis is the smallest); for Dict observations also a dict ``{key: order}``
    """

    def __init__(self, venv: VectorEnv, n_stack: int,
                 channels_order: str | dict[str, str | None] | None = None) -> None:
        super().__init__(venv)
        if n_stack < 1:
            raise ValueError(f"n_stack must be >= 1, got {n_stack}")
        self.n_stack = n_stack
        space, n = venv.single_observation_space, venv.num_envs
        single: spaces.Space[Any]
        if isinstance(space, spaces.Box):
            if isinstance(channels_order, dict):
                raise ValueError("channels_order as a dict only applies to Dict observation spaces")
            self.stackers: dict[str | None, _Stacker] = {None: _Stacker(space, n, n_stack, channels_order)}
            single = self.stackers[None].space
        elif isinstance(space, spaces.Dict):
            by_key: dict[str, _Stacker] = {}
            for key, sub in space.spaces.items():
                if not isinstance(sub, spaces.Box):
                    raise ValueError(f"VecFrameStack: observation {key!r} is {sub}, only Box entries can be stacked")
                order = channels_order.get(key) if isinstance(channels_order, dict) else channels_order
                by_key[key] = _Stacker(sub, n, n_stack, order)
            self.stackers = {k: s for k, s in by_key.items()}
            single = spaces.Dict({k: s.space for k, s in by_key.items()})
        else:
            raise ValueError(f"VecFrameStack needs a Box or Dict observation space, got {space}")
        self.single_observation_space = single
        self.observation_space = batch_space(single, n)

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset all envs and start every stack from zeros plus the first observation."""
        # gymnasium types ``seed`` as int | None, but its vector envs also accept one seed per env
        obs, infos = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        if None in self.stackers:
            return self.stackers[None].reset(obs), infos
        return {k: s.reset(obs[k]) for k, s in self.stackers.items()}, infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step and return the stacked observations."""
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        finals = infos.get("final_obs")
        done_idx = np.flatnonzero(infos["_final_obs"]) if finals is not None else np.empty(0, dtype=np.intp)
        if None in self.stackers:
            return self.stackers[None].step(obs, done_idx, finals, None), rewards, terminated, truncated, infos
        for i in done_idx:  # fresh dicts: do not mutate the sub-environment's own final obs
            assert finals is not None
            finals[i] = dict(finals[i])
        stacked = {k: s.step(obs[k], done_idx, finals, k) for k, s in self.stackers.items()}
        return stacked, rewards, terminated, truncated, infos
