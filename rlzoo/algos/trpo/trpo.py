"""Trust Region Policy Optimization (Schulman et al. 2015, "Trust Region Policy Optimization").

Per rollout (the shared collection and GAE of :class:`OnPolicyAlgorithm`):

1. surrogate ``L(theta) = E[pi_theta(a|s) / pi_old(a|s) * A] (+ ent_coef * entropy)`` and its gradient g (§5);
2. natural direction ``s = F^-1 g`` by conjugate gradient on Fisher-vector products, the Hessian of
   the mean KL computed on every ``sub_sampling_factor``-th sample, with ``cg_damping`` (Appendix C);
3. full step ``beta s`` with ``beta = sqrt(2 target_kl / s^T F s)``, so the quadratic KL model equals
   ``target_kl`` (Appendix C);
4. backtracking line search on the whole batch: the first fraction of the step whose surrogate
   improves and whose mean KL is at most ``1.5 * target_kl`` (the tolerance of the reference
   implementation, which leaves room for the quadratic model's error) is kept; otherwise the old
   parameters are restored (§6 / Appendix C);
5. the value function is fitted by ``n_critic_updates`` epochs of Adam on minibatches (GAE §5).
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rlzoo.algos.trpo.natural_gradient import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
)
from rlzoo.common.on_policy import OnPolicyAlgorithm
from rlzoo.common.policies import BasePolicy


class TRPO(OnPolicyAlgorithm):
    """TRPO with GAE, a conjugate-gradient natural step and a KL-bounded line search.

    Names follow Stable-Baselines3-contrib's TRPO; defaults follow the original Stable Baselines
    (``max_kl`` -> ``target_kl``, ``cg_iters`` -> ``cg_max_steps``, ``vf_stepsize`` -> ``learning_rate``,
    ``vf_iters`` -> ``n_critic_updates``, ``timesteps_per_batch`` -> ``n_steps * n_envs``).

    :param learning_rate: Adam step size of the value function (float or schedule)
    :param n_steps: steps per env per rollout
    :param batch_size: minibatch size of the value-function fit
    :param gamma: discount factor
    :param cg_max_steps: conjugate-gradient iterations
    :param cg_damping: damping added to the Fisher-vector products
    :param line_search_shrinking_factor: step fraction multiplier per backtracking try
    :param line_search_max_iter: backtracking tries before the step is rejected
    :param n_critic_updates: epochs of value-function fitting per rollout
    :param gae_lambda: GAE lambda
    :param normalize_advantage: standardize advantages over the rollout
    :param target_kl: KL bound of the trust region (``max_kl`` of the paper)
    :param kl_tolerance: the line search accepts ``kl <= kl_tolerance * target_kl``
    :param sub_sampling_factor: Fisher-vector products use every k-th sample of the rollout
    :param ent_coef: entropy bonus in the surrogate
    :param use_sde: generalized State-Dependent Exploration (gSDE, Raffin et al. 2021; Box actions only)
    :param sde_sample_freq: gSDE: new exploration matrix every this many steps (-1: once per rollout)
    """

    not_compilable: ClassVar[str | None] = ("its Fisher-vector products differentiate twice (double backward), which "
                                            "torch.compile'd graphs do not support")

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 3e-4,
                 n_steps: int = 1024, batch_size: int = 128, gamma: float = 0.99, cg_max_steps: int = 10,
                 cg_damping: float = 1e-2, line_search_shrinking_factor: float = 0.5,
                 line_search_max_iter: int = 10, n_critic_updates: int = 3, gae_lambda: float = 0.98,
                 use_sde: bool = False, sde_sample_freq: int = -1, normalize_advantage: bool = True,
                 target_kl: float = 0.01, kl_tolerance: float = 1.5, sub_sampling_factor: int = 5,
                 ent_coef: float = 0.0,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False,
                 _init_setup_model: bool = True) -> None:
        # the value function has its own regression steps and the policy step is the line search: TRPO has no
        # value-loss weight in the policy loss and no gradient clipping
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, gamma=gamma,
                         gae_lambda=gae_lambda, ent_coef=ent_coef, vf_coef=0.0, max_grad_norm=0.0,
                         policy_kwargs=policy_kwargs, tensorboard_log=tensorboard_log, verbose=verbose, seed=seed,
                         device=device, compile=compile, use_sde=use_sde, sde_sample_freq=sde_sample_freq)
        if target_kl <= 0 or cg_damping < 0 or cg_max_steps < 1 or sub_sampling_factor < 1:
            raise ValueError("TRPO needs target_kl > 0, cg_damping >= 0, cg_max_steps >= 1, sub_sampling_factor >= 1")
        if not 0 < line_search_shrinking_factor < 1 or line_search_max_iter < 1 or kl_tolerance < 1:
            raise ValueError("TRPO needs 0 < line_search_shrinking_factor < 1, line_search_max_iter >= 1, "
                             "kl_tolerance >= 1")
        self.batch_size = batch_size
        self.cg_max_steps = cg_max_steps
        self.cg_damping = cg_damping
        self.line_search_shrinking_factor = line_search_shrinking_factor
        self.line_search_max_iter = line_search_max_iter
        self.n_critic_updates = n_critic_updates
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.kl_tolerance = kl_tolerance
        self.sub_sampling_factor = sub_sampling_factor
        if _init_setup_model:
            self._setup_model()

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("n_steps", "batch_size", "gamma", "cg_max_steps", "cg_damping",
                              "line_search_shrinking_factor", "line_search_max_iter", "n_critic_updates",
                              "gae_lambda", "use_sde", "sde_sample_freq", "normalize_advantage", "target_kl",
                              "kl_tolerance", "sub_sampling_factor", "ent_coef")}

    def _split_parameters(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """Actor parameters (everything the action distribution depends on) and critic-only parameters.

        A features extractor shared by actor and critic belongs to the actor: the trust region
        governs it and the critic's Adam does not move it.
        """
        p = self.policy
        actor_modules = [p.features_extractor, p.mlp_extractor.policy_net, p.action_head]
        actor = list(dict.fromkeys(q for m in actor_modules for q in m.parameters()))
        ids = {id(q) for q in actor}
        critic = [q for q in p.parameters() if id(q) not in ids]
        return actor, critic

    def _make_optimizer(self) -> torch.optim.Optimizer:
        self.actor_params, self.critic_params = self._split_parameters()
        return self._new_optimizer(self.critic_params, torch.optim.Adam)

    def _critic_values(self, obs: Any) -> torch.Tensor:
        """V(s) with gradients only into critic-only parameters (a shared extractor is the actor's)."""
        p = self.policy
        if not p.share_features_extractor:
            return p.predict_values(obs)
        with torch.no_grad():
            features = p.extract_features(obs)
        return p.value_net(p.mlp_extractor.value_net(features)).squeeze(-1)

    def train(self) -> None:
        """One TRPO policy step and a value-function fit on the collected rollout."""
        self._update_learning_rate(self.optimizer)
        policy, params = self.policy, self.actor_params
        assert self.rollout_buffer is not None, "train() needs the rollout buffer built by _setup_model()"
        buffer = self.rollout_buffer
        batch = next(buffer.get(None))
        obs, actions = batch.observations, batch.actions
        adv = batch.advantages
        if self.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)

        with torch.no_grad():
            old_dist = policy.get_distribution(obs)
            old_log_prob = old_dist.log_prob(actions)

        def surrogate(dist: Any) -> torch.Tensor:
            # L_old(theta) = E[pi_theta / pi_old * A] (Eq. 14), plus an optional entropy bonus
            ratio = torch.exp(dist.log_prob(actions) - old_log_prob)
            return (ratio * adv).mean() + self.ent_coef * dist.entropy().mean()

        # 1. gradient of the surrogate at theta_old
        g = flat_grad(surrogate(policy.get_distribution(obs)), params)

        # 2. s = (F + damping I)^-1 g; F is the Hessian of the mean KL on a sub-sample (Appendix C.1)
        sub = slice(None, None, self.sub_sampling_factor)
        sub_obs = {k: v[sub] for k, v in obs.items()} if isinstance(obs, dict) else obs[sub]
        with torch.no_grad():
            sub_old = policy.get_distribution(sub_obs)
        fvp = fisher_vector_product(lambda: sub_old.kl(policy.get_distribution(sub_obs)).mean(), params,
                                    self.cg_damping)
        step_dir = conjugate_gradient(fvp, g, n_iters=self.cg_max_steps)

        # 3. scale to the trust region: 0.5 * beta^2 s^T F s = target_kl
        shs = 0.5 * step_dir.dot(fvp(step_dir))
        beta = torch.sqrt(self.target_kl / shs.clamp_min(1e-12))
        full_step = beta * step_dir

        # 4. backtracking line search on the whole batch; restores theta_old when nothing is accepted
        def evaluate() -> tuple[torch.Tensor, torch.Tensor]:
            dist = policy.get_distribution(obs)
            return surrogate(dist), old_dist.kl(dist).mean()

        result = backtracking_line_search(params, full_step, evaluate, self.target_kl, self.kl_tolerance,
                                          self.line_search_max_iter, self.line_search_shrinking_factor)

        # 5. value function: a few epochs of Adam on the TD(lambda) returns
        value_losses = []
        for _ in range(self.n_critic_updates):
            for mb in buffer.get(self.batch_size):
                value_loss = F.mse_loss(self._critic_values(mb.observations), mb.returns)
                self.optimizer.zero_grad(set_to_none=True)
                value_loss.backward()
                self.optimizer.step()
                value_losses.append(value_loss.detach())
        self._n_updates += 1
        log = self.logger.record
        log("train/policy_objective", result.improvement)
        log("train/kl_divergence", result.kl)
        log("train/line_search_success", float(result.accepted))
        log("train/step_fraction", result.step_fraction)
        log("train/value_loss", torch.stack(value_losses).mean() if value_losses else 0.0)
        log("train/n_updates", self._n_updates, exclude="tensorboard")
        self.last_line_search = result
