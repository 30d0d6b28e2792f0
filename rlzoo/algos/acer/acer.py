"""ACER: actor-critic with experience replay (Wang et al. 2016, "Sample Efficient Actor-Critic with
Experience Replay", ICLR 2017), for Discrete actions (Section 3, Algorithm 2) and Box actions with the
stochastic dueling network (Section 4, Algorithm 3).

Each iteration collects one segment of ``n_steps`` from every env with the current policy, stores it
with the behaviour policy's statistics in a replay memory of whole segments, makes one on-policy
update on it, then ``Poisson(replay_ratio)`` off-policy updates on stored segments (Algorithm 1).
The update math (Retrace, truncation with bias correction, trust region) is in
:mod:`rlzoo.algos.acer.maths`, the memory in :mod:`rlzoo.algos.acer.replay`.

Choices beyond the paper: episodes cut by a time limit bootstrap from ``V`` of their final
observation (stored at collection time); bounded Box actions are tanh-squashed so that the
stochastic dueling network never extrapolates beyond the bounds (without it the Gaussian mean drifts
far outside them on Pendulum); with ``VecNormalize`` the memory stores raw observations and rewards
and normalizes replayed segments with the current statistics.
"""
from __future__ import annotations

import copy
import os
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from rlzoo.algos.acer.maths import (
    continuous_policy_gain,
    discrete_policy_gain,
    gaussian_kl,
    gaussian_log_prob,
    retrace_targets,
    trust_region_loss,
)
from rlzoo.algos.acer.policies import ACERCnnPolicy, ACERMultiInputPolicy, ACERPolicy
from rlzoo.algos.acer.replay import SegmentReplayMemory, array_shape_dtype
from rlzoo.common.base import BaseAlgorithm
from rlzoo.common.optim import FlatParameters, RMSpropTF, clip_grad_norm, polyak_update
from rlzoo.common.policies import BasePolicy
from rlzoo.common.utils import LinearSchedule, obs_to_tensor
from rlzoo.envs import VecNormalize, final_observations, unwrap_vec_normalize, unwrap_vec_wrapper
from rlzoo.envs.frame_stack import VecFrameStack

_EPS = 1e-6
#: 7e-4 decaying linearly to 0 (the original ACER's default)
DEFAULT_LEARNING_RATE = LinearSchedule(7e-4)


