"""Off-policy base: act, store transitions in a replay buffer, and every ``train_freq`` call ``train()``
(DQN, DDPG, TD3, SAC).

One iteration of :meth:`OffPolicyAlgorithm._learn_loop`::

    collect train_freq steps (or episodes) on every env   -> replay buffer (final_obs for ended episodes,
                                                              dones = terminations only)
    if num_timesteps > learning_starts: train(gradient_steps, batch_size)

Time-limit truncations bootstrap: the stored next observation of a finished episode is its final
observation and only a termination zeroes the target's bootstrap term (Pardo et al. 2018).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.common.base import BaseAlgorithm
from rlzoo.common.noise import ActionNoise, VectorizedActionNoise
from rlzoo.common.optim import FlatParameters, LeanAdam, clip_grad_norm, make_adam, polyak_update  # noqa: F401
from rlzoo.common.policies import BasePolicy, is_image_space
from rlzoo.common.prioritized_replay import PrioritizedReplayBuffer
from rlzoo.common.replay import ReplayBuffer
from rlzoo.common.utils import obs_to_tensor
from rlzoo.envs import final_observations, unwrap_vec_normalize, unwrap_vec_wrapper
from rlzoo.envs.frame_stack import VecFrameStack

if TYPE_CHECKING:
    from typing_extensions import Self

_MODE_SENSITIVE = (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.AlphaDropout)


def min_q(q_values: list[torch.Tensor]) -> torch.Tensor:
    """Elementwise minimum over the critics' Q-values (clipped double Q-learning)."""
    return functools.reduce(torch.minimum, q_values)


class TargetPair(NamedTuple):
    """An online network and its target copy: parameters, floating-point buffers (batch-norm
    statistics), and the flat buffer that holds the target's parameters (kept alive here)."""

    params: list[torch.Tensor]
    target_params: list[torch.Tensor]
    bufs: list[torch.Tensor]
    target_bufs: list[torch.Tensor]
    target_flat: FlatParameters | None


def target_pairs(online: nn.Module, target: nn.Module) -> TargetPair:
    """Parameters and floating-point buffers of two identical networks; the target's parameters move
    into one flat buffer, so that a Polyak average with a flat online network is one operation."""
    bufs = [(b, tb) for b, tb in zip(online.buffers(), target.buffers(), strict=False) if b.is_floating_point()]
    target_params: list[torch.Tensor] = list(target.parameters())
    return TargetPair(list(online.parameters()), target_params, [b for b, _ in bufs], [tb for _, tb in bufs],
                      FlatParameters.build(target_params, with_grad=False))


def parse_train_freq(train_freq: Any) -> tuple[int, str]:
    """``4`` -> (4, "step"); ``(1, "episode")`` or ``[1, "episode"]`` -> (1, "episode")."""
    if isinstance(train_freq, (int, np.integer)) and not isinstance(train_freq, bool):
        freq, unit = int(train_freq), "step"
    elif isinstance(train_freq, (tuple, list)) and len(train_freq) == 2:
        freq, unit = int(train_freq[0]), str(train_freq[1])
    else:
        raise ValueError(f"train_freq must be an int or a pair (n, 'step'|'episode'), got {train_freq!r}")
    if unit not in ("step", "episode") or freq < 1:
        raise ValueError(f"train_freq must be >= 1 with unit 'step' or 'episode', got {train_freq!r}")
    return freq, unit


