"""A toy algorithm added by following CONTRIBUTING.md's "add an algorithm" steps (tests/test_contributing.py).

REINFORCE with a learned baseline (Williams 1992): ascend ``E[(G_t - V(s_t)) grad log pi(a_t|s_t)]``
with the discounted returns-to-go ``G_t`` of each rollout (bootstrapped by ``V`` where a rollout
cuts an episode), and regress ``V`` on ``G_t``. It is declared to rlzoo by ``SPEC``, which the test
exposes as an ``rlzoo.algos`` entry point.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rlzoo.algos.registry import AlgoSpec
from rlzoo.common.on_policy import OnPolicyAlgorithm
from rlzoo.common.optim import make_adam


class Reinforce(OnPolicyAlgorithm):
    """REINFORCE with a value baseline; one Adam step per rollout of ``n_steps`` x ``n_envs``.

    :param learning_rate: Adam learning rate
    :param n_steps: steps per env per rollout
    :param gamma: discount factor
    :param vf_coef: weight of the baseline's regression loss
    """

    def __init__(self, policy: Any, env: Any, learning_rate: Any = 1e-3, n_steps: int = 64, gamma: float = 0.99,
                 vf_coef: float = 0.5, policy_kwargs: dict[str, Any] | None = None,
                 tensorboard_log: str | None = None, verbose: int = 0, seed: int | None = None,
                 device: Any = "auto", _init_setup_model: bool = True) -> None:
        # gae_lambda=1: the buffer's returns are the Monte Carlo returns-to-go
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, gamma=gamma, gae_lambda=1.0,
                         ent_coef=0.0, vf_coef=vf_coef, max_grad_norm=float("inf"), policy_kwargs=policy_kwargs,
                         tensorboard_log=tensorboard_log, verbose=verbose, seed=seed, device=device)
        if _init_setup_model:
            self._setup_model()

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), **self._attrs("n_steps", "gamma", "vf_coef")}

    def _make_optimizer(self) -> torch.optim.Optimizer:
        return make_adam(self.policy.parameters(), lr=self.lr_schedule(1.0))

    def train(self) -> None:
        """One gradient step on the whole rollout."""
        self._update_learning_rate(self.optimizer)
        batch = next(self.rollout_buffer.get(None))
        values, log_prob, _ = self.policy.evaluate_actions(batch.observations, batch.actions)
        policy_loss = -((batch.returns - values.detach()) * log_prob).mean()
        value_loss = F.mse_loss(values, batch.returns)
        self.optimizer.zero_grad(set_to_none=True)
        (policy_loss + self.vf_coef * value_loss).backward()
        self.optimizer.step()
        self.logger.record("train/policy_loss", policy_loss.detach())
        self.logger.record("train/value_loss", value_loss.detach())


SPEC = AlgoSpec(name="reinforce", cls=Reinforce, hyperparams=Path(__file__).with_suffix(".yml").resolve())
