"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in
Actor-Critic Methods"): clipped double Q-learning, delayed policy updates, target policy smoothing."""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Type, Union

import torch

from rlzoo.common.compile import maybe_compile, td3_actor_loss, twin_critic_loss
from rlzoo.common.noise import ActionNoise
from rlzoo.common.off_policy import OffPolicyAlgorithm, make_adam, min_q, polyak_update, target_pairs
from rlzoo.common.off_policy_policies import TD3CnnPolicy, TD3MultiInputPolicy, TD3Policy
from rlzoo.common.policies import BasePolicy
from rlzoo.common.replay import ReplayBuffer


class TD3(OffPolicyAlgorithm):
    """TD3 (Algorithm 1 of the paper) for Box action spaces.

    :param learning_rate: Adam learning rate of actor and critics (float or schedule)
    :param buffer_size: replay buffer capacity
    :param learning_starts: random steps before learning
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the target networks
    :param gamma: discount factor
    :param train_freq: update every ``train_freq`` env steps (or ``(n, "episode")``)
    :param gradient_steps: gradient steps per update (-1: as many as env steps collected)
    :param action_noise: exploration noise (e.g. ``NormalActionNoise``)
    :param policy_delay: critic updates per actor (and target) update, d in the paper
    :param target_policy_noise: std of the Gaussian smoothing the target action
    :param target_noise_clip: the smoothing noise is clipped to +-c
    """

    policy_aliases: ClassVar[Dict[str, Type[BasePolicy]]] = {
        "MlpPolicy": TD3Policy, "CnnPolicy": TD3CnnPolicy, "MultiInputPolicy": TD3MultiInputPolicy}

    def __init__(self, policy: Union[str, Type[BasePolicy]], env: Any, learning_rate: Any = 1e-3,
                 buffer_size: int = 1_000_000, learning_starts: int = 100, batch_size: int = 256,
                 tau: float = 0.005, gamma: float = 0.99, train_freq: Any = 1, gradient_steps: int = 1,
                 action_noise: Optional[ActionNoise] = None, policy_delay: int = 2,
                 target_policy_noise: float = 0.2, target_noise_clip: float = 0.5,
                 replay_buffer_class: Optional[Type[ReplayBuffer]] = None,
                 replay_buffer_kwargs: Optional[Dict[str, Any]] = None, optimize_memory_usage: Optional[bool] = None,
                 policy_kwargs: Optional[Dict[str, Any]] = None, tensorboard_log: Optional[str] = None,
                 verbose: int = 0, seed: Optional[int] = None, device: Union[str, torch.device] = "auto",
                 compile: bool = False, _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate, buffer_size, learning_starts, batch_size, tau, gamma,
                         train_freq, gradient_steps, action_noise, replay_buffer_class, replay_buffer_kwargs,
                         optimize_memory_usage, policy_kwargs, tensorboard_log, verbose, seed, device)
        if policy_delay < 1:
            raise ValueError(f"policy_delay must be >= 1, got {policy_delay}")
        self.policy_delay = int(policy_delay)
        self.target_policy_noise = float(target_policy_noise)
        self.target_noise_clip = float(target_noise_clip)
        self.compile = bool(compile)
        if _init_setup_model:
            self._setup_model()

    def _setup_networks(self) -> None:
        self.policy = self._make_policy()
        self.actor, self.actor_target = self.policy.actor, self.policy.actor_target
        self.critic, self.critic_target = self.policy.critic, self.policy.critic_target
        lr = self.lr_schedule(1.0)
        self.actor_optimizer = make_adam(self.actor.parameters(), lr=lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), lr=lr)
        self._critic_params = list(self.critic.parameters())
        self._targets = [target_pairs(self.actor, self.actor_target), target_pairs(self.critic, self.critic_target)]
        self._critic_loss = maybe_compile(twin_critic_loss, self.compile)
        self._actor_loss = maybe_compile(td3_actor_loss, self.compile)

    def _state_objects(self) -> Dict[str, Any]:
        return {"policy": self.policy, "actor_optimizer": self.actor_optimizer,
                "critic_optimizer": self.critic_optimizer}

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Critic updates every step, actor and target updates every ``policy_delay`` steps."""
        self._update_learning_rate([self.actor_optimizer, self.critic_optimizer])
        critic_loss_sum = torch.zeros((), device=self.device)
        actor_loss = None
        for batch in self._sample_batches(gradient_steps, batch_size):
            self._n_updates += 1
            with torch.no_grad():
                # target policy smoothing: a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma)
                noise = (torch.randn_like(batch.actions) * self.target_policy_noise).clamp_(
                    -self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(batch.next_observations) + noise).clamp_(-1.0, 1.0)
                # clipped double Q-learning: y = r + gamma (1 - d) min_i Q'_i(s', a')
                next_q = min_q(self.critic_target(batch.next_observations, next_actions))
                target = batch.rewards + (1.0 - batch.dones) * self.gamma * next_q
            critic_loss = self._critic_loss(self.critic, batch.observations, batch.actions, target, 1.0)
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_optimizer.step()
            critic_loss_sum += critic_loss.detach()

            if self._n_updates % self.policy_delay == 0:
                # deterministic policy gradient through Q_1 (critic weights frozen: no gradient needed)
                self.critic.requires_grad_(False)
                actor_loss = self._actor_loss(self.actor, self.critic, batch.observations)
                self.actor_optimizer.zero_grad(set_to_none=True)
                actor_loss.backward()
                self.actor_optimizer.step()
                self.critic.requires_grad_(True)
                for params, target_params, bufs, target_bufs in self._targets:
                    polyak_update(params, target_params, self.tau)
                    if bufs:
                        polyak_update(bufs, target_bufs, 1.0)
        self.logger.record("train/critic_loss", critic_loss_sum / gradient_steps)
        if actor_loss is not None:
            self.logger.record("train/actor_loss", actor_loss.detach())
