"""Native vector environments: whole batches of sub-environments stepped by numpy or C++ at once.

They sit behind the same API as :class:`~rlzoo.envs.DummyVecEnv` (gymnasium vector API,
**same-step** autoreset, ``infos["final_obs"]`` / ``infos["final_info"]["episode"]``, Monitor CSV
files, seeding), so the collectors need no change. Adapting a native env's own conventions
(next-step autoreset, one RNG for all envs, channels-first frames) happens here, once:

- :class:`CartPoleNativeVecEnv`: Gymnasium's ``CartPoleVectorEnv`` physics (numpy over all envs),
  with same-step autoreset and one RNG per sub-env seeded like the Python stack, so a given seed
  and action sequence give the same observations and episode returns as ``DummyVecEnv``.
- :class:`AtariNativeVecEnv`: ale-py's C++ ``AtariVectorEnv`` (threads; frame skip, max-pool,
  resize and grayscale in C++), presented like ``AtariWrapper`` output: ``(84, 84, 1)`` frames,
  clipped rewards, a lost life ends the learning episode, Monitor records whole games unclipped.

:class:`NativeEpisodeMonitor` keeps the Monitor-like episode statistics of a batch of envs in numpy.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import utils
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlzoo.envs.monitor import MonitorFile

__all__ = ["AtariNativeVecEnv", "CartPoleNativeVecEnv", "EnvPoolVecEnv", "NativeEpisodeMonitor", "envpool_has",
           "native_env_for"]


class NativeEpisodeMonitor:
    """Episode return / length / time of ``num_envs`` sub-envs, in numpy, like one Monitor per env.

    :param num_envs: number of sub-environments
    :param env_id: environment id (monitor file header)
    :param monitor_dir: folder of the ``<rank>.monitor.csv`` files (None: no files)
    :param start_index: rank of the first sub-environment (file names)
    :param override_existing: start new files; if False append to existing ones (resume)
    """

    def __init__(self, num_envs: int, env_id: str | None, monitor_dir: str | os.PathLike | None = None,
                 start_index: int = 0, override_existing: bool = True) -> None:
        self.t_start = time.time()
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.files: list[MonitorFile] | None = None
        if monitor_dir is not None:
            self.files = [MonitorFile(os.path.join(os.fspath(monitor_dir), str(start_index + i)), t_start=self.t_start,
                                      env_id=env_id, override_existing=override_existing) for i in range(num_envs)]

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Zero the counters (of the envs in ``mask``, or of all)."""
        if mask is None:
            self.returns[:] = 0.0
            self.lengths[:] = 0
        else:
            self.returns[mask] = 0.0
            self.lengths[mask] = 0

    def step(self, rewards: np.ndarray, alive: np.ndarray | None = None) -> None:
        """Add one step's rewards (only to the envs in ``alive`` when given)."""
        if alive is None:
            self.returns += rewards
            self.lengths += 1
        else:
            self.returns[alive] += rewards[alive]
            self.lengths[alive] += 1

    def end(self, done: np.ndarray) -> dict[str, Any]:
        """Close the episodes of the envs in bool mask ``done``: write their CSV lines and return
        ``{"episode": {"r", "l", "t", "_r", "_l", "_t"}, "_episode": mask}`` (gymnasium's batched
        info layout, as ``DummyVecEnv`` reports its Monitors' records), then zero their counters."""
        t = round(time.time() - self.t_start, 6)
        r = np.where(done, np.round(self.returns, 6), 0.0)
        lengths = np.where(done, self.lengths, 0)
        times = np.where(done, t, 0.0)
        if self.files is not None:
            for i in np.flatnonzero(done):
                self.files[i].write((float(r[i]), int(lengths[i]), t))
        self.reset(done)
        mask = done.copy()
        return {"episode": {"r": r, "l": lengths, "t": times, "_r": mask, "_l": mask, "_t": mask}, "_episode": mask}

    def close(self) -> None:
        """Close the monitor files."""
        for f in self.files or ():
            f.close()
        self.files = None


def _final_infos(obs_rows: np.ndarray, done: np.ndarray, final_info: dict[str, Any]) -> dict[str, Any]:
    """``infos`` of a step where the envs in ``done`` finished, whose last observations are the
    corresponding rows of ``obs_rows`` (same-step layout of :mod:`rlzoo.envs.vec_env`)."""
    final_obs = np.empty(len(done), dtype=object)
    for i in np.flatnonzero(done):
        final_obs[i] = obs_rows[i]
    return {"final_obs": final_obs, "_final_obs": done, "final_info": final_info, "_final_info": done}


