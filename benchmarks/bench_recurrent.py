"""Training throughput of rlzoo's recurrent PPO vs sb3-contrib's ``RecurrentPPO``, same task and settings.

Workload: ``CartPoleNoVel-v1`` (registered by ``rlzoo.envs``, used by both libraries) with the
tuned settings of hyperparams/ppo.yml (8 envs, n_steps 32, batch 256, 20 epochs, LSTM 64, separate
critic LSTM, pi/vf [64]). Each run is a fresh subprocess; the libraries alternate, so machine-load
drift hits both alike. Both run on one intra-op thread (what rlzoo picks for small networks;
``--sb3-default-threads`` adds sb3-contrib with torch's default). Prints env steps/s of the whole
``learn()`` call, the ratio rlzoo / sb3-contrib and the load average (on a shared machine the
figures are loaded-machine figures).

    pip install "rlzoo[bench]"   # stable-baselines3 + sb3-contrib
    python benchmarks/bench_recurrent.py [--steps 20000] [--repeats 2] [--sb3-default-threads]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SETTINGS = {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
            "learning_rate": 1e-3, "clip_range": 0.2}

CHILD = r"""
import json, sys, time
import torch
from torch import nn
import rlzoo.envs  # registers CartPoleNoVel-v1 for both libraries
settings = json.loads(sys.argv[1]); lib = sys.argv[2]; steps = int(sys.argv[3])
policy_kwargs = dict(ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, enable_critic_lstm=True,
                     net_arch=dict(pi=[64], vf=[64]))
if lib.startswith("sb3"):
    if lib == "sb3-1thread":
        torch.set_num_threads(1)  # the thread setting rlzoo picks for small networks
    from sb3_contrib import RecurrentPPO as cls
    from stable_baselines3.common.env_util import make_vec_env
else:
    from rlzoo import PPO as cls
    from rlzoo.envs import make_vec_env
env = make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=0)
model = cls("MlpLstmPolicy", env, seed=0, verbose=0, device="cpu", policy_kwargs=policy_kwargs, **settings)
t0 = time.perf_counter()
model.learn(steps)
dt = time.perf_counter() - t0
print(json.dumps({"fps": model.num_timesteps / dt}))
"""


def run(lib: str, steps: int) -> float:
    """Steps/s of one ``learn(steps)`` of ``lib`` in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(SETTINGS), lib, str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["fps"]


def main() -> None:
    """Alternate the libraries ``--repeats`` times and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sb3-default-threads", action="store_true",
                        help="also run sb3-contrib with torch's default threads (very slow on a loaded machine)")
    args = parser.parse_args()
    fps: dict[str, list[float]] = {"sb3-contrib-1thread": [], "rlzoo": []}
    if args.sb3_default_threads:
        fps = {"sb3-contrib": [], **fps}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for lib, values in fps.items():
            values.append(run(lib.replace("sb3-contrib", "sb3"), args.steps))
            loads.append(os.getloadavg()[0])
    med = {lib: statistics.median(v) for lib, v in fps.items()}
    default = (f"sb3-contrib {med['sb3-contrib']:6.0f} steps/s (ratio {med['rlzoo'] / med['sb3-contrib']:.2f}x) | "
               if "sb3-contrib" in med else "")
    print(f"RecurrentPPO CartPoleNoVel-v1 x8 {args.steps} steps | {default}"
          f"sb3-contrib 1-thread {med['sb3-contrib-1thread']:6.0f} steps/s | rlzoo {med['rlzoo']:6.0f} | "
          f"ratio rlzoo / sb3-contrib 1-thread {med['rlzoo'] / med['sb3-contrib-1thread']:.2f}x "
          f"| 1-min load {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs "
          f"| runs: {json.dumps({k: [round(f) for f in v] for k, v in fps.items()})}", flush=True)


if __name__ == "__main__":
    main()
