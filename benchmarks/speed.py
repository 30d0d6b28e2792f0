"""Training speed of rlzoo vs Stable-Baselines3 and SBX (its JAX port), one command.

    python benchmarks/speed.py [--only ppo-cartpole,dqn-cartpole] [--repeats 2] [--steps-scale 1.0]
                               [--libs rlzoo,sb3,sbx] [--no-matched] [--force]

Every (library, workload) run is one whole ``learn()`` call in a fresh subprocess (imports, thread
settings and JIT caches do not leak), and the libraries take turns (the order rotates every repeat),
so that drifting machine load hits all alike. Each library runs **as shipped** (its defaults: env
construction, threads, devices: what ``PPO("MlpPolicy", make_vec_env(...))`` gives a user), and, in
the **thread-matched** column, pinned to one core with one intra-op thread (torch and XLA). Printed:
env steps/s of ``learn()`` (median over repeats) and the ratios rlzoo/SB3 and rlzoo/SBX.

The 1-minute load average is checked before every run: above the core count the figures measure the
machine, not the code; the script waits up to 3 minutes for it to settle (a previous multi-threaded run
raises it by itself), then refuses to report (exit 2) unless ``--force``; the load seen is printed.
Peers are optional: ``pip install "rlzoo[bench]"`` (stable-baselines3, sbx-rl); a missing one is "n/a".
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PPO_CARTPOLE = {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"}
DQN_CARTPOLE = {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000,
                "gamma": 0.99, "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
                "exploration_fraction": 0.16, "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]}}
PPO_PENDULUM = {"n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10, "ent_coef": 0.0,
                "learning_rate": 1e-3, "clip_range": 0.2}
PPO_HALFCHEETAH = {"batch_size": 64, "n_steps": 512, "gamma": 0.98, "learning_rate": 2.0633e-05,
                   "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                   "max_grad_norm": 0.8, "vf_coef": 0.58096}
PPO_ATARI = {"n_steps": 128, "n_epochs": 4, "batch_size": 256, "learning_rate": "lin_2.5e-4", "clip_range": "lin_0.1",
             "vf_coef": 0.5, "ent_coef": 0.01}

# name: algo, env id, n_envs, steps, policy, shared kwargs, rlzoo-only kwargs, options (normalize, atari, no_sbx)
WORKLOADS: dict[str, tuple] = {
    "ppo-cartpole": ("PPO", "CartPole-v1", 8, 100_000, "MlpPolicy", PPO_CARTPOLE, {}, {}),
    "a2c-cartpole": ("A2C", "CartPole-v1", 8, 100_000, "MlpPolicy", {"ent_coef": 0.0}, {}, {"no_sbx": True}),
    "dqn-cartpole": ("DQN", "CartPole-v1", 1, 50_000, "MlpPolicy", DQN_CARTPOLE,
                     {"double_q": False, "dueling": False}, {}),
    "sac-pendulum": ("SAC", "Pendulum-v1", 1, 5_000, "MlpPolicy", {"learning_rate": 1e-3, "learning_starts": 500},
                     {}, {}),
    "td3-pendulum": ("TD3", "Pendulum-v1", 1, 5_000, "MlpPolicy",
                     {"learning_rate": 1e-3, "learning_starts": 500, "policy_kwargs": {"net_arch": [400, 300]}},
                     {}, {}),
    "ppo-pendulum": ("PPO", "Pendulum-v1", 4, 40_000, "MlpPolicy", PPO_PENDULUM, {}, {}),
    "ppo-halfcheetah": ("PPO", "HalfCheetah-v5", 1, 20_000, "MlpPolicy", PPO_HALFCHEETAH, {}, {"normalize": True}),
    "ppo-breakout": ("PPO", "BreakoutNoFrameskip-v4", 8, 10_000, "CnnPolicy", PPO_ATARI, {}, {"atari": True}),
}
LIBS = ("rlzoo", "sb3", "sbx")

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
spec = json.loads(sys.argv[1])
lib, matched = spec["lib"], spec["matched"]
if matched:  # one core, one intra-op thread, whatever the library
    os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}})
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["OMP_NUM_THREADS"] = "1"
algo, env_id, n_envs, steps, policy = spec["algo"], spec["env"], spec["n_envs"], spec["steps"], spec["policy"]
opts = spec["opts"]
def schedules(kwargs, lin):
    return {{k: lin(float(v[4:])) if isinstance(v, str) and v.startswith("lin_") else v for k, v in kwargs.items()}}
if lib.startswith("rlzoo"):
    import rlzoo
    from rlzoo.envs import make_vec_env, make_atari_env, VecFrameStack, VecNormalize
    from rlzoo.utils import linear_schedule
    cls = getattr(rlzoo, algo)
    kwargs = {{**schedules(spec["kwargs"], linear_schedule), **spec["extra"]}}
else:
    from stable_baselines3.common.env_util import make_vec_env, make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize
    if lib == "sb3":
        import stable_baselines3 as sb
    else:
        import sbx as sb
    cls = getattr(sb, algo)
    kwargs = schedules(spec["kwargs"], lambda x: (lambda p: p * x))
if opts.get("atari"):
    import ale_py, gymnasium
    gymnasium.register_envs(ale_py)  # the ALE ids, for every library
    env = VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=0), 4)
else:
    env = make_vec_env(env_id, n_envs=n_envs, seed=0)
if opts.get("normalize"):
    env = VecNormalize(env)
if matched and not lib.startswith("sbx"):
    import torch
    torch.set_num_threads(1)
model = cls(policy, env, seed=0, verbose=0, **kwargs)
if matched and lib.startswith("rlzoo"):
    import torch
    torch.set_num_threads(1)  # rlzoo picks threads per model; thread-matched means one
t0 = time.perf_counter()
model.learn(steps)
dt = time.perf_counter() - t0
print(json.dumps({{"fps": model.num_timesteps / dt, "seconds": dt}}))
"""


