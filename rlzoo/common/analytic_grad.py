"""The forward and backward pass of a plain MLP actor-critic written out, for A2C's and PPO's updates.

A PPO minibatch step on CartPole's [64, 64] networks multiplies ~13 MFLOP (0.08 ms at this CPU's
matmul peak), yet autograd spends ~1 ms on it: ~150 operator dispatches plus the graph's bookkeeping
(``benchmarks/profile_update.py``). For the one architecture most on-policy runs use (``Linear``
layers with tanh / ReLU, a Categorical or diagonal-Gaussian head, a linear value head, flattened Box
observations) the gradients are short to write by hand: :class:`ActorCriticGrad` evaluates values,
log-probabilities and entropies with the maths of ``ActorCriticPolicy.evaluate_actions`` and, given
the loss's derivatives with respect to those, writes each parameter's gradient into its ``.grad``
(the optimizer's flat buffer) with one matrix product per weight. The algorithm owns its loss and
its derivatives; ``tests/test_analytic_grad.py`` checks every gradient against autograd.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.envs.vec_env import is_image_space

if TYPE_CHECKING:
    from rlzoo.common.policies import ActorCriticPolicy

_LOG_SQRT_2PI = 0.5 * float(np.log(2 * np.pi))


class _Layer(NamedTuple):
    linear: nn.Linear
    activation: str  # "tanh", "relu" or "" (none)
    weight_t: torch.Tensor  # a transposed view of the weight, made once (it follows in-place updates)


def _layers(modules: Sequence[nn.Module]) -> list[_Layer] | None:
    """``Linear`` layers each followed by at most one tanh / ReLU, or None for anything else."""
    layers: list[_Layer] = []
    for module in modules:
        if isinstance(module, nn.Linear) and module.bias is not None and module.weight.dtype == torch.float32:
            layers.append(_Layer(module, "", module.weight.detach().t()))
        elif type(module) in (nn.Tanh, nn.ReLU) and layers and not layers[-1].activation:
            layers[-1] = layers[-1]._replace(activation="tanh" if type(module) is nn.Tanh else "relu")
        else:
            return None
    return layers if layers and not layers[-1].activation else None


def updates_all_of(params: Sequence[torch.Tensor], module: nn.Module) -> bool:
    """Whether ``params`` are exactly ``module``'s trainable parameters (hand-written passes must leave none
    with a stale gradient)."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    return len(params) == len(trainable) and {id(p) for p in params} == {id(p) for p in trainable}


