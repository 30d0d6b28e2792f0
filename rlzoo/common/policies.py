"""Networks: observation preprocessing, features extractors, MLP builders and the actor-critic policy.

A policy is ``features extractor -> MLP extractor (pi / vf latents) -> heads``. The features
extractor is separate from the heads so that any observation (a feature vector, an image, a
dict of both) trains with the same actor-critic machinery.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlzoo.common.distributions import Distribution, DistributionHead
from rlzoo.common.numpy_acting import NumpyActor, numpy_actor
from rlzoo.common.utils import space_shape
from rlzoo.envs.vec_env import is_image_space, is_image_space_channels_first  # the one image-space rule

NetArch = list[int] | dict[str, list[int]]


# --------------------------------------------------------------------------- observations
def channels_last(space: spaces.Box) -> bool:
    """The layout of an image space (the one guess of :func:`rlzoo.envs.is_image_space_channels_first`)."""
    return not is_image_space_channels_first(space)


def flat_dim(space: spaces.Space) -> int:
    """Size of the flat feature vector an observation space preprocesses to."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return int(np.prod(space.shape))
    raise ValueError(f"unsupported observation space {space}")


def preprocess_obs(obs: torch.Tensor, space: spaces.Space, normalize_images: bool = True) -> torch.Tensor:
    """Turn raw observations into float tensors: one-hot for discrete, [0, 1] scaling for images."""
    if isinstance(space, spaces.Box):
        if is_image_space(space):
            obs = obs.float()
            if channels_last(space):
                obs = obs.permute(0, 3, 1, 2)
            return obs / 255.0 if normalize_images else obs
        return obs.float()
    if isinstance(space, spaces.Discrete):
        return F.one_hot(obs.long().reshape(-1), int(space.n)).float()
    if isinstance(space, spaces.MultiDiscrete):
        obs = obs.long().reshape(obs.shape[0], -1)
        return torch.cat([F.one_hot(obs[:, i], int(n)).float() for i, n in enumerate(space.nvec.ravel())], dim=1)
    if isinstance(space, spaces.MultiBinary):
        return obs.float()
    raise ValueError(f"unsupported observation space {space}")


# --------------------------------------------------------------------------- features extractors
class BaseFeaturesExtractor(nn.Module):
    """Base of all features extractors: maps observations to a ``features_dim`` vector."""

    def __init__(self, observation_space: spaces.Space, features_dim: int) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.features_dim = features_dim


class FlattenExtractor(BaseFeaturesExtractor):
    """Identity on flat features: the observation, preprocessed and flattened."""

    def __init__(self, observation_space: spaces.Space) -> None:
        super().__init__(observation_space, flat_dim(observation_space))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.flatten(1)


