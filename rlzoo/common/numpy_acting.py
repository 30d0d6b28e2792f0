"""Acting in numpy on views of a policy's weights (CPU, plain MLPs, a few observations at a time).

A rollout step asks a small network for a handful of actions; torch spends ~5-10 us of dispatch per
operation there, numpy ~1 us, while the arithmetic is the same. The functions here read the weights
through ``tensor.numpy()`` views (no copy), so they follow the optimizer's in-place updates; callers
rebuild them once per rollout, which also picks up replaced tensors (``policy.to(...)``, loading).
Anything these functions do not cover (images, dicts, one-hot inputs, other layers, other devices,
other distributions (gSDE's), subclasses with their own forward) returns None and the caller uses torch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.envs.vec_env import is_image_space

if TYPE_CHECKING:
    from rlzoo.common.policies import ActorCriticPolicy

NumpyForward = Callable[[np.ndarray], np.ndarray]
_F32 = torch.float32

_ACTIVATIONS: dict[type[nn.Module], NumpyForward] = {
    nn.ReLU: lambda x: np.maximum(x, 0.0, out=x), nn.Tanh: lambda x: np.tanh(x, out=x), nn.Identity: lambda x: x}


def numpy_mlp(layers: Sequence[nn.Module]) -> NumpyForward | None:
    """The forward pass of a chain of ``Linear`` and ReLU / Tanh layers in numpy, on views of the
    layers' weights, or None when another kind of layer (or a non-CPU / non-float32 weight) appears."""
    ops: list[NumpyForward] = []
    for layer in layers:
        if isinstance(layer, nn.Linear):
            if layer.bias is None or layer.weight.device.type != "cpu" or layer.weight.dtype != _F32:
                return None
            ops.append(_affine(layer.weight.detach().numpy().T, layer.bias.detach().numpy()))
        elif type(layer) in _ACTIVATIONS:
            ops.append(_ACTIVATIONS[type(layer)])
        else:
            return None

    def forward(x: np.ndarray) -> np.ndarray:
        for op in ops:
            x = op(x)
        return x

    return forward


def _affine(weight_t: np.ndarray, bias: np.ndarray) -> NumpyForward:
    """``x -> x @ weight_t + bias`` (a ``Linear`` layer in numpy)."""
    def affine(x: np.ndarray) -> np.ndarray:
        return x @ weight_t + bias

    return affine


class NumpyActor(NamedTuple):
    """``act(obs) -> (actions, values, log_probs)`` and ``values(obs)``, numpy in and out."""

    act: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
    values: NumpyForward


_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def numpy_actor(policy: ActorCriticPolicy) -> NumpyActor | None:
    """The rollout-time forward of an MLP actor-critic in numpy: the same networks and distributions
    as ``policy.forward`` (Categorical for Discrete, diagonal Gaussian for Box actions), sampling from
    numpy's global generator (seeded with the model's seed), or None where torch must act."""
    from rlzoo.common.policies import ActorCriticPolicy, FlattenExtractor

    cls, obs_space, head = type(policy), policy.observation_space, policy.action_head
    if (cls.forward is not ActorCriticPolicy.forward or cls._latents is not ActorCriticPolicy._latents
            or cls.predict_values is not ActorCriticPolicy.predict_values
            or type(policy.features_extractor) is not FlattenExtractor
            or type(policy.vf_features_extractor) is not FlattenExtractor
            or not isinstance(obs_space, spaces.Box) or is_image_space(obs_space)
            or not isinstance(policy.action_space, (spaces.Box, spaces.Discrete)) or head.use_sde):
        return None
    pi_mlp = numpy_mlp([*policy.mlp_extractor.policy_net, head.linear])
    vf_mlp = numpy_mlp([*policy.mlp_extractor.value_net, policy.value_net])
    if pi_mlp is None or vf_mlp is None:
        return None
    dim = int(np.prod(obs_space.shape))

    def flat(obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).reshape(-1, dim)

    def values(obs: np.ndarray) -> np.ndarray:
        return vf_mlp(flat(obs))[:, 0]

    if isinstance(policy.action_space, spaces.Discrete):
        def act(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            x = flat(obs)
            logits = pi_mlp(x)
            # log-softmax, then inverse-CDF sampling of the categorical
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            cdf = np.cumsum(np.exp(log_p), axis=1)
            u = np.random.random((len(x), 1)) * cdf[:, -1:]
            actions = np.minimum((cdf < u).sum(axis=1), log_p.shape[1] - 1)
            return actions, vf_mlp(x)[:, 0], log_p[np.arange(len(x)), actions]

        return NumpyActor(act, values)

    assert head.log_std is not None  # Box heads own a log_std
    log_std = head.log_std.detach().numpy()
    if head.log_std.dtype != _F32:
        return None

    def act_gaussian(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = flat(obs)
        mean = pi_mlp(x)
        noise = np.random.standard_normal(mean.shape).astype(np.float32)
        actions = mean + np.exp(log_std) * noise
        # log N(a; mean, std) summed over action dimensions, with (a - mean) / std = noise
        log_prob = (-0.5 * np.square(noise) - log_std - _LOG_SQRT_2PI).sum(axis=1, dtype=np.float32)
        return actions, vf_mlp(x)[:, 0], log_prob

    return NumpyActor(act_gaussian, values)

