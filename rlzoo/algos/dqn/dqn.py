"""Deep Q-Network (Mnih et al. 2015, "Human-level control through deep reinforcement learning"),
with the options of the original Stable Baselines: double Q-learning (van Hasselt et al. 2016),
dueling heads (Wang et al. 2016) and proportional prioritized replay (Schaul et al. 2016)."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from rlzoo.algos.dqn.policies import DQNCnnPolicy, DQNMultiInputPolicy, DQNPolicy, QNetwork
from rlzoo.common.analytic_grad import MlpPasses, updates_all_of
from rlzoo.common.off_policy import OffPolicyAlgorithm, clip_grad_norm, target_pairs
from rlzoo.common.policies import BasePolicy, FlattenExtractor, is_image_space
from rlzoo.common.prioritized_replay import PrioritizedReplayBuffer
from rlzoo.common.replay import PrioritizedReplayBufferSamples, ReplayBuffer
from rlzoo.common.utils import large_batch_threads, obs_to_tensor


class DQN(OffPolicyAlgorithm):
    """DQN with epsilon-greedy exploration, Huber loss, gradient clipping and a target network.

    Defaults are those of the original Stable Baselines (ANCHORS.md).

    :param learning_rate: Adam learning rate (float or schedule)
    :param buffer_size: replay buffer capacity
    :param learning_starts: random steps before learning
    :param batch_size: minibatch size
    :param tau: target update coefficient (1: hard copy every ``target_update_interval`` steps)
    :param gamma: discount factor
    :param train_freq: update every ``train_freq`` env steps (or ``(n, "episode")``)
    :param gradient_steps: gradient steps per update (-1: as many as env steps collected)
    :param target_update_interval: env steps between target network updates
    :param exploration_fraction: fraction of training over which epsilon decays linearly
    :param exploration_initial_eps: initial epsilon
    :param exploration_final_eps: final epsilon
    :param max_grad_norm: gradient clipping norm
    :param double_q: double Q-learning target: the online network picks the next action
    :param dueling: dueling value / advantage heads
    :param prioritized_replay: proportional prioritized experience replay
    :param prioritized_replay_alpha: prioritization exponent alpha
    :param prioritized_replay_beta0: initial importance-sampling exponent, annealed to 1 over training
    :param prioritized_replay_eps: added to the |TD error| priorities
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": DQNPolicy, "CnnPolicy": DQNCnnPolicy, "MultiInputPolicy": DQNMultiInputPolicy}
    supported_action_spaces: ClassVar[tuple[type[spaces.Space], ...]] = (spaces.Discrete,)

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: Any = 5e-4,
                 buffer_size: int = 50_000, learning_starts: int = 1000, batch_size: int = 32, tau: float = 1.0,
                 gamma: float = 0.99, train_freq: Any = 1, gradient_steps: int = 1,
                 target_update_interval: int = 500, exploration_fraction: float = 0.1,
                 exploration_initial_eps: float = 1.0, exploration_final_eps: float = 0.02,
                 max_grad_norm: float = 10.0, double_q: bool = True, dueling: bool = True,
                 prioritized_replay: bool = False, prioritized_replay_alpha: float = 0.6,
                 prioritized_replay_beta0: float = 0.4, prioritized_replay_eps: float = 1e-6,
                 replay_buffer_kwargs: dict[str, Any] | None = None, optimize_memory_usage: bool | None = None,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False,
                 _init_setup_model: bool = True) -> None:
        buffer_class = PrioritizedReplayBuffer if prioritized_replay else ReplayBuffer
        buffer_kwargs = dict(replay_buffer_kwargs or {})
        if prioritized_replay:
            buffer_kwargs = {"alpha": prioritized_replay_alpha, "beta": prioritized_replay_beta0,
                             "eps": prioritized_replay_eps, **buffer_kwargs}
        super().__init__(policy, env, learning_rate=learning_rate, buffer_size=buffer_size,
                         learning_starts=learning_starts, batch_size=batch_size, tau=tau, gamma=gamma,
                         train_freq=train_freq, gradient_steps=gradient_steps, replay_buffer_class=buffer_class,
                         replay_buffer_kwargs=buffer_kwargs, optimize_memory_usage=optimize_memory_usage,
                         policy_kwargs=policy_kwargs, tensorboard_log=tensorboard_log, verbose=verbose, seed=seed,
                         device=device, compile=compile)
        if not 0.0 <= exploration_fraction <= 1.0:
            raise ValueError(f"exploration_fraction must be in [0, 1], got {exploration_fraction}")
        if target_update_interval < 1:
            raise ValueError(f"target_update_interval must be >= 1, got {target_update_interval}")
        self._given_buffer_kwargs = dict(replay_buffer_kwargs or {})  # saved with the model
        self.target_update_interval = int(target_update_interval)
        self.exploration_fraction = float(exploration_fraction)
        self.exploration_initial_eps = float(exploration_initial_eps)
        self.exploration_final_eps = float(exploration_final_eps)
        self.max_grad_norm = float(max_grad_norm)
        self.double_q = bool(double_q)
        self.dueling = bool(dueling)
        self.prioritized_replay = bool(prioritized_replay)
        self.prioritized_replay_alpha = float(prioritized_replay_alpha)
        self.prioritized_replay_beta0 = float(prioritized_replay_beta0)
        self.prioritized_replay_eps = float(prioritized_replay_eps)
        if _init_setup_model:
            self._setup_model()

    def _setup_networks(self) -> None:
        kwargs = {"dueling": self.dueling} if "dueling" not in self.policy_kwargs else {}
        self.policy = self._make_policy(**kwargs)
        self.q_net, self.q_net_target = self.policy.q_net, self.policy.q_net_target
        self.optimizer = self._new_optimizer(self.q_net.parameters(), torch.optim.Adam)
        self._params = list(self.q_net.parameters())
        self._targets = [target_pairs(self.q_net, self.q_net_target)]
        self._greedy_numpy = None

    def _hyperparameters(self) -> dict[str, Any]:
        return {**super()._hyperparameters(), "replay_buffer_kwargs": self._given_buffer_kwargs,
                **self._attrs("target_update_interval", "exploration_fraction", "exploration_initial_eps",
                              "exploration_final_eps", "max_grad_norm", "double_q", "dueling", "prioritized_replay",
                              "prioritized_replay_alpha", "prioritized_replay_beta0", "prioritized_replay_eps")}

    # ------------------------------------------------------------------ acting
    @property
    def exploration_rate(self) -> float:
        """Current epsilon: linear decay from the initial to the final value over ``exploration_fraction``
        of training (the final value once a loaded model's training is over)."""
        done = 1.0 - self._current_progress_remaining
        if self.exploration_fraction <= 0 or done >= self.exploration_fraction:
            return self.exploration_final_eps
        frac = done / self.exploration_fraction
        return self.exploration_initial_eps + frac * (self.exploration_final_eps - self.exploration_initial_eps)

    def _on_step(self) -> None:
        """Update the progress (hence epsilon); copy the online network to the target every
        ``target_update_interval`` env steps."""
        self._n_calls += 1
        self._update_current_progress_remaining()
        if self._n_calls % max(self.target_update_interval // self.n_envs, 1) == 0:
            self._update_targets()

    @property
    def _n_actions(self) -> int:
        """Number of discrete actions."""
        space = self.action_space
        assert isinstance(space, spaces.Discrete), "DQN supports Discrete actions"
        return int(space.n)

    def collect_rollouts(self, callback: Any) -> tuple[int, bool]:
        # acting in numpy on views of the Q-network's weights when it is a plain MLP on CPU: with
        # a few envs, torch's per-operation overhead would cost more than the arithmetic
        self._greedy_numpy = self.q_net.numpy_greedy() if self.n_envs <= 16 else None
        return super().collect_rollouts(callback)

    def _sample_action(self) -> tuple[np.ndarray, np.ndarray]:
        """Epsilon-greedy: a uniformly random action with probability epsilon, else argmax_a Q(s, a)."""
        n = self.n_envs
        eps = 1.0 if self.num_timesteps < self.learning_starts else self.exploration_rate
        explore = np.random.random(n) < eps
        if explore.all():
            actions = np.random.randint(self._n_actions, size=n)
        elif self._greedy_numpy is not None:
            actions = self._greedy_numpy(self._last_obs)
        else:
            with torch.inference_mode():
                actions = self.q_net(obs_to_tensor(self._last_obs, self.device)).argmax(dim=1).cpu().numpy()
            if explore.any():
                actions = np.where(explore, np.random.randint(self._n_actions, size=n), actions)
        return actions, actions

    def predict(self, observation: Any, state: Any | None = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any | None]:
        """Greedy actions; with ``deterministic=False`` epsilon-greedy at the current exploration rate."""
        actions, state = self.policy.predict(observation, state, episode_start, deterministic)
        if not deterministic and self.exploration_rate > 0:
            batch = np.asarray(actions)
            explore = np.random.random(batch.shape) < self.exploration_rate
            if explore.any():
                actions = np.where(explore, np.random.randint(self._n_actions, size=batch.shape), batch)
                actions = actions.astype(batch.dtype) if batch.ndim else batch.dtype.type(actions)
        return actions, state

    def _compile_targets(self) -> list[tuple[Any, str]]:
        return [(self.q_net, "forward"), (self.q_net_target, "forward")]

    # ------------------------------------------------------------------ learning
    def train(self, gradient_steps: int, batch_size: int) -> None:
        """``gradient_steps`` minimizations of the Huber TD error (Mnih et al. 2015, Algorithm 1).

        The target network only changes between calls (in ``_on_step``), so with uniform replay the
        minibatches of all steps are drawn at once and their target-network values computed in a
        single forward pass: the same updates as step-by-step sampling, with one large matmul.
        """
        self._update_learning_rate(self.optimizer)
        buffer, env = self.replay_buffer, self._vec_normalize
        assert buffer is not None, "train() needs the replay buffer built by _setup_model()"
        per = buffer if isinstance(buffer, PrioritizedReplayBuffer) else None
        if per is not None:  # anneal the importance-sampling exponent to 1 (Schaul et al. 2016, §3.4)
            beta0 = self.prioritized_replay_beta0
            per.beta = beta0 + (1.0 - beta0) * (1.0 - self._current_progress_remaining)
        losses: list[torch.Tensor] = []
        q_means: list[torch.Tensor] = []
        chunks = [1] * gradient_steps if per is not None else [gradient_steps]
        analytic = None if self.compile else self._policy_view("analytic_q", self._mlp_passes)
        for n in chunks:
            batch = buffer.sample(batch_size * n, env=env)
            actions = batch.actions.long().view(-1, 1)
            with torch.no_grad(), large_batch_threads():
                next_q_target = self.q_net_target(batch.next_observations)
                if not self.double_q:
                    # y = r + gamma (1 - terminated) max_a' Q_target(s', a')
                    target_all = batch.rewards + (1.0 - batch.dones) * self.gamma * next_q_target.max(dim=1).values
            for i in range(n):
                sl = slice(i * batch_size, (i + 1) * batch_size)
                if self.double_q:
                    with torch.no_grad():
                        # double DQN: the online network picks a', the target network evaluates it
                        next_actions = self.q_net(_rows(batch.next_observations, sl)).argmax(dim=1, keepdim=True)
                        next_q = next_q_target[sl].gather(1, next_actions).squeeze(1)
                        target = batch.rewards[sl] + (1.0 - batch.dones[sl]) * self.gamma * next_q
                else:
                    target = target_all[sl]
                if analytic is not None:  # the same step with the hand-written backward pass
                    loss, q = self._analytic_step(analytic, batch, sl, actions[sl], target, per)
                    losses.append(loss)
                    q_means.append(q)
                    continue
                q = self.q_net(_rows(batch.observations, sl)).gather(1, actions[sl]).squeeze(1)
                if per is not None:
                    assert isinstance(batch, PrioritizedReplayBufferSamples)  # what per.sample() returns
                    loss = (batch.weights * F.smooth_l1_loss(q, target, reduction="none")).mean()
                    per.update_priorities(batch.indices, (q - target).detach().abs())
                else:
                    loss = F.smooth_l1_loss(q, target)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_grad_norm(self._params, self.max_grad_norm)
                self.optimizer.step()
                losses.append(loss.detach())
                q_means.append(q.detach())
        self._n_updates += gradient_steps
        self.logger.record("train/loss", torch.stack(losses).mean())
        self.logger.record("train/q_mean", torch.cat(q_means).mean())
        self.logger.record("rollout/exploration_rate", self.exploration_rate)

    def _dump_logs(self) -> None:
        self.logger.record("rollout/exploration_rate", self.exploration_rate)
        super()._dump_logs()

    def _mlp_passes(self) -> MlpPasses | None:
        """Hand-written passes of the Q-network when it is a plain MLP on flat Box observations (no dueling
        head), or None (autograd)."""
        net = self.q_net
        space = self.observation_space
        if (not isinstance(net, QNetwork) or net.value is not None
                or type(net.features_extractor) is not FlattenExtractor
                or not isinstance(space, spaces.Box) or is_image_space(space)):
            return None
        passes = MlpPasses.of([*net.latent, net.advantage])
        return passes if passes is not None and updates_all_of(passes.params, net) else None

    def _analytic_step(self, passes: MlpPasses, batch: Any, sl: slice, actions: torch.Tensor,
                       target: torch.Tensor, per: PrioritizedReplayBuffer | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step on the Huber TD error without autograd; returns (loss, Q(s, a))."""
        obs = batch.observations[sl]
        acts = passes.forward(obs.reshape(len(obs), -1).float())
        q = acts[-1].gather(1, actions).squeeze(1)
        td = q - target
        huber = F.smooth_l1_loss(q, target, reduction="none")
        # d/dq of the mean Huber loss (delta 1): clip(q - y, -1, 1) / N, times the IS weights with PER
        d_q = td.clamp(-1.0, 1.0).div_(len(q))
        if per is not None:
            assert isinstance(batch, PrioritizedReplayBufferSamples)
            loss = (batch.weights * huber).mean()
            d_q.mul_(batch.weights)
            per.update_priorities(batch.indices, td.abs())
        else:
            loss = huber.mean()
        self.optimizer.zero_grad(set_to_none=True)
        passes.backward(acts, torch.zeros_like(acts[-1]).scatter_(1, actions, d_q.unsqueeze(1)))
        clip_grad_norm(self._params, self.max_grad_norm)
        self.optimizer.step()
        return loss, q


def _rows(obs: Any, sl: slice) -> Any:
    return {k: v[sl] for k, v in obs.items()} if isinstance(obs, dict) else obs[sl]
