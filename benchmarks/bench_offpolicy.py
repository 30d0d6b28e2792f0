"""rlzoo vs Stable-Baselines3, side by side: env steps per second of a whole ``learn()`` call.

    python benchmarks/bench_offpolicy.py [--rounds 2] [--only dqn,sac,td3] [--sb3-threads 0]

Workloads (ANCHORS.md): DQN CartPole-v1 with the RL Zoo's settings (50k steps), SAC and TD3 on
Pendulum-v1 (lr 1e-3, 3k steps of which 500 random, TD3 net [400, 300]). Every run is a fresh
subprocess and the two libraries alternate, so both see the same machine load; the ratio of the
medians is printed. Both libraries run with ``--threads`` torch threads (default 1, what rlzoo picks
for small networks); ``--sb3-threads 0`` leaves SB3 at torch's default (all cores), as its users get it.
"""
import argparse
import json
import os
import statistics
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
lib, algo, env_id, steps, kwargs, extra, threads = json.loads(sys.argv[1])
import torch
if threads:
    torch.set_num_threads(threads)
if lib == "sb3":
    import stable_baselines3 as mod
else:
    import rlzoo as mod
    kwargs = {{**kwargs, **extra}}
model = getattr(mod, algo)("MlpPolicy", env_id, seed=0, verbose=0, **kwargs)
if threads:
    torch.set_num_threads(threads)  # after construction: rlzoo tunes threads when it builds its networks
start = time.perf_counter()
model.learn(steps)
elapsed = time.perf_counter() - start
print(json.dumps({{"steps_per_s": steps / elapsed, "threads": torch.get_num_threads()}}))
"""


def run(lib: str, name: str, threads: int) -> dict:
    algo, env_id, steps, kwargs, extra = WORKLOADS[name]
    args = json.dumps([lib, algo, env_id, steps, kwargs, extra, threads])
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), args], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="dqn,sac,td3")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both libraries")
    parser.add_argument("--sb3-threads", type=int, default=None, help="SB3's threads if different (0: torch default)")
    args = parser.parse_args()
    print(f"{'workload':34s} {'SB3 steps/s':>12s} {'rlzoo steps/s':>14s} {'ratio':>7s}")
    for name in args.only.split(","):
        results = {"sb3": [], "rlzoo": []}
        for r in range(args.rounds):
            order = ("sb3", "rlzoo") if r % 2 == 0 else ("rlzoo", "sb3")
            for lib in order:
                sb3_threads = args.threads if args.sb3_threads is None else args.sb3_threads
                results[lib].append(run(lib, name, sb3_threads if lib == "sb3" else args.threads))
        sb3 = statistics.median(x["steps_per_s"] for x in results["sb3"])
        ours = statistics.median(x["steps_per_s"] for x in results["rlzoo"])
        algo, env_id, steps = WORKLOADS[name][:3]
        label = f"{algo} {env_id} {steps // 1000}k"
        threads = f"(threads: SB3 {results['sb3'][0]['threads']}, rlzoo {results['rlzoo'][0]['threads']})"
        print(f"{label:34s} {sb3:12.0f} {ours:14.0f} {ours / sb3:6.2f}x  {threads}", flush=True)


if __name__ == "__main__":
    main()
