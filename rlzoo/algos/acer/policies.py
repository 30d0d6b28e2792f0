"""ACER's network: actor and critic on one features extractor (discrete Q-heads or the stochastic
dueling network of Wang et al. 2016, Section 4.1, for Box actions)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.common.distributions import Categorical, DiagGaussian, Distribution, DistributionHead
from rlzoo.common.policies import (
    BaseFeaturesExtractor,
    BasePolicy,
    CombinedExtractor,
    NatureCNN,
    create_mlp,
    orthogonal_init,
    policy_variant,
)


class ACERPolicy(BasePolicy):
    """Actor and critic of ACER on one features extractor.

    Discrete actions: a categorical policy ``f(.|x)`` and ``Q(x, .)`` for every action, with
    ``V(x) = sum_a f(a|x) Q(x, a)``. Box actions: a diagonal Gaussian policy (state-independent
    log-std) and the stochastic dueling network ``V(x)`` + ``A(x, a)`` (Section 4.1).

    :param net_arch: hidden layers of the actor and critic MLPs: a list (same sizes for both) or
        ``dict(pi=[...], qf=[...])``; default ``[64, 64]`` (none on top of a CNN)
    :param activation_fn: activation class (default ``nn.Tanh``)
    :param ortho_init: orthogonal initialization (gains sqrt(2) hidden, 0.01 policy, 1 critic)
    :param log_std_init: initial log standard deviation for Box actions
    :param squash_output: Box actions with finite bounds: the Gaussian is over pre-squash actions ``u``
        and the env receives ``low + (tanh(u) + 1) (high - low) / 2``, so that the critic and the policy
        never extrapolate beyond the bounds (importance ratios and KL are unchanged by the squashing)
    """

    default_net_arch: Any | None = None
    # buffers registered in __init__ when squashing Box actions
    action_center: torch.Tensor
    action_half_range: torch.Tensor

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 net_arch: list[int] | dict[str, list[int]] | None = None,
                 activation_fn: type[nn.Module] = nn.Tanh, ortho_init: bool = True, log_std_init: float = 0.0,
                 squash_output: bool = True, features_extractor_class: type[BaseFeaturesExtractor] | None = None,
                 features_extractor_kwargs: dict[str, Any] | None = None,
                 normalize_images: bool = True) -> None:
        super().__init__(observation_space, action_space, features_extractor_class, features_extractor_kwargs,
                         normalize_images)
        if net_arch is None:
            net_arch = self.default_net_arch
        if net_arch is None:
            net_arch = [] if self.features_extractor_class in (NatureCNN, CombinedExtractor) else [64, 64]
        if isinstance(net_arch, dict):
            unknown = set(net_arch) - {"pi", "qf", "vf"}
            if unknown:
                raise ValueError(f"ACER net_arch keys are 'pi' and 'qf', got {sorted(unknown)}")
            pi_arch, qf_arch = list(net_arch.get("pi", [])), list(net_arch.get("qf", net_arch.get("vf", [])))
        else:
            pi_arch = qf_arch = list(net_arch)
        self.net_arch, self.activation_fn = net_arch, activation_fn
        self.ortho_init, self.log_std_init = ortho_init, log_std_init
        self.constructor_kwargs = dict(net_arch=net_arch, activation_fn=activation_fn, ortho_init=ortho_init,
                                       log_std_init=log_std_init, squash_output=squash_output,
                                       features_extractor_class=self.features_extractor_class,
                                       features_extractor_kwargs=self.features_extractor_kwargs,
                                       normalize_images=normalize_images)
        self.continuous = isinstance(action_space, spaces.Box)
        bounds = (action_space.low, action_space.high) if isinstance(action_space, spaces.Box) else None
        self.squash = bool(squash_output and bounds is not None and np.all(np.isfinite(bounds[0]))
                           and np.all(np.isfinite(bounds[1])))
        if self.squash and bounds is not None:
            low, high = (torch.as_tensor(b, dtype=torch.float32).flatten() for b in bounds)
            self.register_buffer("action_center", (high + low) / 2, persistent=False)
            self.register_buffer("action_half_range", (high - low) / 2, persistent=False)
        self.features_extractor = self.make_features_extractor()
        dim = self.features_extractor.features_dim
        self.pi_net = create_mlp(dim, pi_arch, activation_fn)
        self.q_net = create_mlp(dim, qf_arch, activation_fn)
        latent_pi = pi_arch[-1] if pi_arch else dim
        latent_q = qf_arch[-1] if qf_arch else dim
        self.action_head = DistributionHead(action_space, latent_pi, log_std_init)
        if isinstance(action_space, spaces.Box):
            self.action_dim = int(np.prod(action_space.shape))
            self.value_head = nn.Linear(latent_q, 1)  # V(x)
            # A(x, a) of the stochastic dueling network, on the features and the action
            self.adv_net = create_mlp(dim + self.action_dim, qf_arch, activation_fn, output_dim=1)
            adv_out = self.adv_net[-1]
            assert isinstance(adv_out, nn.Linear)  # create_mlp ends on the output layer
            critic_out: list[nn.Linear] = [self.value_head, adv_out]
        else:
            assert isinstance(action_space, spaces.Discrete), "ACER supports Box and Discrete actions"
            self.q_head = nn.Linear(latent_q, int(action_space.n))  # Q(x, .)
            critic_out = [self.q_head]
        if ortho_init:
            orthogonal_init({self: np.sqrt(2)})
            nn.init.orthogonal_(self.action_head.linear.weight, gain=0.01)
            for layer in critic_out:
                nn.init.orthogonal_(layer.weight, gain=1.0)

    # -------------------------------------------------------------- pieces used by ACER.train
    def distribution(self, features: torch.Tensor) -> Distribution:
        """Policy distribution from extracted features."""
        return self.action_head(self.pi_net(features))

    def q_values(self, features: torch.Tensor) -> torch.Tensor:
        """Discrete: ``Q(x, .)`` of shape ``[B, n_actions]``."""
        return self.q_head(self.q_net(features))

    def value(self, features: torch.Tensor) -> torch.Tensor:
        """Box: ``V(x)`` of shape ``[B]``."""
        return self.value_head(self.q_net(features)).squeeze(-1)

    def advantage(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Box: ``A(x, a)`` for (pre-squash) ``actions`` of shape ``[B, K, action_dim]`` -> ``[B, K]``.

        The network sees the action the env executes (squashed), scaled to [-1, 1]."""
        if self.squash:
            actions = torch.tanh(actions)
        feats = features.unsqueeze(1).expand(-1, actions.shape[1], -1)
        return self.adv_net(torch.cat([feats, actions], dim=-1)).squeeze(-1)

    def env_action(self, actions: torch.Tensor) -> torch.Tensor:
        """Map sampled (pre-squash) actions to the env's action space (identity unless squashing)."""
        if not self.squash:
            return actions
        return self.action_center + self.action_half_range * torch.tanh(actions)

    # -------------------------------------------------------------- acting
    def forward(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample actions and return them with the behaviour statistics ``mu`` to store.

        Box actions are returned before squashing (see :meth:`env_action`)."""
        dist = self.get_distribution(obs)
        actions = dist.sample()
        if self.continuous:
            assert isinstance(dist, DiagGaussian)
            return actions, torch.cat([dist.mean, dist.std], dim=-1)
        assert isinstance(dist, Categorical)
        return actions, dist.probs

    def get_distribution(self, obs: Any) -> Distribution:
        """Policy distribution for raw observations."""
        return self.distribution(self.extract_features(obs))

    def predict_values(self, obs: Any) -> torch.Tensor:
        """``V(x)``: the critic's value head (Box) or ``sum_a f(a|x) Q(x, a)`` (Discrete)."""
        features = self.extract_features(obs)
        if self.continuous:
            return self.value(features)
        dist = self.distribution(features)
        assert isinstance(dist, Categorical)
        return (dist.probs * self.q_values(features)).sum(-1)

    def _predict(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        return self.env_action(self.get_distribution(obs).get_actions(deterministic))


ACERCnnPolicy = policy_variant(ACERPolicy, "ACERCnnPolicy", NatureCNN, "ACER policy on the Nature CNN (Atari).",
                               __name__)
ACERMultiInputPolicy = policy_variant(ACERPolicy, "ACERMultiInputPolicy", CombinedExtractor,
                                      "ACER policy for Dict observations.", __name__)