# ----------------------------------------------------------------------------------------- algorithm
class ACER(BaseAlgorithm):
    """Actor-critic with experience replay (Wang et al. 2016), Discrete and Box actions.

    :param n_steps: segment length per env (the ``k`` of Algorithm 2)
    :param gamma: discount factor
    :param q_coef: weight of the critic loss
    :param ent_coef: entropy bonus
    :param max_grad_norm: gradient clipping norm
    :param learning_rate: a float or a schedule (default 7e-4 decaying linearly)
    :param rprop_alpha: RMSprop decay
    :param rprop_epsilon: RMSprop epsilon
    :param buffer_size: replay capacity in steps per env (``buffer_size // n_steps`` segments)
    :param replay_ratio: mean of the Poisson number of off-policy updates per on-policy update
    :param replay_start: steps per env stored before replay starts
    :param correction_term: truncation threshold ``c`` of the importance weights (Eq. 9)
    :param trust_region: use the efficient trust region (Section 3.3)
    :param alpha: decay of the average policy network (``theta_a <- alpha theta_a + (1 - alpha) theta``)
    :param delta: trust region size
    :param n_sdn_samples: Box only: actions sampled to average the advantages of the stochastic
        dueling network (``n`` of Section 4.1)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ACERPolicy, "CnnPolicy": ACERCnnPolicy, "MultiInputPolicy": ACERMultiInputPolicy}
    supported_action_spaces = (spaces.Discrete, spaces.Box)
    not_compilable: ClassVar[str | None] = ("its trust-region step differentiates with respect to the policy's "
                                            "output statistics between passes; rlzoo runs it eagerly")

    def __init__(self, policy: str | type[BasePolicy], env: Any, gamma: float = 0.99, n_steps: int = 20,
                 q_coef: float = 0.5, ent_coef: float = 0.01, max_grad_norm: float = 10.0,
                 learning_rate: Any = DEFAULT_LEARNING_RATE, rprop_alpha: float = 0.99, rprop_epsilon: float = 1e-5,
                 buffer_size: int = 5000, replay_ratio: float = 4.0, replay_start: int = 1000,
                 correction_term: float = 10.0, trust_region: bool = True, alpha: float = 0.99, delta: float = 1.0,
                 n_sdn_samples: int = 5, policy_kwargs: dict[str, Any] | None = None,
                 tensorboard_log: str | None = None, verbose: int = 0, seed: int | None = None,
                 device: str | torch.device = "auto",
                 compile: bool = False, _init_setup_model: bool = True) -> None:
        super().__init__(policy, env, learning_rate=learning_rate, policy_kwargs=policy_kwargs,
                         tensorboard_log=tensorboard_log, verbose=verbose, seed=seed, device=device, compile=compile)
        if n_steps < 1 or buffer_size < n_steps or replay_ratio < 0 or not 0.0 <= alpha < 1.0 or n_sdn_samples < 1:
            raise ValueError("ACER needs n_steps >= 1, buffer_size >= n_steps, replay_ratio >= 0, "
                             "0 <= alpha < 1 and n_sdn_samples >= 1")
        self.gamma, self.n_steps, self.q_coef, self.ent_coef = gamma, n_steps, q_coef, ent_coef
        self.max_grad_norm, self.rprop_alpha, self.rprop_epsilon = max_grad_norm, rprop_alpha, rprop_epsilon
        self.buffer_size, self.replay_ratio, self.replay_start = buffer_size, replay_ratio, replay_start
        self.correction_term, self.trust_region, self.alpha, self.delta = correction_term, trust_region, alpha, delta
        self.n_sdn_samples = n_sdn_samples
        self.replay_memory: SegmentReplayMemory | None = None
        if _init_setup_model:
            self._setup_model()

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(),
                **self._attrs("gamma", "n_steps", "q_coef", "ent_coef", "max_grad_norm", "rprop_alpha",
                              "rprop_epsilon", "buffer_size", "replay_ratio", "replay_start", "correction_term",
                              "trust_region", "alpha", "delta", "n_sdn_samples")}

    def _setup_model(self) -> None:
        self.policy = self._make_policy()
        self.continuous = isinstance(self.action_space, spaces.Box)
        # the average policy network of Section 3.3, an exponential moving average of the parameters
        self.avg_policy = copy.deepcopy(self.policy).requires_grad_(False)
        self._params, self._avg_params = list(self.policy.parameters()), list(self.avg_policy.parameters())
        self._avg_flat = FlatParameters.build(self._avg_params, with_grad=False)  # one-op averaging
        self.optimizer = self._new_optimizer(self.policy.parameters(), RMSpropTF, alpha=self.rprop_alpha,
                                             eps=self.rprop_epsilon)
        self._rng = np.random.default_rng(self.seed)
        self._make_memory()

    def _make_memory(self) -> None:
        if self.replay_ratio <= 0:
            self.replay_memory = None
            return
        n_stack, axis = 1, -1
        stack = unwrap_vec_wrapper(self.env, VecFrameStack) if self.env is not None else None
        if stack is not None and None in stack.stackers:  # store stacked frames once
            n_stack, axis = stack.n_stack, 0 if stack.stackers[None].channels_first else -1
        self.replay_memory = SegmentReplayMemory(self.buffer_size, self.n_steps, self.n_envs, self.observation_space,
                                                 self.action_space, self.replay_stat_dim, n_stack, axis)

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        if self.replay_memory is not None and len(self.replay_memory) == 0:
            self._make_memory()

    def save_replay_buffer(self, path: str | os.PathLike) -> str:
        """Write the replay memory to ``path`` (``.npz``; numpy arrays only, no pickle), atomically."""
        if self.replay_memory is None:
            raise ValueError("this model has no replay memory (replay_ratio is 0 or it has no env)")
        return self.replay_memory.save(path)

    def load_replay_buffer(self, path: str | os.PathLike) -> None:
        """Load a replay memory written by :meth:`save_replay_buffer` (same spaces, n_envs and sizes)."""
        if self.replay_memory is None:
            raise ValueError("this model has no replay memory (replay_ratio is 0 or it has no env)")
        self.replay_memory.load(path)

    def _state_objects(self) -> dict[str, Any]:
        return {"policy": self.policy, "avg_policy": self.avg_policy, "optimizer": self.optimizer}

    # ------------------------------------------------------------------ collection (Algorithm 2, lines 3-7)
    def collect_segment(self, callback: Any) -> dict[str, Any] | None:
        """Run ``n_steps`` vector steps with the current policy; ``None`` if a callback stopped training."""
        env, policy, n, t_max = self.env, self.policy, self.n_envs, self.n_steps
        assert env is not None, "collect_segment() needs an environment"
        obs_buf = _alloc_obs(self.observation_space, t_max + 1, n)
        # With VecNormalize outermost, the memory keeps raw observations and rewards, normalized again
        # with the current statistics when replayed (as for off-policy replay buffers).
        vec_norm = self._replay_normalizer()
        raw_obs = _alloc_obs(self.observation_space, t_max + 1, n) if vec_norm is not None else None
        raw_rewards = np.zeros((t_max, n), np.float32)
        box = self.action_space if isinstance(self.action_space, spaces.Box) else None  # None: Discrete
        act_shape: tuple[int, ...] = box.shape if box is not None else ()
        seg = dict(obs=obs_buf, actions=np.zeros((t_max, n, *act_shape), np.float32 if self.continuous else np.int64),
                   rewards=np.zeros((t_max, n), np.float32), terminated=np.zeros((t_max, n), bool),
                   truncated=np.zeros((t_max, n), bool), final_values=np.zeros((t_max, n), np.float32),
                   mu=np.zeros((t_max, n, self.replay_stat_dim), np.float32))
        callback.on_rollout_start()
        policy.train(False)
        for step in range(t_max):
            _put_obs(obs_buf, step, self._last_obs)
            if vec_norm is not None:
                _put_obs(raw_obs, step, vec_norm.get_original_obs())
            with torch.inference_mode():
                actions, mu = policy(obs_to_tensor(self._last_obs, self.device))
            actions_np = actions.cpu().numpy()
            env_actions = actions_np
            if box is not None:
                actions_np = actions_np.reshape((n, *act_shape))
                env_actions = policy.env_action(actions).cpu().numpy().reshape((n, *act_shape))
                env_actions = np.clip(env_actions, box.low, box.high)
            new_obs, rewards, terminated, truncated, infos = env.step(env_actions)
            self.num_timesteps += n
            callback.update_locals(locals())
            if not callback.on_step():
                return None
            self._update_info_buffer(infos)
            seg["actions"][step], seg["mu"][step], seg["rewards"][step] = actions_np, mu.cpu().numpy(), rewards
            if vec_norm is not None:
                raw_rewards[step] = vec_norm.get_original_reward()
            bootstrap = truncated & ~terminated  # time limit: bootstrap from V(final obs)
            seg["terminated"][step], seg["truncated"][step] = terminated, bootstrap
            if bootstrap.any():
                idx = np.flatnonzero(bootstrap)
                with torch.inference_mode():
                    final = policy.predict_values(obs_to_tensor(final_observations(infos, idx), self.device))
                seg["final_values"][step, idx] = final.cpu().numpy()
            self._last_obs = new_obs
            self._last_episode_starts = terminated | truncated
        _put_obs(obs_buf, t_max, self._last_obs)
        if vec_norm is not None:
            _put_obs(raw_obs, t_max, vec_norm.get_original_obs())
            seg["raw"] = dict(obs=raw_obs, rewards=raw_rewards)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return seg

    def _replay_normalizer(self) -> VecNormalize | None:
        """The env's VecNormalize when it is the outermost observation transform (else None)."""
        if self.replay_memory is None or self.env is None:
            return None
        vec_norm = unwrap_vec_normalize(self.env)
        if vec_norm is None or vec_norm.single_observation_space.shape != self.observation_space.shape:
            return None
        return vec_norm

    def _sample_replay(self) -> dict[str, Any]:
        """A stored segment, normalized with the current VecNormalize statistics if the env has them."""
        assert self.replay_memory is not None, "replay needs the memory (replay_ratio > 0)"
        segment = self.replay_memory.sample(self._rng)
        vec_norm = self._replay_normalizer()
        if vec_norm is not None:
            segment["obs"] = vec_norm.normalize_obs(segment["obs"])
            segment["rewards"] = vec_norm.normalize_reward(segment["rewards"]).astype(np.float32)
        return segment

    @property
    def replay_stat_dim(self) -> int:
        """Size of the behaviour statistics stored per step."""
        space = self.action_space
        if isinstance(space, spaces.Box):
            return 2 * int(np.prod(space.shape))
        assert isinstance(space, spaces.Discrete), "ACER supports Box and Discrete actions"
        return int(space.n)

    def _learn_loop(self, total_timesteps: int, callback: Any, log_interval: int) -> None:
        iteration = 0
        while self.num_timesteps < total_timesteps:
            segment = self.collect_segment(callback)
            if segment is None:
                break
            iteration += 1
            self._update_current_progress_remaining()
            self._update_learning_rate(self.optimizer)
            self.policy.train(True)
            raw = segment.pop("raw", {})
            self.train(segment)  # on-policy update
            if self.replay_memory is not None:
                self.replay_memory.add(**{**segment, **raw})
                if self.replay_memory.has_at_least(self.replay_start):
                    # Algorithm 1: n ~ Poisson(r) off-policy updates from replayed segments
                    for _ in range(self._rng.poisson(self.replay_ratio)):
                        self.train(self._sample_replay())
            if log_interval and iteration % log_interval == 0:
                self.logger.record("time/iterations", iteration, exclude="tensorboard")
                self._log_time()
                self.logger.dump(self.num_timesteps)

    # ------------------------------------------------------------------ the update
    def train(self, segment: dict[str, Any]) -> None:
        """One ACER update on a segment (on-policy, or replayed from the memory)."""
        batch = {k: obs_to_tensor(v, self.device) for k, v in segment.items() if k != "obs"}
        obs = _flatten_obs(obs_to_tensor(segment["obs"], self.device))
        loss_fn = self._continuous_loss if self.continuous else self._discrete_loss
        loss, stats = loss_fn(obs, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_grad_norm(self._params, self.max_grad_norm)
        self.optimizer.step()
        # average policy network: theta_a <- alpha theta_a + (1 - alpha) theta
        polyak_update(self._params, self._avg_params, 1.0 - self.alpha)
        self._n_updates += 1
        for key, value in stats.items():
            self.logger.record_mean(f"train/{key}", value)
        self.logger.record_mean("train/grad_norm", grad_norm.detach())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _retrace(self, batch: dict[str, torch.Tensor], q_taken: torch.Tensor, values: torch.Tensor,
                 *traces: torch.Tensor) -> list[torch.Tensor]:
        """Retrace targets for each set of trace coefficients (computed side by side in one pass)."""
        t_max, n = batch["rewards"].shape
        k = len(traces)
        tile = lambda x: x.repeat(1, k)  # noqa: E731  [T, N] -> [T, k N]
        out = retrace_targets(tile(batch["rewards"]), tile(q_taken.detach().view(t_max, n)),
                              tile(values.detach().view(t_max + 1, n)),
                              torch.cat([c.view(t_max, n) for c in traces], dim=1), tile(batch["terminated"]),
                              tile(batch["truncated"]), tile(batch["final_values"]), self.gamma)
        return [part.flatten() for part in out.split(n, dim=1)]

    def _discrete_loss(self, obs: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """Algorithm 2 for a categorical policy; statistics ``phi`` are the probabilities ``f``."""
        b = batch["rewards"].numel()
        features = self.policy.extract_features(obs)
        f_all = self.policy.distribution(features).probs
        q_all = self.policy.q_values(features)
        f, q = f_all[:b], q_all[:b]
        actions = batch["actions"].flatten().long()
        mu = batch["mu"].flatten(0, 1)
        rho = f.detach() / (mu + _EPS)  # importance ratios of every action
        rho_a = rho.gather(1, actions[:, None]).squeeze(1)
        q_a = q.gather(1, actions[:, None]).squeeze(1)
        values = (f_all * q_all).sum(-1)
        (q_ret,) = self._retrace(batch, q_a, values, torch.clamp(rho_a, max=1.0))  # c_i = min(1, rho_i)
        entropy = -(f * torch.log(f + _EPS)).sum(-1)
        gain = discrete_policy_gain(f, q, actions, q_ret, rho, self.correction_term) + self.ent_coef * entropy
        if self.trust_region:
            with torch.no_grad():
                f_avg = self.avg_policy.get_distribution(_slice_obs(obs, b)).probs
            kl = (f_avg * (torch.log(f_avg + _EPS) - torch.log(f + _EPS))).sum(-1)
            policy_loss, active = trust_region_loss(f, gain, kl, self.delta)
        else:
            policy_loss, active = -gain.mean(), None
        q_loss = 0.5 * (q_ret - q_a).pow(2).mean()
        stats = dict(policy_loss=-gain.detach().mean(), q_loss=q_loss.detach(), entropy=entropy.detach().mean(),
                     rho_mean=rho_a.mean(), trust_region_active=active, explained_variance=_explained(q_a, q_ret))
        return policy_loss + self.q_coef * q_loss, stats

    def _continuous_loss(self, obs: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """Algorithm 3: Gaussian policy, stochastic dueling network, statistics ``phi = (mean, log_std)``."""
        b = batch["rewards"].numel()
        d = self.policy.action_dim
        features = self.policy.extract_features(obs)
        dist = self.policy.distribution(features[:b])
        phi = torch.cat([dist.mean, dist.log_std], dim=-1)
        mean, log_std = phi.split(d, dim=-1)
        values = self.policy.value(features)  # V(x_0..x_k)
        v = values[:b]
        actions = batch["actions"].reshape(b, d)
        mu_mean, mu_std = batch["mu"].reshape(b, 2 * d).split(d, dim=-1)
        mu_log_std = torch.log(mu_std)
        with torch.no_grad():  # u_1..u_n for the SDN average, and a' for the bias correction
            samples = mean.detach().unsqueeze(1) + log_std.detach().exp().unsqueeze(1) * torch.randn(
                b, self.n_sdn_samples + 1, d, device=mean.device)
        adv = self.policy.advantage(features[:b], torch.cat([actions.unsqueeze(1), samples], dim=1))
        adv_mean = adv[:, 1:-1].mean(1) if self.n_sdn_samples > 1 else adv[:, 1]
        # Stochastic dueling network: Q~(x, a) = V(x) + A(x, a) - 1/n sum_i A(x, u_i)
        q_taken = v + adv[:, 0] - adv_mean
        q_sampled = v + adv[:, -1] - adv_mean
        a_prime = samples[:, -1]
        log_f = gaussian_log_prob(actions, mean, log_std)
        log_f_prime = gaussian_log_prob(a_prime, mean, log_std)
        log_rho = torch.clamp(log_f.detach() - gaussian_log_prob(actions, mu_mean, mu_log_std), max=50.0)
        log_rho_prime = torch.clamp(log_f_prime.detach() - gaussian_log_prob(a_prime, mu_mean, mu_log_std), max=50.0)
        rho, rho_prime = log_rho.exp(), log_rho_prime.exp()
        # c_i = min(1, rho_i^(1/d)) for Retrace; Q_opc uses c_i = 1 (Section 4.2)
        q_ret, q_opc = self._retrace(batch, q_taken, values, torch.exp(torch.clamp(log_rho / d, max=0.0)),
                                     torch.ones_like(rho))
        entropy = (log_std + 0.5 + 0.5 * np.log(2 * np.pi)).sum(-1)
        gain = continuous_policy_gain(log_f, log_f_prime, rho, rho_prime, q_opc, q_sampled, v,
                                      self.correction_term) + self.ent_coef * entropy
        if self.trust_region:
            with torch.no_grad():
                avg = self.avg_policy.get_distribution(_slice_obs(obs, b))
            kl = gaussian_kl(avg.mean, avg.log_std, mean, log_std)
            policy_loss, active = trust_region_loss(phi, gain, kl, self.delta)
        else:
            policy_loss, active = -gain.mean(), None
        # critic: (Q_ret - Q~) grad Q~ + min(1, rho) (Q_ret - Q~) grad V (Algorithm 3)
        q_loss = 0.5 * (q_ret - q_taken).pow(2).mean()
        v_target = torch.clamp(rho, max=1.0) * (q_ret - q_taken.detach()) + v.detach()
        v_loss = 0.5 * (v_target - v).pow(2).mean()
        stats = dict(policy_loss=-gain.detach().mean(), q_loss=q_loss.detach(), value_loss=v_loss.detach(),
                     entropy=entropy.detach().mean(), rho_mean=rho.mean(), std=log_std.detach().exp().mean(),
                     trust_region_active=active, explained_variance=_explained(q_taken, q_ret))
        return policy_loss + self.q_coef * (q_loss + v_loss), stats

    def action_probability(self, observation: Any, state: Any | None = None, mask: np.ndarray | None = None,
                           actions: np.ndarray | None = None, logp: bool = False) -> Any:
        """As :meth:`BaseAlgorithm.action_probability`; with squashed Box actions, ``(mean, std)`` are those
        of the Gaussian before squashing, and densities of given ``actions`` include the tanh Jacobian."""
        if actions is None or not getattr(self.policy, "squash", False):
            return super().action_probability(observation, state, mask, actions, logp)
        obs, vectorized = self.policy.obs_to_tensor(observation)
        with torch.inference_mode():
            dist = self.policy.get_distribution(obs)
            act = torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.device).reshape(dist.mean.shape)
            y = ((act - self.policy.action_center) / self.policy.action_half_range).clamp(-1 + 1e-6, 1 - 1e-6)
            pre = torch.atanh(y)  # the pre-squash action, and the change of variables below
            log_p = dist.log_prob(pre) - torch.log(self.policy.action_half_range * (1 - y.pow(2))).sum(-1)
            out = (log_p if logp else log_p.exp()).cpu().numpy()
        return out if vectorized else out[0]

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 100, tb_log_name: str = "ACER",
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> ACER:
        """Train for ``total_timesteps`` env steps (ACER's default ``log_interval`` is 100 iterations)."""
        super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
        return self


def _explained(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Var[target - pred] / Var[target], as a 0-d tensor (no synchronisation)."""
    return 1.0 - (target - pred.detach()).var() / (target.var() + 1e-8)


def _alloc_obs(space: spaces.Space, n_rows: int, n_envs: int) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _zeros_obs(s, n_rows, n_envs) for k, s in space.spaces.items()}
    return _zeros_obs(space, n_rows, n_envs)


def _zeros_obs(space: spaces.Space, n_rows: int, n_envs: int) -> np.ndarray:
    shape, dtype = array_shape_dtype(space)
    return np.zeros((n_rows, n_envs, *shape), dtype)


def _put_obs(buf: Any, step: int, obs: Any) -> None:
    if isinstance(buf, dict):
        for k in buf:
            buf[k][step] = obs[k]
    else:
        buf[step] = obs


def _flatten_obs(obs: Any) -> Any:
    """``[T + 1, N, ...]`` -> ``[(T + 1) N, ...]`` (time-major rows)."""
    if isinstance(obs, dict):
        return {k: v.flatten(0, 1) for k, v in obs.items()}
    return obs.flatten(0, 1)


def _slice_obs(obs: Any, b: int) -> Any:
    if isinstance(obs, dict):
        return {k: v[:b] for k, v in obs.items()}
    return obs[:b]
