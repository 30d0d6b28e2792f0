"""Partially observable classic-control tasks: the velocities are removed from the observation.

``CartPoleNoVel-v1`` (cart position and pole angle), ``PendulumNoVel-v1`` (cos and sin of the
angle) and ``LunarLanderNoVel-v3`` (position, angle and leg contacts) keep the dynamics, rewards and
time limits of their fully observed versions; a feed-forward policy cannot tell the velocities,
a recurrent one (``MlpLstmPolicy``) can infer them from successive observations. Registered with
gymnasium on ``import rlzoo.envs``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["NO_VELOCITY_ENVS", "MaskVelocityWrapper", "register_partially_observable_envs"]


class MaskVelocityWrapper(gym.ObservationWrapper):
    """Keep only the observation entries at ``keep`` (positions), dropping the velocities.

    :param env: an env with a flat ``Box`` observation space
    :param keep: indices of the entries to keep
    """

    def __init__(self, env: gym.Env, keep: Sequence[int]) -> None:
        super().__init__(env)
        box = env.observation_space
        if not isinstance(box, spaces.Box) or len(box.shape) != 1:
            raise ValueError(f"MaskVelocityWrapper needs a flat Box observation space, got {box}")
        self.keep = np.asarray(keep, dtype=np.int64)
        self.observation_space = spaces.Box(box.low[self.keep], box.high[self.keep], dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The kept entries of ``observation``."""
        return observation[self.keep]


def cartpole_no_vel(**kwargs: Any) -> gym.Env:
    """CartPole without the cart and pole velocities: observation (x, theta)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    return MaskVelocityWrapper(CartPoleEnv(**kwargs), keep=(0, 2))


def pendulum_no_vel(**kwargs: Any) -> gym.Env:
    """Pendulum without the angular velocity: observation (cos theta, sin theta)."""
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    return MaskVelocityWrapper(PendulumEnv(**kwargs), keep=(0, 1))


def lunar_lander_no_vel(**kwargs: Any) -> gym.Env:
    """LunarLander without the linear and angular velocities: observation (x, y, angle, legs)."""
    from gymnasium.envs.box2d.lunar_lander import LunarLander

    return MaskVelocityWrapper(LunarLander(**kwargs), keep=(0, 1, 4, 6, 7))


# id -> (entry point, max_episode_steps, reward_threshold) of the fully observed version
NO_VELOCITY_ENVS: dict[str, tuple[str, int, float | None]] = {
    "CartPoleNoVel-v1": (f"{__name__}:cartpole_no_vel", 500, 475.0),
    "PendulumNoVel-v1": (f"{__name__}:pendulum_no_vel", 200, None),
    "LunarLanderNoVel-v3": (f"{__name__}:lunar_lander_no_vel", 1000, 200.0),
}


def register_partially_observable_envs() -> None:
    """Register the ``*NoVel`` envs with gymnasium (idempotent)."""
    for env_id, (entry_point, max_steps, threshold) in NO_VELOCITY_ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps,
                         reward_threshold=threshold)
