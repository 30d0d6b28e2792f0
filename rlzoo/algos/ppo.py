"""Proximal Policy Optimization (Schulman et al. 2017, "Proximal Policy Optimization Algorithms")."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rlzoo.common.on_policy import OnPolicyAlgorithm
from rlzoo.common.optim import clip_grad_norm
from rlzoo.common.policies import BasePolicy
from rlzoo.common.recurrent import RECURRENT_POLICY_ALIASES
from rlzoo.common.utils import get_schedule_fn


class PPO(OnPolicyAlgorithm):
    """PPO with the clipped surrogate objective, GAE and optional value clipping.

    :param n_steps: steps per env per rollout (rollout size = n_steps * n_envs)
    :param batch_size: minibatch size
    :param n_epochs: passes over the rollout per update
    :param clip_range: surrogate clipping epsilon (float or schedule)
    :param clip_range_vf: value clipping around the old values (None: no clipping)
    :param normalize_advantage: standardize advantages per minibatch
    :param target_kl: stop the epochs early when the approximate KL exceeds 1.5 * target_kl
    :param use_sde: generalized State-Dependent Exploration (gSDE, Raffin et al. 2021; Box actions only)
    :param sde_sample_freq: gSDE: new exploration matrix every this many steps (-1: once per rollout)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **OnPolicyAlgorithm.policy_aliases, **RECURRENT_POLICY_ALIASES}

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 3e-4,
                 n_steps: int = 2048, batch_size: int = 64, n_epochs: int = 10, gamma: float = 0.99,
                 gae_lambda: float = 0.95, clip_range: Any = 0.2, clip_range_vf: Any = None,
                 normalize_advantage: bool = True, ent_coef: float = 0.0, vf_coef: float = 0.5,
                 max_grad_norm: float = 0.5, use_sde: bool = False, sde_sample_freq: int = -1,
                 target_kl: float | None = None,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False,
                 _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate, n_steps, gamma, gae_lambda, ent_coef, vf_coef, max_grad_norm,
                         policy_kwargs, tensorboard_log, verbose, seed, device, use_sde, sde_sample_freq,
                         compile=compile)
        if batch_size < 2 and normalize_advantage:
            raise ValueError("batch_size must be > 1 to normalize advantages")
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.clip_range_schedule = get_schedule_fn(clip_range)
        self.clip_range_vf_schedule = None if clip_range_vf is None else get_schedule_fn(clip_range_vf)
        if _init_setup_model:
            self._setup_model()

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range",
                              "clip_range_vf", "normalize_advantage", "ent_coef", "vf_coef", "max_grad_norm",
                              "use_sde", "sde_sample_freq", "target_kl")}

    def _make_optimizer(self) -> torch.optim.Optimizer:
        # Adam with eps 1e-5 (the PPO code's); on flat buffers: one fused kernel for all parameters
        return self._new_optimizer(self.policy.parameters(), torch.optim.Adam, eps=1e-5)

    def train(self) -> None:
        """Several epochs of minibatch SGD on the clipped surrogate (PPO paper, Algorithm 1)."""
        self._update_learning_rate(self.optimizer)
        progress = self._current_progress_remaining
        eps = self.clip_range_schedule(progress)
        eps_vf = None if self.clip_range_vf_schedule is None else self.clip_range_vf_schedule(progress)
        params = list(self.policy.parameters())
        assert self.rollout_buffer is not None, "train() needs the rollout buffer built by _setup_model()"
        losses: list[torch.Tensor] = []  # (policy, value, entropy) loss of each minibatch
        log_ratios: list[torch.Tensor] = []
        stop = False
        buf = self.rollout_buffer
        whole = self.batch_size is None or self.batch_size >= buf.n_steps * buf.n_envs  # one minibatch per epoch
        whole_adv: torch.Tensor | None = None
        # gradients by hand for a plain MLP (same values as autograd, a third of the operator calls)
        analytic = self._analytic_grad() if eps_vf is None else None
        rollout = list(buf.get(None)) if whole else None  # the same views every epoch
        for _epoch in range(self.n_epochs):
            for batch in rollout if rollout is not None else buf.get(self.batch_size):
                ev = analytic.evaluate(batch.observations, batch.actions) if analytic is not None else None
                values, log_prob, entropy = ev[:3] if ev is not None else self._evaluate_batch(batch)
                adv = batch.advantages
                if self.normalize_advantage:
                    if not whole or whole_adv is None:  # the same every epoch when the batch is the rollout
                        whole_adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    adv = whole_adv
                # L^CLIP (Eq. 7): E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)],  r_t = pi / pi_old
                log_ratio = log_prob - batch.old_log_prob
                ratio = log_ratio.exp()
                surrogate, clipped_surrogate = adv * ratio, adv * ratio.clamp(1 - eps, 1 + eps)
                policy_loss = -torch.min(surrogate, clipped_surrogate).mean()
                # L^VF (Eq. 9): squared error to the GAE returns, optionally clipped around the old values
                if eps_vf is not None:
                    values = batch.old_values + (values - batch.old_values).clamp(-eps_vf, eps_vf)
                value_loss = F.mse_loss(values, batch.returns)
                # L^CLIP+VF+S (Eq. 9), with the entropy bonus S (built only for autograd)
                loss, entropy_loss = (self._actor_critic_loss(policy_loss, value_loss, entropy) if analytic is None
                                      else (None, -entropy.mean()))
                losses.append(torch.stack([policy_loss, value_loss, entropy_loss]).detach())
                log_ratios.append(log_ratio.detach())
                if self.target_kl is not None and _approx_kl(log_ratio.detach()).item() > 1.5 * self.target_kl:
                    stop = True
                    break
                self.optimizer.zero_grad(set_to_none=True)
                if analytic is not None and ev is not None:
                    # dL/d log pi = -A r / N where the unclipped term is the minimum (always so when r lies
                    # inside the clip range, where both terms are equal), else 0;
                    # dL/dV = 2 c_vf (V - R) / N;  dL/dH = -c_ent / N
                    n = max(len(log_prob), 1)
                    flows = surrogate <= clipped_surrogate
                    analytic.backward(ev, (values - batch.returns) * (2.0 * self.vf_coef / n),
                                      surrogate * flows * (-1.0 / n), -self.ent_coef / n)
                else:
                    assert loss is not None
                    loss.backward()
                clip_grad_norm(params, self.max_grad_norm)
                self.optimizer.step()
            self._n_updates += 1
            if stop:
                break
        with torch.no_grad():  # statistics over every minibatch seen, computed once
            pl, vl, el = torch.stack(losses).mean(0).tolist()
            all_log_ratios = torch.cat(log_ratios)
            kl = _approx_kl(all_log_ratios).item()
            cf = ((all_log_ratios.exp() - 1).abs() > eps).float().mean().item()
        log = self.logger.record
        log("train/policy_gradient_loss", pl)
        log("train/value_loss", vl)
        log("train/entropy_loss", el)
        log("train/clip_fraction", cf)
        log("train/approx_kl", kl)
        log("train/loss", pl + self.ent_coef * el + self.vf_coef * vl)
        log("train/clip_range", eps)
        log("train/n_updates", self._n_updates, exclude="tensorboard")
        log_std = self.action_head_log_std()
        if log_std is not None:
            log("train/std", log_std.detach().exp().mean())

    def action_head_log_std(self) -> torch.Tensor | None:
        """The Gaussian action head's log-std parameter, or None for non-Gaussian heads."""
        return self.policy.action_head.log_std


def _approx_kl(log_ratio: torch.Tensor) -> torch.Tensor:
    """KL(pi_old || pi) estimated as E[(r - 1) - log r] (unbiased and >= 0; Schulman's k3 estimator)."""
    return (log_ratio.exp() - 1 - log_ratio).mean()
