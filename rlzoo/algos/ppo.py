"""Proximal Policy Optimization (Schulman et al. 2017, "Proximal Policy Optimization Algorithms")."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type, Union

import torch

from rlzoo.common.compile import maybe_compile, ppo_loss, scalar
from rlzoo.common.on_policy import OnPolicyAlgorithm
from rlzoo.common.optim import clip_grad_norm, make_adam
from rlzoo.common.policies import BasePolicy
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
    """

    def __init__(self, policy: Union[str, Type[BasePolicy]], env: Any, learning_rate: Any = 3e-4,
                 n_steps: int = 2048, batch_size: int = 64, n_epochs: int = 10, gamma: float = 0.99,
                 gae_lambda: float = 0.95, clip_range: Any = 0.2, clip_range_vf: Any = None,
                 normalize_advantage: bool = True, ent_coef: float = 0.0, vf_coef: float = 0.5,
                 max_grad_norm: float = 0.5, target_kl: Optional[float] = None,
                 policy_kwargs: Optional[Dict[str, Any]] = None, tensorboard_log: Optional[str] = None,
                 verbose: int = 0, seed: Optional[int] = None, device: Union[str, torch.device] = "auto",
                 compile: bool = False, _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate, n_steps, gamma, gae_lambda, ent_coef, vf_coef, max_grad_norm,
                         policy_kwargs, tensorboard_log, verbose, seed, device)
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
        self.compile = bool(compile)
        if _init_setup_model:
            self._setup_model()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        # fused Adam: one kernel for all parameters instead of a Python loop over them
        return make_adam(self.policy.parameters(), lr=self.lr_schedule(1.0), eps=1e-5)

    def train(self) -> None:
        """Several epochs of minibatch SGD on the clipped surrogate (PPO paper, Algorithm 1)."""
        self._update_learning_rate(self.optimizer)
        progress = self._current_progress_remaining
        eps = self.clip_range_schedule(progress)
        eps_vf = None if self.clip_range_vf_schedule is None else self.clip_range_vf_schedule(progress)
        params = list(self.policy.parameters())
        if getattr(self, "_loss_fn", None) is None:
            self._loss_fn = maybe_compile(ppo_loss, self.compile)
        eps_arg = scalar(eps, self.compile, self.device)
        eps_vf_arg = None if eps_vf is None else scalar(eps_vf, self.compile, self.device)
        stats = torch.zeros(5, device=self.device)  # policy, value, entropy loss, clip fraction, approx kl
        n_batches = 0
        stop = False
        for _epoch in range(self.n_epochs):
            for batch in self.rollout_buffer.get(self.batch_size):
                loss, batch_stats = self._loss_fn(self.policy, batch.observations, batch.actions, batch.old_values,
                                                  batch.old_log_prob, batch.advantages, batch.returns, eps_arg,
                                                  eps_vf_arg, self.ent_coef, self.vf_coef, self.normalize_advantage)
                stats += batch_stats
                approx_kl = batch_stats[4]
                n_batches += 1
                if self.target_kl is not None and approx_kl.item() > 1.5 * self.target_kl:
                    stop = True
                    break
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_grad_norm(params, self.max_grad_norm)
                self.optimizer.step()
            self._n_updates += 1
            if stop:
                break
        pl, vl, el, cf, kl = (stats / max(n_batches, 1)).tolist()
        log = self.logger.record
        log("train/policy_gradient_loss", pl)
        log("train/value_loss", vl)
        log("train/entropy_loss", el)
        log("train/clip_fraction", cf)
        log("train/approx_kl", kl)
        log("train/loss", pl + self.ent_coef * el + self.vf_coef * vl)
        log("train/clip_range", eps)
        log("train/n_updates", self._n_updates, exclude="tensorboard")
        if self.action_head_log_std() is not None:
            log("train/std", self.action_head_log_std().detach().exp().mean())

    def action_head_log_std(self) -> Optional[torch.Tensor]:
        return self.policy.action_head.log_std