class OffPolicyAlgorithm(BaseAlgorithm):
    """Collection loop and replay buffer shared by DQN, DDPG, TD3 and SAC.

    :param buffer_size: replay buffer capacity (transitions)
    :param learning_starts: env steps of uniformly random actions before learning starts
    :param batch_size: minibatch size of each gradient step
    :param tau: Polyak coefficient of the target networks (1: hard copy)
    :param gamma: discount factor
    :param train_freq: train every ``n`` env steps (int) or ``(n, "episode")``
    :param gradient_steps: gradient steps after each collection (-1: as many as transitions collected)
    :param action_noise: exploration noise added to the actions of deterministic policies
    :param replay_buffer_class: ``ReplayBuffer`` (default) or ``PrioritizedReplayBuffer``
    :param replay_buffer_kwargs: extra arguments of the replay buffer
    :param optimize_memory_usage: store observations as single frames (None: for image observations)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {}
    supported_action_spaces: ClassVar[tuple[type[spaces.Space], ...]] = (spaces.Box,)

    def __init__(self, policy: str | type[BasePolicy], env: Any, *, learning_rate: Any, buffer_size: int,
                 learning_starts: int, batch_size: int, tau: float, gamma: float, train_freq: Any,
                 gradient_steps: int, action_noise: ActionNoise | None = None,
                 replay_buffer_class: type[ReplayBuffer] | None = None,
                 replay_buffer_kwargs: dict[str, Any] | None = None, optimize_memory_usage: bool | None = None,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False) -> None:
        super().__init__(policy, env, learning_rate=learning_rate, policy_kwargs=policy_kwargs,
                         tensorboard_log=tensorboard_log, verbose=verbose, seed=seed, device=device, compile=compile)
        if buffer_size < 1 or batch_size < 1 or learning_starts < 0:
            raise ValueError(f"need buffer_size >= 1, batch_size >= 1 and learning_starts >= 0 "
                             f"(got {buffer_size}, {batch_size}, {learning_starts})")
        if not 0.0 < tau <= 1.0 or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"need 0 < tau <= 1 and 0 <= gamma <= 1 (got tau={tau}, gamma={gamma})")
        if int(gradient_steps) < -1:
            raise ValueError(f"gradient_steps must be >= 0, or -1 for as many as collected steps, got {gradient_steps}")
        if action_noise is not None and not isinstance(action_noise, ActionNoise):
            raise ValueError(f"action_noise must be an rlzoo.noise action noise, got {type(action_noise).__name__}")
        self.buffer_size = int(buffer_size)
        self.learning_starts = int(learning_starts)
        self.batch_size = int(batch_size)
        self.tau = float(tau)
        self.gamma = float(gamma)
        self.train_freq = train_freq
        self._train_freq = parse_train_freq(train_freq)
        self.gradient_steps = int(gradient_steps)
        self.action_noise = action_noise
        self.replay_buffer_class = replay_buffer_class
        self.replay_buffer_kwargs = dict(replay_buffer_kwargs or {})
        self.optimize_memory_usage = optimize_memory_usage
        self.replay_buffer: ReplayBuffer | None = None
        self._episode_num = 0
        self._n_calls = 0
        self._noise: ActionNoise | None = None
        self._last_original_obs: Any = None
        # (online params, target params, online float buffers, target float buffers) of each target network
        self._targets: list[TargetPair] = []

    # ------------------------------------------------------------------ construction
    def _setup_model(self) -> None:
        """The algorithm's networks (``_setup_networks``), then the replay buffer when the env is known."""
        self._setup_networks()
        self._mode_sensitive = any(isinstance(m, _MODE_SENSITIVE) for m in self.policy.modules())
        if self.env is not None:
            self._make_replay_buffer()

    def _setup_networks(self) -> None:
        raise NotImplementedError

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
                              "gradient_steps", "replay_buffer_kwargs", "optimize_memory_usage")}

    def _update_targets(self) -> None:
        """``theta' <- tau theta + (1 - tau) theta'`` for every target network (``tau`` 1: a hard copy);
        floating-point buffers (batch-norm statistics) are copied."""
        for params, target_params, bufs, target_bufs, _ in self._targets:
            polyak_update(params, target_params, self.tau)
            if bufs:
                polyak_update(bufs, target_bufs, 1.0)

    def _buffer_config(self) -> dict[str, Any]:
        """How to store observations: frame storage for images, with the env's frame stacking."""
        omu = self.optimize_memory_usage
        if omu is None:
            omu = is_image_space(self.observation_space)
        config: dict[str, Any] = {"optimize_memory_usage": bool(omu)}
        stacker = unwrap_vec_wrapper(self.env, VecFrameStack) if (omu and self.env is not None) else None
        if (stacker is not None and None in stacker.stackers
                and stacker.single_observation_space == self.observation_space):
            config["frame_stack"] = stacker.n_stack
            config["stack_axis"] = 0 if stacker.stackers[None].channels_first else -1
        return config

    def _make_replay_buffer(self, **overrides: Any) -> ReplayBuffer:
        cls = self.replay_buffer_class or ReplayBuffer
        kwargs = {**self._buffer_config(), "seed": int(np.random.randint(2**31)), **self.replay_buffer_kwargs,
                  **overrides}
        self.replay_buffer = cls(self.buffer_size, self.observation_space, self.action_space, self.n_envs,
                                 device=self.device, **kwargs)
        return self.replay_buffer

    # ------------------------------------------------------------------ learning
    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 4, tb_log_name: str = "run",
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> Self:
        """Train for ``total_timesteps`` env steps (see :meth:`BaseAlgorithm.learn`); logs are written
        every ``log_interval`` finished episodes."""
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def _setup_learn(self, total_timesteps: int, callback: Any, reset_num_timesteps: bool, tb_log_name: str,
                     progress_bar: bool) -> tuple[int, Any]:
        if self.env is not None and (self.replay_buffer is None or self.replay_buffer.n_envs != self.n_envs):
            self._make_replay_buffer()
        total, callback = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                               progress_bar)
        noise = self.action_noise
        if noise is not None and self.n_envs > 1 and not isinstance(noise, VectorizedActionNoise):
            noise = VectorizedActionNoise(noise, self.n_envs)
        self._noise = noise
        if noise is not None and reset_num_timesteps:
            noise.reset()
        assert self.env is not None  # checked by BaseAlgorithm._setup_learn
        self._vec_normalize = unwrap_vec_normalize(self.env)
        self._last_original_obs = (self._vec_normalize.get_original_obs() if self._vec_normalize is not None
                                   else None)
        self.policy.train(True)
        return total, callback

    def _learn_loop(self, total_timesteps: int, callback: Any, log_interval: int) -> None:
        self._log_interval = log_interval
        while self.num_timesteps < total_timesteps:
            collected, keep_going = self.collect_rollouts(callback)
            if not keep_going:
                break
            if self.num_timesteps > self.learning_starts:
                steps = self.gradient_steps if self.gradient_steps >= 0 else collected
                freq, unit = self._train_freq
                # the last chunk, cut at the total
                if self.gradient_steps >= 0 and unit == "step" and collected < freq * self.n_envs:
                    steps = -(-steps * collected // (freq * self.n_envs))
                if steps > 0:
                    self._update_current_progress_remaining()
                    self.train(steps, self.batch_size)

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """``gradient_steps`` updates on minibatches of ``batch_size`` replayed transitions (each algorithm)."""
        raise NotImplementedError

    def collect_rollouts(self, callback: Any) -> tuple[int, bool]:
        """Step every env for ``train_freq`` steps or episodes, storing the transitions.

        Collection also stops at the ``total_timesteps`` of :meth:`learn`, so that a run ends exactly
        there (a resumed run too). Returns the number of transitions collected and False when a
        callback stopped training.
        """
        env, buffer, n_envs = self.env, self.replay_buffer, self.n_envs
        assert env is not None and buffer is not None  # made by _setup_learn
        freq, unit = self._train_freq
        vn = self._vec_normalize
        steps = episodes = 0
        if self._mode_sensitive:
            self.policy.train(False)
        callback.on_rollout_start()
        keep_going = True
        while (steps if unit == "step" else episodes) < freq and self.num_timesteps < self._total_timesteps:
            buffer_actions, env_actions = self._sample_action()
            new_obs, rewards, terminated, truncated, infos = env.step(env_actions)
            self.num_timesteps += n_envs
            steps += 1
            dones = terminated | truncated
            # the transition's next observation: the final one for episodes that ended in this step
            next_obs = new_obs if vn is None else vn.get_original_obs()
            obs = self._last_obs if vn is None else self._last_original_obs
            rewards_raw = rewards if vn is None else vn.get_original_reward()
            ended = np.flatnonzero(dones)
            if len(ended):
                next_obs = _replace_rows(next_obs, ended, final_observations(infos, ended), vn)
                self._update_info_buffer(infos)
            buffer.add(obs, next_obs, buffer_actions, rewards_raw, terminated)
            self._last_obs = new_obs
            if vn is not None:
                self._last_original_obs = vn.get_original_obs()
            callback.update_locals(locals())
            if not callback.on_step():
                keep_going = False
                break
            self._on_step()
            if len(ended):
                episodes += len(ended)
                self._episode_num += len(ended)
                self._on_episodes_end(ended)
                if self._log_interval and self._episode_num % self._log_interval < len(ended):
                    self._dump_logs()
        if self._mode_sensitive:
            self.policy.train(True)
        if keep_going:
            callback.on_rollout_end()
        return steps * n_envs, keep_going

    def _on_step(self) -> None:
        """Called after every vector step (DQN: exploration rate and target updates)."""
        self._n_calls += 1

    def _on_episodes_end(self, ended: np.ndarray) -> None:
        """Called with the indices of envs whose episode ended: restart their action noise."""
        if self._noise is not None:
            if isinstance(self._noise, VectorizedActionNoise):
                self._noise.reset(ended)
            else:
                self._noise.reset()

    # ------------------------------------------------------------------ acting
    def _sample_action(self) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(for the buffer, for the env)``: uniform before ``learning_starts``, else the policy's.

        Box actions are stored in [-1, 1] (the actor's range) and sent to the env at its bounds.
        """
        if self.num_timesteps < self.learning_starts:
            if isinstance(self.action_space, spaces.Box):
                actions = np.random.uniform(-1.0, 1.0, (self.n_envs, *self.action_space.shape)).astype(np.float32)
            else:
                actions = np.array([self.action_space.sample() for _ in range(self.n_envs)])
        else:
            with torch.inference_mode():
                actions = self._policy_actions(obs_to_tensor(self._last_obs, self.device)).cpu().numpy()
            if self._noise is not None:
                actions = np.clip(actions + self._noise(), -1.0, 1.0).astype(np.float32)
        if isinstance(self.action_space, spaces.Box):
            low, high = self.action_space.low, self.action_space.high
            return actions, low + 0.5 * (actions + 1.0) * (high - low)
        return actions, actions

    def _policy_actions(self, obs: Any) -> torch.Tensor:
        """Exploration actions of the policy (Box: in [-1, 1]) for a batch of observations."""
        return self.policy(obs)

    # ------------------------------------------------------------------ training helpers
    def _sample_batches(self, gradient_steps: int, batch_size: int) -> Iterable[Any]:
        """Minibatches for ``gradient_steps`` updates; a uniform buffer draws them all in one gather."""
        buffer, env = self.replay_buffer, self._vec_normalize
        assert buffer is not None  # made by _setup_learn
        if isinstance(buffer, PrioritizedReplayBuffer) or gradient_steps == 1:
            for _ in range(gradient_steps):
                yield buffer.sample(batch_size, env=env)
            return
        batch = buffer.sample(batch_size * gradient_steps, env=env)
        for i in range(gradient_steps):
            sl = slice(i * batch_size, (i + 1) * batch_size)
            yield type(batch)(*(_slice(x, sl) for x in batch))

    def _dump_logs(self) -> None:
        self.logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        self._log_time()
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)

    # ------------------------------------------------------------------ replay buffer persistence
    def save_replay_buffer(self, path: str | os.PathLike) -> str:
        """Write the replay buffer to ``path`` (``.npz``; numpy arrays only, no pickle), atomically."""
        if self.replay_buffer is None:
            raise ValueError("this model has no replay buffer yet (give it an env or train it first)")
        return self.replay_buffer.save(os.fspath(path))

    def load_replay_buffer(self, path: str | os.PathLike) -> None:
        """Load a replay buffer written by :meth:`save_replay_buffer` (same spaces and number of envs)."""
        config = ReplayBuffer.saved_config(os.fspath(path))
        if self.replay_buffer is None or any(getattr(self.replay_buffer, k) != v for k, v in config.items()):
            self.replay_buffer = self._make_replay_buffer(**config)
        self.replay_buffer.load(os.fspath(path))


def _slice(x: Any, sl: slice) -> Any:
    if isinstance(x, dict):
        return {k: v[sl] for k, v in x.items()}
    return x[sl]


def _replace_rows(obs: Any, rows: np.ndarray, finals: Any, vn: Any) -> Any:
    """A copy of ``obs`` whose ``rows`` are ``finals`` (VecNormalize: un-normalized back to raw)."""
    if vn is not None:
        finals = vn.unnormalize_obs(finals)
    if isinstance(obs, dict):
        out = {k: v.copy() for k, v in obs.items()}
        for k in out:
            out[k][rows] = finals[k]
        return out
    out = obs.copy()
    out[rows] = finals
    return out
