"""Replay buffers for the off-policy algorithms (DQN, DDPG, TD3, SAC).

* :class:`ReplayBuffer` — a ring of preallocated numpy arrays, ``buffer_size // n_envs`` rows of
  ``n_envs`` transitions. With ``optimize_memory_usage=True`` (the default for image
  observations in rlzoo's off-policy algorithms) observations are kept as single *frames*: each
  step stores only the newest frame of its next observation, an episode start stores its whole
  (stacked) first observation once, and stacked ``obs`` / ``next_obs`` are rebuilt by index at
  sampling time. 100k frame-stacked Atari transitions take ~0.9 GB instead of ~5.6 GB.
* :class:`~rlzoo.common.prioritized_replay.PrioritizedReplayBuffer` (in
  :mod:`rlzoo.common.prioritized_replay`) — proportional prioritized replay (Schaul et al. 2016,
  §3.3) on sum / min segment trees whose sampling and updates are vectorized over the batch.

Buffers save to ``.npz`` files (numpy arrays only, read with ``allow_pickle=False``) written
atomically; a buffer not yet full saves only its filled rows (and frames) and is restored at its
full size. ``dones`` hold *terminations* only: the caller passes the final observation of a
truncated episode as ``next_obs`` so that the target bootstraps from it.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from rlzoo.common.utils import space_shape
from rlzoo.fileio import atomic_path

TensorDict = dict[str, torch.Tensor]
Obs = np.ndarray | dict[str, np.ndarray]


class ReplayBufferSamples(NamedTuple):
    """A batch of transitions as torch tensors (``dones`` = terminated, as float)."""

    observations: torch.Tensor | TensorDict
    actions: torch.Tensor
    next_observations: torch.Tensor | TensorDict
    dones: torch.Tensor
    rewards: torch.Tensor


class PrioritizedReplayBufferSamples(NamedTuple):
    """A prioritized batch: also importance-sampling ``weights`` and buffer ``indices``."""

    observations: torch.Tensor | TensorDict
    actions: torch.Tensor
    next_observations: torch.Tensor | TensorDict
    dones: torch.Tensor
    rewards: torch.Tensor
    weights: torch.Tensor
    indices: np.ndarray


def _storage_dtype(space: spaces.Space) -> np.dtype:
    if isinstance(space, spaces.Box):
        return np.dtype(np.float32) if np.issubdtype(space.dtype, np.floating) else space.dtype
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return np.dtype(np.int64)
    if isinstance(space, spaces.MultiBinary):
        return np.dtype(np.float32)
    raise ValueError(f"replay buffers support Box, Discrete, MultiDiscrete, MultiBinary and Dict spaces, not {space}")


def _action_shape(space: spaces.Space) -> tuple:
    if isinstance(space, spaces.Discrete):
        return ()
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        return tuple(space.shape)
    raise ValueError(f"unsupported action space {space}")


class ReplayBuffer:
    """Uniform experience replay in preallocated numpy arrays.

    :param buffer_size: number of transitions kept (over all envs)
    :param observation_space: a single env's observation space (Box, Discrete, ... or Dict)
    :param action_space: a single env's action space
    :param n_envs: transitions added per :meth:`add` call (one per env)
    :param device: where :meth:`sample` puts the tensors
    :param optimize_memory_usage: store observations as single frames (Box observations only)
    :param frame_stack: number of frames stacked in one observation (frame storage only)
    :param stack_axis: axis of the observation along which frames are stacked
        (``-1`` for channels-last ``(84, 84, 4)``, ``0`` for channels-first ``(4, 84, 84)``)
    :param frame_margin: extra frame slots, as a fraction of ``buffer_size``, for the first
        observation of every episode; when episodes are very short the oldest transitions are
        dropped before ``buffer_size`` is reached
    :param seed: seed of the buffer's sampling generator (None: drawn from numpy's global state)
    """

    # observation storage (``(rows, n_envs, *shape)`` arrays, a dict of them for Dict spaces); unused
    # with frame storage
    observations: Obs
    next_observations: Obs

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 n_envs: int = 1, device: str | torch.device = "cpu", optimize_memory_usage: bool = False,
                 frame_stack: int = 1, stack_axis: int = -1, frame_margin: float = 0.25,
                 seed: int | None = None) -> None:
        if int(buffer_size) < 1 or int(n_envs) < 1:
            raise ValueError(f"buffer_size and n_envs must be >= 1, got {buffer_size} and {n_envs}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.n_envs = int(n_envs)
        self.buffer_size = max(int(buffer_size) // self.n_envs, 1)  # rows of n_envs transitions
        self.device = torch.device(device)
        self.optimize_memory_usage = bool(optimize_memory_usage)
        self.frame_stack = int(frame_stack)
        self.frame_margin = float(frame_margin)
        self.rng = np.random.default_rng(seed if seed is not None else np.random.randint(2**31))
        self.action_shape = _action_shape(action_space)
        self.action_dtype = _storage_dtype(action_space)
        if self.frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
        if self.optimize_memory_usage:
            if not isinstance(observation_space, spaces.Box):
                raise ValueError("optimize_memory_usage (frame storage) needs a Box observation space, "
                                 f"not {type(observation_space).__name__}")
            shape = observation_space.shape
            self.stack_axis = stack_axis % len(shape)
            if shape[self.stack_axis] % self.frame_stack:
                raise ValueError(f"observation axis {stack_axis} of size {shape[self.stack_axis]} cannot hold "
                                 f"{self.frame_stack} stacked frames")
            self.frame_channels = shape[self.stack_axis] // self.frame_stack
            self.frame_shape = shape[:self.stack_axis] + (self.frame_channels,) + shape[self.stack_axis + 1:]
            self.n_frames = self.buffer_size + int(np.ceil(self.buffer_size * self.frame_margin)) + self.frame_stack + 1
        else:
            self.stack_axis = stack_axis
        self._allocate()

    # ------------------------------------------------------------------ storage
    def _obs_array(self, space: spaces.Space, rows: int) -> np.ndarray:
        return np.zeros((rows, self.n_envs, *space_shape(space)), dtype=_storage_dtype(space))

    def _allocate(self) -> None:
        rows, n = self.buffer_size, self.n_envs
        if self.optimize_memory_usage:
            self.frames = np.zeros((self.n_frames, n, *self.frame_shape), dtype=_storage_dtype(self.observation_space))
            self.frame_ptr = np.zeros((rows, n), dtype=np.int64)   # absolute index of next_obs' newest frame
            self.frames_written = np.zeros(n, dtype=np.int64)      # absolute frame counter per env
        elif isinstance(self.observation_space, spaces.Dict):
            self.observations = {k: self._obs_array(s, rows) for k, s in self.observation_space.spaces.items()}
            self.next_observations = {k: self._obs_array(s, rows) for k, s in self.observation_space.spaces.items()}
        else:
            self.observations = self._obs_array(self.observation_space, rows)
            self.next_observations = self._obs_array(self.observation_space, rows)
        self.actions = np.zeros((rows, n, *self.action_shape), dtype=self.action_dtype)
        self.rewards = np.zeros((rows, n), dtype=np.float32)
        self.dones = np.zeros((rows, n), dtype=np.float32)
        self.n_added = 0                          # rows added since creation (absolute)
        self.oldest = np.zeros(n, dtype=np.int64)  # absolute row of each env's oldest valid transition
        self.pos = 0
        self.full = False

    def reset(self) -> None:
        """Forget every stored transition."""
        self._allocate()

    def size(self) -> int:
        """Number of transitions that can be sampled."""
        return int(np.sum(self.n_added - self.oldest))

    def __len__(self) -> int:
        return self.size()

    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays."""
        return sum(a.nbytes for a in self._arrays().values())

    # ------------------------------------------------------------------ adding
    def add(self, obs: Obs, next_obs: Obs, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """Store one transition per env.

        ``next_obs`` must already be the *final* observation for envs whose episode ended in this
        step (``infos["final_obs"]``), and ``terminated`` excludes truncation, so that a time-limit
        truncation bootstraps from the final observation.
        """
        pos = self.pos
        self.actions[pos] = np.asarray(actions).reshape(self.n_envs, *self.action_shape)
        self.rewards[pos] = np.asarray(rewards).reshape(self.n_envs)
        self.dones[pos] = np.asarray(terminated).reshape(self.n_envs)
        if self.optimize_memory_usage:
            self._add_frames(np.asarray(obs), np.asarray(next_obs))
        else:
            _store_row(self.observations, obs, pos)
            _store_row(self.next_observations, next_obs, pos)
        self.n_added += 1
        self.pos = (pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0
        # the row just overwritten was the oldest of every env
        dropped = np.maximum(self.oldest, self.n_added - self.buffer_size) - self.oldest
        self.oldest += dropped
        if self.optimize_memory_usage:
            self._drop_overwritten_frames()

    def _split_frames(self, obs: np.ndarray) -> np.ndarray:
        """(n, *obs_shape) -> contiguous (n, frame_stack, *frame_shape) (one copy; the compares that
        follow then run on contiguous memory, much faster than on a strided view)."""
        ax = self.stack_axis
        shape = obs.shape[1:]
        obs = obs.reshape(obs.shape[0], *shape[:ax], self.frame_stack, self.frame_channels, *shape[ax + 1:])
        return np.ascontiguousarray(np.moveaxis(obs, 1 + ax, 1))

    def _add_frames(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        k, n_frames, envs = self.frame_stack, self.n_frames, np.arange(self.n_envs)
        obs_shape = space_shape(self.observation_space)
        obs = obs.reshape(self.n_envs, *obs_shape)
        next_obs = next_obs.reshape(self.n_envs, *obs_shape)
        obs_frames, next_frames = self._split_frames(obs), self._split_frames(next_obs)
        if k > 1 and not np.array_equal(obs_frames[:, 1:], next_frames[:, :-1]):
            raise ValueError(f"frame storage with frame_stack={k}: next_obs is not obs shifted by one frame "
                             "(wrong frame_stack / stack_axis for this env?)")
        # an env whose obs is not the stack of its last k stored frames starts anew (episode start):
        # store its whole first observation once
        last = (self.frames_written[:, None] + np.arange(-k, 0)) % n_frames
        stored = self.frames[last, envs[:, None]]
        start = self.frames_written < k
        start |= ~np.all((stored == obs_frames).reshape(self.n_envs, -1), axis=1)
        if start.any():
            idx = np.flatnonzero(start)
            slots = (self.frames_written[idx, None] + np.arange(k)) % n_frames
            self.frames[slots, idx[:, None]] = obs_frames[idx]
            self.frames_written[idx] += k
        self.frames[self.frames_written % n_frames, envs] = next_frames[:, -1]
        self.frame_ptr[self.pos] = self.frames_written
        self.frames_written += 1

    def _drop_overwritten_frames(self) -> np.ndarray:
        """Advance each env's oldest transition past those whose frames were overwritten.

        One add writes at most ``frame_stack + 1`` frames, so at most that many transitions per
        env lose a frame: checking the ``frame_stack + 2`` oldest is enough. Returns the flat
        indices of the transitions dropped (for the prioritized buffer).
        """
        k = self.frame_stack
        rows = self.oldest[:, None] + np.arange(k + 2)                    # (n_envs, k + 2) absolute rows
        exists = rows < self.n_added
        first_frame = self.frame_ptr[rows % self.buffer_size, np.arange(self.n_envs)[:, None]] - k
        lost = exists & (first_frame < (self.frames_written - self.n_frames)[:, None])
        n_lost = lost.sum(axis=1)
        if not n_lost.any():
            return np.empty(0, dtype=np.int64)
        dropped = (rows % self.buffer_size) * self.n_envs + np.arange(self.n_envs)[:, None]
        self.oldest += n_lost
        return dropped[lost]

    # ------------------------------------------------------------------ sampling
    def _sample_indices(self, batch_size: int) -> np.ndarray:
        """Uniform flat indices (row * n_envs + env) over the valid transitions."""
        counts = self.n_added - self.oldest
        total = int(counts.sum())
        if total == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        u = self.rng.integers(0, total, size=batch_size)
        ends = np.cumsum(counts)
        env = np.searchsorted(ends, u, side="right")
        row = self.oldest[env] + (u - (ends[env] - counts[env]))
        return (row % self.buffer_size) * self.n_envs + env

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples | PrioritizedReplayBufferSamples:
        """A uniform batch of ``batch_size`` transitions (with replacement).

        :param env: optional ``VecNormalize``-like object whose ``normalize_obs`` /
            ``normalize_reward`` are applied to the stored (raw) observations and rewards
        """
        return self._get_samples(self._sample_indices(batch_size), env)

    def _gather_obs(self, rows: np.ndarray, envs: np.ndarray) -> tuple:
        if self.optimize_memory_usage:
            k = self.frame_stack
            ptr = self.frame_ptr[rows, envs]
            window = self.frames[(ptr[:, None] + np.arange(-k, 1)) % self.n_frames, envs[:, None]]
            window = torch.from_numpy(window)  # (batch, k + 1, *frame_shape)
            return self._join_frames_torch(window[:, :k]), self._join_frames_torch(window[:, 1:])
        return _take_rows(self.observations, rows, envs), _take_rows(self.next_observations, rows, envs)

    def _join_frames_torch(self, frames: torch.Tensor) -> torch.Tensor:
        """(b, k, *frame_shape) -> (b, *obs_shape); a strided view when the frames have one channel,
        so that a channels-last stack costs no copy (the CNN permutes it back to channels-first)."""
        return frames.movedim(1, 1 + self.stack_axis).reshape(frames.shape[0], *space_shape(self.observation_space))

    def _to_torch(self, array: Any) -> Any:
        if isinstance(array, dict):
            return {k: self._to_torch(v) for k, v in array.items()}
        if isinstance(array, torch.Tensor):
            return array.to(self.device)
        return torch.from_numpy(array).to(self.device)

    def _get_samples(self, indices: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        rows, envs = np.divmod(indices, self.n_envs)
        obs, next_obs = self._gather_obs(rows, envs)
        rewards = self.rewards[rows, envs]
        if env is not None:
            if isinstance(obs, torch.Tensor):
                obs, next_obs = obs.numpy(), next_obs.numpy()
            obs, next_obs = env.normalize_obs(obs), env.normalize_obs(next_obs)
            rewards = env.normalize_reward(rewards).astype(np.float32)
        return ReplayBufferSamples(self._to_torch(obs), self._to_torch(self.actions[rows, envs]),
                                   self._to_torch(next_obs), self._to_torch(self.dones[rows, envs]),
                                   self._to_torch(rewards))

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "n_envs": self.n_envs, "buffer_size": self.buffer_size,
                "optimize_memory_usage": self.optimize_memory_usage, "frame_stack": self.frame_stack,
                "stack_axis": self.stack_axis, "n_added": self.n_added, "pos": self.pos, "full": self.full,
                "n_frames": getattr(self, "n_frames", 0), **self._saved_lengths()}

    def _saved_lengths(self) -> dict[str, int]:
        """How many leading rows (and frames) hold data: only those are saved."""
        rows = self.buffer_size if self.full else self.pos
        frames = 0
        if self.optimize_memory_usage:
            frames = min(int(self.frames_written.max(initial=0)), self.n_frames)
        return {"rows_saved": rows, "frames_saved": frames}

    def _leading_length(self, key: str, meta: dict[str, Any], saved: bool) -> int | None:
        """The first-axis length of array ``key`` for a buffer described by ``meta`` (as saved, or at
        full size); None for arrays of fixed shape."""
        if key in ("oldest", "frames_written"):
            return None
        if key == "frames":
            return meta["frames_saved"] if saved else meta["n_frames"]
        rows = meta["rows_saved"] if saved else meta["buffer_size"]
        return rows * self.n_envs if key == "priorities" else rows

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"actions": self.actions, "rewards": self.rewards, "dones": self.dones, "oldest": self.oldest}
        if self.optimize_memory_usage:
            arrays.update(frames=self.frames, frame_ptr=self.frame_ptr, frames_written=self.frames_written)
        else:
            arrays.update(_named_arrays("observations", self.observations))
            arrays.update(_named_arrays("next_observations", self.next_observations))
        return arrays

    def save(self, path: str) -> str:
        """Write the buffer to ``path`` (``.npz`` added when missing) atomically, without pickle."""
        path = os.fspath(path)
        path = path if path.endswith(".npz") else path + ".npz"
        meta = self._meta()
        arrays: dict[str, Any] = {"__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        for key, arr in self._arrays().items():
            n = self._leading_length(key, meta, saved=True)
            arrays[key] = arr if n is None else arr[:n]
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
        return path

    _META_TYPES: ClassVar[dict[str, type]] = {
        "class": str, "n_envs": int, "buffer_size": int, "optimize_memory_usage": bool, "frame_stack": int,
        "stack_axis": int, "n_added": int, "pos": int, "full": bool, "n_frames": int}

    @classmethod
    def _read_meta(cls, path: str) -> tuple[str, dict[str, Any]]:
        """``(path, meta)`` of a saved buffer: only its ``__meta__`` array is read; keys and types checked."""
        from rlzoo.common.registry import ModelFileError
        from rlzoo.common.safe_io import MAX_JSON_BYTES, load_json, read_npz

        path = os.fspath(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        if not os.path.isfile(path):
            raise ModelFileError(f"replay buffer file not found: {path}")
        where = f"replay buffer file {path}"

        def meta_only(name: str, shape: tuple, dtype: np.dtype) -> None:
            if name == "__meta__" and (dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_JSON_BYTES):
                raise ModelFileError(f"{where}: array '__meta__' has shape {shape} / {dtype}")

        head = read_npz(path, where, meta_only, only=["__meta__"], what="replay buffer file")
        if "__meta__" not in head:
            raise ModelFileError(f"{where} is not a readable replay buffer file (no __meta__)")
        meta = load_json(head["__meta__"].tobytes(), f"{where}: __meta__")
        if not isinstance(meta, dict):
            raise ModelFileError(f"{where}: __meta__ is not a mapping")
        types = dict(ReplayBuffer._META_TYPES)
        if meta.get("class") == "PrioritizedReplayBuffer":
            types.update(alpha=float, beta=float, eps=float, max_priority=float)
        for key, want in types.items():
            value: Any = meta.get(key)
            ok = (_finite_number(value) if want is float
                  else isinstance(value, want) and (want is bool or not isinstance(value, bool)))
            if not ok or (want is int and not -(1 << 62) < value < 1 << 62):
                raise ModelFileError(f"{where}: __meta__ entry {key!r} must be a {want.__name__}")
        if meta["buffer_size"] < 1 or meta["n_envs"] < 1 or not 0 <= meta["pos"] < meta["buffer_size"] \
                or meta["n_added"] < 0 or meta["n_frames"] < 0 or not 1 <= meta["frame_stack"] <= 64:
            raise ModelFileError(f"{where}: __meta__ sizes out of range")
        # files written before rlzoo saved only the filled rows hold every row and frame
        for key, full_size in (("rows_saved", meta["buffer_size"]), ("frames_saved", meta["n_frames"])):
            value = meta.setdefault(key, full_size)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= full_size:
                raise ModelFileError(f"{where}: __meta__ entry {key!r} must be an int from 0 to {full_size}")
        if meta["rows_saved"] < (meta["buffer_size"] if meta["full"] else meta["pos"]):
            raise ModelFileError(f"{where}: __meta__ says {meta['rows_saved']} rows were saved, fewer than it holds")
        return path, meta

    @staticmethod
    def saved_config(path: str) -> dict[str, Any]:
        """The storage options (``optimize_memory_usage``, ``frame_stack``, ``stack_axis``) of a saved buffer."""
        _, meta = ReplayBuffer._read_meta(path)
        return {k: meta[k] for k in ("optimize_memory_usage", "frame_stack", "stack_axis")}

    def load(self, path: str) -> None:
        """Replace this buffer's content with a file written by :meth:`save` (same spaces, n_envs).

        The arrays' declared shapes must follow the file's own ``buffer_size`` and this buffer's
        spaces and ``n_envs`` before anything is read (``allow_pickle=False``); errors are a
        ``ModelFileError`` (a ``ValueError``) with a one-line message.
        """
        from rlzoo.common.registry import ModelFileError
        from rlzoo.common.safe_io import expect_arrays, read_npz

        path, meta = self._read_meta(path)
        if meta["class"] != type(self).__name__:
            raise ModelFileError(f"{path} holds a {meta['class'][:40]}, not a {type(self).__name__}")
        for key in ("n_envs", "optimize_memory_usage", "frame_stack", "stack_axis"):
            if meta[key] != getattr(self, key):
                raise ModelFileError(f"{path} was saved with {key}={meta[key]}, this buffer has {getattr(self, key)}")
        spec: dict[str, Any] = {"__meta__": None}
        for key, arr in self._arrays().items():
            n = self._leading_length(key, meta, saved=True)
            spec[key] = (arr.shape if n is None else (n, *arr.shape[1:]), arr.dtype)
        check = expect_arrays({k: v for k, v in spec.items() if v is not None}, f"replay buffer file {path}")
        arrays = read_npz(path, f"replay buffer file {path}",
                          lambda n, s, d: None if n == "__meta__" else check(n, s, d), what="replay buffer file")
        arrays.pop("__meta__", None)
        missing = sorted(set(spec) - set(arrays) - {"__meta__"})
        if missing:
            raise ModelFileError(f"{path} does not match this buffer's observation space (no {missing[0]!r})")
        written = arrays.get("frames_written")
        if written is not None and meta["frames_saved"] < min(int(written.max(initial=0)), meta["n_frames"]):
            raise ModelFileError(f"{path}: __meta__ says {meta['frames_saved']} frames were saved, fewer than it holds")
        for key, arr in arrays.items():  # back to full size: the rows not saved were never filled
            n = self._leading_length(key, meta, saved=False)
            if n is not None and len(arr) < n:
                arrays[key] = np.zeros((n, *arr.shape[1:]), dtype=arr.dtype)
                arrays[key][:len(arr)] = arr
        self._restore(meta, arrays)

    def _restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.buffer_size = int(meta["buffer_size"])
        if self.optimize_memory_usage:
            self.n_frames = int(meta["n_frames"])
        self.n_added, self.pos, self.full = int(meta["n_added"]), int(meta["pos"]), bool(meta["full"])
        for key, arr in arrays.items():
            if "/" in key:
                group, sub = key.split("/", 1)
                getattr(self, group)[sub] = arr
            elif key != "priorities":
                setattr(self, key, arr)


def _store_row(store: Obs, obs: Obs, pos: int) -> None:
    """Write the observations of one step (one per env) into row ``pos`` of ``store``."""
    if isinstance(store, dict):
        for key, arr in store.items():
            arr[pos] = np.asarray(obs[key]).reshape(arr.shape[1:])
    else:
        store[pos] = np.asarray(obs).reshape(store.shape[1:])


def _take_rows(store: Obs, rows: np.ndarray, envs: np.ndarray) -> Obs:
    """The stored observations at ``(rows[i], envs[i])`` (a dict of them for Dict spaces)."""
    if isinstance(store, dict):
        return {k: v[rows, envs] for k, v in store.items()}
    return store[rows, envs]


def _named_arrays(name: str, store: Obs) -> dict[str, np.ndarray]:
    """``{name: array}``, or ``{name/key: array}`` for each key of a Dict space's storage (file names)."""
    if isinstance(store, dict):
        return {f"{name}/{k}": v for k, v in store.items()}
    return {name: store}


def _finite_number(value: Any) -> bool:
    """A finite int or float (not a bool) that fits a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
