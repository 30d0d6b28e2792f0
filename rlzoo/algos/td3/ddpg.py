"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016, "Continuous control with deep
reinforcement learning"), with action-space noise or adaptive parameter-space noise (Plappert et
al. 2018, "Parameter Space Noise for Exploration").

DDPG is TD3 with its three tricks switched off: one critic (no clipped double Q), no target policy
smoothing, and actor and target updates at every critic update (``policy_delay`` 1); what is DDPG's
own is the parameter-space noise."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from rlzoo.algos.td3.td3 import TD3
from rlzoo.common.noise import ActionNoise, AdaptiveParamNoiseSpec
from rlzoo.common.off_policy import OffPolicyAlgorithm
from rlzoo.common.policies import BasePolicy
from rlzoo.common.replay import ReplayBuffer


class DDPG(TD3):
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

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 1e-3,
                 buffer_size: int = 1_000_000, learning_starts: int = 100, batch_size: int = 256,
                 tau: float = 0.005, gamma: float = 0.99, train_freq: Any = 1, gradient_steps: int = 1,
                 action_noise: ActionNoise | None = None, param_noise: AdaptiveParamNoiseSpec | None = None,
                 param_noise_adaption_interval: int = 50, replay_buffer_class: type[ReplayBuffer] | None = None,
                 replay_buffer_kwargs: dict[str, Any] | None = None, optimize_memory_usage: bool | None = None,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False,
                 _init_setup_model: bool = True) -> None:
        if param_noise is not None and not isinstance(param_noise, AdaptiveParamNoiseSpec):
            raise ValueError(f"param_noise must be an AdaptiveParamNoiseSpec, got {type(param_noise).__name__}")
        if param_noise_adaption_interval < 1:
            raise ValueError(f"param_noise_adaption_interval must be >= 1, got {param_noise_adaption_interval}")
        self.param_noise = param_noise
        self.param_noise_adaption_interval = int(param_noise_adaption_interval)
        super().__init__(policy, env, learning_rate=learning_rate, buffer_size=buffer_size,
                         learning_starts=learning_starts, batch_size=batch_size, tau=tau, gamma=gamma,
                         train_freq=train_freq, gradient_steps=gradient_steps, action_noise=action_noise,
                         policy_delay=1, target_policy_noise=0.0, target_noise_clip=0.0,
                         replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
                         optimize_memory_usage=optimize_memory_usage, policy_kwargs=policy_kwargs,
                         tensorboard_log=tensorboard_log, verbose=verbose, seed=seed, device=device, compile=compile,
                         _init_setup_model=_init_setup_model)

    def _setup_networks(self, **policy_extra: Any) -> None:
        one_critic: dict[str, Any] = {} if "n_critics" in self.policy_kwargs else {"n_critics": 1}
        super()._setup_networks(**{**one_critic, **policy_extra})
        if self.param_noise is not None:
            # exploration actor and a scratch copy used to measure the perturbation's effect
            self.actor_perturbed = copy.deepcopy(self.actor).requires_grad_(False)
            self._actor_adaptive = copy.deepcopy(self.actor).requires_grad_(False)
            self._perturbable = _perturbable_params(self.actor)

    def _hyperparameters(self) -> dict[str, Any]:
        return {**OffPolicyAlgorithm._hyperparameters(self),  # not TD3's switches: DDPG fixes them
                **self._attrs("action_noise", "replay_buffer_class", "param_noise", "param_noise_adaption_interval")}

    # ------------------------------------------------------------------ parameter noise (Plappert et al. §3)
    @torch.no_grad()
    def _perturb(self, target: nn.Module, stddev: float) -> None:
        """``target <- actor + N(0, stddev^2)`` on every weight except layer-norm parameters."""
        for p, t, keep in zip(self.actor.parameters(), target.parameters(), self._perturbable, strict=True):
            t.copy_(p)
            if keep:
                t.add_(torch.randn_like(t), alpha=stddev)

    @torch.no_grad()
    def _adapt_param_noise(self, observations: Any) -> None:
        """Measure d = sqrt(E[(pi(s) - pi_perturbed(s))^2]) on replayed states and adapt the scale."""
        noise = self.param_noise
        assert noise is not None, "parameter noise is off"
        self._perturb(self._actor_adaptive, noise.current_stddev)
        distance = (self.actor(observations) - self._actor_adaptive(observations)).square().mean().sqrt()
        noise.adapt(float(distance))  # one host sync every param_noise_adaption_interval steps
        self.logger.record("train/param_noise_distance", distance)
        self.logger.record("train/param_noise_stddev", noise.current_stddev)

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

    def _after_gradient_step(self, batch: Any) -> None:
        if self.param_noise is not None and self._n_updates % self.param_noise_adaption_interval == 0:
            self._adapt_param_noise(batch.observations)
            self._perturb(self.actor_perturbed, self.param_noise.current_stddev)


def _perturbable_params(actor: nn.Module) -> list[bool]:
    """For each parameter of ``actor``: perturb it (True) unless it belongs to a LayerNorm."""
    layer_norm = {id(p) for m in actor.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    return [id(p) not in layer_norm for p in actor.parameters()]
