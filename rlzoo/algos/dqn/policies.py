"""DQN's network: a Q-network ``features -> MLP -> Q(s, .)`` (optionally dueling, Wang et al. 2016)
and its target copy."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.common.distributions import Categorical, Distribution
from rlzoo.common.numpy_acting import numpy_mlp
from rlzoo.common.off_policy_policies import ObsModule, target_copy
from rlzoo.common.policies import (
    BaseFeaturesExtractor,
    BasePolicy,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
    is_image_space,
    policy_variant,
)


class QNetwork(ObsModule):
    """``Q(s, .)`` for every discrete action; dueling: ``Q = V + A - mean_a A`` (Wang et al. 2016, eq. 9)."""

    def __init__(self, observation_space: spaces.Space, n_actions: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: list[int], activation_fn: type[nn.Module], dueling: bool = False,
                 normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        self.latent = create_mlp(features_extractor.features_dim, net_arch, activation_fn)
        latent_dim = net_arch[-1] if net_arch else features_extractor.features_dim
        self.advantage = nn.Linear(latent_dim, n_actions)
        self.value = nn.Linear(latent_dim, 1) if dueling else None

    def numpy_greedy(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """``argmax_a Q(s, a)`` in numpy for flat float observations on CPU (fast acting with few envs),
        or None when the network needs torch (images, dicts, one-hot inputs, another device).
        The dueling value stream is left out: it shifts every action's Q-value equally."""
        space = self.observation_space
        if (not isinstance(self.features_extractor, FlattenExtractor) or not isinstance(space, spaces.Box)
                or is_image_space(space) or self.advantage.weight.device.type != "cpu"):
            return None
        mlp = numpy_mlp([*self.latent, self.advantage])
        if mlp is None:
            return None
        return lambda obs: mlp(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)).argmax(axis=1)

    def forward(self, obs: Any) -> torch.Tensor:
        latent = self.latent(self.features(obs))
        if self.value is None:
            return self.advantage(latent)
        adv = self.advantage(latent)
        return self.value(latent) + adv - adv.mean(dim=1, keepdim=True)


class DQNPolicy(BasePolicy):
    """Q-network and target Q-network for DQN.

    :param net_arch: hidden layers after the features extractor (default [64, 64]; [] after a CNN)
    :param activation_fn: activation class (default ``nn.ReLU``)
    :param dueling: separate value and advantage streams
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 net_arch: list[int] | None = None, activation_fn: type[nn.Module] = nn.ReLU,
                 dueling: bool = False, features_extractor_class: type[BaseFeaturesExtractor] | None = None,
                 features_extractor_kwargs: dict[str, Any] | None = None, normalize_images: bool = True) -> None:
        super().__init__(observation_space, action_space, features_extractor_class, features_extractor_kwargs,
                         normalize_images)
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space, got {action_space}")
        if net_arch is None:
            net_arch = [] if self.features_extractor_class in (NatureCNN, CombinedExtractor) else [64, 64]
        if isinstance(net_arch, dict):
            raise ValueError("DQN's net_arch is a list of hidden layer sizes")
        self.net_arch, self.activation_fn, self.dueling = list(net_arch), activation_fn, dueling
        self.constructor_kwargs = dict(net_arch=self.net_arch, activation_fn=activation_fn, dueling=dueling,
                                       features_extractor_class=self.features_extractor_class,
                                       features_extractor_kwargs=self.features_extractor_kwargs,
                                       normalize_images=normalize_images)
        self.q_net = self.make_q_net()
        self.q_net_target = target_copy(self.q_net, self.make_q_net())

    def make_q_net(self) -> QNetwork:
        """A fresh Q-network (online or target) with its own features extractor."""
        space = self.action_space
        assert isinstance(space, spaces.Discrete), "DQN supports Discrete actions"
        return QNetwork(self.observation_space, int(space.n), self.make_features_extractor(),
                        self.net_arch, self.activation_fn, self.dueling, self.normalize_images)

    def forward(self, obs: Any) -> torch.Tensor:
        """Q-values of every action, shape ``(batch, n_actions)``."""
        return self.q_net(obs)

    def _predict(self, obs: Any, deterministic: bool = True) -> torch.Tensor:
        return self.q_net(obs).argmax(dim=1)

    def get_distribution(self, obs: Any) -> Distribution:
        """Boltzmann distribution of the Q-values (what ``action_probability`` reports for DQN)."""
        return Categorical(self.q_net(obs))

    def train(self, mode: bool = True) -> DQNPolicy:
        super().train(mode)
        self.q_net_target.train(False)
        return self


DQNCnnPolicy = policy_variant(DQNPolicy, "DQNCnnPolicy", NatureCNN, "DQN with the Nature CNN (Atari).", __name__)
DQNMultiInputPolicy = policy_variant(DQNPolicy, "DQNMultiInputPolicy", CombinedExtractor, "DQN for Dict observations.",
                                     __name__)
