"""Training throughput of rlzoo vs Stable-Baselines3 on the same workloads, side by side.

Each (library, workload) run is a fresh subprocess (so thread settings and imports don't leak),
and the libraries alternate, so machine-load drift hits both alike. Prints env steps/s of the
whole ``learn()`` call and the ratio rlzoo / SB3.

    python benchmarks/bench_onpolicy.py [--steps 100000] [--repeats 2] [--only ppo|a2c]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

WORKLOADS = {
    # the RL Zoo's tuned CartPole-v1 settings for PPO
    "ppo": dict(algo="ppo", env="CartPole-v1", n_envs=8,
                kwargs=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                            ent_coef=0.0, learning_rate=1e-3, clip_range=0.2)),
    "a2c": dict(algo="a2c", env="CartPole-v1", n_envs=8, kwargs=dict()),
}

CHILD = r"""
import json, sys, time
spec = json.loads(sys.argv[1]); lib = sys.argv[2]; steps = int(sys.argv[3])
if lib.startswith("sb3"):
    import torch
    if lib == "sb3-1thread":
        torch.set_num_threads(1)  # SB3 given the same thread setting rlzoo picks for small MLPs
    import stable_baselines3 as sb
    from stable_baselines3.common.env_util import make_vec_env
    cls = {"ppo": sb.PPO, "a2c": sb.A2C}[spec["algo"]]
else:
    import rlzoo
    from rlzoo.envs import make_vec_env
    cls = rlzoo.ALGOS[spec["algo"]]
env = make_vec_env(spec["env"], n_envs=spec["n_envs"], seed=0)
model = cls("MlpPolicy", env, seed=0, verbose=0, device="cpu", **spec["kwargs"])
t0 = time.perf_counter()
model.learn(steps)
dt = time.perf_counter() - t0
print(json.dumps({"fps": model.num_timesteps / dt}))
"""


def run(lib: str, spec: dict, steps: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), lib, str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["fps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=sorted(WORKLOADS), default=None)
    args = parser.parse_args()
    names = [args.only] if args.only else list(WORKLOADS)
    for name in names:
        spec = WORKLOADS[name]
        fps = {"sb3": [], "sb3-1thread": [], "rlzoo": []}
        for _ in range(args.repeats):
            for lib in fps:
                fps[lib].append(run(lib, spec, args.steps))
        med = {lib: statistics.median(v) for lib, v in fps.items()}
        print(f"{name.upper():4s} {spec['env']} x{spec['n_envs']} {args.steps} steps | "
              f"SB3 {med['sb3']:7.0f} steps/s | SB3 1-thread {med['sb3-1thread']:7.0f} | "
              f"rlzoo {med['rlzoo']:7.0f} | ratio {med['rlzoo'] / med['sb3']:.2f}x "
              f"(vs SB3 1-thread {med['rlzoo'] / med['sb3-1thread']:.2f}x) "
              f"runs: {json.dumps({k: [round(f) for f in v] for k, v in fps.items()})}", flush=True)


if __name__ == "__main__":
    main()
