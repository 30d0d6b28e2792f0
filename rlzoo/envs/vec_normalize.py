"""Running normalization of observations and rewards (the ``normalize: true`` of the zoo).

Observations: ``clip((obs - mean) / sqrt(var + eps), ±clip_obs)`` with the running mean/var of all
observations seen in training (parallel-variance merge, Chan et al. 1979). Rewards are divided by the
running std of the discounted return ``R_t = gamma * R_{t-1} + r_t`` (reset at episode end), as in
the PPO implementation details (Engstrom et al. 2020, "Implementation Matters").

Statistics are saved as a safetensors file (no pickle): tensors ``obs_rms/<key>/{mean,var}`` and
``ret_rms/{mean,var}``, configuration and counts as JSON in the string metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.wrappers.utils import RunningMeanStd as _GymRunningMeanStd

from rlzoo.envs.vec_env import VecEnvWrapper, is_image_space, unwrap_vec_wrapper
from rlzoo.fileio import atomic_write_bytes

__all__ = ["RunningMeanStd", "VecNormalize", "unwrap_vec_normalize"]

_FORMAT = "rlzoo.VecNormalize"
_FORMAT_VERSION = 1
_BOX_KEY = ""  # key of the statistics of a (non-Dict) Box observation


def _as_box(space: spaces.Space[Any]) -> spaces.Box:
    """``space``, known to be a Box (the keys to normalize were checked by ``_check_keys``)."""
    assert isinstance(space, spaces.Box)
    return space


class RunningMeanStd(_GymRunningMeanStd):
    """Running mean, variance and count of a stream of batches (float64).

    :param epsilon: initial count (keeps the first update well defined)
    :param shape: shape of one sample
    """

    def __init__(self, epsilon: float = 1e-4, shape: tuple[int, ...] = ()) -> None:
        super().__init__(epsilon=epsilon, shape=shape, dtype=np.float64)

    def update(self, x: np.ndarray) -> None:
        """Merge the batch ``x`` of shape ``(batch, *shape)``."""
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        # np.mean / np.var carry a lot of Python overhead for the small per-step batches
        batch_mean = np.add.reduce(x, axis=0) / n
        d = x - batch_mean
        batch_var = np.add.reduce(d * d, axis=0) / n
        # parallel merge (Chan et al.): same as update_from_moments, in fewer array operations
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta * delta * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.var = m2 / total
        self.count = total

    def copy(self) -> RunningMeanStd:
        """An independent copy."""
        new = RunningMeanStd(shape=self.mean.shape)
        new.mean, new.var, new.count = self.mean.copy(), self.var.copy(), self.count
        return new

    def __repr__(self) -> str:
        return f"RunningMeanStd(shape={self.mean.shape}, count={self.count:g})"


class VecNormalize(VecEnvWrapper):
    """Normalizes observations and/or rewards of a vector env with running statistics.

    The observations returned (and the ``infos["final_obs"]`` of finished episodes) are normalized;
    normalized Box entries become ``float32`` in ``[-clip_obs, clip_obs]``.

    :param venv: the vector environment
    :param training: update the statistics (set False to freeze them, e.g. for evaluation)
    :param norm_obs: normalize observations
    :param norm_reward: scale rewards by the std of the discounted return
    :param clip_obs: clip normalized observations to ``[-clip_obs, clip_obs]``
    :param clip_reward: clip scaled rewards to ``[-clip_reward, clip_reward]``
    :param gamma: discount of the return used for reward scaling
    :param epsilon: added to the variances before the square root
    :param norm_obs_keys: Dict observations only: keys to normalize (default: the non-image Box keys)
    """

    def __init__(self, venv: VectorEnv, training: bool = True, norm_obs: bool = True, norm_reward: bool = True,
                 clip_obs: float = 10.0, clip_reward: float = 10.0, gamma: float = 0.99, epsilon: float = 1e-8,
                 norm_obs_keys: list[str] | None = None) -> None:
        super().__init__(venv)
        self.training = training
        self.norm_obs, self.norm_reward = norm_obs, norm_reward
        self.clip_obs, self.clip_reward = float(clip_obs), float(clip_reward)
        self.gamma, self.epsilon = float(gamma), float(epsilon)
        self._raw_single_space = venv.single_observation_space
        self._is_dict = isinstance(self._raw_single_space, spaces.Dict)
        self.norm_obs_keys = self._check_keys(norm_obs_keys) if norm_obs else []
        self.obs_rms: RunningMeanStd | dict[str, RunningMeanStd] | None = None
        if norm_obs:
            raw = self._raw_single_space
            if isinstance(raw, spaces.Dict):
                self.obs_rms = {k: RunningMeanStd(shape=_as_box(raw[k]).shape) for k in self.norm_obs_keys}
            else:
                self.obs_rms = RunningMeanStd(shape=_as_box(raw).shape)
            self._set_spaces()
        self.ret_rms = RunningMeanStd(shape=())
        self.returns = np.zeros(self.num_envs, dtype=np.float64)
        self.old_obs: Any = None
        self.old_rewards = np.zeros(self.num_envs, dtype=np.float64)

    # ---------------------------------------------------------------- setup
    def _check_keys(self, keys: list[str] | None) -> list[str]:
        space = self._raw_single_space
        if not isinstance(space, spaces.Dict):
            if keys is not None:
                raise ValueError("norm_obs_keys only applies to Dict observation spaces")
            if not isinstance(space, spaces.Box):
                raise ValueError(f"VecNormalize(norm_obs=True) needs a Box or Dict observation space, got {space}")
            return [_BOX_KEY]
        if keys is None:
            return [k for k, s in space.spaces.items() if isinstance(s, spaces.Box) and not is_image_space(s)]
        keys = list(keys)
        for k in keys:
            if k not in space.spaces:
                raise ValueError(f"norm_obs_keys: {k!r} is not a key of the observation space ({list(space.spaces)})")
            if not isinstance(space[k], spaces.Box):
                raise ValueError(f"norm_obs_keys: observation {k!r} is {space[k]}, only Box entries can be normalized")
        return keys

    def _normalized_box(self, box: spaces.Space[Any]) -> spaces.Box:
        return spaces.Box(-self.clip_obs, self.clip_obs, shape=box.shape, dtype=np.float32)

    def _set_spaces(self) -> None:
        single, batch = self._raw_single_space, self.env.observation_space
        new_single: spaces.Space[Any]
        new_batch: spaces.Space[Any]
        if isinstance(single, spaces.Dict):
            assert isinstance(batch, spaces.Dict)  # the batch of a Dict space is a Dict
            new_single = spaces.Dict({k: self._normalized_box(s) if k in self.norm_obs_keys else s
                                      for k, s in single.spaces.items()})
            new_batch = spaces.Dict({k: self._normalized_box(s) if k in self.norm_obs_keys else s
                                     for k, s in batch.spaces.items()})
        else:
            new_single = self._normalized_box(single)
            new_batch = self._normalized_box(self.env.observation_space)
        self.single_observation_space, self.observation_space = new_single, new_batch

    def set_venv(self, venv: VectorEnv) -> None:
        """Wrap another vector env (same observation space) and reset the running returns."""
        if venv.single_observation_space != self._raw_single_space:
            raise ValueError(f"set_venv: observation space {venv.single_observation_space} differs from "
                             f"{self._raw_single_space}")
        self.env = venv
        self._observation_space = self._single_observation_space = None
        self._action_space = self._single_action_space = None
        if self.norm_obs:
            self._set_spaces()
        self.returns = np.zeros(self.num_envs, dtype=np.float64)
        self.old_rewards = np.zeros(self.num_envs, dtype=np.float64)

    # ---------------------------------------------------------------- normalization
    def _key_rms(self) -> dict[str, RunningMeanStd]:
        """The per-key statistics of a Dict observation space (``norm_obs`` only)."""
        assert isinstance(self.obs_rms, dict)
        return self.obs_rms

    def _box_rms(self) -> RunningMeanStd:
        """The statistics of a Box observation space (``norm_obs`` only)."""
        assert self.obs_rms is not None and not isinstance(self.obs_rms, dict)
        return self.obs_rms

    def _norm(self, x: np.ndarray, rms: RunningMeanStd) -> np.ndarray:
        out = x - rms.mean
        out /= np.sqrt(rms.var + self.epsilon)
        # clip with the raw ufuncs (np.clip has a large fixed cost for small arrays)
        np.minimum(np.maximum(out, -self.clip_obs, out=out), self.clip_obs, out=out)
        return out.astype(np.float32)

    def _unnorm(self, x: np.ndarray, rms: RunningMeanStd) -> np.ndarray:
        return (x * np.sqrt(rms.var + self.epsilon) + rms.mean).astype(np.float32)

    def normalize_obs(self, obs: Any) -> Any:
        """Normalize (a batch of) observations with the current statistics; does not update them."""
        return self._map_obs(obs, self._norm)

    def unnormalize_obs(self, obs: Any) -> Any:
        """Inverse of :meth:`normalize_obs` (up to clipping)."""
        return self._map_obs(obs, self._unnorm)

    def _map_obs(self, obs: Any, fn: Callable[[np.ndarray, RunningMeanStd], np.ndarray]) -> Any:
        """``fn(x, statistics)`` on the observation, or on each normalized key of a Dict observation."""
        if not self.norm_obs:
            return obs
        if self._is_dict:
            out = dict(obs)
            key_rms = self._key_rms()
            for k in self.norm_obs_keys:
                out[k] = fn(obs[k], key_rms[k])
            return out
        return fn(obs, self._box_rms())

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        """Scale rewards by the running std of the discounted return (then clip)."""
        if not self.norm_reward:
            return reward
        out = reward / np.sqrt(self.ret_rms.var + self.epsilon)
        return np.minimum(np.maximum(out, -self.clip_reward, out=out), self.clip_reward, out=out)

    def unnormalize_reward(self, reward: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize_reward` (up to clipping)."""
        if not self.norm_reward:
            return reward
        return reward * np.sqrt(self.ret_rms.var + self.epsilon)

    def get_original_obs(self) -> Any:
        """The raw observations returned by the last ``reset``/``step``."""
        return self.old_obs

    def get_original_reward(self) -> np.ndarray:
        """The raw rewards of the last ``step``."""
        return self.old_rewards.copy()

    def _update_obs_rms(self, obs: Any) -> None:
        if self._is_dict:
            key_rms = self._key_rms()
            for k in self.norm_obs_keys:
                key_rms[k].update(obs[k])
        else:
            self._box_rms().update(obs)

    def _normalize_final_obs(self, infos: dict[str, Any]) -> None:
        finals = infos["final_obs"]
        idx = np.flatnonzero(infos["_final_obs"])
        if self._is_dict:
            for i in idx:
                finals[i] = {k: v for k, v in finals[i].items()}
            for k in self.norm_obs_keys:
                normed = self._norm(np.stack([finals[i][k] for i in idx]), self._key_rms()[k])
                for j, i in enumerate(idx):
                    finals[i][k] = normed[j]
        else:
            normed = self._norm(np.stack(finals[idx]), self._box_rms())
            for j, i in enumerate(idx):
                finals[i] = normed[j]

    # ---------------------------------------------------------------- VectorEnv API
    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset all envs and the running returns; returns normalized observations."""
        # gymnasium types ``seed`` as int | None, but its vector envs also accept one seed per env
        obs, infos = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        self.old_obs = obs
        self.returns[:] = 0.0
        if self.norm_obs and self.training:
            self._update_obs_rms(obs)
        return self.normalize_obs(obs), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step, update the statistics (when training) and return normalized obs and rewards."""
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        self.old_obs, self.old_rewards = obs, rewards
        if self.norm_obs:
            if self.training:
                self._update_obs_rms(obs)
            if "final_obs" in infos:
                self._normalize_final_obs(infos)
            obs = self.normalize_obs(obs)
        if self.norm_reward:
            self.returns = self.returns * self.gamma + rewards
            if self.training:
                self.ret_rms.update(self.returns)
            rewards = self.normalize_reward(rewards)
            self.returns[terminated | truncated] = 0.0
        return obs, rewards, terminated, truncated, infos

    # ---------------------------------------------------------------- statistics transfer / files
    def copy_stats_from(self, other: VecNormalize) -> None:
        """Copy the observation and return statistics of ``other`` (e.g. train env -> eval env)."""
        if other.obs_rms is not None and self.obs_rms is not None:
            if isinstance(other.obs_rms, dict):
                self.obs_rms = {k: v.copy() for k, v in other.obs_rms.items()}
            else:
                self.obs_rms = other.obs_rms.copy()
        self.ret_rms = other.ret_rms.copy()

    def _config(self) -> dict[str, Any]:
        return {"training": self.training, "norm_obs": self.norm_obs, "norm_reward": self.norm_reward,
                "clip_obs": self.clip_obs, "clip_reward": self.clip_reward, "gamma": self.gamma,
                "epsilon": self.epsilon, "norm_obs_keys": self.norm_obs_keys if self._is_dict else None}

    def _stats_items(self) -> dict[str, RunningMeanStd]:
        items = {"ret_rms": self.ret_rms}
        if self.obs_rms is not None:
            rms = self.obs_rms if isinstance(self.obs_rms, dict) else {_BOX_KEY: self.obs_rms}
            items.update({f"obs_rms/{k}": v for k, v in rms.items()})
        return items

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics and configuration to ``path`` (safetensors, atomic replace)."""
        from safetensors.numpy import save as st_save

        items = self._stats_items()
        tensors = {}
        for name, rms in items.items():
            tensors[f"{name}/mean"] = np.array(rms.mean, dtype=np.float64, order="C")
            tensors[f"{name}/var"] = np.array(rms.var, dtype=np.float64, order="C")
        meta = {"format": _FORMAT, "format_version": str(_FORMAT_VERSION), "config": json.dumps(self._config()),
                "counts": json.dumps({name: float(rms.count) for name, rms in items.items()})}
        atomic_write_bytes(path, st_save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike, venv: VectorEnv) -> VecNormalize:
        """Wrap ``venv`` in a VecNormalize with the configuration and statistics saved at ``path``.

        The file is read only up to :data:`MAX_STATS_BYTES`; its configuration must have the documented
        keys and types, and the declared tensor shapes must be those ``venv`` needs, checked before the
        tensors are read.

        :raises ValueError: (a ``ModelFileError``) if the file is not a (valid) VecNormalize statistics
            file or does not fit ``venv``
        """
        from safetensors.numpy import load as st_load

        from rlzoo.common.registry import ModelFileError
        from rlzoo.common.safe_io import one_line, safetensors_header

        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_STATS_BYTES + 1)
        except OSError as e:
            raise ModelFileError(f"{path}: cannot read the VecNormalize statistics ({one_line(e)})") from None
        try:
            if len(data) > MAX_STATS_BYTES:
                raise ValueError(f"larger than {MAX_STATS_BYTES} bytes")
            header = safetensors_header(data, "header")
            meta = header.get("__metadata__") or {}
            if meta.get("format") != _FORMAT:
                raise ValueError("missing format tag")
            version = meta.get("format_version", "")
            if not version.isdigit() or len(version) > 6:
                raise ValueError(f"bad format version {version[:20]!r}")
            if int(version) > _FORMAT_VERSION:
                raise ValueError(f"format version {version} is newer than this rlzoo")
            config, counts = _check_config(meta.get("config")), _check_counts(meta.get("counts"))
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFileError(f"{path}: not a VecNormalize statistics file ({one_line(e)})") from None
        try:
            vn = cls(venv, **config)
        except ValueError as e:
            raise ModelFileError(f"{path}: statistics do not fit this environment ({one_line(e)})") from None
        items = vn._stats_items()
        for name, rms in items.items():
            for part in ("mean", "var"):
                desc = header.get(f"{name}/{part}")
                if desc is None or name not in counts:
                    raise ModelFileError(f"{path}: statistics {name!r} missing from the file")
                if tuple(desc["shape"]) != rms.mean.shape or desc["dtype"] != "F64":
                    raise ModelFileError(f"{path}: statistics {name!r} have shape {tuple(desc['shape'])}, the "
                                         f"environment needs {rms.mean.shape}")
        try:
            tensors = st_load(data)
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types on corrupt data
            raise ModelFileError(f"{path}: not a VecNormalize statistics file ({type(e).__name__})") from None
        for name, rms in items.items():
            rms.mean, rms.var, rms.count = tensors[f"{name}/mean"].copy(), tensors[f"{name}/var"].copy(), counts[name]
        return vn


MAX_STATS_BYTES = 256 << 20  # a statistics file is two float64 arrays per observation key
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "training": (bool,), "norm_obs": (bool,), "norm_reward": (bool,), "clip_obs": (int, float),
    "clip_reward": (int, float), "gamma": (int, float), "epsilon": (int, float), "norm_obs_keys": (list, type(None))}


def _check_config(text: Any) -> dict[str, Any]:
    """The saved constructor arguments: known keys with values of the right type only."""
    from rlzoo.common.safe_io import load_json

    if not isinstance(text, str):
        raise ValueError("no configuration")
    config = load_json(text, "configuration")
    if not isinstance(config, dict):
        raise ValueError("the configuration is not a mapping")
    for key, value in config.items():
        types = _CONFIG_TYPES.get(key)
        if types is None:
            raise ValueError(f"unknown setting {key[:40]!r}")
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"setting {key} has the wrong type ({type(value).__name__})")
        if isinstance(value, float) and not np.isfinite(value):
            raise ValueError(f"setting {key} is not finite")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1 << 53:
            raise ValueError(f"setting {key} is out of range")
        if isinstance(value, list) and not all(isinstance(k, str) for k in value):
            raise ValueError("norm_obs_keys must be a list of strings")
    return config


def _check_counts(text: Any) -> dict[str, float]:
    """The saved sample counts: ``{statistics name: finite non-negative number}``."""
    from rlzoo.common.safe_io import load_json

    if not isinstance(text, str):
        raise ValueError("no sample counts")
    counts = load_json(text, "counts")
    if not isinstance(counts, dict):
        raise ValueError("the counts are not a mapping")
    out: dict[str, float] = {}
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e300:
            raise ValueError(f"count of {key[:40]!r} is not a non-negative number")
        out[key] = float(value)
    return out


def unwrap_vec_normalize(venv: VectorEnv) -> VecNormalize | None:
    """The VecNormalize wrapper in the chain of ``venv`` (or None)."""
    return unwrap_vec_wrapper(venv, VecNormalize)
