"""Networks of the off-policy algorithms.

* :class:`DQNPolicy` — a Q-network ``features -> MLP -> Q(s, .)`` (optionally dueling, Wang et al.
  2016) and its target copy.
* :class:`TD3Policy` — deterministic tanh actor and ``n_critics`` Q(s, a) critics with target copies
  (DDPG: one critic; TD3: two).
* :class:`SACPolicy` — squashed Gaussian actor (Haarnoja et al. 2018, App. C) and twin critics
  with a target copy.

Continuous actions live in [-1, 1] inside the networks and the replay buffer; ``predict`` maps
them to the env's bounds. Target networks never require gradients and stay in eval mode.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlzoo.common.distributions import Categorical, DiagGaussian, Distribution
from rlzoo.common.policies import (BaseFeaturesExtractor, BasePolicy, CombinedExtractor, FlattenExtractor, NatureCNN,
                                   NetArch, create_mlp, is_image_space, numpy_mlp, policy_variant, preprocess)

# bounds of the Gaussian's log standard deviation (as in the SAC authors' code)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def _freeze(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.train(False)


def _target_copy(online: nn.Module, fresh: nn.Module) -> nn.Module:
    """``fresh`` (a newly built twin of ``online``) frozen, holding ``online``'s weights: a target network."""
    fresh.load_state_dict(online.state_dict())
    return _freeze(fresh)


def _split_arch(net_arch: NetArch, first: str, second: str) -> Tuple[List[int], List[int]]:
    if isinstance(net_arch, dict):
        unknown = set(net_arch) - {first, second}
        if unknown:
            raise ValueError(f"net_arch keys must be {first!r} and {second!r}, got {sorted(unknown)}")
        return list(net_arch.get(first, [])), list(net_arch.get(second, []))
    return list(net_arch), list(net_arch)


class _ObsModule(nn.Module):
    """A network with its own features extractor, fed raw (batched tensor) observations."""

    def __init__(self, observation_space: spaces.Space, features_extractor: BaseFeaturesExtractor,
                 normalize_images: bool) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.features_extractor = features_extractor
        self.normalize_images = normalize_images

    def features(self, obs: Any) -> torch.Tensor:
        return self.features_extractor(preprocess(obs, self.observation_space, self.normalize_images))


class QNetwork(_ObsModule):
    """``Q(s, .)`` for every discrete action; dueling: ``Q = V + A - mean_a A`` (Wang et al. 2016, eq. 9)."""

    def __init__(self, observation_space: spaces.Space, n_actions: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: List[int], activation_fn: Type[nn.Module], dueling: bool = False,
                 normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        self.latent = create_mlp(features_extractor.features_dim, net_arch, activation_fn)
        latent_dim = net_arch[-1] if net_arch else features_extractor.features_dim
        self.advantage = nn.Linear(latent_dim, n_actions)
        self.value = nn.Linear(latent_dim, 1) if dueling else None

    def numpy_greedy(self) -> Optional[Callable[[np.ndarray], np.ndarray]]:
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
                 net_arch: Optional[List[int]] = None, activation_fn: Type[nn.Module] = nn.ReLU,
                 dueling: bool = False, features_extractor_class: Optional[Type[BaseFeaturesExtractor]] = None,
                 features_extractor_kwargs: Optional[Dict[str, Any]] = None, normalize_images: bool = True) -> None:
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
        self.q_net_target = _target_copy(self.q_net, self.make_q_net())

    def make_q_net(self) -> QNetwork:
        return QNetwork(self.observation_space, int(self.action_space.n), self.make_features_extractor(),
                        self.net_arch, self.activation_fn, self.dueling, self.normalize_images)

    def forward(self, obs: Any) -> torch.Tensor:
        """Q-values of every action, shape ``(batch, n_actions)``."""
        return self.q_net(obs)

    def _predict(self, obs: Any, deterministic: bool = True) -> torch.Tensor:
        return self.q_net(obs).argmax(dim=1)

    def get_distribution(self, obs: Any) -> Distribution:
        """Boltzmann distribution of the Q-values (what ``action_probability`` reports for DQN)."""
        return Categorical(self.q_net(obs))

    def train(self, mode: bool = True) -> "DQNPolicy":
        super().train(mode)
        self.q_net_target.train(False)
        return self


