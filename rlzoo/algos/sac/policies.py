"""SAC's networks: a squashed Gaussian actor (Haarnoja et al. 2018, App. C) and twin critics with a
target copy."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlzoo.common.distributions import DiagGaussian, Distribution
from rlzoo.common.off_policy_policies import ContinuousPolicy, ObsModule
from rlzoo.common.policies import BaseFeaturesExtractor, CombinedExtractor, NatureCNN, create_mlp, policy_variant

# bounds of the Gaussian's log standard deviation (as in the SAC authors' code)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class SquashedGaussianActor(ObsModule):
    """``a = tanh(u)``, ``u ~ N(mu(s), sigma(s)^2)``: the SAC policy (Haarnoja et al. 2018, App. C)."""

    def __init__(self, observation_space: spaces.Space, action_dim: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: list[int], activation_fn: type[nn.Module], normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        self.latent = create_mlp(features_extractor.features_dim, net_arch, activation_fn)
        latent_dim = net_arch[-1] if net_arch else features_extractor.features_dim
        self.mu = nn.Linear(latent_dim, action_dim)
        self.log_std = nn.Linear(latent_dim, action_dim)

    def mean_log_std(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.latent(self.features(obs))
        return self.mu(latent), self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        mean, log_std = self.mean_log_std(obs)
        if deterministic:
            return torch.tanh(mean)
        return torch.tanh(mean + log_std.exp() * torch.randn_like(mean))

    def action_log_prob(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized sample and its log-probability (SAC paper eq. 26 for the tanh change of variables)."""
        mean, log_std = self.mean_log_std(obs)
        noise = torch.randn_like(mean)
        u = mean + log_std.exp() * noise
        # log pi(a|s) = sum_j [log N(u_j; mean_j, std_j) - log(1 - tanh(u_j)^2)], where
        # log N(u; mean, std) = -noise^2 / 2 - log std - log(2 pi) / 2 and, numerically stable,
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)); the constants are summed apart
        log_prob = (2.0 * (u + F.softplus(-2.0 * u)) - 0.5 * noise.square() - log_std).sum(dim=1)
        return torch.tanh(u), log_prob - mean.shape[1] * (0.5 * math.log(2 * math.pi) + 2.0 * math.log(2.0))


class SACPolicy(ContinuousPolicy):
    """Squashed Gaussian actor, ``n_critics`` critics and their target copy (SAC).

    :param net_arch: hidden layers, a list or ``dict(pi=[...], qf=[...])`` (default [256, 256])
    :param activation_fn: activation class (default ``nn.ReLU``)
    :param n_critics: number of Q networks (clipped double Q with 2)
    """

    default_net_arch = [256, 256]

    def _build_actor(self) -> None:
        self.actor = SquashedGaussianActor(self.observation_space, self.action_dim, self.make_features_extractor(),
                                           self.pi_arch, self.activation_fn, self.normalize_images)

    def forward(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        """Actions in [-1, 1]."""
        return self.actor(obs, deterministic)

    def _predict(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        return self.unscale_action(self.actor(obs, deterministic))

    def get_distribution(self, obs: Any) -> Distribution:
        """The Gaussian *before* the tanh squashing (``action_probability`` gives its mean and std)."""
        mean, log_std = self.actor.mean_log_std(obs)
        return DiagGaussian(mean, log_std)

    def train(self, mode: bool = True) -> SACPolicy:
        super().train(mode)
        self.critic_target.train(False)
        return self


SACCnnPolicy = policy_variant(SACPolicy, "SACCnnPolicy", NatureCNN, "SAC with Nature CNN features extractors.",
                              __name__)
SACMultiInputPolicy = policy_variant(SACPolicy, "SACMultiInputPolicy", CombinedExtractor, "SAC for Dict observations.",
                                     __name__)

