"""Rollouts of recurrent policies: a buffer that yields env sequences, and their collection.

The buffer keeps the LSTM states each env entered every step with. A minibatch is a set of
sequences ``[L, k]`` (each env's rollout cut into pieces of ``L`` steps, see
:func:`sequence_length`; whole env columns when ``batch_size >= n_steps``) with the episode starts
and the states stored at each sequence's first step, so PPO's epochs (and A2C's single update)
replay the recurrence from the states the rollout was collected with: on the first epoch, before
any update, the recomputed log-probabilities and values equal the stored ones. Later epochs start
mid-rollout sequences from those stored states (truncated backpropagation through time, as
sb3-contrib's RecurrentPPO); whole columns start from the rollout's first states.
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


def sequence_length(n_steps: int, batch_size: int | None) -> int:
    """Length of the sequences a rollout of ``n_steps`` per env is cut into for minibatches of
    ``batch_size`` steps: the largest divisor of ``n_steps`` not above ``batch_size`` (``n_steps``
    itself when ``batch_size`` is None or at least ``n_steps``)."""
    if batch_size is None or batch_size >= n_steps:
        return n_steps
    return max(d for d in range(1, batch_size + 1) if n_steps % d == 0)


class RecurrentRolloutBuffer(RolloutBuffer):
    """:class:`RolloutBuffer` plus the LSTM states every env entered each step with; yields sequences.

    Each env's ``n_steps`` are cut into sequences of :func:`sequence_length` steps; a minibatch
    holds ``max(batch_size // length, 1)`` of them (shuffled), each replayed from the LSTM state
    stored at its first step (before that step's episode-start reset). With ``batch_size >= n_steps``
    the sequences are whole env columns that start from the states of the rollout's start.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.states: RNNStates | None = None  # each [n_steps, n_lstm_layers, n_envs, hidden]

    def store_states(self, states: RNNStates) -> None:
        """Record the states the envs enter the next step (``add``) with."""
        if self.states is None or self.states.pi[0].shape[1:] != states.pi[0].shape:
            self.states = states.map(lambda s: torch.zeros((self.n_steps, *s.shape), device=self.device))
        for stored, new in zip(self.states, states, strict=True):
            stored[0][self.pos] = new[0]
            stored[1][self.pos] = new[1]

    @property
    def initial_states(self) -> RNNStates | None:
        """The states every env started this rollout from."""
        return None if self.states is None else self.states.map(lambda s: s[0])

    # yields RecurrentBatch, which cannot subclass the RolloutBatch NamedTuple (NamedTuples take no new fields)
    def get(self, batch_size: int | None = None,  # type: ignore[override]
            generator: torch.Generator | None = None) -> Iterator[RecurrentBatch]:
        """Yield minibatches of sequences (shuffled), or the whole rollout as ``n_envs`` unshuffled
        sequences when ``batch_size`` is None or covers it."""
        if self.states is None:
            raise RuntimeError("the rollout has no LSTM states (store_states was not called)")
        n_steps, n_envs = self.n_steps, self.n_envs
        starts = torch.as_tensor(self.episode_starts, device=self.device)
        if batch_size is None or batch_size >= n_steps * n_envs:
            yield self._sequences(None, None, n_steps, starts)
            return
        length = sequence_length(n_steps, batch_size)
        per_env = n_steps // length
        per_batch = max(batch_size // length, 1)
        perm = torch.randperm(n_envs * per_env, device=self.device, generator=generator)
        for i in range(0, n_envs * per_env, per_batch):
            chunk = perm[i:i + per_batch]
            env, t0 = chunk % n_envs, (chunk // n_envs) * length
            yield self._sequences(env, t0, length, starts)

    def _sequences(self, env: torch.Tensor | None, t0: torch.Tensor | None, length: int,
                   starts: torch.Tensor) -> RecurrentBatch:
        """Sequences ``t0[j] .. t0[j] + length - 1`` of envs ``env[j]`` (all whole columns if None)."""
        assert self.states is not None
        stored = self.states
        if env is None or t0 is None:
            index: Any = slice(None)
            states = stored.map(lambda s: s[0])
        else:
            time_idx = t0.view(1, -1) + torch.arange(length, device=self.device).view(-1, 1)  # [L, k]
            index = (time_idx, env.view(1, -1).expand(length, -1))
            # stored [T, layers, N, H] -> [layers, k, H] at each sequence's first step
            states = stored.map(lambda s: s[t0, :, env].transpose(0, 1))

        def flat(t: torch.Tensor) -> torch.Tensor:
            t = t[index]
            return t.reshape(t.shape[0] * t.shape[1], *t.shape[2:])

        obs = ({k: flat(v) for k, v in self.observations.items()} if isinstance(self.observations, dict)
               else flat(self.observations))
        return RecurrentBatch(obs, flat(self.actions), flat(self.values), flat(self.log_probs),
                              flat(self.advantages), flat(self.returns), states, starts[index])


def collect_recurrent_rollouts(algo: Any, callback: Any) -> bool:
    """:meth:`OnPolicyAlgorithm.collect_rollouts` for an LSTM policy: the states of every env are
    carried across steps (and across rollouts) and reset at episode starts; the value of a
    truncated episode's final observation is computed from that env's critic state."""
    env, buffer, policy = algo.env, algo.rollout_buffer, algo.policy
    states = getattr(algo, "_last_lstm_states", None)
    if states is None or states.pi[0].shape[1] != algo.n_envs:
        states = policy.initial_state(algo.n_envs)
    buffer.reset()
    callback.on_rollout_start()
    box = isinstance(algo.action_space, spaces.Box)
    low, high = (algo.action_space.low, algo.action_space.high) if box else (None, None)
    new_obs = algo._last_obs
    device = algo.device
    while not buffer.full:
        obs_t = obs_to_tensor(algo._last_obs, device)
        starts_t = torch.as_tensor(algo._last_episode_starts, dtype=torch.float32, device=device)
        states_in = states
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
                final_values = policy.predict_values(final, states.map(lambda s, i=idx_t: s.index_select(1, i)))
            rewards[idx] += algo.gamma * final_values.cpu().numpy()
        buffer.store_states(states_in)
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
