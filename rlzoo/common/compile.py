"""The ``compile`` option of the algorithms: their update losses as ``torch.compile``d graphs.

Each algorithm writes the loss of one update as a function of tensors and modules (``ppo_loss``,
``a2c_loss``, ``dqn_loss``, ``sac_critic_loss`` ...). With ``compile=False`` (the default) it is
called as is; with ``compile=True`` it goes through :func:`maybe_compile`, so that the forward pass
and, through AOTAutograd, its backward pass each run as one fused graph; the optimizer step is
torch's fused Adam kernel (one call for all parameters). Scalars that change during training
(clip range, learning-rate schedules) are passed as 0-d tensors so that they do not recompile.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["a2c_loss", "dqn_loss", "maybe_compile", "ppo_loss", "sac_actor_loss", "scalar", "td3_actor_loss",
           "twin_critic_loss"]


def maybe_compile(fn: Callable[..., Any], enabled: bool) -> Callable[..., Any]:
    """``torch.compile(fn)`` when ``enabled`` (shapes dynamic after a first recompile), else ``fn``."""
    return torch.compile(fn) if enabled else fn


def scalar(value: float, enabled: bool, device: torch.device) -> float | torch.Tensor:
    """``value`` as a 0-d tensor for a compiled loss (no recompile when it changes), else as is."""
    return torch.tensor(value, dtype=torch.float32, device=device) if enabled else value


def ppo_loss(policy: Any, obs: Any, actions: torch.Tensor, old_values: torch.Tensor, old_log_prob: torch.Tensor,
             advantages: torch.Tensor, returns: torch.Tensor, eps: Any, eps_vf: Any, ent_coef: float,
             vf_coef: float, normalize_advantage: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's loss on a minibatch (PPO paper Eq. 7 and 9) and its statistics
    ``[policy loss, value loss, entropy loss, clip fraction, approx KL]``."""
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    adv = advantages
    if normalize_advantage:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    # L^CLIP (Eq. 7): E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)],  r_t = pi / pi_old
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    policy_loss = -torch.min(adv * ratio, adv * ratio.clamp(1 - eps, 1 + eps)).mean()
    # L^VF (Eq. 9): squared error to the GAE returns, optionally clipped around the old values
    if eps_vf is not None:
        values = old_values + (values - old_values).clamp(-eps_vf, eps_vf)
    value_loss = F.mse_loss(values, returns)
    # entropy bonus S (Eq. 9)
    entropy_loss = -entropy.mean()
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    with torch.no_grad():
        # KL(pi_old || pi) estimated as E[(r - 1) - log r] (unbiased, always >= 0)
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_frac = ((ratio - 1).abs() > eps).float().mean()
        stats = torch.stack([policy_loss, value_loss, entropy_loss, clip_frac, approx_kl])
    return loss, stats


def a2c_loss(policy: Any, obs: Any, actions: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
             ent_coef: float, vf_coef: float, normalize_advantage: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A2C's loss on the rollout and ``[policy loss, value loss, entropy loss]``."""
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    adv = advantages
    if normalize_advantage:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    # policy gradient: -E[log pi(a|s) * A(s, a)], with A the n-step / GAE advantage
    policy_loss = -(adv * log_prob).mean()
    # critic regression to the bootstrapped returns
    value_loss = F.mse_loss(values, returns)
    # entropy regularization (beta * H(pi)) encourages exploration
    entropy_loss = -entropy.mean()
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    return loss, torch.stack([policy_loss, value_loss, entropy_loss]).detach()


def dqn_loss(q_net: Any, obs: Any, actions: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Huber TD error of ``Q(s, a)`` against ``target``, and ``Q(s, a)`` (detached)."""
    q = q_net(obs).gather(1, actions.long().view(-1, 1)).squeeze(1)
    return F.smooth_l1_loss(q, target), q.detach()


def twin_critic_loss(critic: Any, obs: Any, actions: torch.Tensor, target: torch.Tensor,
                     scale: float) -> torch.Tensor:
    """``scale * sum_i MSE(Q_i(s, a), target)`` over the critic's Q-heads (SAC: 1/2, TD3: 1)."""
    return scale * sum(F.mse_loss(q, target) for q in critic(obs, actions))


def sac_actor_loss(critic: Any, obs: Any, actions_pi: torch.Tensor, log_prob: torch.Tensor,
                   ent_coef: torch.Tensor) -> torch.Tensor:
    """SAC's actor loss ``E[alpha log pi(a|s) - min_i Q_i(s, a)]`` (a reparameterized)."""
    q_pi = functools.reduce(torch.minimum, critic(obs, actions_pi))
    return (ent_coef * log_prob - q_pi).mean()


def td3_actor_loss(actor: Any, critic: Any, obs: Any) -> torch.Tensor:
    """TD3's deterministic policy-gradient loss ``-E[Q_1(s, mu(s))]``."""
    return -critic.q1_forward(obs, actor(obs)).mean()
