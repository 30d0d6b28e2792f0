"""Full-size reward runs with the shipped hyperparameters, through the zoo itself.

For each algorithm / env / seed: ``rlzoo train`` (the shipped ``hyperparams/<algo>.yml`` entry,
its own ``n_timesteps`` unless ``-n`` is given), then a deterministic evaluation of the final model
over 10 episodes (frozen VecNormalize statistics when the entry normalizes). Prints one line per
run and a mean over seeds.

    python benchmarks/zoo_rewards.py --algo ppo --env CartPole-v1 Pendulum-v1 --seeds 0 1
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time

import numpy as np


def evaluate(algo: str, env_id: str, folder: str, exp_id: int, episodes: int) -> tuple[float, float]:
    from rlzoo.evaluation import evaluate_policy
    from rlzoo.zoo.enjoy import load_agent, make_agent_env

    agent = load_agent(algo, env_id, folder, exp_id=exp_id)
    env = make_agent_env(agent, seed=10_000, render_mode=None, env_kwargs=[])
    try:
        return evaluate_policy(agent.model, env, n_eval_episodes=episodes, deterministic=not agent.atari)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--algo", required=True)
    parser.add_argument("--env", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("-n", "--n-timesteps", type=int, default=None)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("-params", "--hyperparams", nargs="*", default=[],
                        help="overrides of the shipped entry, key=value (as `rlzoo train -params`)")
    parser.add_argument("-f", "--folder", default=None, help="log folder (default: a temporary one)")
    args = parser.parse_args()
    folder = args.folder or tempfile.mkdtemp(prefix="rlzoo-rewards-")
    extra = f" [{' '.join(args.hyperparams)}]" if args.hyperparams else ""
    for env_id in args.env:
        means = []
        for seed in args.seeds:
            cmd = ["rlzoo", "train", "--algo", args.algo, "--env", env_id, "--seed", str(seed), "-f", folder,
                   "--no-progress", "--eval-freq", "0"]
            if args.n_timesteps:
                cmd += ["-n", str(args.n_timesteps)]
            if args.hyperparams:
                cmd += [arg for item in args.hyperparams for arg in ("-params", item)]
            t0 = time.time()
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
            wall = time.time() - t0
            # "training <algo> on <env>: <folder>/<algo>/<env>_<id> (...)": this run's id, even when
            # other runs write to the same folder
            exp_id = int(re.search(r": \S+_(\d+) \(", out).group(1))
            mean, std = evaluate(args.algo, env_id, folder, exp_id, args.episodes)
            means.append(mean)
            print(f"{args.algo} {env_id} seed {seed}{extra}: {mean:.1f} ± {std:.1f} over {args.episodes} episodes "
                  f"(train {wall:.0f} s)", flush=True)
        print(f"{args.algo} {env_id}{extra}: mean over seeds {np.mean(means):.1f} (min {np.min(means):.1f})",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
