"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in
Actor-Critic Methods"): clipped double Q-learning, delayed policy updates, target policy smoothing."""
from __future__ import annotations

import operator
from functools import reduce
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rlzoo.algos.td3.policies import TD3CnnPolicy, TD3MultiInputPolicy, TD3Policy
from rlzoo.common.noise import ActionNoise
from rlzoo.common.off_policy import OffPolicyAlgorithm, min_q, target_pairs
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

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": TD3Policy, "CnnPolicy": TD3CnnPolicy, "MultiInputPolicy": TD3MultiInputPolicy}

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 1e-3,
                 buffer_size: int = 1_000_000, learning_starts: int = 100, batch_size: int = 256,
                 tau: float = 0.005, gamma: float = 0.99, train_freq: Any = 1, gradient_steps: int = 1,
                 action_noise: ActionNoise | None = None, policy_delay: int = 2,
                 target_policy_noise: float = 0.2, target_noise_clip: float = 0.5,
                 replay_buffer_class: type[ReplayBuffer] | None = None,
                 replay_buffer_kwargs: dict[str, Any] | None = None, optimize_memory_usage: bool | None = None,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False,
                 _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate=learning_rate, buffer_size=buffer_size,
                         learning_starts=learning_starts, batch_size=batch_size, tau=tau, gamma=gamma,
                         train_freq=train_freq, gradient_steps=gradient_steps, action_noise=action_noise,
                         replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
                         optimize_memory_usage=optimize_memory_usage, policy_kwargs=policy_kwargs,
                         tensorboard_log=tensorboard_log, verbose=verbose, seed=seed, device=device, compile=compile)
        if policy_delay < 1:
            raise ValueError(f"policy_delay must be >= 1, got {policy_delay}")
        self.policy_delay = int(policy_delay)
        self.target_policy_noise = float(target_policy_noise)
        self.target_noise_clip = float(target_noise_clip)
        if _init_setup_model:
            self._setup_model()

    def _setup_networks(self, **policy_extra: Any) -> None:
        self.policy = self._make_policy(**policy_extra)
        self.actor, self.actor_target = self.policy.actor, self.policy.actor_target
        self.critic, self.critic_target = self.policy.critic, self.policy.critic_target
        self.actor_optimizer = self._new_optimizer(self.actor.parameters(), torch.optim.Adam)
        self.critic_optimizer = self._new_optimizer(self.critic.parameters(), torch.optim.Adam)
        self._targets = [target_pairs(self.actor, self.actor_target), target_pairs(self.critic, self.critic_target)]

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("action_noise", "replay_buffer_class", "policy_delay", "target_policy_noise",
                              "target_noise_clip")}

    def _state_objects(self) -> dict[str, Any]:
        return {"policy": self.policy, "actor_optimizer": self.actor_optimizer,
                "critic_optimizer": self.critic_optimizer}

    def _compile_targets(self) -> list[tuple[Any, str]]:
        return [(self.actor, "forward"), (self.actor_target, "forward"), (self.critic, "forward"),
                (self.critic, "q1_forward"), (self.critic_target, "forward")]

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Critic updates every step, actor and target updates every ``policy_delay`` steps."""
        self._update_learning_rate([self.actor_optimizer, self.critic_optimizer])
        stats = torch.zeros(2, device=self.device)  # critic loss, actor loss
        n_actor_updates = 0
        for batch in self._sample_batches(gradient_steps, batch_size):
            self._n_updates += 1
            with torch.no_grad():
                next_actions = self.actor_target(batch.next_observations)
                if self.target_policy_noise > 0:
                    # target policy smoothing: a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma)
                    noise = (torch.randn_like(batch.actions) * self.target_policy_noise).clamp_(
                        -self.target_noise_clip, self.target_noise_clip)
                    next_actions = (next_actions + noise).clamp_(-1.0, 1.0)
                # clipped double Q-learning: y = r + gamma (1 - d) min_i Q'_i(s', a') (one critic: DDPG's target)
                next_q = min_q(self.critic_target(batch.next_observations, next_actions))
                target = batch.rewards + (1.0 - batch.dones) * self.gamma * next_q
            # L = sum_i E[(Q_i(s, a) - y)^2]
            critic_loss: torch.Tensor = reduce(
                operator.add, (F.mse_loss(q, target) for q in self.critic(batch.observations, batch.actions)))
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_optimizer.step()
            stats[0] += critic_loss.detach()

            if self._n_updates % self.policy_delay == 0:
                # deterministic policy gradient through Q_1: minimize -Q_1(s, mu(s)) (critic weights frozen)
                self.critic.requires_grad_(False)
                actor_loss = -self.critic.q1_forward(batch.observations, self.actor(batch.observations)).mean()
                self.actor_optimizer.zero_grad(set_to_none=True)
                actor_loss.backward()
                self.actor_optimizer.step()
                self.critic.requires_grad_(True)
                self._update_targets()
                stats[1] += actor_loss.detach()
                n_actor_updates += 1
            self._after_gradient_step(batch)
        self.logger.record("train/critic_loss", stats[0] / gradient_steps)
        if n_actor_updates:
            self.logger.record("train/actor_loss", stats[1] / n_actor_updates)

    def _after_gradient_step(self, batch: Any) -> None:
        """Called after each gradient step with its minibatch (DDPG: parameter-noise adaptation)."""
