"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016, "Continuous control with deep
reinforcement learning"), with action-space noise or adaptive parameter-space noise (Plappert et
al. 2018, "Parameter Space Noise for Exploration")."""
from __future__ import annotations

import copy
from typing import Any, ClassVar, Dict, List, Optional, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

from rlzoo.common.noise import ActionNoise, AdaptiveParamNoiseSpec
from rlzoo.common.off_policy import OffPolicyAlgorithm, make_adam, polyak_update, target_pairs
from rlzoo.algos.td3.policies import TD3CnnPolicy, TD3MultiInputPolicy, TD3Policy
from rlzoo.common.policies import BasePolicy
from rlzoo.common.replay import ReplayBuffer


class DDPG(OffPolicyAlgorithm):
    """DDPG (Algorithm 1 of the paper) for Box action spaces: one critic, soft target updates.

    :param learning_rate: Adam learning rate of actor and critic (float or schedule)
    :param buffer_size: replay buffer capacity
    :param learning_starts: random steps before learning
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the target networks
    :param gamma: discount factor
    :param train_freq: update every ``train_freq`` env steps (or ``(n, "episode")``)
    :param gradient_steps: gradient steps per update (-1: as many as env steps collected)
    :param action_noise: action-space noise, e.g. ``OrnsteinUhlenbeckActionNoise`` (reset at episode ends)
    :param param_noise: ``AdaptiveParamNoiseSpec``: explore with a perturbed copy of the actor
    :param param_noise_adaption_interval: gradient steps between adaptations of the perturbation scale
    """

    policy_aliases: ClassVar[Dict[str, Type[BasePolicy]]] = {
        "MlpPolicy": TD3Policy, "CnnPolicy": TD3CnnPolicy, "MultiInputPolicy": TD3MultiInputPolicy}

    def __init__(self, policy: Union[str, Type[BasePolicy]], env: Any, learning_rate: Any = 1e-3,
                 buffer_size: int = 1_000_000, learning_starts: int = 100, batch_size: int = 256,
                 tau: float = 0.005, gamma: float = 0.99, train_freq: Any = 1, gradient_steps: int = 1,
                 action_noise: Optional[ActionNoise] = None, param_noise: Optional[AdaptiveParamNoiseSpec] = None,
                 param_noise_adaption_interval: int = 50, replay_buffer_class: Optional[Type[ReplayBuffer]] = None,
                 replay_buffer_kwargs: Optional[Dict[str, Any]] = None, optimize_memory_usage: Optional[bool] = None,
                 policy_kwargs: Optional[Dict[str, Any]] = None, tensorboard_log: Optional[str] = None,
                 verbose: int = 0, seed: Optional[int] = None, device: Union[str, torch.device] = "auto",
                 _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate, buffer_size, learning_starts, batch_size, tau, gamma,
                         train_freq, gradient_steps, action_noise, replay_buffer_class, replay_buffer_kwargs,
                         optimize_memory_usage, policy_kwargs, tensorboard_log, verbose, seed, device)
        if param_noise is not None and not isinstance(param_noise, AdaptiveParamNoiseSpec):
            raise ValueError(f"param_noise must be an AdaptiveParamNoiseSpec, got {type(param_noise).__name__}")
        if param_noise_adaption_interval < 1:
            raise ValueError(f"param_noise_adaption_interval must be >= 1, got {param_noise_adaption_interval}")
        self.param_noise = param_noise
        self.param_noise_adaption_interval = int(param_noise_adaption_interval)
        if _init_setup_model:
            self._setup_model()

    def _setup_networks(self) -> None:
        extra = {} if "n_critics" in self.policy_kwargs else {"n_critics": 1}
        self.policy = self._make_policy(**extra)
        self.actor, self.actor_target = self.policy.actor, self.policy.actor_target
        self.critic, self.critic_target = self.policy.critic, self.policy.critic_target
        lr = self.lr_schedule(1.0)
        self.actor_optimizer = make_adam(self.actor.parameters(), lr=lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), lr=lr)
        self._targets = [target_pairs(self.actor, self.actor_target), target_pairs(self.critic, self.critic_target)]
        if self.param_noise is not None:
            # exploration actor and a scratch copy used to measure the perturbation's effect
            self.actor_perturbed = copy.deepcopy(self.actor).requires_grad_(False)
            self._actor_adaptive = copy.deepcopy(self.actor).requires_grad_(False)
            self._perturbable = _perturbable_params(self.actor)

    def _state_objects(self) -> Dict[str, Any]:
        return {"policy": self.policy, "actor_optimizer": self.actor_optimizer,
                "critic_optimizer": self.critic_optimizer}

    # ------------------------------------------------------------------ parameter noise (Plappert et al. §3)
    @torch.no_grad()
    def _perturb(self, target: nn.Module, stddev: float) -> None:
        """``target <- actor + N(0, stddev^2)`` on every weight except layer-norm parameters."""
        params = list(self.actor.parameters())
        torch._foreach_copy_(list(target.parameters()), params)
        noisy = [p for p, keep in zip(target.parameters(), self._perturbable) if keep]
        torch._foreach_add_(noisy, [torch.randn_like(p) for p in noisy], alpha=stddev)

    @torch.no_grad()
    def _adapt_param_noise(self, observations: Any) -> None:
        """Measure d = sqrt(E[(pi(s) - pi_perturbed(s))^2]) on replayed states and adapt the scale."""
        self._perturb(self._actor_adaptive, self.param_noise.current_stddev)
        distance = (self.actor(observations) - self._actor_adaptive(observations)).square().mean().sqrt()
        self.param_noise.adapt(float(distance))  # one host sync every param_noise_adaption_interval steps
        self.logger.record("train/param_noise_distance", distance)
        self.logger.record("train/param_noise_stddev", self.param_noise.current_stddev)

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        out = super()._setup_learn(*args, **kwargs)
        if self.param_noise is not None:
            self._perturb(self.actor_perturbed, self.param_noise.current_stddev)
        return out

    def _policy_actions(self, obs: Any) -> torch.Tensor:
        """Exploration: the perturbed actor with parameter noise, else the actor (action noise added after)."""
        return self.actor_perturbed(obs) if self.param_noise is not None else self.actor(obs)

    def _on_episodes_end(self, ended: Any) -> None:
        super()._on_episodes_end(ended)
        if self.param_noise is not None:  # a new perturbation for every episode
            self._perturb(self.actor_perturbed, self.param_noise.current_stddev)

    # ------------------------------------------------------------------ learning
    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Critic regression to the one-step target, deterministic policy gradient, soft target updates."""
        self._update_learning_rate([self.actor_optimizer, self.critic_optimizer])
        stats = torch.zeros(2, device=self.device)
        for batch in self._sample_batches(gradient_steps, batch_size):
            self._n_updates += 1
            with torch.no_grad():
                # y = r + gamma (1 - d) Q'(s', mu'(s'))
                next_q = self.critic_target(batch.next_observations,
                                            self.actor_target(batch.next_observations))[0]
                target = batch.rewards + (1.0 - batch.dones) * self.gamma * next_q
            # L = E[(Q(s, a) - y)^2]
            critic_loss = sum(F.mse_loss(q, target) for q in self.critic(batch.observations, batch.actions))
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_optimizer.step()
            # grad_theta J = E[grad_a Q(s, a)|a=mu(s) grad_theta mu(s)]: minimize -Q(s, mu(s))
            self.critic.requires_grad_(False)
            actor_loss = -self.critic.q1_forward(batch.observations, self.actor(batch.observations)).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            self.critic.requires_grad_(True)
            # theta' <- tau theta + (1 - tau) theta'
            for params, target_params, bufs, target_bufs in self._targets:
                polyak_update(params, target_params, self.tau)
                if bufs:
                    polyak_update(bufs, target_bufs, 1.0)
            if self.param_noise is not None and self._n_updates % self.param_noise_adaption_interval == 0:
                self._adapt_param_noise(batch.observations)
                self._perturb(self.actor_perturbed, self.param_noise.current_stddev)
            stats += torch.stack([critic_loss.detach(), actor_loss.detach()])
        critic_loss, actor_loss = stats / gradient_steps
        self.logger.record("train/critic_loss", critic_loss)
        self.logger.record("train/actor_loss", actor_loss)


def _perturbable_params(actor: nn.Module) -> List[bool]:
    """For each parameter of ``actor``: perturb it (True) unless it belongs to a LayerNorm."""
    layer_norm = {id(p) for m in actor.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    return [id(p) not in layer_norm for p in actor.parameters()]
