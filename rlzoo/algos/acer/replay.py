"""Replay memory of whole on-policy segments for ACER (Wang et al. 2016, Section 3 and Alg. 1).

ACER replays trajectories, not single transitions: each entry is one segment of ``n_steps`` steps
from every one of the ``n_envs`` environments, with the behaviour policy's statistics ``mu``
(probabilities of every action, or Gaussian mean and standard deviation) needed for the importance
ratios. ``buffer_size`` counts steps per environment, like the original implementation, so the
memory holds ``buffer_size // n_steps`` segments.

Frame-stacked image observations are stored once: a segment keeps the ``n_stack`` frames of its
first observation and then only the newest frame of each following observation; the stacks are
rebuilt on sampling, zeroing the frames that precede an episode start (what ``VecFrameStack`` does
on reset). The first segments added are checked against the original observations and the memory
falls back to storing whole observations if the rebuilt stacks ever differ.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from gymnasium import spaces

from rlzoo.fileio import atomic_path

__all__ = ["SegmentReplayMemory"]


class _FullObs:
    """Observations of every step stored as they are: ``[segments, n_steps + 1, n_envs, *shape]``."""

    def __init__(self, n_segments: int, n_steps: int, n_envs: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.data = np.zeros((n_segments, n_steps + 1, n_envs, *shape), dtype=dtype)

    def write(self, slot: int, obs: np.ndarray) -> None:
        self.data[slot] = obs

    def read(self, slot: int, dones: np.ndarray) -> np.ndarray:
        return self.data[slot].copy()


class _StackedFrames:
    """Frame-stacked observations with each frame stored once (see the module docstring)."""

    def __init__(self, n_segments: int, n_steps: int, n_envs: int, shape: tuple[int, ...], dtype: np.dtype,
                 n_stack: int, stack_axis: int) -> None:
        self.axis = stack_axis % len(shape)
        if shape[self.axis] % n_stack != 0:
            raise ValueError(f"observation axis {self.axis} of size {shape[self.axis]} "
                             f"is not a stack of {n_stack} frames")
        self.n_stack, self.shape = n_stack, shape
        self.channels = shape[self.axis] // n_stack
        frame_shape = list(shape)
        frame_shape[self.axis] = self.channels
        # n_stack frames of the first observation, then the newest frame of the n_steps others.
        self.data = np.zeros((n_segments, n_stack + n_steps, n_envs, *frame_shape), dtype=dtype)

    def _split(self, obs: np.ndarray) -> np.ndarray:
        """``[..., n_stack * C, ...]`` -> ``[n_stack, ..., C, ...]`` (oldest frame first)."""
        lead = obs.ndim - len(self.shape)
        a = lead + self.axis
        split = obs.reshape(*obs.shape[:a], self.n_stack, self.channels, *obs.shape[a + 1:])
        return np.moveaxis(split, a, 0)

    def write(self, slot: int, obs: np.ndarray) -> None:
        self.data[slot, : self.n_stack] = self._split(obs[0])
        self.data[slot, self.n_stack:] = self._split(obs[1:])[-1]

    def read(self, slot: int, dones: np.ndarray) -> np.ndarray:
        n_obs, n_envs = dones.shape[0] + 1, dones.shape[1]
        # last_start[t]: index of the latest observation <= t that began an episode inside the segment.
        t_idx = np.arange(n_obs)[:, None]
        starts = np.zeros((n_obs, n_envs), dtype=bool)
        starts[1:] = dones
        last_start = np.maximum.accumulate(np.where(starts, t_idx, -self.n_stack), axis=0)
        # Frame k of observation t is the newest frame of observation t - (n_stack - 1 - k):
        # it is kept only if that observation belongs to the same episode as t.
        src = t_idx[:, :, None] - (self.n_stack - 1 - np.arange(self.n_stack))
        valid = (src >= last_start[:, :, None]).astype(self.data.dtype)  # [T+1, N, n_stack]
        window = np.lib.stride_tricks.sliding_window_view(self.data[slot], self.n_stack, axis=0)
        valid = valid.reshape(n_obs, n_envs, *([1] * len(self.shape)), self.n_stack)
        stacked = np.moveaxis(window * valid, -1, 2 + self.axis)  # [T+1, N, ..., n_stack, C, ...]
        return stacked.reshape(n_obs, n_envs, *self.shape)


_ObsStore = _FullObs | _StackedFrames


def array_shape_dtype(space: spaces.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an observation space that stores arrays (not Dict/Tuple)."""
    if space.shape is None or space.dtype is None:
        raise ValueError(f"ACER cannot store observations of {space}: no array shape/dtype")
    return space.shape, space.dtype


