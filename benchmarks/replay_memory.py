"""Bytes held by a 100k-transition Atari replay buffer (frame storage vs naive obs + next_obs).

    python benchmarks/replay_memory.py [--size 100000] [--fill 5000] [--env PongNoFrameskip-v4]

The buffer is preallocated, so its size does not depend on how much is filled; ``--fill`` runs
the real frame-stacked Atari env for that many steps to time ``add`` / ``sample`` and to check
that the process' resident memory matches.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
from gymnasium import spaces

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rlzoo.common.prioritized_replay import PrioritizedReplayBuffer
from rlzoo.common.replay import ReplayBuffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--fill", type=int, default=5_000)
    parser.add_argument("--env", default="PongNoFrameskip-v4")
    args = parser.parse_args()

    obs_space = spaces.Box(0, 255, (84, 84, 4), np.uint8)
    naive = 2 * args.size * int(np.prod(obs_space.shape))
    for cls in (ReplayBuffer, PrioritizedReplayBuffer):
        buf = cls(args.size, obs_space, spaces.Discrete(6), optimize_memory_usage=True, frame_stack=4)
        print(f"{cls.__name__:24s} {args.size} transitions of (84, 84, 4) uint8: {buf.nbytes() / 1e9:.3f} GB "
              f"(naive obs + next_obs: {naive / 1e9:.2f} GB, goal <= 1.1 GB)")
    if args.fill <= 0:
        return
    from rlzoo.envs import VecFrameStack, make_atari_env

    env = VecFrameStack(make_atari_env(args.env, n_envs=1, seed=0), n_stack=4)
    buf = ReplayBuffer(args.size, env.single_observation_space, env.single_action_space,
                       optimize_memory_usage=True, frame_stack=4)
    buf.frames[:] = 1  # touch every page so the resident size shows the whole buffer
    obs, _ = env.reset(seed=0)
    add_time = 0.0
    for _ in range(args.fill):
        actions = np.random.randint(0, env.single_action_space.n, 1)
        next_obs, rewards, terminated, truncated, infos = env.step(actions)
        real_next = next_obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            real_next[i] = infos["final_obs"][i]
        t0 = time.perf_counter()
        buf.add(obs, real_next, actions, rewards, terminated)
        add_time += time.perf_counter() - t0
        obs = next_obs
    t0 = time.perf_counter()
    for _ in range(200):
        buf.sample(32)
    sample_time = (time.perf_counter() - t0) / 200
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"filled {args.fill} real {args.env} steps: add {add_time / args.fill * 1e6:.0f} us/step, "
          f"sample(32) {sample_time * 1e6:.0f} us, max RSS {rss / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