class NatureCNN(BaseFeaturesExtractor):
    """The convolutional torso of Mnih et al. 2015 (Nature DQN): 3 conv layers and a dense layer."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 512) -> None:
        super().__init__(observation_space, features_dim)
        shape = observation_space.shape
        n_channels = shape[-1] if channels_last(observation_space) else shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(n_channels, 32, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        h, w = (shape[0], shape[1]) if channels_last(observation_space) else (shape[1], shape[2])
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, n_channels, h, w)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(obs))


class CombinedExtractor(BaseFeaturesExtractor):
    """Dict observations: a NatureCNN per image key, flatten for the rest, concatenated."""

    def __init__(self, observation_space: spaces.Dict, cnn_output_dim: int = 256) -> None:
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, sub in observation_space.spaces.items():
            if isinstance(sub, spaces.Box) and is_image_space(sub):
                extractors[key] = NatureCNN(sub, features_dim=cnn_output_dim)
                total += cnn_output_dim
            else:
                extractors[key] = nn.Flatten()
                total += flat_dim(sub)
        super().__init__(observation_space, total)
        self.extractors = nn.ModuleDict(extractors)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([ext(obs[key]) for key, ext in self.extractors.items()], dim=1)


def preprocess(obs: Any, space: spaces.Space, normalize_images: bool = True) -> Any:
    """:func:`preprocess_obs` applied key by key for Dict spaces."""
    if isinstance(space, spaces.Dict):
        return {k: preprocess_obs(obs[k], s, normalize_images) for k, s in space.spaces.items()}
    return preprocess_obs(obs, space, normalize_images)


# --------------------------------------------------------------------------- MLPs
def orthogonal_init(gains: dict[nn.Module, float]) -> None:
    """Orthogonal weights with each module's gain and zero biases for its Linear/Conv2d layers."""
    for module, gain in gains.items():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.orthogonal_(m.weight, gain=gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def create_mlp(input_dim: int, net_arch: list[int], activation_fn: type[nn.Module] = nn.ReLU,
               output_dim: int = -1, squash_output: bool = False) -> nn.Sequential:
    """Fully connected network ``input -> net_arch hidden layers -> output`` (no output if -1)."""
    layers: list[nn.Module] = []
    last = input_dim
    for width in net_arch:
        layers += [nn.Linear(last, width), activation_fn()]
        last = width
    if output_dim > 0:
        layers.append(nn.Linear(last, output_dim))
        if squash_output:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MlpExtractor(nn.Module):
    """Two MLPs on the features: one for the policy latent, one for the value latent.

    ``net_arch`` is a list (same hidden sizes for both) or ``dict(pi=[...], vf=[...])``.
    """

    def __init__(self, features_dim: int, net_arch: NetArch, activation_fn: type[nn.Module]) -> None:
        super().__init__()
        if isinstance(net_arch, dict):
            pi_arch, vf_arch = list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
        else:
            pi_arch = vf_arch = list(net_arch)
        self.policy_net = create_mlp(features_dim, pi_arch, activation_fn)
        self.value_net = create_mlp(features_dim, vf_arch, activation_fn)
        self.latent_dim_pi = pi_arch[-1] if pi_arch else features_dim
        self.latent_dim_vf = vf_arch[-1] if vf_arch else features_dim

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy_net(features), self.value_net(features)


# --------------------------------------------------------------------------- base policy
class BasePolicy(nn.Module):
    """Common policy plumbing: observation handling and ``predict`` for numpy callers."""

    features_extractor: BaseFeaturesExtractor  # built by each policy (``make_features_extractor``)

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 features_extractor_class: type[BaseFeaturesExtractor] | None = None,
                 features_extractor_kwargs: dict[str, Any] | None = None,
                 normalize_images: bool = True) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.normalize_images = normalize_images
        if features_extractor_class is None:
            features_extractor_class = default_extractor(observation_space)
        self.features_extractor_class = features_extractor_class
        self.features_extractor_kwargs = dict(features_extractor_kwargs or {})

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        return self.features_extractor_class(self.observation_space, **self.features_extractor_kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def extract_features(self, obs: Any, extractor: nn.Module | None = None) -> torch.Tensor:
        extractor = extractor if extractor is not None else self.features_extractor
        return extractor(preprocess(obs, self.observation_space, self.normalize_images))

    def obs_to_tensor(self, obs: Any) -> tuple[Any, bool]:
        """numpy observation -> batched tensor, and whether the input was a batch."""
        space = self.observation_space
        if isinstance(space, spaces.Dict):
            first = next(iter(space.spaces))
            vectorized = np.asarray(obs[first]).shape != space.spaces[first].shape
            tensors = {}
            for k in space.spaces:
                arr = np.asarray(obs[k])
                tensors[k] = torch.as_tensor(arr if vectorized else arr[None], device=self.device)
            return tensors, vectorized
        arr = np.asarray(obs)
        vectorized = arr.shape != space.shape
        if vectorized and arr.shape[1:] != space.shape:
            raise ValueError(f"observation of shape {arr.shape} does not fit the observation space "
                             f"{space} (expected {space.shape} or (n_envs, *{space.shape}))")
        if not vectorized:
            arr = arr[None]
        return torch.as_tensor(arr, device=self.device), vectorized

    def _predict(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, observation: Any, state: Any | None = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any | None]:
        """Actions for one observation or a batch (numpy in, numpy out), Box actions clipped to bounds."""
        obs, vectorized = self.obs_to_tensor(observation)
        with torch.inference_mode():
            actions = self._predict(obs, deterministic=deterministic)
        actions_np = actions.cpu().numpy()
        space = self.action_space
        if isinstance(space, spaces.Box):
            actions_np = actions_np.reshape((-1, *space.shape))
            actions_np = np.clip(actions_np, space.low, space.high)
        else:
            actions_np = actions_np.reshape((-1, *space_shape(space))).astype(space.dtype)
        if not vectorized:
            actions_np = actions_np[0]
        return actions_np, state


def default_extractor(observation_space: spaces.Space) -> type[BaseFeaturesExtractor]:
    """NatureCNN for images, CombinedExtractor for Dict spaces, flatten otherwise."""
    if isinstance(observation_space, spaces.Dict):
        return CombinedExtractor
    if is_image_space(observation_space):
        return NatureCNN
    return FlattenExtractor


# --------------------------------------------------------------------------- actor-critic
class ActorCriticPolicy(BasePolicy):
    """Policy and value function for on-policy algorithms (A2C, PPO, TRPO, ACKTR).

    :param net_arch: hidden layers, a list or ``dict(pi=[...], vf=[...])`` (default 64-64)
    :param activation_fn: activation class (default ``nn.Tanh``)
    :param ortho_init: orthogonal initialization with the gains of the PPO paper's implementation
    :param log_std_init: initial log standard deviation for Box actions
    :param share_features_extractor: one features extractor for actor and critic
    :param use_sde: generalized State-Dependent Exploration (gSDE, Box actions; set by the algorithm's
        ``use_sde``): actions ``mu(s) + z(s) W`` with ``W`` drawn by :meth:`reset_noise`
    :param full_std: gSDE: one log-std per (latent feature, action dimension), else per latent feature
    :param use_expln: gSDE: ``sigma`` by :func:`~rlzoo.common.distributions.expln` instead of ``exp``
    """

    default_net_arch: NetArch | None = None

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 net_arch: NetArch | None = None, activation_fn: type[nn.Module] = nn.Tanh,
                 ortho_init: bool = True, log_std_init: float = 0.0,
                 features_extractor_class: type[BaseFeaturesExtractor] | None = None,
                 features_extractor_kwargs: dict[str, Any] | None = None,
                 share_features_extractor: bool = True, normalize_images: bool = True,
                 use_sde: bool = False, full_std: bool = True, use_expln: bool = False) -> None:
        super().__init__(observation_space, action_space, features_extractor_class,
                         features_extractor_kwargs, normalize_images)
        if net_arch is None:
            net_arch = self.default_net_arch
        if net_arch is None:
            net_arch = [] if self.features_extractor_class is NatureCNN else [64, 64]
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.ortho_init = ortho_init
        self.log_std_init = log_std_init
        self.share_features_extractor = share_features_extractor
        self.use_sde = use_sde
        # what save() records so a user subclass can be rebuilt from its rlzoo base class
        self.constructor_kwargs = dict(net_arch=net_arch, activation_fn=activation_fn, ortho_init=ortho_init,
                                       log_std_init=log_std_init,
                                       features_extractor_class=self.features_extractor_class,
                                       features_extractor_kwargs=self.features_extractor_kwargs,
                                       share_features_extractor=share_features_extractor,
                                       normalize_images=normalize_images, use_sde=use_sde, full_std=full_std,
                                       use_expln=use_expln)
        self.features_extractor = self.make_features_extractor()
        self.vf_features_extractor = (self.features_extractor if share_features_extractor
                                      else self.make_features_extractor())
        self.mlp_extractor = MlpExtractor(self.features_extractor.features_dim, net_arch, activation_fn)
        self.action_head = DistributionHead(action_space, self.mlp_extractor.latent_dim_pi, log_std_init,
                                            use_sde=use_sde, full_std=full_std, use_expln=use_expln)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if ortho_init:
            self._orthogonal_init()

    def _orthogonal_init(self) -> None:
        # Gains as in the PPO implementation details (Engstrom et al. 2020; Huang et al. 2022):
        # sqrt(2) for hidden layers, 0.01 for the policy output, 1 for the value output.
        gains = {self.features_extractor: np.sqrt(2), self.mlp_extractor: np.sqrt(2),
                 self.action_head.linear: 0.01, self.value_net: 1.0}
        if not self.share_features_extractor:
            gains[self.vf_features_extractor] = np.sqrt(2)
        orthogonal_init(gains)

    def _latents(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return self.mlp_extractor(features)
        vf_features = self.extract_features(obs, self.vf_features_extractor)
        return self.mlp_extractor.policy_net(features), self.mlp_extractor.value_net(vf_features)

    def forward(self, obs: Any, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions; return (actions, values, log_probs) for rollout collection."""
        latent_pi, latent_vf = self._latents(obs)
        dist = self.action_head(latent_pi)
        actions = dist.get_actions(deterministic)
        return actions, self.value_net(latent_vf).squeeze(-1), dist.log_prob(actions)

    def evaluate_actions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities and entropy of ``actions`` under the current policy."""
        latent_pi, latent_vf = self._latents(obs)
        dist = self.action_head(latent_pi)
        return self.value_net(latent_vf).squeeze(-1), dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: Any) -> Distribution:
        features = self.extract_features(obs)
        return self.action_head(self.mlp_extractor.policy_net(features))

    def predict_values(self, obs: Any) -> torch.Tensor:
        features = self.extract_features(obs, self.vf_features_extractor)
        return self.value_net(self.mlp_extractor.value_net(features)).squeeze(-1)

    def _predict(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(obs).get_actions(deterministic)

    def reset_noise(self, n_envs: int = 1) -> None:
        """gSDE: draw a new exploration matrix per env (no-op without ``use_sde``)."""
        if self.use_sde:
            self.action_head.reset_noise(n_envs)

    def numpy_actor(self) -> NumpyActor | None:
        """``forward`` and ``predict_values`` in numpy on views of the weights, for rollouts of a plain
        MLP on CPU; None where torch must act (see :mod:`rlzoo.common.numpy_acting`)."""
        return numpy_actor(self)


def policy_variant(base: type[BasePolicy], name: str, features_extractor_class: type, doc: str,
                   module: str) -> type[BasePolicy]:
    """A subclass ``name`` of ``base`` whose default features extractor is ``features_extractor_class``
    (how every ``CnnPolicy`` / ``MultiInputPolicy`` is made from an algorithm's ``MlpPolicy``)."""

    def __init__(self: BasePolicy, observation_space: spaces.Space, action_space: spaces.Space, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", features_extractor_class)
        base.__init__(self, observation_space, action_space, **kwargs)

    return type(name, (base,), {"__init__": __init__, "__doc__": doc, "__module__": module, "__qualname__": name})


ActorCriticCnnPolicy = policy_variant(ActorCriticPolicy, "ActorCriticCnnPolicy", NatureCNN,
                                      "Actor-critic with the Nature CNN features extractor (Atari).", __name__)
MultiInputActorCriticPolicy = policy_variant(ActorCriticPolicy, "MultiInputActorCriticPolicy", CombinedExtractor,
                                             "Actor-critic for Dict observations (CombinedExtractor).", __name__)

MlpPolicy = ActorCriticPolicy
CnnPolicy = ActorCriticCnnPolicy
MultiInputPolicy = MultiInputActorCriticPolicy
