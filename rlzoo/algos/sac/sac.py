"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"):
maximum-entropy actor-critic with twin critics and automatic entropy tuning."""
from __future__ import annotations

import operator
from functools import reduce
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlzoo.algos.sac.policies import SACCnnPolicy, SACMultiInputPolicy, SACPolicy
from rlzoo.common.noise import ActionNoise
from rlzoo.common.off_policy import OffPolicyAlgorithm, make_adam, min_q, target_pairs
from rlzoo.common.policies import BasePolicy
from rlzoo.common.replay import ReplayBuffer


class _LogEntCoef(nn.Module):
    """Holds log(alpha) so that it is saved and loaded like any other state."""

    def __init__(self, init: float) -> None:
        super().__init__()
        self.log_ent_coef = nn.Parameter(torch.tensor(float(np.log(init)), dtype=torch.float32))


class SAC(OffPolicyAlgorithm):
    """SAC (Algorithm 1 of the paper) for Box action spaces.

    :param learning_rate: Adam learning rate of actor, critics and entropy coefficient
    :param buffer_size: replay buffer capacity
    :param learning_starts: random steps before learning
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the target critics
    :param gamma: discount factor
    :param train_freq: update every ``train_freq`` env steps (or ``(n, "episode")``)
    :param gradient_steps: gradient steps per update (-1: as many as env steps collected)
    :param action_noise: optional extra exploration noise on the sampled actions
    :param ent_coef: entropy coefficient alpha: a float, ``"auto"`` (learned, starting at 1) or
        ``"auto_<init>"`` (learned, starting at init)
    :param target_update_interval: gradient steps between target critic updates
    :param target_entropy: entropy target of the automatic tuning (``"auto"``: -dim(A))
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": SACPolicy, "CnnPolicy": SACCnnPolicy, "MultiInputPolicy": SACMultiInputPolicy}

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 3e-4,
                 buffer_size: int = 1_000_000, learning_starts: int = 100, batch_size: int = 256,
                 tau: float = 0.005, gamma: float = 0.99, train_freq: Any = 1, gradient_steps: int = 1,
                 action_noise: ActionNoise | None = None, ent_coef: str | float = "auto",
                 target_update_interval: int = 1, target_entropy: str | float = "auto",
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
        self.ent_coef = ent_coef
        self.target_update_interval = int(target_update_interval)
        self.target_entropy = target_entropy
        self._auto_ent, self._ent_init = self._parse_ent_coef(ent_coef)
        if not (target_entropy == "auto" or isinstance(target_entropy, (int, float))):
            raise ValueError(f"target_entropy must be 'auto' or a number, got {target_entropy!r}")
        if _init_setup_model:
            self._setup_model()

    @staticmethod
    def _parse_ent_coef(ent_coef: str | float) -> tuple:
        if isinstance(ent_coef, str):
            if ent_coef == "auto":
                return True, 1.0
            if ent_coef.startswith("auto_"):
                try:
                    init = float(ent_coef[5:])
                except ValueError:
                    init = -1.0
                if init > 0:
                    return True, init
            raise ValueError(f"ent_coef must be a positive number, 'auto' or 'auto_<initial value>', got {ent_coef!r}")
        if float(ent_coef) < 0:
            raise ValueError(f"ent_coef must be >= 0, got {ent_coef}")
        return False, float(ent_coef)

    def _setup_networks(self) -> None:
        self.policy = self._make_policy()
        self.actor, self.critic, self.critic_target = self.policy.actor, self.policy.critic, self.policy.critic_target
        lr = self.lr_schedule(1.0)
        self.actor_optimizer = self._new_optimizer(self.actor.parameters(), torch.optim.Adam)
        self.critic_optimizer = self._new_optimizer(self.critic.parameters(), torch.optim.Adam)
        self._targets = [target_pairs(self.critic, self.critic_target)]
        assert isinstance(self.action_space, spaces.Box), "SAC supports Box actions"
        dim = int(np.prod(self.action_space.shape))
        self._target_entropy = -float(dim) if self.target_entropy == "auto" else float(self.target_entropy)
        self.log_ent_coef = _LogEntCoef(self._ent_init).to(self.device)
        self.ent_coef_optimizer = make_adam(self.log_ent_coef.parameters(), lr=lr) if self._auto_ent else None
        self._ent_coef_const = torch.tensor(self._ent_init, device=self.device)

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("action_noise", "replay_buffer_class", "ent_coef", "target_update_interval",
                              "target_entropy")}

    def _state_objects(self) -> dict[str, Any]:
        objects = {"policy": self.policy, "actor_optimizer": self.actor_optimizer,
                   "critic_optimizer": self.critic_optimizer, "log_ent_coef": self.log_ent_coef}
        if self.ent_coef_optimizer is not None:
            objects["ent_coef_optimizer"] = self.ent_coef_optimizer
        return objects

    def _compile_targets(self) -> list[tuple[Any, str]]:
        return [(self.actor, "action_log_prob"), (self.critic, "forward"), (self.critic_target, "forward")]

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Soft policy iteration steps: critic (eq. 5), actor (eq. 7), temperature (eq. 18), targets."""
        optimizers = [self.actor_optimizer, self.critic_optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        log_alpha = self.log_ent_coef.log_ent_coef
        stats = torch.zeros(3, device=self.device)  # critic loss, actor loss, entropy coefficient
        for batch in self._sample_batches(gradient_steps, batch_size):
            self._n_updates += 1
            actions_pi, log_prob = self.actor.action_log_prob(batch.observations)
            if self.ent_coef_optimizer is not None:
                # J(alpha) = E[-alpha (log pi(a|s) + target entropy)] (eq. 18), optimized on log alpha with
                # alpha replaced by log alpha in the loss, as SB3 does; that loss's gradient in closed form is
                # d/d(log alpha) = -E[log pi(a|s) + target entropy]
                ent_coef = log_alpha.detach().exp()
                log_alpha.grad = -(log_prob.detach().mean() + self._target_entropy)
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self._ent_coef_const

            with torch.no_grad():
                # soft target: y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s')
                next_actions, next_log_prob = self.actor.action_log_prob(batch.next_observations)
                next_q = min_q(self.critic_target(batch.next_observations, next_actions))
                target = batch.rewards + (1.0 - batch.dones) * self.gamma * (next_q - ent_coef * next_log_prob)
            # J_Q = 1/2 E[(Q_i(s, a) - y)^2] for each critic (eq. 5)
            critic_loss: torch.Tensor = 0.5 * reduce(
                operator.add, (F.mse_loss(q, target) for q in self.critic(batch.observations, batch.actions)))
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_optimizer.step()

            # J_pi = E[alpha log pi(a|s) - min_i Q_i(s, a)], a = f(eps; s) reparameterized (eq. 7 / 12);
            # the critics' weights need no gradient here
            self.critic.requires_grad_(False)
            q_pi = min_q(self.critic(batch.observations, actions_pi))
            actor_loss = (ent_coef * log_prob - q_pi).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            self.critic.requires_grad_(True)

            if self._n_updates % self.target_update_interval == 0:
                self._update_targets()
            stats += torch.stack([critic_loss.detach(), actor_loss.detach(), ent_coef])
        critic_loss, actor_loss, ent_coef = stats / gradient_steps
        self.logger.record("train/critic_loss", critic_loss)
        self.logger.record("train/actor_loss", actor_loss)
        self.logger.record("train/ent_coef", ent_coef)
