"""On-policy base: rollout collection into a :class:`RolloutBuffer`, then ``train()`` (A2C, PPO, TRPO, ACKTR)."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from rlzoo.common.analytic_grad import ActorCriticGrad
from rlzoo.common.base import BaseAlgorithm
from rlzoo.common.numpy_acting import NumpyActor
from rlzoo.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, BasePolicy, MultiInputActorCriticPolicy
from rlzoo.common.recurrent import is_recurrent
from rlzoo.common.recurrent_rollout import RecurrentRolloutBuffer, collect_recurrent_rollouts
from rlzoo.common.rollout import RolloutBuffer
from rlzoo.common.utils import explained_variance, obs_to_tensor
from rlzoo.envs import final_observations


class OnPolicyAlgorithm(BaseAlgorithm):
    """Collects ``n_steps`` per env with the current policy, computes GAE, then calls ``train()``.

    :param n_steps: steps per env per rollout
    :param gamma: discount factor
    :param gae_lambda: GAE lambda (1.0: plain n-step returns)
    :param ent_coef: entropy bonus coefficient
    :param vf_coef: value-loss coefficient
    :param max_grad_norm: gradient clipping norm (None: no clipping, where the algorithm allows it)
    :param use_sde: generalized State-Dependent Exploration (Raffin et al. 2021) instead of independent
        Gaussian noise per step (Box actions; :class:`~rlzoo.common.distributions.StateDependentGaussian`)
    :param sde_sample_freq: with ``use_sde``, draw a new exploration matrix every this many steps of a
        rollout (-1 or 0: only at the start of each rollout)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy, "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy}

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any, n_steps: int,
                 gamma: float, gae_lambda: float, ent_coef: float, vf_coef: float, max_grad_norm: float | None,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 use_sde: bool = False, sde_sample_freq: int = -1, *, compile: bool = False) -> None:
        super().__init__(policy, env, learning_rate, policy_kwargs, tensorboard_log, verbose, seed, device,
                         compile=compile)
        if self.policy_kwargs.get("use_sde", use_sde) != use_sde:
            raise ValueError(f"use_sde is an argument of {type(self).__name__}, not a policy_kwargs key")
        self.n_steps = n_steps
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.ent_coef = ent_coef
        self.vf_coef = vf_coef
        self.max_grad_norm = max_grad_norm
        self.use_sde = use_sde
        self.sde_sample_freq = sde_sample_freq
        self.rollout_buffer: RolloutBuffer | None = None

    def _setup_model(self) -> None:
        """Policy, rollout buffer and the algorithm's optimizer (``_make_optimizer``)."""
        if self.use_sde and is_recurrent(self.policy_class):
            raise ValueError("use_sde (gSDE) is not available with recurrent policies")
        self.policy = self._make_policy(**({"use_sde": True} if self.use_sde else {}))
        self._make_buffer()
        self.optimizer = self._make_optimizer()

    def _make_buffer(self) -> None:
        buffer_class = RecurrentRolloutBuffer if is_recurrent(self.policy_class) else RolloutBuffer
        self.rollout_buffer = buffer_class(self.n_steps, self.n_envs, self.observation_space, self.action_space,
                                            self.device, self.gamma, self.gae_lambda)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        if self.rollout_buffer is not None and self.rollout_buffer.n_envs != self.n_envs:
            self._make_buffer()

    # ------------------------------------------------------------------ collection
    def collect_rollouts(self, callback: Any) -> bool:
        """Fill the rollout buffer with ``n_steps`` vector steps; False if a callback stopped training.

        Time-limit truncations are bootstrapped: the reward of a truncated step gets
        ``gamma * V(final_obs)`` added, so GAE treats it as non-terminal (Pardo et al. 2018).
        """
        if is_recurrent(self.policy):
            return collect_recurrent_rollouts(self, callback)
        env, buffer, policy = self.env, self.rollout_buffer, self.policy
        assert env is not None and buffer is not None  # set by __init__ / _setup_model
        buffer.reset()
        callback.on_rollout_start()
        space = self.action_space
        box = isinstance(space, spaces.Box)
        low, high = (space.low, space.high) if isinstance(space, spaces.Box) else (None, None)
        act_shape: tuple[int, ...] = space.shape or ()
        new_obs = self._last_obs
        # a plain MLP on CPU acts in numpy on views of its weights (torch's per-operation overhead
        # costs more than the arithmetic for a few envs); anything else acts in torch
        actor = self._numpy_actor() if buffer.accepts_numpy else None  # None with gSDE (noise drawn in torch)
        step = 0
        while not buffer.full:
            if self.use_sde and self._sde_resample_due(step):
                policy.reset_noise(self.n_envs)
            step += 1
            obs_in: Any
            if actor is not None:
                obs_in = self._last_obs
                actions, values, log_probs = actor.act(obs_in)
                actions_np = actions
            else:
                obs_in = obs_to_tensor(self._last_obs, self.device)
                with torch.inference_mode():
                    actions, values, log_probs = policy(obs_in)
                actions_np = actions.cpu().numpy()
            if box:
                actions_np = np.clip(actions_np.reshape((-1, *act_shape)), low, high)
            elif isinstance(space, spaces.MultiBinary):
                actions_np = actions_np.astype(np.int8).reshape((-1, *act_shape))
            new_obs, rewards, terminated, truncated, infos = env.step(actions_np)
            self.num_timesteps += self.n_envs
            rewards = np.asarray(rewards, dtype=np.float32)
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos)
            bootstrap = truncated & ~terminated
            if bootstrap.any():
                idx = np.flatnonzero(bootstrap)
                rewards[idx] += self.gamma * self._values_np(final_observations(infos, idx), actor)
            assert self._last_episode_starts is not None  # set by _setup_learn
            buffer.add(obs_in, actions, rewards, self._last_episode_starts, values, log_probs)
            self._last_obs = new_obs
            self._last_episode_starts = terminated | truncated
        last_values = torch.as_tensor(self._values_np(new_obs, actor))
        assert self._last_episode_starts is not None
        buffer.compute_returns_and_advantage(last_values, self._last_episode_starts)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _sde_resample_due(self, step: int) -> bool:
        """gSDE: a new exploration matrix at rollout step ``step`` (every ``sde_sample_freq`` steps when > 0,
        else only at the start of the rollout)."""
        return step % self.sde_sample_freq == 0 if self.sde_sample_freq > 0 else step == 0

    def _numpy_actor(self) -> NumpyActor | None:
        """The policy's numpy forward for this rollout (CPU, at most 64 envs, a plain MLP), or None."""
        make = getattr(self.policy, "numpy_actor", None)
        if make is None or self.device.type != "cpu" or self.n_envs > 64:
            return None
        return self._policy_view("numpy_actor", make)

    def _compile_targets(self) -> list[tuple[Any, str]]:
        return [(self.policy, "evaluate_actions")]

    def _analytic_grad(self) -> ActorCriticGrad | None:
        """The hand-written forward and backward passes of a plain MLP actor-critic (faster than autograd,
        same gradients: :mod:`rlzoo.common.analytic_grad`), or None where the update uses autograd."""
        if self.compile:  # the compiled graphs replace the hand-written passes
            return None
        return self._policy_view("analytic_grad", lambda: ActorCriticGrad.of(self.policy))

    def _values_np(self, obs: Any, actor: NumpyActor | None) -> np.ndarray:
        """``V(obs)`` as a numpy array (the numpy forward when acting in numpy)."""
        if actor is not None:
            return actor.values(obs)
        with torch.inference_mode():
            return self.policy.predict_values(obs_to_tensor(obs, self.device)).cpu().numpy()

    def _actor_critic_loss(self, policy_loss: torch.Tensor, value_loss: torch.Tensor,
                           entropy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, entropy_loss)`` with ``loss = L_pi - ent_coef * H + vf_coef * L_V`` (A3C / PPO Eq. 9);
        with ``ent_coef`` 0 the entropy is only reported, so no gradient path is built through it."""
        if self.ent_coef:
            entropy_loss = -entropy.mean()
            return policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss, entropy_loss
        return policy_loss + self.vf_coef * value_loss, -entropy.detach().mean()

    def _evaluate_batch(self, batch: Any) -> Any:
        """Values, log-probabilities and entropy of a rollout (mini)batch under the current policy
        (a recurrent policy replays the batch's sequences from their initial LSTM states)."""
        if is_recurrent(self.policy):
            return self.policy.evaluate_actions(batch.observations, batch.actions, batch.lstm_states,
                                                batch.episode_starts)
        return self.policy.evaluate_actions(batch.observations, batch.actions)

    def _learn_loop(self, total_timesteps: int, callback: Any, log_interval: int) -> None:
        iteration = 0
        while self.num_timesteps < total_timesteps:
            if not self.collect_rollouts(callback):
                break
            iteration += 1
            self._update_current_progress_remaining()
            self.train()
            if log_interval and iteration % log_interval == 0:
                self.logger.record("time/iterations", iteration, exclude="tensorboard")
                self._log_time()
                self._log_explained_variance()
                self.logger.dump(self.num_timesteps)

    def _log_explained_variance(self) -> None:
        buf = self.rollout_buffer
        assert buf is not None
        self.logger.record("train/explained_variance",
                           explained_variance(buf.values.cpu().numpy().ravel(), buf.returns.cpu().numpy().ravel()))
