"""ACKTR: actor-critic using Kronecker-factored trust region (Wu et al. 2017, "Scalable trust-region
method for deep reinforcement learning using Kronecker-factored approximation").

The A2C loss of each rollout is minimised with the K-FAC natural gradient (:class:`rlzoo.algos.acktr.kfac.KFAC`):

- §3.1: the Kronecker factors come from the backward pass of a *sampled* Fisher loss: the
  log-likelihood of actions drawn from the current policy, plus for the critic (a Gaussian of
  unit variance around V, §3.1) ``-vf_fisher_coef * mean((V - stopgrad(V + N(0, 1)))^2)``;
- §3.2: the step is scaled by ``min(1, sqrt(kfac_clip / (lr^2 v^T g)))`` (trust region), then goes
  through SGD with momentum; the learning rate decays linearly (as in the reference implementation).
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from gymnasium import spaces

from rlzoo.algos.acktr.kfac import KFAC
from rlzoo.common.on_policy import OnPolicyAlgorithm
from rlzoo.common.policies import BasePolicy
from rlzoo.common.utils import LinearSchedule


class ACKTR(OnPolicyAlgorithm):
    """ACKTR for Box and Discrete action spaces.

    :param learning_rate: K-FAC step size eta_max (float or schedule)
    :param n_steps: steps per env per rollout
    :param gamma: discount factor
    :param gae_lambda: GAE lambda (1.0: the n-step returns of the paper)
    :param ent_coef: entropy bonus coefficient
    :param vf_coef: value-loss coefficient
    :param vf_fisher_coef: weight of the critic's part of the sampled Fisher loss
    :param max_grad_norm: clip the raw gradient norm before preconditioning
    :param kfac_clip: trust-region size (``2 delta`` of the paper)
    :param kfac_damping: Tikhonov damping of the Kronecker factors
    :param kfac_update: refresh the curvature (inverses / eigen-decompositions) every this many updates
    :param kfac_factored_damping: damp each Kronecker factor (Martens & Grosse 2015 §6.3) instead of
        their product in the eigenbasis (False, as the ACKTR reference implementation)
    :param stats_decay: running-average decay of the Kronecker factors
    :param momentum: momentum of the K-FAC updates
    :param cold_iter: first updates made with plain SGD while the statistics accumulate
    :param cold_lr: learning rate of those warm-up updates
    :param linear_lr_decay: a float ``learning_rate`` decays linearly to 0 over training (ACKTR's
        default); a schedule is used as given
    :param normalize_advantage: standardize the advantages of the rollout
    """

    supported_action_spaces: ClassVar[tuple[type[spaces.Space], ...]] = (spaces.Box, spaces.Discrete)
    optimizer: KFAC  # built by _make_optimizer()
    fixed_optimizer: ClassVar[str | None] = "K-FAC"
    not_compilable: ClassVar[str | None] = ("K-FAC reads every layer's inputs and output gradients through module "
                                            "hooks, which rlzoo does not trace into compiled graphs")

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 0.25,
                 n_steps: int = 20, gamma: float = 0.99, gae_lambda: float = 1.0, ent_coef: float = 0.01,
                 vf_coef: float = 0.25, vf_fisher_coef: float = 1.0, max_grad_norm: float | None = 0.5,
                 kfac_clip: float = 0.001, kfac_damping: float = 0.01, kfac_update: int = 1,
                 kfac_factored_damping: bool = False, stats_decay: float = 0.99, momentum: float = 0.9,
                 cold_iter: int = 10, cold_lr: float = 0.01,
                 linear_lr_decay: bool = True, normalize_advantage: bool = False,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False,
                 _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, gamma=gamma,
                         gae_lambda=gae_lambda, ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm,
                         policy_kwargs=policy_kwargs, tensorboard_log=tensorboard_log, verbose=verbose, seed=seed,
                         device=device, compile=compile)
        self.vf_fisher_coef = vf_fisher_coef
        self.kfac_clip = kfac_clip
        self.kfac_damping = kfac_damping
        self.kfac_update = kfac_update
        self.kfac_factored_damping = kfac_factored_damping
        self.stats_decay = stats_decay
        self.momentum = momentum
        self.cold_iter = cold_iter
        self.cold_lr = cold_lr
        self.linear_lr_decay = linear_lr_decay
        self.normalize_advantage = normalize_advantage
        if linear_lr_decay and not callable(learning_rate):
            self.lr_schedule = LinearSchedule(float(learning_rate), 0.0)
        if _init_setup_model:
            self._setup_model()

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "vf_fisher_coef",
                              "max_grad_norm", "kfac_clip", "kfac_damping", "kfac_update", "kfac_factored_damping",
                              "stats_decay", "momentum", "cold_iter", "cold_lr", "linear_lr_decay",
                              "normalize_advantage")}

    def _setup_model(self) -> None:
        if not isinstance(self.action_space, self.supported_action_spaces):
            raise ValueError(f"ACKTR does not support the action space {type(self.action_space).__name__}: "
                             "supported are Box, Discrete")
        super()._setup_model()

    def _make_optimizer(self) -> KFAC:
        return KFAC(self.policy, lr=self.lr_schedule(1.0), momentum=self.momentum, stats_decay=self.stats_decay,
                    damping=self.kfac_damping, kfac_clip=self.kfac_clip, kfac_update=self.kfac_update,
                    cold_iter=self.cold_iter, cold_lr=self.cold_lr, max_grad_norm=self.max_grad_norm,
                    factored_damping=self.kfac_factored_damping)

    def train(self) -> None:
        """One K-FAC step on the actor-critic loss of the rollout."""
        self._update_learning_rate(self.optimizer)
        policy = self.policy
        assert self.rollout_buffer is not None, "train() needs the rollout buffer built by _setup_model()"
        batch = next(self.rollout_buffer.get(None))
        latent_pi, latent_vf = policy._latents(batch.observations)  # one forward for both losses
        dist = policy.action_head(latent_pi)
        values = policy.value_net(latent_vf).squeeze(-1)
        log_prob = dist.log_prob(batch.actions)
        adv = batch.advantages
        if self.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)

        # A2C loss: policy gradient, critic regression, entropy bonus
        policy_loss = -(adv * log_prob).mean()
        value_loss = F.mse_loss(values, batch.returns)
        entropy_loss = -dist.entropy().mean()
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

        # §3.1: sampled Fisher loss, targets drawn from the model's own predictive distributions
        with torch.no_grad():
            sampled_actions = dist.sample()
            sampled_values = values + torch.randn_like(values)
        pg_fisher_loss = -dist.log_prob(sampled_actions).mean()
        vf_fisher_loss = -self.vf_fisher_coef * (values - sampled_values).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        with self.optimizer.record_stats():
            (pg_fisher_loss + vf_fisher_loss).backward(retain_graph=True)

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self._n_updates += 1
        log = self.logger.record
        log("train/policy_loss", policy_loss.detach())
        log("train/value_loss", value_loss.detach())
        log("train/entropy_loss", entropy_loss.detach())
        if self.optimizer.last_scale is not None:
            log("train/kfac_scale", self.optimizer.last_scale)
        log("train/n_updates", self._n_updates, exclude="tensorboard")
