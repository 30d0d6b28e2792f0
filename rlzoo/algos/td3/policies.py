"""DDPG's and TD3's networks: a deterministic tanh actor and ``n_critics`` Q(s, a) critics, each with a
target copy (DDPG: one critic; TD3: two)."""
from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rlzoo.common.distributions import Distribution
from rlzoo.common.off_policy_policies import ContinuousPolicy, ObsModule, target_copy
from rlzoo.common.policies import BaseFeaturesExtractor, CombinedExtractor, NatureCNN, create_mlp, policy_variant


class Actor(ObsModule):
    """Deterministic policy ``mu(s)`` in [-1, 1] (tanh output), as in DDPG and TD3."""

    def __init__(self, observation_space: spaces.Space, action_dim: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: list[int], activation_fn: type[nn.Module], normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        self.mu = create_mlp(features_extractor.features_dim, net_arch, activation_fn, action_dim, squash_output=True)

    def forward(self, obs: Any) -> torch.Tensor:
        return self.mu(self.features(obs))


class TD3Policy(ContinuousPolicy):
    """Deterministic actor and ``n_critics`` critics with target copies (TD3; DDPG with ``n_critics=1``).

    :param net_arch: hidden layers, a list or ``dict(pi=[...], qf=[...])`` (default [400, 300], TD3 paper)
    :param activation_fn: activation class (default ``nn.ReLU``)
    :param n_critics: number of Q networks
    """

    default_net_arch = [400, 300]

    def _build_actor(self) -> None:
        self.actor = self.make_actor()
        self.actor_target = target_copy(self.actor, self.make_actor())

    def make_actor(self) -> Actor:
        return Actor(self.observation_space, self.action_dim, self.make_features_extractor(), self.pi_arch,
                     self.activation_fn, self.normalize_images)

    def forward(self, obs: Any, deterministic: bool = True) -> torch.Tensor:
        """Actions of the actor in [-1, 1]."""
        return self.actor(obs)

    def _predict(self, obs: Any, deterministic: bool = True) -> torch.Tensor:
        return self.unscale_action(self.actor(obs))

    def get_distribution(self, obs: Any) -> Distribution:
        raise ValueError("a deterministic policy (DDPG/TD3) has no action distribution")

    def train(self, mode: bool = True) -> TD3Policy:
        super().train(mode)
        self.actor_target.train(False)
        self.critic_target.train(False)
        return self


TD3CnnPolicy = policy_variant(TD3Policy, "TD3CnnPolicy", NatureCNN, "DDPG/TD3 with Nature CNN features extractors.",
                              __name__)
TD3MultiInputPolicy = policy_variant(TD3Policy, "TD3MultiInputPolicy", CombinedExtractor,
                                     "DDPG/TD3 for Dict observations.", __name__)
