"""The update rules of ACER (Wang et al. 2016, "Sample Efficient Actor-Critic with Experience Replay").

Pure tensor functions, no networks and no environments, so that each piece can be checked by hand:

* :func:`retrace_targets`      -- Retrace Q targets over an ``[n_steps, n_envs]`` segment (Eq. 5, Alg. 2/3).
* :func:`discrete_policy_gain` -- truncated importance sampling with bias correction (Eq. 7-9).
* :func:`continuous_policy_gain` -- the same for Gaussian policies with one sampled action (Eq. 15).
* :func:`trust_region_projection` -- the closed form of the linearised KL trust region (Eq. 12).
* :func:`trust_region_loss`    -- builds a surrogate loss whose parameter gradient is the projected
  statistics gradient, so the whole update is one ``backward()``.
* :func:`gaussian_log_prob`, :func:`gaussian_kl` -- the diagonal Gaussian pieces of Section 4.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "retrace_targets",
    "discrete_policy_gain",
    "continuous_policy_gain",
    "trust_region_projection",
    "trust_region_loss",
    "gaussian_log_prob",
    "gaussian_kl",
]


@torch.no_grad()
def retrace_targets(
    rewards: Tensor,
    q_taken: Tensor,
    values: Tensor,
    trace_coefs: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    final_values: Tensor,
    gamma: float,
) -> Tensor:
    """Retrace targets ``Q_ret(x_t, a_t)`` for a segment of ``T`` steps from ``N`` envs (Eq. 5).

    Computed backwards from ``Q_ret = V(x_T)``::

        Q_ret(x_t, a_t) = r_t + gamma * next_t
        next_t          = c_{t+1} * (Q_ret(x_{t+1}, a_{t+1}) - Q(x_{t+1}, a_{t+1})) + V(x_{t+1})

    where ``c = min(1, rho)`` are the truncated importance weights (``min(1, rho^(1/d))`` in the
    continuous case, or ``1`` for the ``Q_opc`` target of Section 4). An episode that ends at step
    ``t`` cuts the trace: after a termination nothing is bootstrapped, after a truncation (time limit)
    the target bootstraps from ``final_values[t] = V(final observation)``.

    :param rewards: ``[T, N]`` rewards ``r_t``.
    :param q_taken: ``[T, N]`` ``Q(x_t, a_t)`` of the current critic.
    :param values: ``[T + 1, N]`` ``V(x_t)``, the last row being the value of the observation after
        the segment.
    :param trace_coefs: ``[T, N]`` truncated importance weights ``c_t``.
    :param terminated: ``[T, N]`` true where the episode terminated at step ``t``.
    :param truncated: ``[T, N]`` true where the episode was cut by a time limit at step ``t``.
    :param final_values: ``[T, N]`` ``V`` of the last observation of a truncated episode (read only
        where ``truncated``).
    :param gamma: discount factor.
    :return: ``[T, N]`` targets.
    """
    n_steps = rewards.shape[0]
    if values.shape[0] != n_steps + 1:
        raise ValueError(f"values must have n_steps + 1 = {n_steps + 1} rows, got {values.shape[0]}")
    discounts = gamma * (1.0 - terminated.to(rewards.dtype))
    # Carrying the trace one step back is c_t (Q_ret - Q) + V = c_t Q_ret + (V - c_t Q) (Alg. 2).
    carry_base = values[:-1] - trace_coefs * q_taken
    targets = []
    q_ret = values[-1]
    for t in range(n_steps - 1, -1, -1):
        bootstrap = torch.where(truncated[t], final_values[t], q_ret)
        target = torch.addcmul(rewards[t], discounts[t], bootstrap)
        targets.append(target)
        q_ret = torch.addcmul(carry_base[t], trace_coefs[t], target)
    return torch.stack(targets[::-1])


def discrete_policy_gain(
    probs: Tensor,
    q_values: Tensor,
    actions: Tensor,
    q_ret: Tensor,
    rho: Tensor,
    c: float,
    eps: float = 1e-6,
) -> Tensor:
    """Per-sample ACER policy objective for a categorical policy (Eq. 9), to be maximised.

    ``min(c, rho_a) log f(a) [Q_ret - V]`` for the action taken plus the bias correction
    ``sum_b f(b) [1 - c / rho_b]_+ log f(b) [Q(b) - V]`` that accounts for the truncated part.
    Only ``log f`` carries gradient, everything else is treated as a constant.

    :param probs: ``[B, A]`` current policy probabilities ``f`` (the statistics ``phi`` of Eq. 12).
    :param q_values: ``[B, A]`` critic ``Q(x, .)``.
    :param actions: ``[B]`` actions taken (int64).
    :param q_ret: ``[B]`` Retrace targets.
    :param rho: ``[B, A]`` importance ratios ``f / mu`` for every action.
    :param c: truncation threshold.
    :return: ``[B]`` gains.
    """
    probs_d, q_values, rho = probs.detach(), q_values.detach(), rho.detach()
    log_probs = torch.log(probs + eps)
    v = (probs_d * q_values).sum(-1)
    idx = actions.long().unsqueeze(-1)
    rho_a = rho.gather(-1, idx).squeeze(-1)
    log_prob_a = log_probs.gather(-1, idx).squeeze(-1)
    # Truncated importance sampling: min(c, rho) log f(a|x) (Q_ret - V)
    gain_trunc = log_prob_a * (torch.clamp(rho_a, max=c) * (q_ret.detach() - v))
    # Bias correction, expectation under f: [1 - c/rho]_+ f(b) log f(b) (Q(b) - V)
    weight_bc = F.relu(1.0 - c / (rho + eps)) * probs_d * (q_values - v.unsqueeze(-1))
    gain_bc = (log_probs * weight_bc).sum(-1)
    return gain_trunc + gain_bc


def continuous_policy_gain(
    log_prob: Tensor,
    log_prob_sampled: Tensor,
    rho: Tensor,
    rho_sampled: Tensor,
    q_opc: Tensor,
    q_sampled: Tensor,
    v: Tensor,
    c: float,
    eps: float = 1e-6,
) -> Tensor:
    """Per-sample ACER policy objective for a continuous policy (Eq. 15, Alg. 3), to be maximised.

    ``min(c, rho) log f(a_t) (Q_opc - V) + [1 - c / rho(a')]_+ log f(a') (Q~(a') - V)`` with
    ``a_t`` from the behaviour policy and ``a' ~ f`` one sample from the current policy.

    :param log_prob: ``[B]`` ``log f(a_t | phi)`` of the stored action (carries gradient).
    :param log_prob_sampled: ``[B]`` ``log f(a' | phi)`` of the sampled action (carries gradient).
    :param rho: ``[B]`` ``f(a_t) / mu(a_t)``.
    :param rho_sampled: ``[B]`` ``f(a') / mu(a')``.
    :param q_opc: ``[B]`` off-policy-corrected return (Retrace with ``c = 1``).
    :param q_sampled: ``[B]`` stochastic dueling estimate ``Q~(x_t, a')``.
    :param v: ``[B]`` ``V(x_t)``.
    :param c: truncation threshold.
    """
    v = v.detach()
    gain_trunc = log_prob * (torch.clamp(rho.detach(), max=c) * (q_opc.detach() - v))
    weight_bc = F.relu(1.0 - c / (rho_sampled.detach() + eps)) * (q_sampled.detach() - v)
    return gain_trunc + log_prob_sampled * weight_bc


def trust_region_projection(g: Tensor, k: Tensor, delta: float, eps: float = 1e-6) -> Tensor:
    """Solve ``min_z 1/2 ||g - z||^2  s.t.  k^T z <= delta`` row by row (Eq. 12).

    ``z* = g - max(0, (k^T g - delta) / ||k||^2) k``: ``g`` passes unchanged when it respects the
    linearised KL constraint and is projected onto ``k^T z = delta`` otherwise.

    :param g: ``[B, D]`` gradients of the objective w.r.t. the policy statistics ``phi``.
    :param k: ``[B, D]`` gradients of ``KL(f_avg || f)`` w.r.t. ``phi``.
    """
    scale = torch.clamp(((k * g).sum(-1) - delta) / ((k * k).sum(-1) + eps), min=0.0)
    return g - scale.unsqueeze(-1) * k


def trust_region_loss(phi: Tensor, gain: Tensor, kl: Tensor, delta: float) -> tuple[Tensor, Tensor]:
    """Surrogate loss applying the efficient trust region (Section 3.3) in one backward pass.

    ``g = d(sum gain)/d phi`` and ``k = d(sum kl)/d phi`` are per-sample because sample ``i`` only
    depends on its own row ``phi_i``. With ``z*`` from :func:`trust_region_projection`, the returned
    loss ``-mean_i <phi_i, z*_i>`` has parameter gradient ``-mean_i (d phi_i / d theta)^T z*_i``,
    which is the trust-region-adjusted ascent direction of the paper.

    :param phi: ``[B, D]`` policy statistics (probabilities, or Gaussian mean and log-std).
    :param gain: ``[B]`` per-sample objective (policy gain plus entropy bonus).
    :param kl: ``[B]`` ``KL(f_avg || f)`` to the average policy network.
    :return: the surrogate loss and the fraction of samples whose gradient was projected.
    """
    g = torch.autograd.grad(gain.sum(), phi, retain_graph=True)[0]
    k = torch.autograd.grad(kl.sum(), phi, retain_graph=True)[0]
    z = trust_region_projection(g.flatten(1), k.flatten(1), delta).view_as(phi)
    active = ((k.flatten(1) * g.flatten(1)).sum(-1) > delta).float().mean()
    return -(phi * z.detach()).sum() / phi.shape[0], active


def gaussian_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Log-density of a diagonal Gaussian, summed over the last axis."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """``KL(p || q)`` between diagonal Gaussians, summed over the last axis."""
    var_p, var_q = torch.exp(2.0 * log_std_p), torch.exp(2.0 * log_std_q)
    kl = log_std_q - log_std_p + (var_p + (mean_p - mean_q).pow(2)) / (2.0 * var_q) - 0.5
    return kl.sum(-1)