def _load_ok(force: bool, wait_s: float = 180.0) -> float:
    """The 1-minute load, after waiting up to ``wait_s`` for it to fall to the core count (the previous run's
    own threads raise it for a minute); exits 2 when it stays above (unless ``force``)."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + wait_s
    load = os.getloadavg()[0]
    while load > cores and not force and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    if load > cores and not force:
        print(f"speed.py: the 1-minute load is {load:.1f} on {cores} cores; figures would measure the machine, "
              "not the code. Wait for an idle machine or pass --force.", file=sys.stderr)
        raise SystemExit(2)
    return load


def _run(lib: str, name: str, matched: bool, scale: float) -> float | None:
    algo, env_id, n_envs, steps, policy, kwargs, extra, opts = WORKLOADS[name]
    spec = {"lib": lib, "matched": matched, "algo": algo, "env": env_id, "n_envs": n_envs, "policy": policy,
            "steps": max(int(steps * scale), 1), "kwargs": kwargs, "extra": extra, "opts": opts}
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), json.dumps(spec)],
                         capture_output=True, text=True, check=False, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {lib} {name}{' (1 thread)' if matched else ''} failed: {last[:200]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["fps"]


def _installed(lib: str) -> bool:
    module = {"sb3": "stable_baselines3", "sbx": "sbx"}.get(lib)
    if module is None:
        return True
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False)
    return probe.returncode == 0


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, default=1, help="runs per library and column (median)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every workload's steps")
    parser.add_argument("--no-matched", action="store_true", help="skip the thread-matched column")
    parser.add_argument("--libs", default=",".join(LIBS), help="comma-separated, of rlzoo, sb3, sbx")
    parser.add_argument("--force", action="store_true", help="report even when the machine is loaded")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or args.repeats < 1 or args.steps_scale <= 0:
        print(f"speed.py: unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}" if unknown
              else "speed.py: --repeats must be >= 1 and --steps-scale > 0", file=sys.stderr)
        raise SystemExit(2)
    loads = [_load_ok(args.force)]
    wanted = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    if set(wanted) - set(LIBS):
        print(f"speed.py: unknown --libs {sorted(set(wanted) - set(LIBS))}; choose from {', '.join(LIBS)}",
              file=sys.stderr)
        raise SystemExit(2)
    libs = [lib for lib in LIBS if lib in wanted and _installed(lib)]
    columns = [False] if args.no_matched else [False, True]
    print(f"cores {os.cpu_count()}, load {loads[0]:.2f}; libraries: {', '.join(libs)}; steps x{args.steps_scale}",
          flush=True)
    for name in names:
        no_sbx = WORKLOADS[name][7].get("no_sbx", False)
        todo = [lib for lib in libs if not (lib == "sbx" and no_sbx)]
        fps: dict[tuple[str, bool], list[float]] = {}
        for rep in range(args.repeats):
            order = todo[rep % len(todo):] + todo[:rep % len(todo)]
            for matched in columns:
                for lib in order:
                    loads.append(_load_ok(args.force))
                    res = _run(lib, name, matched, args.steps_scale)
                    if res is not None:
                        fps.setdefault((lib, matched), []).append(res)
        med = {k: statistics.median(v) for k, v in fps.items()}
        for matched in columns:
            def get(lib: str, matched: bool = matched, med: dict = med) -> float | None:
                return med.get((lib, matched))

            cells = "  ".join(f"{lib} {_fmt(get(lib))}" for lib in libs)
            label = f"{name}{' 1-thread' if matched else ' as shipped'}"
            print(f"{label:28s} steps/s: {cells}  | rlzoo/SB3 {_ratio(get('rlzoo'), get('sb3'))}"
                  f"  rlzoo/SBX {_ratio(get('rlzoo'), get('sbx'))}",
                  flush=True)
    print(f"1-minute load during the runs: min {min(loads):.2f}, max {max(loads):.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
