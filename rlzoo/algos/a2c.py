"""Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016, "Asynchronous Methods for Deep RL")."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type, Union

import torch

from rlzoo.common.compile import a2c_loss, maybe_compile
from rlzoo.common.on_policy import OnPolicyAlgorithm
from rlzoo.common.optim import RMSpropTF, clip_grad_norm, make_adam
from rlzoo.common.policies import BasePolicy


class A2C(OnPolicyAlgorithm):
    """A2C: one gradient step per rollout on the n-step (or GAE) advantage actor-critic loss.

    :param use_rms_prop: RMSprop as in the paper (TensorFlow flavour, eps inside the root) or Adam
    :param rms_prop_eps: epsilon of RMSprop (or Adam)
    :param normalize_advantage: standardize the advantages of the rollout
    """

    def __init__(self, policy: Union[str, Type[BasePolicy]], env: Any, learning_rate: Any = 7e-4,
                 n_steps: int = 5, gamma: float = 0.99, gae_lambda: float = 1.0, ent_coef: float = 0.0,
                 vf_coef: float = 0.5, max_grad_norm: float = 0.5, rms_prop_eps: float = 1e-5,
                 use_rms_prop: bool = True, normalize_advantage: bool = False,
                 policy_kwargs: Optional[Dict[str, Any]] = None, tensorboard_log: Optional[str] = None,
                 verbose: int = 0, seed: Optional[int] = None, device: Union[str, torch.device] = "auto",
                 compile: bool = False, _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate, n_steps, gamma, gae_lambda, ent_coef, vf_coef, max_grad_norm,
                         policy_kwargs, tensorboard_log, verbose, seed, device)
        self.rms_prop_eps = rms_prop_eps
        self.use_rms_prop = use_rms_prop
        self.normalize_advantage = normalize_advantage
        self.compile = bool(compile)
        if _init_setup_model:
            self._setup_model()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        lr = self.lr_schedule(1.0)
        self._params = list(self.policy.parameters())
        if self.use_rms_prop:
            return RMSpropTF(self.policy.parameters(), lr=lr, alpha=0.99, eps=self.rms_prop_eps)
        return make_adam(self.policy.parameters(), lr=lr, eps=self.rms_prop_eps)

    def train(self) -> None:
        """One step on the A3C loss (paper §4 / Algorithm S3) over the whole rollout."""
        self._update_learning_rate(self.optimizer)
        batch = next(self.rollout_buffer.get(None))
        if getattr(self, "_loss_fn", None) is None:
            self._loss_fn = maybe_compile(a2c_loss, self.compile)
        loss, (policy_loss, value_loss, entropy_loss) = self._loss_fn(
            self.policy, batch.observations, batch.actions, batch.advantages, batch.returns, self.ent_coef,
            self.vf_coef, self.normalize_advantage)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(self._params, self.max_grad_norm)
        self.optimizer.step()
        self._n_updates += 1
        self.logger.record("train/policy_loss", policy_loss.detach())
        self.logger.record("train/value_loss", value_loss.detach())
        self.logger.record("train/entropy_loss", entropy_loss.detach())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
