"""The on-policy rollout buffer and Generalized Advantage Estimation (shared by A2C, PPO, TRPO, ACKTR)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from rlzoo.common.utils import space_shape


class RolloutBatch(NamedTuple):
    """A (mini)batch of flattened rollout data."""

    observations: torch.Tensor | dict[str, torch.Tensor]
    actions: torch.Tensor
    old_values: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def compute_gae(rewards: np.ndarray, values: np.ndarray, episode_starts: np.ndarray,
                last_values: np.ndarray, last_dones: np.ndarray, gamma: float,
                gae_lambda: float) -> np.ndarray:
    """Generalized Advantage Estimation (Schulman et al. 2016, Eq. 11-16), vectorized over envs.

    ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_{t+1}) - V(s_t)`` and
    ``A_t = delta_t + gamma * lambda * (1 - done_{t+1}) * A_{t+1}``. Rewards of truncated steps
    already include ``gamma * V(final_obs)``, so a time limit is not treated as a terminal state.
    With ``gae_lambda = 1`` this is the n-step return advantage of A2C.
    """
    n_steps = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    next_non_terminal = 1.0 - last_dones.astype(np.float32)
    next_values = last_values
    last_gae = np.zeros_like(last_values)
    for t in reversed(range(n_steps)):
        delta = rewards[t] + gamma * next_values * next_non_terminal - values[t]
        last_gae = delta + gamma * gae_lambda * next_non_terminal * last_gae
        advantages[t] = last_gae
        next_non_terminal = 1.0 - episode_starts[t]
        next_values = values[t]
    return advantages


def _obs_storage(space: spaces.Space, n_steps: int, n_envs: int, device: torch.device) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _obs_storage(s, n_steps, n_envs, device) for k, s in space.spaces.items()}
    dtype = torch.uint8 if space.dtype == np.uint8 else (
        torch.int64 if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)) else torch.float32)
    return torch.zeros((n_steps, n_envs, *space_shape(space)), dtype=dtype, device=device)


class RolloutBuffer:
    """Preallocated ``[n_steps, n_envs]`` storage of one rollout, with returns and advantages.

    Observations, actions, values and log-probabilities stay as torch tensors (they come from
    the policy); rewards and episode starts are numpy (they come from the env) and GAE runs in
    numpy, vectorized across envs, before one conversion to torch.
    """

    def __init__(self, n_steps: int, n_envs: int, observation_space: spaces.Space,
                 action_space: spaces.Space, device: torch.device, gamma: float = 0.99,
                 gae_lambda: float = 1.0) -> None:
        self.n_steps, self.n_envs = n_steps, n_envs
        self.observation_space, self.action_space = observation_space, action_space
        self.device, self.gamma, self.gae_lambda = device, gamma, gae_lambda
        act_shape: tuple[int, ...]
        if isinstance(action_space, spaces.Box):
            act_shape, act_dtype = (int(np.prod(action_space.shape)),), torch.float32
        elif isinstance(action_space, spaces.Discrete):
            act_shape, act_dtype = (), torch.int64
        elif isinstance(action_space, spaces.MultiDiscrete):
            act_shape, act_dtype = (len(action_space.nvec.ravel()),), torch.int64
        else:
            act_shape, act_dtype = (int(np.prod(space_shape(action_space))),), torch.float32
        self.observations = _obs_storage(observation_space, n_steps, n_envs, device)
        self.actions = torch.zeros((n_steps, n_envs, *act_shape), dtype=act_dtype, device=device)
        self.values = torch.zeros((n_steps, n_envs), device=device)
        self.log_probs = torch.zeros((n_steps, n_envs), device=device)
        self.rewards = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.episode_starts = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.advantages = torch.zeros((n_steps, n_envs), device=device)
        self.returns = torch.zeros((n_steps, n_envs), device=device)
        self.pos = 0
        # numpy views of the CPU storage: a rollout acted in numpy is written without torch calls
        self._np_views = (None if device.type != "cpu" or isinstance(self.observations, dict) else
                          (self.observations.numpy(), self.actions.numpy(), self.values.numpy(),
                           self.log_probs.numpy()))

    def reset(self) -> None:
        self.pos = 0

    @property
    def accepts_numpy(self) -> bool:
        """Whether ``add`` takes numpy arrays (CPU storage, not a Dict observation space)."""
        return self._np_views is not None

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def add(self, obs: Any, actions: torch.Tensor | np.ndarray, rewards: np.ndarray, episode_starts: np.ndarray,
            values: torch.Tensor | np.ndarray, log_probs: torch.Tensor | np.ndarray) -> None:
        """Store one vector step: ``obs``, ``actions``, ``values``, ``log_probs`` as tensors on the device,
        or all as numpy arrays (CPU storage of a flat observation space, see ``accepts_numpy``)."""
        p = self.pos
        if isinstance(values, np.ndarray):
            assert self._np_views is not None, "numpy steps need CPU storage of a flat observation space"
            obs_v, act_v, val_v, logp_v = self._np_views
            obs_v[p] = np.reshape(obs, obs_v.shape[1:])
            act_v[p] = np.reshape(actions, act_v.shape[1:])
            val_v[p], logp_v[p] = values, log_probs
        elif isinstance(self.observations, dict):
            for k, buf in self.observations.items():
                buf[p] = obs[k].reshape(buf.shape[1:])
        else:
            self.observations[p] = obs.reshape(self.observations.shape[1:])
        if not isinstance(values, np.ndarray):
            assert isinstance(actions, torch.Tensor) and isinstance(log_probs, torch.Tensor)
            self.actions[p] = actions.reshape(self.actions.shape[1:])
            self.values[p] = values
            self.log_probs[p] = log_probs
        self.rewards[p] = rewards
        self.episode_starts[p] = episode_starts
        self.pos += 1

    def compute_returns_and_advantage(self, last_values: torch.Tensor, dones: np.ndarray) -> None:
        """GAE advantages and the value targets ``returns = advantages + values`` (TD(lambda))."""
        values = self.values.cpu().numpy()
        adv = compute_gae(self.rewards, values, self.episode_starts, last_values.cpu().numpy(),
                          dones, self.gamma, self.gae_lambda)
        self.advantages = torch.as_tensor(adv, device=self.device)
        self.returns = self.advantages + self.values

    def _flat(self) -> RolloutBatch:
        def flat(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(self.n_steps * self.n_envs, *t.shape[2:])
        obs = ({k: flat(v) for k, v in self.observations.items()} if isinstance(self.observations, dict)
               else flat(self.observations))
        return RolloutBatch(obs, flat(self.actions), flat(self.values), flat(self.log_probs),
                            flat(self.advantages), flat(self.returns))

    def get(self, batch_size: int | None = None,
            generator: torch.Generator | None = None) -> Iterator[RolloutBatch]:
        """Yield shuffled minibatches of ``batch_size`` (the whole rollout, unshuffled, if None)."""
        data = self._flat()
        total = self.n_steps * self.n_envs
        if batch_size is None or batch_size >= total:
            yield data
            return
        perm = torch.randperm(total, device=self.device, generator=generator)
        for start in range(0, total, batch_size):
            idx = perm[start:start + batch_size]
            obs = ({k: v[idx] for k, v in data.observations.items()} if isinstance(data.observations, dict)
                   else data.observations[idx])
            yield RolloutBatch(obs, data.actions[idx], data.old_values[idx], data.old_log_prob[idx],
                               data.advantages[idx], data.returns[idx])
