"""Full-budget ACER reward runs with the shipped hyperparameters (hyperparams/acer.yml).

Trains on one env with its tuned settings, then evaluates the final policy deterministically over
10 episodes (``evaluate_policy``) and prints ``mean ± std``. Targets (issue 6): CartPole-v1 >= 475
within 200k steps, LunarLander-v3 >= 150 within 1M, Pendulum-v1 (continuous ACER) >= -300 within 200k.

    python benchmarks/acer_rewards.py CartPole-v1 [--seed 0] [--steps N] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout
from rlzoo import ACER  # noqa: E402
from rlzoo.common.evaluation import evaluate_policy  # noqa: E402
from rlzoo.common.utils import linear_schedule  # noqa: E402
from rlzoo.envs import VecNormalize, make_vec_env  # noqa: E402

CONFIG = Path(__file__).resolve().parent.parent / "hyperparams" / "acer.yml"
_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU"}


def _value(v):
    """``lin_<x>`` -> linear schedule; activation names -> torch classes."""
    if isinstance(v, str) and v.startswith("lin_"):
        return linear_schedule(float(v[4:]))
    return v


def load_config(env_id: str, overrides: list[str]) -> dict:
    table = yaml.safe_load(CONFIG.read_text())
    if env_id not in table:
        raise SystemExit(f"{env_id} is not in {CONFIG}")
    cfg = dict(table[env_id])
    for item in overrides:
        key, _, raw = item.partition("=")
        cfg[key] = yaml.safe_load(raw)
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=float, default=None, help="override n_timesteps")
    parser.add_argument("--set", nargs="*", default=[], help="hyperparameter overrides key=value")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()

    import torch
    from torch import nn

    cfg = load_config(args.env, args.set)
    steps = int(args.steps or cfg.pop("n_timesteps"))
    cfg.pop("n_timesteps", None)
    n_envs = cfg.pop("n_envs", 1)
    normalize = cfg.pop("normalize", False)
    policy = cfg.pop("policy", "MlpPolicy")
    kwargs = {k: _value(v) for k, v in cfg.items()}
    if "policy_kwargs" in kwargs:
        pk = dict(kwargs["policy_kwargs"])
        if "activation_fn" in pk:
            pk["activation_fn"] = getattr(nn, _ACTIVATIONS[pk["activation_fn"]])
        kwargs["policy_kwargs"] = pk
    env = make_vec_env(args.env, n_envs=n_envs, seed=args.seed)
    norm_kwargs = normalize if isinstance(normalize, dict) else {}
    if normalize:
        env = VecNormalize(env, gamma=kwargs.get("gamma", 0.99), **norm_kwargs)
    model = ACER(policy, env, seed=args.seed, verbose=args.verbose, device="cpu", **kwargs)
    t0 = time.perf_counter()
    model.learn(steps, log_interval=200)
    train_s = time.perf_counter() - t0
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    if normalize:
        eval_env = VecNormalize(eval_env, **{**norm_kwargs, "training": False, "norm_reward": False})
        eval_env.copy_stats_from(env)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(json.dumps({"env": args.env, "seed": args.seed, "steps": model.num_timesteps,
                      "mean_reward": round(float(mean), 2), "std_reward": round(float(std), 2),
                      "train_seconds": round(train_s, 1), "fps": round(model.num_timesteps / train_s),
                      "torch_threads": torch.get_num_threads(), "overrides": args.set}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
