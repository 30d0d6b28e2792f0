"""Full-budget TRPO / ACKTR reward runs with the shipped hyperparameters (hyperparams/trpo.yml, acktr.yml).

Trains one algorithm on one env with its tuned entry (validated by the zoo's own config code, so the
files are checked exactly as ``rlzoo train`` reads them), then evaluates the final policy
deterministically over 10 episodes and prints one JSON line. Targets (issue 5):
TRPO CartPole-v1 >= 475 within 100k, Pendulum-v1 >= -250 within 200k;
ACKTR CartPole-v1 >= 475 within 200k, LunarLander-v3 >= 100 within 1M.

    python benchmarks/natural_gradient_rewards.py trpo CartPole-v1 [--seed 0] [--steps N] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout
from rlzoo import ALGOS  # noqa: E402
from rlzoo.evaluation import evaluate_policy  # noqa: E402
from rlzoo.envs import VecNormalize, make_vec_env  # noqa: E402
from rlzoo.zoo.config import build_config, parse_key_values  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("algo", choices=["trpo", "acktr"])
    parser.add_argument("env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=float, default=None, help="override n_timesteps")
    parser.add_argument("--set", nargs="*", default=[], help="hyperparameter overrides key=value")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()

    import torch

    cls = ALGOS[args.algo]
    overrides = parse_key_values(args.set, "--set")
    cfg = build_config(args.algo, cls, args.env, overrides=overrides,
                       n_timesteps=int(args.steps) if args.steps else None)
    env = make_vec_env(args.env, n_envs=cfg.n_envs, seed=args.seed, env_kwargs=cfg.env_kwargs)
    if cfg.normalize is not None:
        env = VecNormalize(env, **cfg.normalize)
    model = cls(cfg.policy, env, seed=args.seed, verbose=args.verbose, device="cpu", **cfg.model_kwargs)
    t0 = time.perf_counter()
    model.learn(cfg.n_timesteps, log_interval=100)
    train_s = time.perf_counter() - t0
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000, env_kwargs=cfg.env_kwargs)
    if cfg.normalize is not None:
        eval_env = VecNormalize(eval_env, **{**cfg.normalize, "training": False, "norm_reward": False})
        eval_env.copy_stats_from(env)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(json.dumps({"algo": args.algo, "env": args.env, "seed": args.seed, "steps": model.num_timesteps,
                      "mean_reward": round(float(mean), 2), "std_reward": round(float(std), 2),
                      "train_seconds": round(train_s, 1), "fps": round(model.num_timesteps / train_s),
                      "torch_threads": torch.get_num_threads(), "overrides": args.set}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