class SegmentReplayMemory:
    """A ring of ACER segments, each ``n_steps`` steps from ``n_envs`` environments.

    :param buffer_size: capacity in steps per environment (``buffer_size // n_steps`` segments).
    :param n_steps: segment length.
    :param n_envs: number of environments.
    :param observation_space: observation space (``Dict`` spaces store each key separately).
    :param action_space: action space.
    :param stat_dim: size of the behaviour statistics ``mu`` stored per step (``n_actions`` for a
        categorical policy, ``2 * action_dim`` for a Gaussian: mean then standard deviation).
    :param n_stack: frames stacked in the observations (``VecFrameStack``); ``1`` stores them whole.
    :param stack_axis: axis of the observation along which frames are stacked.
    """

    def __init__(self, buffer_size: int, n_steps: int, n_envs: int, observation_space: spaces.Space,
                 action_space: spaces.Space, stat_dim: int, n_stack: int = 1, stack_axis: int = -1) -> None:
        if buffer_size < n_steps:
            raise ValueError(f"buffer_size ({buffer_size}) must be at least n_steps ({n_steps})")
        self.n_segments = buffer_size // n_steps
        self.n_steps, self.n_envs, self.stat_dim = n_steps, n_envs, stat_dim
        self.observation_space, self.n_stack, self.stack_axis = observation_space, n_stack, stack_axis
        self.pos, self.n_filled = 0, 0
        self._checked = False  # whether a segment with an episode start was verified after stacking
        self.obs = self._make_obs_stores(n_stack)
        s, t, n = self.n_segments, n_steps, n_envs
        act_dtype = np.int64 if isinstance(action_space, spaces.Discrete) else action_space.dtype
        act_shape: tuple[int, ...] = () if isinstance(action_space, spaces.Discrete) else (action_space.shape or ())
        self.actions = np.zeros((s, t, n, *act_shape), dtype=act_dtype)
        self.rewards = np.zeros((s, t, n), dtype=np.float32)
        self.terminated = np.zeros((s, t, n), dtype=bool)
        self.truncated = np.zeros((s, t, n), dtype=bool)
        self.final_values = np.zeros((s, t, n), dtype=np.float32)
        self.mu = np.zeros((s, t, n, stat_dim), dtype=np.float32)

    def _make_obs_stores(self, n_stack: int) -> dict[str | None, _ObsStore]:
        args = (self.n_segments, self.n_steps, self.n_envs)
        if isinstance(self.observation_space, spaces.Dict):
            return {k: _FullObs(*args, *array_shape_dtype(sp)) for k, sp in self.observation_space.spaces.items()}
        shape, dtype = array_shape_dtype(self.observation_space)
        if n_stack > 1:
            return {None: _StackedFrames(*args, shape, dtype, n_stack, self.stack_axis)}
        return {None: _FullObs(*args, shape, dtype)}

    @property
    def nbytes(self) -> int:
        """Memory held by the stored arrays, in bytes."""
        arrays = [s.data for s in self.obs.values()]
        arrays += [self.actions, self.rewards, self.terminated, self.truncated, self.final_values, self.mu]
        return int(sum(a.nbytes for a in arrays))

    def __len__(self) -> int:
        """Number of segments stored."""
        return self.n_filled

    def has_at_least(self, n_steps: int) -> bool:
        """Whether ``n_steps`` steps per environment (``replay_start``) are stored."""
        return self.n_filled >= n_steps // self.n_steps

    def add(self, obs: np.ndarray | dict[str, np.ndarray], actions: np.ndarray, rewards: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray, final_values: np.ndarray, mu: np.ndarray) -> None:
        """Store one segment.

        :param obs: ``[n_steps + 1, n_envs, *obs_shape]`` observations, the last one following the segment.
        :param actions: ``[n_steps, n_envs, ...]``.
        :param rewards, terminated, truncated: ``[n_steps, n_envs]``.
        :param final_values: ``[n_steps, n_envs]`` value of the final observation of truncated episodes.
        :param mu: ``[n_steps, n_envs, stat_dim]`` behaviour policy statistics.
        """
        slot = self.pos
        dones = np.logical_or(terminated, truncated)
        obs_dict: dict[str | None, np.ndarray] = (
            {k: v for k, v in obs.items()} if isinstance(obs, dict) else {None: obs})
        for key, store in self.obs.items():
            store.write(slot, obs_dict[key])
        self.actions[slot] = actions.reshape(self.actions.shape[1:])
        self.rewards[slot], self.final_values[slot], self.mu[slot] = rewards, final_values, mu
        self.terminated[slot], self.truncated[slot] = terminated, truncated
        if not self._checked and isinstance(self.obs.get(None), _StackedFrames):
            self._verify(slot, obs_dict[None], dones)
        self.pos = (self.pos + 1) % self.n_segments
        self.n_filled = min(self.n_filled + 1, self.n_segments)

    def _verify(self, slot: int, obs: np.ndarray, dones: np.ndarray) -> None:
        """Check that the stored frames rebuild ``obs``; otherwise store whole observations from now on."""
        if np.array_equal(self.obs[None].read(slot, dones), obs):
            # Once a segment with an episode start inside the stacking window has passed, trust it.
            self._checked = bool(dones.any())
            return
        warnings.warn("frame-stacked observations could not be rebuilt from single frames; "
                      "the ACER replay memory stores whole observations instead", stacklevel=3)
        old, filled = self.obs[None], self.n_filled
        self.obs = self._make_obs_stores(1)
        self.n_stack = 1
        for s in range(filled):
            if s != slot:
                self.obs[None].write(s, old.read(s, np.logical_or(self.terminated[s], self.truncated[s])))
        self.obs[None].write(slot, obs)
        self._checked = True

    def get(self, slot: int) -> dict[str, Any]:
        """The segment in ``slot`` as a dict of arrays (``obs`` is a dict for ``Dict`` spaces)."""
        dones = np.logical_or(self.terminated[slot], self.truncated[slot])
        obs = {k: s.read(slot, dones) for k, s in self.obs.items()}
        return {
            "obs": obs[None] if None in obs else obs,
            "actions": self.actions[slot].copy(),
            "rewards": self.rewards[slot].copy(),
            "terminated": self.terminated[slot].copy(),
            "truncated": self.truncated[slot].copy(),
            "final_values": self.final_values[slot].copy(),
            "mu": self.mu[slot].copy(),
        }

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A stored segment drawn uniformly at random."""
        if self.n_filled == 0:
            raise ValueError("cannot sample from an empty replay memory")
        return self.get(int(rng.integers(self.n_filled)))

    # ------------------------------------------------------------------ saving (no pickle)
    def state_dict(self) -> dict[str, np.ndarray]:
        """All arrays and counters, as plain numpy arrays."""
        state = {f"obs.{k}" if k is not None else "obs": s.data for k, s in self.obs.items()}
        state.update(actions=self.actions, rewards=self.rewards, terminated=self.terminated,
                     truncated=self.truncated, final_values=self.final_values, mu=self.mu,
                     counters=np.array([self.pos, self.n_filled, int(self._checked), self.n_stack], dtype=np.int64))
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state_dict` (shapes must match this memory's settings)."""
        pos, filled, checked, n_stack = (int(x) for x in state["counters"])
        if n_stack != self.n_stack:
            self.obs, self.n_stack = self._make_obs_stores(n_stack), n_stack
        for k, s in self.obs.items():
            name = f"obs.{k}" if k is not None else "obs"
            if name not in state or state[name].shape != s.data.shape:
                raise ValueError(f"replay memory file does not match this memory (array {name!r})")
            s.data[...] = state[name]
        for name in ("actions", "rewards", "terminated", "truncated", "final_values", "mu"):
            target = getattr(self, name)
            if state[name].shape != target.shape:
                raise ValueError(f"replay memory file does not match this memory (array {name!r})")
            target[...] = state[name]
        self.pos, self.n_filled, self._checked = pos, filled, bool(checked)

    def save(self, path: str | os.PathLike) -> str:
        """Write the memory to ``path`` (``.npz`` added when missing; numpy arrays only) atomically."""
        path = os.fspath(path)
        path = path if path.endswith(".npz") else path + ".npz"
        with atomic_path(path, suffix=".npz") as tmp:
            # numpy's stub: a ``**`` dict could also fill savez's bool ``allow_pickle`` parameter
            np.savez(tmp, **self.state_dict())  # type: ignore[arg-type]
        return path

    def load(self, path: str | os.PathLike) -> None:
        """Read a memory written by :meth:`save` into this one (same settings).

        Every array's declared ``.npy`` shape and dtype must be this memory's before anything is read
        (``allow_pickle=False``); a bad file raises a ``ModelFileError`` (a ``ValueError``).
        """
        from rlzoo.common.registry import ModelFileError
        from rlzoo.common.safe_io import expect_arrays, read_npz

        path = os.fspath(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        where = f"ACER replay memory {path}"

        def counters_only(name: str, shape: tuple, dtype: np.dtype) -> None:
            if name == "counters" and (shape != (4,) or dtype != np.int64):
                raise ModelFileError(f"{where}: array 'counters' has shape {shape} / {dtype}")

        head = read_npz(path, where, counters_only, only=["counters"], what="ACER replay memory file")
        if "counters" not in head:
            raise ModelFileError(f"{where}: missing array 'counters'")
        pos, filled, checked, n_stack = (int(x) for x in head["counters"])
        if not (0 <= pos < self.n_segments and 0 <= filled <= self.n_segments and checked in (0, 1)
                and 1 <= n_stack <= 64):
            raise ModelFileError(f"{where}: counters {head['counters'].tolist()} do not fit a memory of "
                                 f"{self.n_segments} segments")
        try:
            stores = self.obs if n_stack == self.n_stack else self._make_obs_stores(n_stack)
        except ValueError as e:
            raise ModelFileError(f"{where}: {n_stack} stacked frames do not fit the observations ({e})") from None
        spec = {f"obs.{k}" if k is not None else "obs": (st.data.shape, st.data.dtype) for k, st in stores.items()}
        spec.update({name: (arr.shape, arr.dtype) for name, arr in self.state_dict().items()
                     if not name.startswith("obs")})
        state = read_npz(path, where, expect_arrays(spec, where), what="ACER replay memory file")
        missing = sorted(set(spec) - set(state))
        if missing:
            raise ModelFileError(f"{where}: missing array {missing[0]!r}")
        self.load_state_dict(state)
