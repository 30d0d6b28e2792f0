"""Network pieces shared by the off-policy algorithms' policies (DQN, DDPG/TD3, SAC).

* :class:`ObsModule` — a network with its own features extractor; :func:`target_copy` — its frozen
  target twin.
* :class:`ContinuousCritic` and :class:`ContinuousPolicy` — ``n_critics`` Q(s, a) critics and the
  action scaling shared by DDPG/TD3 (``rlzoo.algos.td3.policies``) and SAC (``rlzoo.algos.sac.policies``).

Continuous actions live in [-1, 1] inside the networks and the replay buffer; ``predict`` maps
them to the env's bounds. Target networks never require gradients and stay in eval mode.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.common.policies import BaseFeaturesExtractor, BasePolicy, NetArch, create_mlp, preprocess


def freeze(module: nn.Module) -> nn.Module:
    """``module`` without gradients, in eval mode."""
    module.requires_grad_(False)
    return module.train(False)


def target_copy(online: nn.Module, fresh: nn.Module) -> nn.Module:
    """``fresh`` (a newly built twin of ``online``) frozen, holding ``online``'s weights: a target network."""
    fresh.load_state_dict(online.state_dict())
    return freeze(fresh)


def split_arch(net_arch: NetArch, first: str, second: str) -> tuple[list[int], list[int]]:
    """A list (same layers for both) or ``dict(first=[...], second=[...])`` -> the two layer lists."""
    if isinstance(net_arch, dict):
        unknown = set(net_arch) - {first, second}
        if unknown:
            raise ValueError(f"net_arch keys must be {first!r} and {second!r}, got {sorted(unknown)}")
        return list(net_arch.get(first, [])), list(net_arch.get(second, []))
    return list(net_arch), list(net_arch)


class ObsModule(nn.Module):
    """A network with its own features extractor, fed raw (batched tensor) observations."""

    def __init__(self, observation_space: spaces.Space, features_extractor: BaseFeaturesExtractor,
                 normalize_images: bool) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.features_extractor = features_extractor
        self.normalize_images = normalize_images

    def features(self, obs: Any) -> torch.Tensor:
        return self.features_extractor(preprocess(obs, self.observation_space, self.normalize_images))


class ContinuousCritic(ObsModule):
    """``n_critics`` independent ``Q(s, a)`` networks on shared features (one extractor)."""

    def __init__(self, observation_space: spaces.Space, action_dim: int, features_extractor: BaseFeaturesExtractor,
                 net_arch: list[int], activation_fn: type[nn.Module], n_critics: int = 2,
                 normalize_images: bool = True) -> None:
        super().__init__(observation_space, features_extractor, normalize_images)
        in_dim = features_extractor.features_dim + action_dim
        self.q_networks = nn.ModuleList([create_mlp(in_dim, net_arch, activation_fn, 1) for _ in range(n_critics)])

    def forward(self, obs: Any, actions: torch.Tensor) -> list[torch.Tensor]:
        """Q-values of every critic, each of shape ``(batch,)``."""
        x = torch.cat([self.features(obs), actions], dim=1)
        return [q(x).squeeze(1) for q in self.q_networks]

    def q1_forward(self, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        """The first critic only (TD3's and DDPG's actor loss)."""
        return self.q_networks[0](torch.cat([self.features(obs), actions], dim=1)).squeeze(1)


class ContinuousPolicy(BasePolicy):
    """Shared plumbing: action scaling, arch parsing, constructor kwargs."""

    default_net_arch: list[int] = [256, 256]
    # bounds of the Box action space (non-persistent buffers, so they follow the policy's device)
    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 net_arch: NetArch | None = None, activation_fn: type[nn.Module] = nn.ReLU,
                 features_extractor_class: type[BaseFeaturesExtractor] | None = None,
                 features_extractor_kwargs: dict[str, Any] | None = None, normalize_images: bool = True,
                 n_critics: int = 2) -> None:
        super().__init__(observation_space, action_space, features_extractor_class, features_extractor_kwargs,
                         normalize_images)
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"{type(self).__name__} needs a 1-d Box action space, got {action_space}")
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError(f"{type(self).__name__} needs finite action bounds, got {action_space}")
        if net_arch is None:
            net_arch = list(self.default_net_arch)
        self.pi_arch, self.qf_arch = split_arch(net_arch, "pi", "qf")
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
        self.critic_target = target_copy(self.critic, self.make_critic())

    def _build_actor(self) -> None:
        """Create ``self.actor`` (and its target copy where the algorithm has one)."""
        raise NotImplementedError

    def make_critic(self) -> ContinuousCritic:
        return ContinuousCritic(self.observation_space, self.action_dim, self.make_features_extractor(),
                                self.qf_arch, self.activation_fn, self.n_critics, self.normalize_images)

    def unscale_action(self, actions: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> [low, high]."""
        return self.action_low + 0.5 * (actions + 1.0) * (self.action_high - self.action_low)



