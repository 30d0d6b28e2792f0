"""Action distributions for the four action spaces.

Each distribution is a light object built from the policy network's output for one batch; the
``*Head`` classes own the parameters that map latent features to distribution parameters.
Written without ``torch.distributions`` to keep argument validation out of the hot path.
"""
from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

if TYPE_CHECKING:
    from typing_extensions import Self

SUPPORTED = "Box, Discrete, MultiDiscrete or MultiBinary"
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class Distribution:
    """Interface: ``log_prob``, ``entropy``, ``sample``, ``mode``, ``kl`` (to another of its kind)."""

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError

    def sample(self) -> torch.Tensor:
        raise NotImplementedError

    def mode(self) -> torch.Tensor:
        raise NotImplementedError

    def kl(self, other: Self) -> torch.Tensor:
        raise NotImplementedError

    def get_actions(self, deterministic: bool = False) -> torch.Tensor:
        return self.mode() if deterministic else self.sample()


class DiagGaussian(Distribution):
    """Diagonal Gaussian N(mean, diag(std^2)); log-probabilities summed over action dimensions."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.std = self.log_std.exp()

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.log_std - _LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 + _LOG_SQRT_2PI).sum(-1)

    def sample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other: Self) -> torch.Tensor:
        # KL(self || other) for diagonal Gaussians, summed over dimensions
        var_ratio = (self.std / other.std).pow(2)
        t = ((self.mean - other.mean) / other.std).pow(2)
        return 0.5 * (var_ratio + t - 1 - var_ratio.log()).sum(-1)


def expln(log_std: torch.Tensor) -> torch.Tensor:
    """gSDE's "expln" map (Raffin et al. 2021, §3): ``exp(x)`` for ``x <= 0``, ``log(1 + x) + 1`` above,
    a standard deviation that grows only logarithmically with its parameter (no blow-up)."""
    below = log_std.clamp_max(0.0).exp()  # clamped so the unused branch cannot overflow into NaN gradients
    above = torch.log1p(log_std.clamp_min(0.0)) + 1.0
    return torch.where(log_std <= 0, below, above)


class StateDependentGaussian(DiagGaussian):
    """gSDE's action distribution (Raffin, Kober, Stulp 2021, "Smooth Exploration for Robotic RL").

    With ``z(s)`` the policy's latent features and ``W`` the exploration matrix of an env, drawn
    from ``N(0, sigma^2)`` entrywise and held until the next ``reset_noise``, an action is
    ``a = mu(s) + z(s) W`` (paper Eq. 3). For one ``W`` that is a deterministic function of ``s``;
    over ``W`` it is the diagonal Gaussian ``N(mu(s), sum_j z_j(s)^2 sigma_jk^2)`` per action
    dimension ``k`` (paper Eq. 4), which gives ``log_prob``, ``entropy`` and ``kl`` (DiagGaussian's).

    :param mean: ``mu(s)``, shape (batch, action_dim)
    :param latent: ``z(s)``, shape (batch, latent_dim) (detached by the head: features are not learned
        through the noise)
    :param std: ``sigma``, shape (latent_dim, action_dim)
    :param exploration_mat: the ``W`` of each env, shape (n_envs, latent_dim, action_dim)
    """

    #: added to the variance so that all-zero features (ReLU nets) keep a finite log-density
    EPS = 1e-6

    def __init__(self, mean: torch.Tensor, latent: torch.Tensor, std: torch.Tensor,
                 exploration_mat: torch.Tensor) -> None:
        variance = latent.pow(2) @ std.pow(2) + self.EPS  # paper Eq. 4
        super().__init__(mean, 0.5 * variance.log())
        self.latent = latent
        self.exploration_mat = exploration_mat

    def noise(self) -> torch.Tensor:
        """``z(s) W``: one matrix per row when there are as many rows as envs, else the first for all."""
        mats = self.exploration_mat
        if self.latent.shape[0] == mats.shape[0]:
            return torch.bmm(self.latent.unsqueeze(1), mats).squeeze(1)
        return self.latent @ mats[0]

    def sample(self) -> torch.Tensor:
        return self.mean + self.noise()


class Categorical(Distribution):
    """Categorical distribution over ``n`` actions parameterized by logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = torch.log_softmax(logits, dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)

    def sample(self) -> torch.Tensor:
        # Gumbel-max trick: argmax(logits + Gumbel noise) is a sample of the categorical
        u = torch.rand_like(self.logits).clamp_(1e-20, 1.0)
        return (self.logits - (-u.log()).log()).argmax(-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def kl(self, other: Self) -> torch.Tensor:
        return (self.probs * (self.logits - other.logits)).sum(-1)


def _sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Elementwise sum of a non-empty sequence of tensors."""
    return functools.reduce(operator.add, tensors)


class MultiCategorical(Distribution):
    """Independent categoricals, one per dimension of a MultiDiscrete space."""

    def __init__(self, logits: torch.Tensor, nvec: list[int]) -> None:
        self.parts = [Categorical(chunk) for chunk in torch.split(logits, nvec, dim=-1)]

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return _sum(d.log_prob(actions[..., i]) for i, d in enumerate(self.parts))

    def entropy(self) -> torch.Tensor:
        return _sum(d.entropy() for d in self.parts)

    def sample(self) -> torch.Tensor:
        return torch.stack([d.sample() for d in self.parts], dim=-1)

    def mode(self) -> torch.Tensor:
        return torch.stack([d.mode() for d in self.parts], dim=-1)

    def kl(self, other: Self) -> torch.Tensor:
        return _sum(a.kl(b) for a, b in zip(self.parts, other.parts, strict=True))


class Bernoulli(Distribution):
    """Independent Bernoulli variables for a MultiBinary space."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits

    @property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits, actions.float(), reduction="none").sum(-1)

    def entropy(self) -> torch.Tensor:
        p = self.probs
        return F.binary_cross_entropy_with_logits(self.logits, p, reduction="none").sum(-1)

    def sample(self) -> torch.Tensor:
        return torch.bernoulli(self.probs)

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).float()

    def kl(self, other: Self) -> torch.Tensor:
        p, lp, lq = self.probs, F.logsigmoid(self.logits), F.logsigmoid(other.logits)
        l1p, l1q = F.logsigmoid(-self.logits), F.logsigmoid(-other.logits)
        return (p * (lp - lq) + (1 - p) * (l1p - l1q)).sum(-1)


