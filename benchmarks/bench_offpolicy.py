"""rlzoo vs Stable-Baselines3, side by side: env steps per second of training (``learn``).

    python benchmarks/bench_offpolicy.py [--only dqn,sac,td3] [--chunks 6] [--threads -1] [--sb3-threads N]

Workloads (ANCHORS.md): DQN CartPole-v1 with the RL Zoo's settings (50k steps), SAC and TD3 on
Pendulum-v1 (lr 1e-3, 3k steps of which 500 random, TD3 net [400, 300]); identical
hyperparameters for both libraries (rlzoo's DQN with double_q / dueling off, like SB3's).

The machine this runs on is shared, so the two libraries are *interleaved*: both models live in one
process and train in turns, ``learn(total / chunks, reset_num_timesteps=False)`` each, so that both
see the same load; each one's steps/s is its total steps over its total training time, and the
ratio is printed. ``--threads -1`` (the default) compares the libraries as shipped: SB3 with torch's
default threads (all cores), rlzoo with the threads it picks for the model (one for small networks,
torch's default for SAC's and TD3's). ``--threads N`` gives both N threads (0: torch's default);
``--sb3-threads`` sets SB3's apart.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the RL Zoo's DQN CartPole-v1 settings (identical for both libraries)
DQN_ZOO = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
               target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
               exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))
WORKLOADS = {
    "dqn": ("DQN", "CartPole-v1", 50_000, DQN_ZOO, dict(double_q=False, dueling=False)),
    "sac": ("SAC", "Pendulum-v1", 3_000, dict(learning_rate=1e-3, learning_starts=500), {}),
    "td3": ("TD3", "Pendulum-v1", 3_000, dict(learning_rate=1e-3, learning_starts=500,
                                              policy_kwargs=dict(net_arch=[400, 300])), {}),
}

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
algo, env_id, steps, kwargs, extra, threads, sb3_threads, chunks = json.loads(sys.argv[1])
import torch
import rlzoo
import stable_baselines3 as sb3
default_threads = torch.get_num_threads()
models = {{"sb3": getattr(sb3, algo)("MlpPolicy", env_id, seed=0, verbose=0, **kwargs)}}
models["rlzoo"] = getattr(rlzoo, algo)("MlpPolicy", env_id, seed=0, verbose=0, **kwargs, **extra)
picked = torch.get_num_threads()  # what rlzoo chose for this model
n_threads = {{"sb3": sb3_threads or default_threads, "rlzoo": picked if threads < 0 else threads or default_threads}}
elapsed = {{"sb3": 0.0, "rlzoo": 0.0}}
chunk = steps // chunks
for i in range(chunks):
    for lib in (("sb3", "rlzoo") if i % 2 == 0 else ("rlzoo", "sb3")):
        torch.set_num_threads(n_threads[lib])
        start = time.perf_counter()
        models[lib].learn(chunk, reset_num_timesteps=(i == 0))
        elapsed[lib] += time.perf_counter() - start
print(json.dumps({{lib: {{"steps_per_s": models[lib].num_timesteps / elapsed[lib], "threads": n_threads[lib],
                         "steps": models[lib].num_timesteps}} for lib in models}}))
"""


def run(name: str, threads: int, sb3_threads: int, chunks: int) -> dict:
    algo, env_id, steps, kwargs, extra = WORKLOADS[name]
    args = json.dumps([algo, env_id, steps, kwargs, extra, threads, sb3_threads, chunks])
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="dqn,sac,td3")
    parser.add_argument("--chunks", type=int, default=6, help="turns each library gets")
    parser.add_argument("--threads", type=int, default=-1,
                        help="torch threads of both libraries (0: torch's default; -1: each library's own choice)")
    parser.add_argument("--sb3-threads", type=int, default=None, help="SB3's threads if different (0: default)")
    args = parser.parse_args()
    sb3_threads = max(args.threads, 0) if args.sb3_threads is None else args.sb3_threads
    print(f"{'workload':28s} {'SB3 steps/s':>12s} {'rlzoo steps/s':>14s} {'ratio':>7s}")
    for name in args.only.split(","):
        res = run(name, args.threads, sb3_threads, args.chunks)
        algo, env_id, steps = WORKLOADS[name][:3]
        sb3, ours = res["sb3"]["steps_per_s"], res["rlzoo"]["steps_per_s"]
        print(f"{algo + ' ' + env_id + ' ' + str(steps // 1000) + 'k':28s} {sb3:12.0f} {ours:14.0f} {ours / sb3:6.2f}x"
              f"  (torch threads: SB3 {res['sb3']['threads']}, rlzoo {res['rlzoo']['threads']})", flush=True)


if __name__ == "__main__":
    main()