def _forward(layers: list[_Layer], x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every layer and the network's output: ``[x_0, x_1, ..., y]``."""
    acts = [x]
    for layer in layers:
        z = torch.addmm(layer.linear.bias, x, layer.weight_t)
        x = z.tanh_() if layer.activation == "tanh" else z.relu_() if layer.activation == "relu" else z
        acts.append(x)
    return acts


def _backward(layers: list[_Layer], acts: list[torch.Tensor], d_out: torch.Tensor) -> None:
    """Backpropagate ``d_out`` (the loss's gradient at the output) and write every weight's and bias's
    gradient into its ``.grad``: dW = dz^T x, db = sum_rows dz, dx = dz W; tanh' = 1 - h^2, ReLU' = [h > 0]."""
    dz = d_out
    for i in range(len(layers) - 1, -1, -1):
        linear = layers[i].linear
        assert linear.weight.grad is not None and linear.bias.grad is not None
        torch.mm(dz.t(), acts[i], out=linear.weight.grad)
        torch.sum(dz, 0, out=linear.bias.grad)
        if i == 0:
            break
        dx = torch.mm(dz, linear.weight)
        h = acts[i]  # the previous layer's activation output
        if layers[i - 1].activation == "tanh":
            dx.addcmul_(dx * h, h, value=-1.0)  # dx (1 - h^2)
        elif layers[i - 1].activation == "relu":
            dx.mul_(h > 0)
        dz = dx


class MlpPasses:
    """The forward and hand-written backward pass of one chain of ``Linear`` (+ tanh / ReLU) layers (DQN's
    Q-network): ``forward(x)`` keeps every layer's input, ``backward(acts, d_out)`` writes the gradients."""

    def __init__(self, layers: list[_Layer]) -> None:
        self.layers = layers
        self.params = [p for layer in layers for p in (layer.linear.weight, layer.linear.bias)]

    @classmethod
    def of(cls, modules: Sequence[nn.Module]) -> MlpPasses | None:
        """The passes of ``modules`` (Linear layers with bias, float32, each followed by at most one tanh /
        ReLU, a linear output), or None."""
        layers = _layers(modules)
        return cls(layers) if layers is not None else None

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[x, h_1, ..., y]``: the input of every layer and the output."""
        return _forward(self.layers, x)

    @torch.no_grad()
    def backward(self, acts: list[torch.Tensor], d_out: torch.Tensor) -> None:
        """Write into every parameter's ``.grad`` the gradient of a loss with derivative ``d_out`` at the output."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        _backward(self.layers, acts, d_out)


class Evaluation(NamedTuple):
    """What :meth:`ActorCriticGrad.evaluate` computed, and what its backward pass needs."""

    values: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor
    pi_acts: list[torch.Tensor]
    vf_acts: list[torch.Tensor]
    actions: torch.Tensor
    log_p: torch.Tensor | None  # Categorical: log-softmax of the logits
    probs: torch.Tensor | None  # Categorical: softmax of the logits
    z: torch.Tensor | None  # Gaussian: (a - mean) / std


class ActorCriticGrad:
    """Values, log-probabilities, entropies and their parameter gradients for an MLP actor-critic,
    without autograd (see the module docstring). Build with :meth:`of`, which returns None where the
    policy is anything else (then the caller uses autograd)."""

    def __init__(self, policy: ActorCriticPolicy, pi: list[_Layer], vf: list[_Layer]) -> None:
        self.policy, self.pi, self.vf = policy, pi, vf
        self.log_std = policy.action_head.log_std
        self.discrete = isinstance(policy.action_space, spaces.Discrete)
        self.obs_dim = int(np.prod(policy.observation_space.shape or ()))
        self.params = [p for layer in pi + vf for p in (layer.linear.weight, layer.linear.bias)]
        if self.log_std is not None:
            self.params.append(self.log_std)

    @classmethod
    def of(cls, policy: nn.Module) -> ActorCriticGrad | None:
        """The hand-written passes for ``policy``, or None unless it is a plain ``ActorCriticPolicy`` MLP
        (flattened Box observations, Discrete or Box actions without gSDE, float32 weights)."""
        from rlzoo.common.policies import ActorCriticPolicy, FlattenExtractor

        if type(policy) is not ActorCriticPolicy:  # subclasses may change any pass
            return None
        head, obs_space = policy.action_head, policy.observation_space
        if (type(policy.features_extractor) is not FlattenExtractor
                or type(policy.vf_features_extractor) is not FlattenExtractor
                or not isinstance(obs_space, spaces.Box) or is_image_space(obs_space)
                or not isinstance(policy.action_space, (spaces.Box, spaces.Discrete)) or head.use_sde
                or (head.log_std is not None and head.log_std.dtype != torch.float32)):
            return None
        pi = _layers([*policy.mlp_extractor.policy_net, head.linear])
        vf = _layers([*policy.mlp_extractor.value_net, policy.value_net])
        if pi is None or vf is None:
            return None
        grad = cls(policy, pi, vf)
        return grad if updates_all_of(grad.params, policy) else None

    @torch.no_grad()
    def evaluate(self, obs: Any, actions: torch.Tensor) -> Evaluation:
        """V(s), log pi(a|s) and H(pi(.|s)) of a batch (as ``evaluate_actions``), keeping what backward needs."""
        assert isinstance(obs, torch.Tensor), "a Box observation space gives tensor batches"
        x = obs.reshape(len(obs), self.obs_dim)
        x = x if x.dtype == torch.float32 else x.float()
        pi_acts, vf_acts = _forward(self.pi, x), _forward(self.vf, x)
        values = vf_acts[-1].squeeze(-1)
        out = pi_acts[-1]
        if self.discrete:
            log_p = torch.log_softmax(out, dim=-1)
            actions = (actions if actions.dtype == torch.int64 else actions.long()).reshape(-1, 1)
            log_prob = log_p.gather(1, actions).squeeze(1)
            probs = log_p.exp()
            entropy = -(probs * log_p).sum(-1)
            return Evaluation(values, log_prob, entropy, pi_acts, vf_acts, actions, log_p, probs, None)
        assert self.log_std is not None
        # diagonal Gaussian: log N(a; mu, sigma) = sum_k -z_k^2 / 2 - log sigma_k - log sqrt(2 pi), z = (a - mu) / sigma
        z = (actions.reshape(out.shape) - out) / self.log_std.exp()
        log_prob = (-0.5 * z * z - self.log_std - _LOG_SQRT_2PI).sum(-1)
        entropy = (self.log_std + 0.5 + _LOG_SQRT_2PI).sum(-1).expand(len(out))
        return Evaluation(values, log_prob, entropy, pi_acts, vf_acts, actions, None, None, z)

    @torch.no_grad()
    def backward(self, ev: Evaluation, d_values: torch.Tensor, d_log_prob: torch.Tensor,
                 d_entropy: float) -> None:
        """Write into every parameter's ``.grad`` the gradient of a loss whose derivatives are ``d_values``
        and ``d_log_prob`` (per sample) and ``d_entropy`` (the same for every sample's entropy)."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        _backward(self.vf, ev.vf_acts, d_values.unsqueeze(1))
        if self.discrete:
            assert ev.log_p is not None and ev.probs is not None
            probs = ev.probs
            # d log pi(a) / d logits = onehot(a) - p;  d H / d logits = -p (log p + H)
            d_logits = probs * (-d_log_prob).unsqueeze(1)
            d_logits.scatter_add_(1, ev.actions, d_log_prob.unsqueeze(1))
            if d_entropy:
                d_logits -= d_entropy * probs * (ev.log_p + ev.entropy.unsqueeze(1))
            _backward(self.pi, ev.pi_acts, d_logits)
            return
        assert self.log_std is not None and self.log_std.grad is not None and ev.z is not None
        # d log N / d mu = z / sigma;  d log N / d log sigma = z^2 - 1;  d H / d log sigma = 1
        d_lp = d_log_prob.unsqueeze(1)
        _backward(self.pi, ev.pi_acts, d_lp * ev.z / self.log_std.exp())
        torch.sum(d_lp * (ev.z * ev.z - 1.0), 0, out=self.log_std.grad)
        if d_entropy:
            self.log_std.grad += d_entropy * len(ev.z)  # (sum over the batch of dH_i/dlog sigma = 1)
