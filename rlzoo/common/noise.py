"""Exploration noise for the deterministic-policy algorithms (DDPG, TD3).

* Action-space noise added to the actor's output: Gaussian (:class:`NormalActionNoise`) or the
  temporally correlated Ornstein-Uhlenbeck process used by DDPG (Lillicrap et al. 2016, §7).
* Parameter-space noise (Plappert et al. 2018): :class:`AdaptiveParamNoiseSpec` holds the scale
  ``sigma`` of the Gaussian perturbation of the actor's weights and adapts it so that the
  perturbed policy's actions stay ``desired_action_stddev`` away from the unperturbed ones (§3).

Noise objects draw from numpy's global generator, so a seeded model (``seed=``) reproduces them.
They serialize to JSON through ``to_config`` / ``from_config`` (saved with the model).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Iterable

import numpy as np

from rlzoo.common.registry import (instance_of, integer, number, numbers, optional,
                                    register_saveable)


class ActionNoise:
    """Base class: ``noise()`` returns one sample, ``reset()`` restarts a correlated process."""

    def __call__(self) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Restart the process (called at episode ends)."""

    def to_config(self) -> dict[str, Any]:
        """Constructor arguments, as JSON-able values."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ActionNoise:
        """Rebuild from :meth:`to_config` output."""
        return cls(**config)


def _as_array(value: Any, name: str) -> np.ndarray:
    arr = np.array(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


@register_saveable("NormalActionNoise", config={"mean": (numbers, True), "sigma": (numbers, True)},
                   legacy=("rlzoo.common.noise.NormalActionNoise",))
class NormalActionNoise(ActionNoise):
    """Uncorrelated Gaussian noise ``N(mean, sigma^2)``.

    :param mean: mean of the noise (array of the action's shape, or a scalar)
    :param sigma: standard deviation (same shape as ``mean``)
    """

    def __init__(self, mean: Any, sigma: Any) -> None:
        self.mean = _as_array(mean, "mean")
        self.sigma = _as_array(sigma, "sigma")
        if np.any(self.sigma < 0):
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        np.broadcast_shapes(self.mean.shape, self.sigma.shape)

    def __call__(self) -> np.ndarray:
        return np.random.normal(self.mean, self.sigma)

    def to_config(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "sigma": self.sigma.tolist()}

    def __repr__(self) -> str:
        return f"NormalActionNoise(mean={self.mean}, sigma={self.sigma})"


@register_saveable("OrnsteinUhlenbeckActionNoise",
                   config={"mean": (numbers, True), "sigma": (numbers, True), "theta": (number, False),
                           "dt": (number, False), "initial_noise": (optional(numbers), False)},
                   legacy=("rlzoo.common.noise.OrnsteinUhlenbeckActionNoise",))
class OrnsteinUhlenbeckActionNoise(ActionNoise):
    """Ornstein-Uhlenbeck process ``dx = theta (mean - x) dt + sigma sqrt(dt) dW`` (Euler-Maruyama).

    :param mean: long-run mean of the process
    :param sigma: scale of the Wiener increments
    :param theta: rate of mean reversion
    :param dt: time step of the discretization
    :param initial_noise: state after :meth:`reset` (default zeros)
    """

    def __init__(self, mean: Any, sigma: Any, theta: float = 0.15, dt: float = 1e-2,
                 initial_noise: Any | None = None) -> None:
        self.mean = _as_array(mean, "mean")
        self.sigma = _as_array(sigma, "sigma")
        if np.any(self.sigma < 0) or theta < 0 or dt <= 0:
            raise ValueError(f"OU noise needs sigma >= 0, theta >= 0 and dt > 0 (got {sigma}, {theta}, {dt})")
        self.theta, self.dt = float(theta), float(dt)
        self.initial_noise = None if initial_noise is None else _as_array(initial_noise, "initial_noise")
        self.noise_prev = np.zeros(np.broadcast_shapes(self.mean.shape, self.sigma.shape))
        self.reset()

    def __call__(self) -> np.ndarray:
        x = (self.noise_prev + self.theta * (self.mean - self.noise_prev) * self.dt
             + self.sigma * np.sqrt(self.dt) * np.random.normal(size=self.noise_prev.shape))
        self.noise_prev = x
        return x

    def reset(self) -> None:
        """Put the process back at ``initial_noise`` (zeros by default)."""
        self.noise_prev = (np.array(self.initial_noise, dtype=np.float64) if self.initial_noise is not None
                           else np.zeros_like(self.noise_prev))

    def to_config(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "sigma": self.sigma.tolist(), "theta": self.theta, "dt": self.dt,
                "initial_noise": None if self.initial_noise is None else self.initial_noise.tolist()}

    def __repr__(self) -> str:
        return f"OrnsteinUhlenbeckActionNoise(mean={self.mean}, sigma={self.sigma}, theta={self.theta}, dt={self.dt})"


@register_saveable("VectorizedActionNoise",
                   config={"noise": (instance_of(ActionNoise), True), "n_envs": (integer(1, 1 << 16), True)},
                   legacy=("rlzoo.common.noise.VectorizedActionNoise",))
class VectorizedActionNoise(ActionNoise):
    """One independent copy of ``noise`` per env; ``reset(indices)`` restarts only those envs.

    :param noise: the noise to copy (its configuration is reused)
    :param n_envs: number of envs
    """

    def __init__(self, noise: ActionNoise, n_envs: int) -> None:
        if int(n_envs) < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if isinstance(noise, VectorizedActionNoise):
            noise = noise.base_noise
        self.base_noise: ActionNoise = noise
        self.n_envs = int(n_envs)
        self.noises: list[ActionNoise] = [type(noise).from_config(noise.to_config()) for _ in range(self.n_envs)]

    def __call__(self) -> np.ndarray:
        """Samples of every env, shape ``(n_envs, *action_shape)``."""
        return np.stack([n() for n in self.noises])

    def reset(self, indices: Iterable[int] | None = None) -> None:
        """Restart the processes of envs ``indices`` (all when None)."""
        for i in range(self.n_envs) if indices is None else indices:
            self.noises[int(i)].reset()

    def to_config(self) -> dict[str, Any]:
        from rlzoo.common.save_format import to_json
        return {"noise": to_json(self.base_noise), "n_envs": self.n_envs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VectorizedActionNoise:
        noise = config["noise"]
        if not isinstance(noise, ActionNoise):  # still in its saved (tagged JSON) form
            from rlzoo.common.save_format import from_json
            noise = from_json(noise, {})
        return cls(noise, config["n_envs"])

    def __repr__(self) -> str:
        return f"VectorizedActionNoise({self.base_noise!r}, n_envs={self.n_envs})"


@register_saveable("AdaptiveParamNoiseSpec",
                   config={"initial_stddev": (number, True), "desired_action_stddev": (number, True),
                           "adoption_coefficient": (number, True), "current_stddev": (number, False)},
                   legacy=("rlzoo.common.noise.AdaptiveParamNoiseSpec",))
class AdaptiveParamNoiseSpec:
    """Adaptive scale of parameter-space noise (Plappert et al. 2018, §3, "adaptive noise scaling").

    ``current_stddev`` is the standard deviation of the Gaussian added to the actor's weights.
    :meth:`adapt` is given the distance ``d = sqrt(mean((pi(s) - pi_perturbed(s))^2))`` between
    the actions of the unperturbed and perturbed actors: if ``d > desired_action_stddev`` the scale
    shrinks (divided by ``adoption_coefficient``), otherwise it grows (multiplied).

    :param initial_stddev: initial scale of the weight perturbation
    :param desired_action_stddev: target distance in action space
    :param adoption_coefficient: multiplicative step of the adaptation (> 1)
    """

    def __init__(self, initial_stddev: float = 0.1, desired_action_stddev: float = 0.1,
                 adoption_coefficient: float = 1.01) -> None:
        if initial_stddev <= 0 or desired_action_stddev <= 0 or adoption_coefficient <= 1:
            raise ValueError("AdaptiveParamNoiseSpec needs initial_stddev > 0, desired_action_stddev > 0 and "
                             f"adoption_coefficient > 1 (got {initial_stddev}, {desired_action_stddev}, "
                             f"{adoption_coefficient})")
        self.initial_stddev = float(initial_stddev)
        self.desired_action_stddev = float(desired_action_stddev)
        self.adoption_coefficient = float(adoption_coefficient)
        self.current_stddev = self.initial_stddev

    def adapt(self, distance: float) -> float:
        """Move ``current_stddev`` towards the desired action distance; returns the new scale."""
        if distance > self.desired_action_stddev:
            self.current_stddev /= self.adoption_coefficient  # perturbation too strong: decrease
        else:
            self.current_stddev *= self.adoption_coefficient  # too weak: increase
        return self.current_stddev

    def get_stats(self) -> dict[str, float]:
        """Values worth logging."""
        return {"param_noise_stddev": self.current_stddev}

    def to_config(self) -> dict[str, Any]:
        return {"initial_stddev": self.initial_stddev, "desired_action_stddev": self.desired_action_stddev,
                "adoption_coefficient": self.adoption_coefficient, "current_stddev": self.current_stddev}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AdaptiveParamNoiseSpec:
        spec = cls(config["initial_stddev"], config["desired_action_stddev"], config["adoption_coefficient"])
        spec.current_stddev = float(config.get("current_stddev", spec.initial_stddev))
        return spec

    def __repr__(self) -> str:
        return (f"AdaptiveParamNoiseSpec(initial_stddev={self.initial_stddev}, desired_action_stddev="
                f"{self.desired_action_stddev}, adoption_coefficient={self.adoption_coefficient})")
