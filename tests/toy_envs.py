"""Tiny environments for tests: off-policy algorithms learn them within a few thousand steps, and
``MatchTarget`` takes any action space."""
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right along a corridor of ``length`` cells: +1 at the right end, -0.05 per step.

    Discrete(2) actions (0 left, 1 right), one-hot observations; episodes are truncated after
    ``max_steps`` steps. The optimal return is ``1 - 0.05 * (length - 2)``.
    """

    def __init__(self, length: int = 6, max_steps: int = 20):
        self.length, self.max_steps = length, max_steps
        self.observation_space = spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = spaces.Discrete(2)

    def _obs(self):
        obs = np.zeros(self.length, np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.pos = max(self.pos + (1 if int(action) == 1 else -1), 0)
        done = self.pos == self.length - 1
        return self._obs(), (1.0 if done else -0.05), done, self.t >= self.max_steps and not done, {}


class Target(gym.Env):
    """One-step continuous task: observe a target x in [-1, 1]^d, act a in [-2, 2]^d,
    reward -|a/2 - x|^2 (the best action is 2x). Tests action scaling and learning of an actor."""

    def __init__(self, dim: int = 1):
        self.observation_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.action_space = spaces.Box(-2.0, 2.0, (dim,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, self.observation_space.shape).astype(np.float32)
        return self.x, {}

    def step(self, action):
        reward = -float(np.sum((np.asarray(action) / 2.0 - self.x) ** 2))
        return self.x, reward, True, False, {}


class TinyImage(gym.Env):
    """Random 36x36 single-channel frames, Discrete(3) actions, short episodes (plumbing tests)."""

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
        self.action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8), {}

    def step(self, action):
        self.t += 1
        frame = self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8)
        return frame, float(action == 1), self.t >= 7, False, {}


def target_score(model, n: int = 200, seed: int = 0) -> float:
    """Mean reward of ``model``'s deterministic actions on :class:`Target` observations."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1, 1, (n, model.observation_space.shape[0])).astype(np.float32)
    actions, _ = model.predict(xs, deterministic=True)
    return float(-np.mean(np.sum((actions / 2.0 - xs) ** 2, axis=1)))


class MatchTarget(gym.Env):
    """Reward -mean((action - 0.5)^2) for any action space; 20-step episodes."""

    def __init__(self, action_space: spaces.Space) -> None:
        self.action_space = action_space
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.t = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        r = -float(np.mean(np.square(np.asarray(action, dtype=np.float32) - 0.5)))
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), r, False, self.t >= 20, {}
