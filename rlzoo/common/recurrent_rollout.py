"""Rollouts of recurrent policies: a buffer that yields whole env sequences, and their collection.

The buffer keeps the LSTM states each env had at the start of the rollout. A minibatch is a set of
whole env columns ``[n_steps, k]`` (``k = batch_size // n_steps``, at least one) with those
initial states and the episode starts, so PPO's epochs (and A2C's single update) replay the
recurrence from exactly the states the rollout was collected with: on the first epoch, before any
update, the recomputed log-probabilities and values equal the stored ones.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from rlzoo.common.recurrent import RNNStates
from rlzoo.common.rollout import RolloutBuffer
from rlzoo.common.utils import obs_to_tensor
from rlzoo.envs import final_observations


class RecurrentBatch(NamedTuple):
    """A minibatch of ``k`` env sequences; per-step fields are flattened time-major (``[T * k]``)."""

    observations: torch.Tensor | dict[str, torch.Tensor]
    actions: torch.Tensor
    old_values: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    lstm_states: RNNStates
    episode_starts: torch.Tensor  # [T, k]


def _select_states(states: RNNStates, idx: torch.Tensor | None) -> RNNStates:
    if idx is None:
        return states
    return RNNStates(*(tuple(s.index_select(1, idx) for s in pair) for pair in states))


class RecurrentRolloutBuffer(RolloutBuffer):
    """:class:`RolloutBuffer` plus the initial LSTM states of the rollout; yields env sequences."""

    initial_states: RNNStates | None = None

    def set_initial_states(self, states: RNNStates) -> None:
        """Remember the states every env starts this rollout from (before the step-0 reset mask)."""
        self.initial_states = RNNStates(*(tuple(s.detach().clone() for s in pair) for pair in states))

    def get(self, batch_size: int | None = None,
            generator: torch.Generator | None = None) -> Iterator[RecurrentBatch]:  # type: ignore[override]
        """Yield minibatches of ``max(batch_size // n_steps, 1)`` whole env sequences (shuffled), or
        the whole rollout, in env order, when ``batch_size`` is None or covers it."""
        if self.initial_states is None:
            raise RuntimeError("the rollout has no initial LSTM states (set_initial_states was not called)")
        n_steps, n_envs = self.n_steps, self.n_envs
        starts = torch.as_tensor(self.episode_starts, device=self.device)
        envs_per_batch = n_envs if batch_size is None else min(max(batch_size // n_steps, 1), n_envs)
        if envs_per_batch >= n_envs:
            yield self._columns(None, starts)
            return
        perm = torch.randperm(n_envs, device=self.device, generator=generator)
        for i in range(0, n_envs, envs_per_batch):
            yield self._columns(perm[i:i + envs_per_batch], starts)

    def _columns(self, idx: torch.Tensor | None, starts: torch.Tensor) -> RecurrentBatch:
        def cols(t: torch.Tensor) -> torch.Tensor:
            t = t if idx is None else t.index_select(1, idx)
            return t.reshape(t.shape[0] * t.shape[1], *t.shape[2:])

        obs = ({k: cols(v) for k, v in self.observations.items()} if isinstance(self.observations, dict)
               else cols(self.observations))
        seq_starts = starts if idx is None else starts.index_select(1, idx)
        return RecurrentBatch(obs, cols(self.actions), cols(self.values), cols(self.log_probs),
                              cols(self.advantages), cols(self.returns),
                              _select_states(self.initial_states, idx), seq_starts)


def collect_recurrent_rollouts(algo: Any, callback: Any) -> bool:
    """:meth:`OnPolicyAlgorithm.collect_rollouts` for an LSTM policy: the states of every env are
    carried across steps (and across rollouts) and reset at episode starts; the value of a
    truncated episode's final observation is computed from that env's critic state."""
    env, buffer, policy = algo.env, algo.rollout_buffer, algo.policy
    states = getattr(algo, "_last_lstm_states", None)
    if states is None or states.pi[0].shape[1] != algo.n_envs:
        states = policy.initial_state(algo.n_envs)
    buffer.reset()
    buffer.set_initial_states(states)
    callback.on_rollout_start()
    box = isinstance(algo.action_space, spaces.Box)
    low, high = (algo.action_space.low, algo.action_space.high) if box else (None, None)
    new_obs = algo._last_obs
    device = algo.device
    while not buffer.full:
        obs_t = obs_to_tensor(algo._last_obs, device)
        starts_t = torch.as_tensor(algo._last_episode_starts, dtype=torch.float32, device=device)
        with torch.inference_mode():
            actions, values, log_probs, states = policy(obs_t, states, starts_t)
        actions_np = actions.cpu().numpy()
        if box:
            actions_np = np.clip(actions_np.reshape((-1, *algo.action_space.shape)), low, high)
        elif isinstance(algo.action_space, spaces.MultiBinary):
            actions_np = actions_np.astype(np.int8).reshape((-1, *algo.action_space.shape))
        new_obs, rewards, terminated, truncated, infos = env.step(actions_np)
        algo.num_timesteps += algo.n_envs
        rewards = np.asarray(rewards, dtype=np.float32)
        callback.update_locals(locals())
        if not callback.on_step():
            algo._last_lstm_states = states
            return False
        algo._update_info_buffer(infos)
        bootstrap = truncated & ~terminated
        if bootstrap.any():
            idx = np.flatnonzero(bootstrap)
            final = obs_to_tensor(final_observations(infos, idx), device)
            idx_t = torch.as_tensor(idx, device=device)
            with torch.inference_mode():
                final_values = policy.predict_values(final, RNNStates(
                    *(tuple(s.index_select(1, idx_t) for s in pair) for pair in states)))
            rewards[idx] += algo.gamma * final_values.cpu().numpy()
        buffer.add(obs_t, actions, rewards, algo._last_episode_starts, values, log_probs)
        algo._last_obs = new_obs
        algo._last_episode_starts = terminated | truncated
    algo._last_lstm_states = states
    with torch.inference_mode():
        last_values = policy.predict_values(
            obs_to_tensor(new_obs, device), states,
            torch.as_tensor(algo._last_episode_starts, dtype=torch.float32, device=device))
    buffer.compute_returns_and_advantage(last_values, algo._last_episode_starts)
    callback.update_locals(locals())
    callback.on_rollout_end()
    return True
