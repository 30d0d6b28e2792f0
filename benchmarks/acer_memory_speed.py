"""ACER replay memory size for the default Atari settings, and ACER steps/s against A2C.

Memory: the ``atari`` entry of hyperparams/acer.yml (16 envs, n_steps 20, buffer_size 5000 steps
per env = 250 segments, 84x84 frames stacked by 4) with the frames of each segment stored once,
compared with storing every stacked observation.

Speed: the whole ``learn()`` call of ACER (defaults: replay ratio 4 after 1000 steps per env)
and A2C (defaults) on the same workload, each run in a fresh subprocess, alternating.

    python benchmarks/acer_memory_speed.py [--steps 100000] [--atari-steps 4000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
spec = json.loads(sys.argv[1]); algo = sys.argv[2]; steps = int(sys.argv[3])
import rlzoo
from rlzoo.envs import VecFrameStack, make_atari_env, make_vec_env
if spec["atari"]:
    env = VecFrameStack(make_atari_env(spec["env"], n_envs=spec["n_envs"], seed=0), n_stack=4)
else:
    env = make_vec_env(spec["env"], n_envs=spec["n_envs"], seed=0)
kwargs = spec.get(algo, {})
model = rlzoo.ALGOS[algo.split("_")[0]](spec["policy"], env, seed=0, verbose=0, device="cpu", **kwargs)
t0 = time.perf_counter()
model.learn(steps)
dt = time.perf_counter() - t0
print(json.dumps({"fps": model.num_timesteps / dt, "updates": model._n_updates}))
"""

WORKLOADS = {
    "cartpole": dict(env="CartPole-v1", n_envs=8, policy="MlpPolicy", atari=False),
    "pong": dict(env="PongNoFrameskip-v4", n_envs=4, policy="CnnPolicy", atari=True,
                 # replay from the start of this short run, as after the first 1000 steps per env
                 acer=dict(replay_start=100)),
}


def memory_report() -> None:
    from gymnasium import spaces

    sys.path.insert(0, str(ROOT))
    from rlzoo.algos.acer.replay import SegmentReplayMemory

    n_envs, n_steps, buffer_size = 16, 20, 5000
    obs = spaces.Box(0, 255, (84, 84, 4), dtype="uint8")
    act = spaces.Discrete(6)
    once = SegmentReplayMemory(buffer_size, n_steps, n_envs, obs, act, stat_dim=6, n_stack=4)
    whole = SegmentReplayMemory(buffer_size, n_steps, n_envs, obs, act, stat_dim=6, n_stack=1)
    transitions = once.n_segments * n_steps * n_envs
    print(f"ACER replay memory, Atari defaults ({n_envs} envs, n_steps {n_steps}, buffer_size {buffer_size} "
          f"= {once.n_segments} segments, {transitions} transitions, 6 actions):")
    print(f"  frames stored once       : {once.nbytes / 2**20:8.1f} MiB "
          f"(observations {once.obs[None].data.nbytes / 2**20:.1f} MiB)")
    print(f"  stacked observations     : {whole.nbytes / 2**20:8.1f} MiB "
          f"(observations {whole.obs[None].data.nbytes / 2**20:.1f} MiB)")
    print(f"  obs + next_obs per step  : {2 * transitions * 84 * 84 * 4 / 2**20:8.1f} MiB (a transition buffer)")


def run(spec: dict, algo: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), algo, str(steps), str(ROOT)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100_000, help="CartPole steps")
    parser.add_argument("--atari-steps", type=int, default=4_000, help="Pong steps (0 to skip)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    memory_report()
    for name, spec in WORKLOADS.items():
        steps = args.steps if name == "cartpole" else args.atari_steps
        if steps <= 0:
            continue
        fps: dict[str, list] = {"a2c": [], "acer": []}
        for _ in range(args.repeats):
            for algo in fps:
                fps[algo].append(run(spec, algo, steps)["fps"])
        a2c, acer = statistics.median(fps["a2c"]), statistics.median(fps["acer"])
        print(f"{spec['env']} x{spec['n_envs']} {steps} steps | A2C {a2c:8.0f} steps/s | ACER {acer:8.0f} steps/s "
              f"| ACER/A2C {acer / a2c:.2f} (runs: a2c {[round(f) for f in fps['a2c']]}, "
              f"acer {[round(f) for f in fps['acer']]})", flush=True)


if __name__ == "__main__":
    main()