class CartPoleNativeVecEnv(VectorEnv):
    """CartPole over all sub-envs at once in numpy, with rlzoo's same-step autoreset.

    The constants, spaces and rendering are those of Gymnasium's ``CartPoleVectorEnv``; the step is
    its Euler update done in place, in the same floating-point order as ``CartPoleEnv.step``, without
    the per-call checks. Sub-env ``i`` has its own RNG (``reset(seed=s)`` seeds it with ``s + i``,
    like ``DummyVecEnv``) from which its initial states are drawn as ``CartPoleEnv.reset`` draws them,
    so for the same seed and actions observations and episode returns are bit-identical to
    ``make_vec_env(..., vec_env_cls="dummy")`` (``tests/test_native_envs.py``).

    :param num_envs: number of sub-environments
    :param max_episode_steps: time limit (truncation)
    :param spec: the registry entry (``spec.id`` names the monitor files)
    :param monitor_dir: folder of the ``<rank>.monitor.csv`` files (None: no files)
    :param start_index: rank of the first sub-environment
    :param monitor_kwargs: ``override_existing`` of the monitor files
    :param env_kwargs: ``sutton_barto_reward``, ``render_mode`` (``"rgb_array"``)
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 50,
                                          "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, max_episode_steps: int = 500, spec: EnvSpec | None = None,
                 monitor_dir: str | os.PathLike | None = None, start_index: int = 0,
                 monitor_kwargs: dict[str, Any] | None = None, **env_kwargs: Any) -> None:
        from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

        self.sim = CartPoleVectorEnv(num_envs=num_envs, max_episode_steps=max_episode_steps, **env_kwargs)
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.sutton_barto_reward = bool(env_kwargs.get("sutton_barto_reward", False))
        self.spec = spec
        self.render_mode = self.sim.render_mode
        self.single_observation_space = self.sim.single_observation_space
        self.single_action_space = self.sim.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.state = np.zeros((num_envs, 4), dtype=np.float64)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._low, self._high = -0.05, 0.05
        self.monitor = NativeEpisodeMonitor(num_envs, spec.id if spec is not None else "CartPole",
                                            monitor_dir, start_index, **(monitor_kwargs or {}))

    def _draw(self, idx: np.ndarray) -> None:
        for i in idx:  # one draw per restarted env, from its own RNG (as CartPoleEnv.reset)
            self.state[i] = self._rngs[i].uniform(low=self._low, high=self._high, size=(4,))
        self.steps[idx] = 0

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env; an int seed ``s`` seeds sub-env ``i`` with ``s + i``."""
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset needs {self.num_envs} seeds, got {len(seeds)}")
            self._rngs = [self._rngs[i] if s is None else seeding.np_random(s)[0] for i, s in enumerate(seeds)]
        self._low, self._high = utils.maybe_parse_reset_bounds(options, -0.05, 0.05)
        self._draw(np.arange(self.num_envs))
        self.monitor.reset()
        return self.state.astype(np.float32), {}

    def _physics(self, actions: np.ndarray) -> np.ndarray:
        sim, st = self.sim, self.state
        x, x_dot, theta, theta_dot = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
        force = np.where(actions == 1, sim.force_mag, -sim.force_mag)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        temp = (force + sim.polemass_length * np.square(theta_dot) * sintheta) / sim.total_mass
        thetaacc = (sim.gravity * sintheta - costheta * temp) / (
            sim.length * (4.0 / 3.0 - sim.masspole * np.square(costheta) / sim.total_mass))
        xacc = temp - sim.polemass_length * thetaacc * costheta / sim.total_mass
        new_x, new_theta = x + sim.tau * x_dot, theta + sim.tau * theta_dot
        st[:, 1] = x_dot + sim.tau * xacc
        st[:, 3] = theta_dot + sim.tau * thetaacc
        st[:, 0], st[:, 2] = new_x, new_theta
        return ((new_x < -sim.x_threshold) | (new_x > sim.x_threshold)
                | (new_theta < -sim.theta_threshold_radians) | (new_theta > sim.theta_threshold_radians))

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all sub-envs; finished ones restart at once (same-step autoreset)."""
        actions = np.asarray(actions).reshape(self.num_envs)
        if actions.min() < 0 or actions.max() > 1:
            raise ValueError(f"CartPole actions must be 0 or 1, got {actions}")
        terminated = self._physics(actions)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        if self.sutton_barto_reward:
            rewards = -terminated.astype(np.float32)
        else:
            rewards = np.ones(self.num_envs, dtype=np.float32)
        self.monitor.step(rewards)
        done = terminated | truncated
        obs = self.state.astype(np.float32)
        if not done.any():
            return obs, rewards, terminated, truncated, {}
        infos = _final_infos(obs, done, self.monitor.end(done))
        self._draw(np.flatnonzero(done))
        return self.state.astype(np.float32), rewards, terminated, truncated, infos

    def render(self) -> Any:
        """Frames of all sub-envs (``render_mode="rgb_array"``)."""
        self.sim.state = self.state.T.copy()
        return self.sim.render()

    def close_extras(self, **kwargs: Any) -> None:
        """Close the renderer and the monitor files."""
        self.sim.close()
        self.monitor.close()


class AtariNativeVecEnv(VectorEnv):
    """ale-py's C++ ``AtariVectorEnv`` presented like ``AtariWrapper`` sub-envs in a vector env.

    Observations ``(84, 84, 1)`` uint8 (channels-last, no stacking: wrap in ``VecFrameStack``),
    rewards clipped to their sign, a lost life ends the learning episode (the game goes on), and
    the episode statistics (``final_info["episode"]``, monitor files) are whole games, unclipped, with
    lengths in frames (agent steps times ``frame_skip``; the Python stack also counts reset no-ops).
    Its resize is not bit-identical to ``AtariWrapper``'s (see ``tests/test_native_envs.py``), so
    ``vec_env_cls="auto"`` does not pick it; ask for it with ``"native"``.

    :param game: ROM name (``"breakout"``)
    :param num_envs: number of sub-environments
    :param noop_max: at most this many random no-ops at reset
    :param frame_skip: frames per action (max-pool of the last two)
    :param screen_size: side of the square grayscale frame
    :param terminal_on_life_loss: a lost life ends the learning episode
    :param clip_reward: clip rewards to their sign
    :param num_threads: C++ worker threads (0: one per env, at most the core count)
    :param spec: the registry entry; ``monitor_dir``/``start_index``/``monitor_kwargs``: as in make_vec_env
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, game: str, num_envs: int, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84,
                 terminal_on_life_loss: bool = True, clip_reward: bool = True, num_threads: int = 0,
                 spec: EnvSpec | None = None, monitor_dir: str | os.PathLike | None = None, start_index: int = 0,
                 monitor_kwargs: dict[str, Any] | None = None, **ale_kwargs: Any) -> None:
        from ale_py.vector_env import AtariVectorEnv

        threads = num_threads or min(num_envs, os.cpu_count() or 1)
        self.ale_env = AtariVectorEnv(game, num_envs, autoreset_mode=AutoresetMode.SAME_STEP, stack_num=1,
                                      frameskip=frame_skip, img_height=screen_size, img_width=screen_size,
                                      grayscale=True, maxpool=True, noop_max=noop_max, episodic_life=False,
                                      life_loss_info=False, reward_clipping=False, use_fire_reset=True,
                                      num_threads=threads, **ale_kwargs)
        self.num_envs = num_envs
        self.spec = spec
        self.terminal_on_life_loss = terminal_on_life_loss
        self.clip_reward = clip_reward
        self.single_observation_space = spaces.Box(0, 255, (screen_size, screen_size, 1), np.uint8)
        self.single_action_space = self.ale_env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._lives = np.zeros(num_envs, dtype=np.int64)
        self._frames_per_step = np.full(num_envs, frame_skip, dtype=np.int64)
        self.monitor = NativeEpisodeMonitor(num_envs, spec.id if spec is not None else game,
                                            monitor_dir, start_index, **(monitor_kwargs or {}))

    @staticmethod
    def _frames(obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(obs, 1, -1))  # (n, 1, h, w) -> (n, h, w, 1)

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every game; an int seed ``s`` seeds sub-env ``i`` with ``s + i``."""
        ale_seed = np.asarray(seed, dtype=np.int64) if seed is not None and not isinstance(seed, int) else seed
        obs, info = self.ale_env.reset(seed=ale_seed, options=options)
        self._lives = np.asarray(info["lives"], dtype=np.int64).copy()
        self.monitor.reset()
        return self._frames(obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every game; a finished game restarts at once (same-step autoreset)."""
        obs, rewards, game_over, truncated, info = self.ale_env.step(np.asarray(actions))
        rewards = np.asarray(rewards, dtype=np.float64)
        self.monitor.step(rewards)
        self.monitor.lengths += self._frames_per_step - 1  # episode lengths in frames, as Monitor under AtariWrapper
        ended = game_over | truncated
        lives = np.asarray(info["lives"], dtype=np.int64)
        terminated = game_over.copy()
        if self.terminal_on_life_loss:  # a life lost in a game that goes on (lives of restarted games are new)
            terminated |= ~ended & (lives < self._lives) & (lives > 0)
        self._lives = lives.copy()
        out_rewards = (np.sign(rewards) if self.clip_reward else rewards).astype(np.float32)
        frames = self._frames(obs)
        if not ended.any():
            return frames, out_rewards, terminated, truncated, {}
        infos = _final_infos(self._frames(info["final_obs"]), ended, self.monitor.end(ended))
        return frames, out_rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Close the emulators and the monitor files."""
        self.ale_env.close()
        self.monitor.close()


class EnvPoolVecEnv(VectorEnv):
    """An EnvPool (``pip install envpool``) pool of C++ envs with rlzoo's same-step autoreset.

    EnvPool restarts a finished env at its *next* step; here the finished envs are stepped once more
    at once (``env_id`` subset, the action ignored) to fetch their first observation. Its reset RNG
    is EnvPool's own, so observations are not those of the Python stack for a given seed:
    ``vec_env_cls="auto"`` does not pick it; ask for it with ``"envpool"``.

    :param task_id: EnvPool task id (the Gymnasium id, e.g. ``"CartPole-v1"``, ``"HalfCheetah-v5"``)
    :param num_envs: number of sub-environments
    :param seed: EnvPool's seed (sub-env ``i`` gets ``seed + i``)
    :param spec: the registry entry; ``monitor_dir``/``start_index``/``monitor_kwargs``: as in make_vec_env
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task_id: str, num_envs: int, seed: int | None = None, spec: EnvSpec | None = None,
                 monitor_dir: str | os.PathLike | None = None, start_index: int = 0,
                 monitor_kwargs: dict[str, Any] | None = None, **env_kwargs: Any) -> None:
        import envpool

        self.pool = envpool.make_gymnasium(task_id, num_envs=num_envs,
                                           seed=int(np.random.SeedSequence(seed).generate_state(1)[0] % 2**31)
                                           if seed is None else seed, **env_kwargs)
        self.num_envs = num_envs
        self.spec = spec
        obs_space, act_space = self.pool.observation_space, self.pool.action_space
        if isinstance(obs_space, spaces.Box):  # EnvPool reports float64 bounds for float32 observations
            if obs_space.dtype == np.float64:
                obs_space = spaces.Box(obs_space.low.astype(np.float32), obs_space.high.astype(np.float32),
                                       dtype=np.float32)
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = batch_space(obs_space, num_envs)
        self.action_space = batch_space(act_space, num_envs)
        self.monitor = NativeEpisodeMonitor(num_envs, spec.id if spec is not None else task_id,
                                            monitor_dir, start_index, **(monitor_kwargs or {}))
        self._all = np.arange(num_envs, dtype=np.int32)

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs (EnvPool is seeded once, at construction; ``seed`` is not used again)."""
        obs, _ = self.pool.reset()
        self.monitor.reset()
        return np.asarray(obs, dtype=self.single_observation_space.dtype), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all envs; the finished ones are restarted in the same call."""
        actions = np.asarray(actions)
        obs, rewards, terminated, truncated, _ = self.pool.step(actions, self._all)
        obs = np.asarray(obs, dtype=self.single_observation_space.dtype)
        rewards = np.asarray(rewards, dtype=np.float32)
        self.monitor.step(rewards)
        done = np.asarray(terminated | truncated)
        if not done.any():
            return obs, rewards, terminated, truncated, {}
        infos = _final_infos(obs.copy(), done, self.monitor.end(done))
        idx = np.flatnonzero(done).astype(np.int32)
        first, *_ = self.pool.step(actions[idx], idx)
        obs[idx] = first
        return obs, rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Close the pool and the monitor files."""
        self.pool.close()
        self.monitor.close()


_CARTPOLE_KWARGS = {"sutton_barto_reward", "render_mode"}


def native_env_for(spec: EnvSpec, env_kwargs: dict[str, Any]) -> type[CartPoleNativeVecEnv] | None:
    """The rlzoo native vector env class for registry entry ``spec`` with ``env_kwargs``, or None.

    Only entries whose Python env is Gymnasium's ``CartPoleEnv`` (``CartPole-v0/v1``) have one for
    :func:`~rlzoo.envs.make_vec_env`; Atari has :class:`AtariNativeVecEnv` through ``make_atari_env``.
    """
    entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
    if entry == "gymnasium.envs.classic_control.cartpole:CartPoleEnv" and set(env_kwargs) <= _CARTPOLE_KWARGS:
        if env_kwargs.get("render_mode") not in (None, "rgb_array"):
            return None
        return CartPoleNativeVecEnv
    return None


def envpool_has(env_id: str) -> bool:
    """True when EnvPool is installed and has a task named ``env_id``."""
    try:
        import envpool
    except ImportError:
        return False
    return env_id in envpool.list_all_envs()
