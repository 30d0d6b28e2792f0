"""Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016, "Asynchronous Methods for Deep RL")."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rlzoo.common.on_policy import OnPolicyAlgorithm
from rlzoo.common.optim import RMSpropTF, clip_grad_norm
from rlzoo.common.policies import BasePolicy
from rlzoo.common.recurrent import RECURRENT_POLICY_ALIASES


class A2C(OnPolicyAlgorithm):
    """A2C: one gradient step per rollout on the n-step (or GAE) advantage actor-critic loss.

    :param use_rms_prop: RMSprop as in the paper (TensorFlow flavour, eps inside the root) or Adam
    :param rms_prop_eps: epsilon of RMSprop (or Adam)
    :param normalize_advantage: standardize the advantages of the rollout
    :param use_sde: generalized State-Dependent Exploration (gSDE, Raffin et al. 2021; Box actions only)
    :param sde_sample_freq: gSDE: new exploration matrix every this many steps (-1: once per rollout)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **OnPolicyAlgorithm.policy_aliases, **RECURRENT_POLICY_ALIASES}

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 7e-4,
                 n_steps: int = 5, gamma: float = 0.99, gae_lambda: float = 1.0, ent_coef: float = 0.0,
                 vf_coef: float = 0.5, max_grad_norm: float = 0.5, rms_prop_eps: float = 1e-5,
                 use_rms_prop: bool = True, use_sde: bool = False, sde_sample_freq: int = -1,
                 normalize_advantage: bool = False,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False,
                 _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate, n_steps, gamma, gae_lambda, ent_coef, vf_coef, max_grad_norm,
                         policy_kwargs, tensorboard_log, verbose, seed, device, use_sde, sde_sample_freq,
                         compile=compile)
        self.rms_prop_eps = rms_prop_eps
        self.use_rms_prop = use_rms_prop
        self.normalize_advantage = normalize_advantage
        if _init_setup_model:
            self._setup_model()

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 100, tb_log_name: str = "run",
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> A2C:
        """As :meth:`BaseAlgorithm.learn`, logging every ``log_interval`` updates (100, as in SB3: an A2C
        update is only ``n_steps * n_envs`` env steps)."""
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm",
                              "rms_prop_eps", "use_rms_prop", "use_sde", "sde_sample_freq", "normalize_advantage")}

    def _make_optimizer(self) -> torch.optim.Optimizer:
        self._params = list(self.policy.parameters())
        if self.use_rms_prop:
            return self._new_optimizer(self._params, RMSpropTF, alpha=0.99, eps=self.rms_prop_eps)
        return self._new_optimizer(self._params, torch.optim.Adam, eps=self.rms_prop_eps)

    def train(self) -> None:
        """One step on the A3C loss (paper §4 / Algorithm S3) over the whole rollout."""
        self._update_learning_rate(self.optimizer)
        assert self.rollout_buffer is not None, "train() needs the rollout buffer built by _setup_model()"
        batch = next(self.rollout_buffer.get(None))
        analytic = self._analytic_grad()  # gradients by hand for a plain MLP (the same as autograd's)
        ev = analytic.evaluate(batch.observations, batch.actions) if analytic is not None else None
        values, log_prob, entropy = ev[:3] if ev is not None else self._evaluate_batch(batch)
        adv = batch.advantages
        if self.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        # policy gradient: -E[log pi(a|s) * A(s, a)], with A the n-step / GAE advantage
        policy_loss = -(adv * log_prob).mean()
        # critic regression to the bootstrapped returns
        value_loss = F.mse_loss(values, batch.returns)
        # entropy regularization (beta * H(pi)) encourages exploration
        self.optimizer.zero_grad(set_to_none=True)
        if analytic is not None and ev is not None:
            entropy_loss = -entropy.mean()
            # dL/d log pi = -A / N, dL/dV = 2 c_vf (V - R) / N, dL/dH = -c_ent / N
            n = max(len(adv), 1)  # (an empty rollout, n_steps 0, gives zero gradients)
            analytic.backward(ev, (values - batch.returns) * (2.0 * self.vf_coef / n), adv * (-1.0 / n),
                              -self.ent_coef / n)
        else:
            loss, entropy_loss = self._actor_critic_loss(policy_loss, value_loss, entropy)
            loss.backward()
        clip_grad_norm(self._params, self.max_grad_norm)
        self.optimizer.step()
        self._n_updates += 1
        self.logger.record("train/policy_loss", policy_loss.detach())
        self.logger.record("train/value_loss", value_loss.detach())
        self.logger.record("train/entropy_loss", entropy_loss.detach())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
