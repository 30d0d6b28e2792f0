"""Proportional prioritized experience replay (Schaul et al. 2016, §3.3).

:class:`PrioritizedReplayBuffer` extends :class:`rlzoo.common.replay.ReplayBuffer` (storage, sampling of
the stored transitions, ``.npz`` files) with sum / min :class:`SegmentTree` s whose sampling and
updates are vectorized over the batch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlzoo.common.replay import Obs, PrioritizedReplayBufferSamples, ReplayBuffer


class SegmentTree:
    """A complete binary tree over ``capacity`` leaves whose nodes hold ``op`` of their children.

    Leaves live at ``[size, size + capacity)`` of one flat float64 array (``size`` a power of 2);
    updates recompute the ancestors level by level for the whole batch at once.

    :param capacity: number of leaves
    :param op: ``np.add`` (sum tree) or ``np.minimum`` (min tree)
    :param neutral: value of empty leaves (0 for sums, +inf for minima)
    """

    def __init__(self, capacity: int, op: np.ufunc, neutral: float) -> None:
        self.capacity = int(capacity)
        self.size = 1 << max(int(np.ceil(np.log2(max(self.capacity, 1)))), 0)
        self.depth = int(np.log2(self.size))
        self.op, self.neutral = op, float(neutral)
        self.tree = np.full(2 * self.size, self.neutral, dtype=np.float64)

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``indices`` to ``values`` and refresh their ancestors."""
        nodes = np.asarray(indices, dtype=np.int64) + self.size
        self.tree[nodes] = values
        for _ in range(self.depth):
            nodes = nodes >> 1
            self.tree[nodes] = self.op(self.tree[2 * nodes], self.tree[2 * nodes + 1])

    def rebuild(self) -> None:
        """Recompute every internal node from the leaves."""
        for level in range(self.depth - 1, -1, -1):
            lo, hi = 1 << level, 2 << level
            nodes = np.arange(lo, hi)
            self.tree[lo:hi] = self.op(self.tree[2 * nodes], self.tree[2 * nodes + 1])

    @property
    def leaves(self) -> np.ndarray:
        """View of the leaf values."""
        return self.tree[self.size:self.size + self.capacity]

    @property
    def root(self) -> float:
        """``op`` over all leaves (total of a sum tree, minimum of a min tree)."""
        return float(self.tree[1])

    def find_prefixsum(self, values: np.ndarray) -> np.ndarray:
        """Sum tree only: for each ``v`` the leaf ``i`` with ``sum(leaves[:i]) <= v < sum(leaves[:i+1])``."""
        v = np.array(values, dtype=np.float64)
        nodes = np.ones(v.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * nodes
            left_sum = self.tree[left]
            go_right = v >= left_sum
            v = np.where(go_right, v - left_sum, v)
            nodes = left + go_right
        return nodes - self.size


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized experience replay (Schaul et al. 2016).

    Transition ``i`` is drawn with probability ``P(i) = p_i^alpha / sum_k p_k^alpha`` (eq. 1) with
    ``p_i = |delta_i| + eps``; the importance-sampling weights ``w_i = (N P(i))^-beta / max_j w_j``
    correct the bias (§3.4), ``beta`` being annealed from its initial value to 1 by the caller
    (set ``buffer.beta`` or pass ``beta=`` to :meth:`sample`). New transitions get the highest
    priority seen so far.

    :param alpha: how much prioritization is used (0: uniform)
    :param beta: initial importance-sampling exponent
    :param eps: added to every priority so no transition has zero probability
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 n_envs: int = 1, device: str | torch.device = "cpu", optimize_memory_usage: bool = False,
                 alpha: float = 0.6, beta: float = 0.4, eps: float = 1e-6, **kwargs: Any) -> None:
        if alpha < 0 or not 0 <= beta <= 1 or eps < 0:
            raise ValueError(f"prioritized replay needs alpha >= 0, 0 <= beta <= 1, eps >= 0 "
                             f"(got {alpha}, {beta}, {eps})")
        self.alpha, self.beta, self.eps = float(alpha), float(beta), float(eps)
        super().__init__(buffer_size, observation_space, action_space, n_envs, device, optimize_memory_usage, **kwargs)

    def _allocate(self) -> None:
        super()._allocate()
        capacity = self.buffer_size * self.n_envs
        self.sum_tree = SegmentTree(capacity, np.add, 0.0)
        self.min_tree = SegmentTree(capacity, np.minimum, np.inf)
        self.max_priority = 1.0  # largest p^alpha seen

    def add(self, obs: Obs, next_obs: Obs, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """Store one transition per env with the maximal priority (see :meth:`ReplayBuffer.add`)."""
        slots = self.pos * self.n_envs + np.arange(self.n_envs)
        super().add(obs, next_obs, actions, rewards, terminated)
        self._set(slots, np.full(self.n_envs, self.max_priority))

    def _drop_overwritten_frames(self) -> np.ndarray:
        dropped = super()._drop_overwritten_frames()
        if len(dropped):
            self._set(dropped, np.zeros(len(dropped)))
        return dropped

    def _set(self, indices: np.ndarray, scaled: np.ndarray) -> None:
        self.sum_tree.update(indices, scaled)
        self.min_tree.update(indices, np.where(scaled > 0, scaled, np.inf))

    def sample(self, batch_size: int, env: Any = None, beta: float | None = None) -> PrioritizedReplayBufferSamples:
        """A batch drawn proportionally to priority, with IS weights and flat ``indices``."""
        total = self.sum_tree.root
        if total <= 0:
            raise ValueError("cannot sample from an empty replay buffer")
        # stratified: one draw in each of batch_size equal slices of the total priority mass
        bounds = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
        indices = self.sum_tree.find_prefixsum(np.minimum(bounds, np.nextafter(total, 0)))
        priorities = self.sum_tree.tree[indices + self.sum_tree.size]
        bad = priorities <= 0  # a float rounding at a slice edge can reach an empty leaf: redraw those
        for _ in range(8):
            if not bad.any():
                break
            indices[bad] = self.sum_tree.find_prefixsum(self.rng.random(int(bad.sum())) * total)
            priorities = self.sum_tree.tree[indices + self.sum_tree.size]
            bad = priorities <= 0
        if bad.any():
            indices[bad] = int(np.argmax(self.sum_tree.leaves))
            priorities = self.sum_tree.tree[indices + self.sum_tree.size]
        beta = self.beta if beta is None else float(beta)
        # w_i / max_j w_j = (p_i / p_min)^-beta: the N and the total cancel
        weights = (priorities / self.min_tree.root) ** (-beta)
        batch = self._get_samples(indices, env)
        return PrioritizedReplayBufferSamples(*batch, torch.from_numpy(weights.astype(np.float32)).to(self.device),
                                              indices)

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray | torch.Tensor) -> None:
        """Set the priorities of sampled transitions, e.g. to ``|TD error|`` (``eps`` and ``alpha`` applied here)."""
        if isinstance(priorities, torch.Tensor):
            priorities = priorities.detach().cpu().numpy()
        priorities = np.abs(np.asarray(priorities, dtype=np.float64).reshape(-1))
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.shape != priorities.shape:
            raise ValueError(f"update_priorities got {len(indices)} indices and {len(priorities)} priorities")
        scaled = (priorities + self.eps) ** self.alpha
        # a transition dropped (overwritten) since it was sampled keeps priority 0
        alive = self.sum_tree.tree[indices + self.sum_tree.size] > 0
        self._set(indices[alive], scaled[alive])
        if len(scaled):
            self.max_priority = max(self.max_priority, float(scaled.max()))

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "alpha": self.alpha, "beta": self.beta, "eps": self.eps,
                "max_priority": self.max_priority}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "priorities": self.sum_tree.leaves}

    def _restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._restore(meta, arrays)
        priorities = arrays["priorities"]
        capacity = self.buffer_size * self.n_envs
        if len(priorities) != capacity:
            raise ValueError(f"replay buffer file holds {len(priorities)} priorities for {capacity} slots")
        self.sum_tree = SegmentTree(capacity, np.add, 0.0)
        self.min_tree = SegmentTree(capacity, np.minimum, np.inf)
        self.sum_tree.leaves[:] = priorities
        self.min_tree.leaves[:] = np.where(priorities > 0, priorities, np.inf)
        self.sum_tree.rebuild()
        self.min_tree.rebuild()
        self.alpha, self.beta, self.eps = float(meta["alpha"]), float(meta["beta"]), float(meta["eps"])
        self.max_priority = float(meta["max_priority"])