class DistributionHead(nn.Module):
    """Maps latent features to a :class:`Distribution` for a given action space.

    With ``use_sde`` (Box only) the head is gSDE's: ``log_std`` is a (latent_dim, action_dim) matrix
    (latent_dim x 1 broadcast over the actions when not ``full_std``), ``sigma = exp(log_std)`` (or
    :func:`expln`), and :meth:`reset_noise` draws the exploration matrices of
    :class:`StateDependentGaussian`.
    """

    exploration_mat: torch.Tensor  # gSDE: (n_envs, latent_dim, action_dim), a non-persistent buffer

    def __init__(self, action_space: spaces.Space, latent_dim: int, log_std_init: float = 0.0,
                 use_sde: bool = False, full_std: bool = True, use_expln: bool = False) -> None:
        super().__init__()
        self.action_space = action_space
        self.log_std: nn.Parameter | None = None
        self.use_sde, self.use_expln = use_sde, use_expln
        if use_sde and not isinstance(action_space, spaces.Box):
            raise ValueError(f"use_sde (gSDE) needs a Box action space, not {type(action_space).__name__}")
        if isinstance(action_space, spaces.Box):
            dim = int(np.prod(action_space.shape))
            shape = ((latent_dim, dim if full_std else 1) if use_sde else (dim,))
            self.log_std = nn.Parameter(torch.full(shape, float(log_std_init)))
            if use_sde:  # not saved: drawn anew by reset_noise (below, then by the collector)
                self.register_buffer("exploration_mat", torch.zeros(1, latent_dim, dim), persistent=False)
        elif isinstance(action_space, spaces.Discrete):
            dim = int(action_space.n)
        elif isinstance(action_space, spaces.MultiDiscrete):
            self.nvec = [int(n) for n in action_space.nvec.ravel()]
            dim = sum(self.nvec)
        elif isinstance(action_space, spaces.MultiBinary):
            dim = int(np.prod(action_space.shape))
        else:
            raise ValueError(f"unsupported action space {action_space}: supported are {SUPPORTED}")
        self.linear = nn.Linear(latent_dim, dim)
        if use_sde:
            self.reset_noise(1)

    def sde_std(self) -> torch.Tensor:
        """gSDE's ``sigma``, shape (latent_dim, action_dim)."""
        assert self.log_std is not None and self.use_sde
        std = expln(self.log_std) if self.use_expln else self.log_std.exp()
        return std.expand(self.linear.in_features, self.linear.out_features)

    @torch.no_grad()
    def reset_noise(self, n_envs: int = 1) -> None:
        """Draw a new exploration matrix ``W ~ N(0, sigma^2)`` for each of ``n_envs`` envs (gSDE)."""
        std = self.sde_std()
        self.exploration_mat = std * torch.randn((n_envs, *std.shape), dtype=std.dtype, device=std.device)

    def forward(self, latent: torch.Tensor) -> Distribution:
        out = self.linear(latent)
        space = self.action_space
        if isinstance(space, spaces.Box):
            assert self.log_std is not None  # set in __init__ for Box spaces
            if self.use_sde:  # features are not learned through the noise (SB3's learn_features=False)
                return StateDependentGaussian(out, latent.detach(), self.sde_std(), self.exploration_mat)
            return DiagGaussian(out, self.log_std)
        if isinstance(space, spaces.Discrete):
            return Categorical(out)
        if isinstance(space, spaces.MultiDiscrete):
            return MultiCategorical(out, self.nvec)
        return Bernoulli(out)


def check_action_space(action_space: spaces.Space, supported: tuple, algo: str) -> None:
    """Raise a clear ``ValueError`` when ``algo`` does not support ``action_space``."""
    if not isinstance(action_space, supported):
        names = ", ".join(s.__name__ for s in supported)
        raise ValueError(f"{algo} does not support the action space {type(action_space).__name__}: "
                         f"supported are {names}")