# --------------------------------------------------------------------------- continuous actions
class Actor(_ObsModule):
    """Deterministic policy ``mu(s)`` in [-1, 1] (tanh output), as in DDPG and TD3."""

    def __init__(self, observation_space: spaces.Space, action_dim: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: List[int], activation_fn: Type[nn.Module], normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        self.mu = create_mlp(features_extractor.features_dim, net_arch, activation_fn, action_dim, squash_output=True)

    def forward(self, obs: Any) -> torch.Tensor:
        return self.mu(self.features(obs))


class SquashedGaussianActor(_ObsModule):
    """``a = tanh(u)``, ``u ~ N(mu(s), sigma(s)^2)``: the SAC policy (Haarnoja et al. 2018, App. C)."""

    def __init__(self, observation_space: spaces.Space, action_dim: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: List[int], activation_fn: Type[nn.Module], normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        self.latent = create_mlp(features_extractor.features_dim, net_arch, activation_fn)
        latent_dim = net_arch[-1] if net_arch else features_extractor.features_dim
        self.mu = nn.Linear(latent_dim, action_dim)
        self.log_std = nn.Linear(latent_dim, action_dim)

    def mean_log_std(self, obs: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        latent = self.latent(self.features(obs))
        return self.mu(latent), self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        mean, log_std = self.mean_log_std(obs)
        if deterministic:
            return torch.tanh(mean)
        return torch.tanh(mean + log_std.exp() * torch.randn_like(mean))

    def action_log_prob(self, obs: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized sample and its log-probability (SAC paper eq. 26 for the tanh change of variables)."""
        mean, log_std = self.mean_log_std(obs)
        noise = torch.randn_like(mean)
        u = mean + log_std.exp() * noise
        # log pi(a|s) = sum_j [log N(u_j; mean_j, std_j) - log(1 - tanh(u_j)^2)], where
        # log N(u; mean, std) = -noise^2 / 2 - log std - log(2 pi) / 2 and, numerically stable,
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)); the constants are summed apart
        log_prob = (2.0 * (u + F.softplus(-2.0 * u)) - 0.5 * noise.square() - log_std).sum(dim=1)
        return torch.tanh(u), log_prob - mean.shape[1] * (0.5 * math.log(2 * math.pi) + 2.0 * math.log(2.0))


class ContinuousCritic(_ObsModule):
    """``n_critics`` independent ``Q(s, a)`` networks on shared features (one extractor)."""

    def __init__(self, observation_space: spaces.Space, action_dim: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: List[int], activation_fn: Type[nn.Module], n_critics: int = 2,
                 normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        in_dim = features_extractor.features_dim + action_dim
        self.q_networks = nn.ModuleList([create_mlp(in_dim, net_arch, activation_fn, 1) for _ in range(n_critics)])

    def forward(self, obs: Any, actions: torch.Tensor) -> List[torch.Tensor]:
        """Q-values of every critic, each of shape ``(batch,)``."""
        x = torch.cat([self.features(obs), actions], dim=1)
        return [q(x).squeeze(1) for q in self.q_networks]

    def q1_forward(self, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        """The first critic only (TD3's and DDPG's actor loss)."""
        return self.q_networks[0](torch.cat([self.features(obs), actions], dim=1)).squeeze(1)


class _ContinuousPolicy(BasePolicy):
    """Shared plumbing: action scaling, arch parsing, constructor kwargs."""

    default_net_arch: List[int] = [256, 256]

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 net_arch: Optional[NetArch] = None, activation_fn: Type[nn.Module] = nn.ReLU,
                 features_extractor_class: Optional[Type[BaseFeaturesExtractor]] = None,
                 features_extractor_kwargs: Optional[Dict[str, Any]] = None, normalize_images: bool = True,
                 n_critics: int = 2) -> None:
        super().__init__(observation_space, action_space, features_extractor_class, features_extractor_kwargs,
                         normalize_images)
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"{type(self).__name__} needs a 1-d Box action space, got {action_space}")
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError(f"{type(self).__name__} needs finite action bounds, got {action_space}")
        if net_arch is None:
            net_arch = list(self.default_net_arch)
        self.pi_arch, self.qf_arch = _split_arch(net_arch, "pi", "qf")
        self.net_arch, self.activation_fn, self.n_critics = net_arch, activation_fn, n_critics
        self.action_dim = int(action_space.shape[0])
        self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32), persistent=False)
        self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32), persistent=False)
        self.constructor_kwargs = dict(net_arch=net_arch, activation_fn=activation_fn,
                                       features_extractor_class=self.features_extractor_class,
                                       features_extractor_kwargs=self.features_extractor_kwargs,
                                       normalize_images=normalize_images, n_critics=n_critics)
        self._build_actor()
        self.critic = self.make_critic()
        self.critic_target = _target_copy(self.critic, self.make_critic())

    def _build_actor(self) -> None:
        """Create ``self.actor`` (and its target copy where the algorithm has one)."""
        raise NotImplementedError

    def make_critic(self) -> ContinuousCritic:
        return ContinuousCritic(self.observation_space, self.action_dim, self.make_features_extractor(),
                                self.qf_arch, self.activation_fn, self.n_critics, self.normalize_images)

    def unscale_action(self, actions: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> [low, high]."""
        return self.action_low + 0.5 * (actions + 1.0) * (self.action_high - self.action_low)

    def scale_action(self, actions: np.ndarray) -> np.ndarray:
        """[low, high] -> [-1, 1] (numpy)."""
        low, high = self.action_space.low, self.action_space.high
        return 2.0 * (actions - low) / (high - low) - 1.0


class TD3Policy(_ContinuousPolicy):
    """Deterministic actor and ``n_critics`` critics with target copies (TD3; DDPG with ``n_critics=1``).

    :param net_arch: hidden layers, a list or ``dict(pi=[...], qf=[...])`` (default [400, 300], TD3 paper)
    :param activation_fn: activation class (default ``nn.ReLU``)
    :param n_critics: number of Q networks
    """

    default_net_arch = [400, 300]

    def _build_actor(self) -> None:
        self.actor = self.make_actor()
        self.actor_target = _target_copy(self.actor, self.make_actor())

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

    def train(self, mode: bool = True) -> "TD3Policy":
        super().train(mode)
        self.actor_target.train(False)
        self.critic_target.train(False)
        return self


class SACPolicy(_ContinuousPolicy):
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

    def train(self, mode: bool = True) -> "SACPolicy":
        super().train(mode)
        self.critic_target.train(False)
        return self


DQNCnnPolicy = policy_variant(DQNPolicy, "DQNCnnPolicy", NatureCNN, "DQN with the Nature CNN (Atari).", __name__)
DQNMultiInputPolicy = policy_variant(DQNPolicy, "DQNMultiInputPolicy", CombinedExtractor, "DQN for Dict observations.",
                                     __name__)
TD3CnnPolicy = policy_variant(TD3Policy, "TD3CnnPolicy", NatureCNN, "DDPG/TD3 with Nature CNN features extractors.",
                              __name__)
TD3MultiInputPolicy = policy_variant(TD3Policy, "TD3MultiInputPolicy", CombinedExtractor,
                                     "DDPG/TD3 for Dict observations.", __name__)
SACCnnPolicy = policy_variant(SACPolicy, "SACCnnPolicy", NatureCNN, "SAC with Nature CNN features extractors.",
                              __name__)
SACMultiInputPolicy = policy_variant(SACPolicy, "SACMultiInputPolicy", CombinedExtractor, "SAC for Dict observations.",
                                     __name__)
