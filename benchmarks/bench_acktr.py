"""Cost of one ACKTR update relative to one A2C update, CnnPolicy on PongNoFrameskip-v4.

ACKTR runs twice: with the default damping of the Kronecker product (eigen-decompositions, as the
reference implementation) and with factored damping (Cholesky inverses, hyperparams/acktr.yml's
``atari`` entry). All get the same rollout size (``--n-envs`` x ``--n-steps``) and the same Nature CNN.
Only the ``train()`` call (the update) is timed, after the ACKTR warm-up (``cold_iter`` plain SGD
steps) is over; the whole ``learn()`` throughput is printed too. Each algorithm runs in a fresh
subprocess and the two alternate over ``--repeats`` so machine-load drift hits both alike.

    python benchmarks/bench_acktr.py [--updates 6] [--n-envs 8] [--n-steps 20] [--repeats 2] [--kfac-update 1]
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
sys.path.insert(0, sys.argv[2])
import torch
from rlzoo import A2C, ACKTR
from rlzoo.envs import VecFrameStack, make_atari_env
spec = json.loads(sys.argv[1])
env = VecFrameStack(make_atari_env("PongNoFrameskip-v4", n_envs=spec["n_envs"], seed=0), n_stack=4)
if spec["algo"].startswith("acktr"):
    model = ACKTR("CnnPolicy", env, n_steps=spec["n_steps"], kfac_update=spec["kfac_update"], cold_iter=2,
                  kfac_factored_damping=spec["algo"] == "acktr-factored", seed=0, device="cpu")
    warmup = 3  # two cold SGD steps, then the first K-FAC step (first factor refresh)
else:
    model = A2C("CnnPolicy", env, n_steps=spec["n_steps"], seed=0, device="cpu")
    warmup = 1
times = []
train = model.train
def timed():
    t = time.perf_counter(); train(); times.append(time.perf_counter() - t)
model.train = timed
batch = spec["n_envs"] * spec["n_steps"]
model.learn(batch * warmup)
t0 = time.perf_counter()
model.learn(batch * spec["updates"], reset_num_timesteps=False)
wall = time.perf_counter() - t0
upd = times[warmup:]
print(json.dumps({"algo": spec["algo"], "update_s": sum(upd) / len(upd), "learn_sps": batch * spec["updates"] / wall,
                  "threads": torch.get_num_threads()}))
env.close()
"""


def run(spec: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), str(ROOT)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kfac-update", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"a2c": [], "acktr-eigen": [], "acktr-factored": []}
    for _ in range(args.repeats):
        for algo in results:
            spec = dict(algo=algo, updates=args.updates, n_envs=args.n_envs, n_steps=args.n_steps,
                        kfac_update=args.kfac_update)
            results[algo].append(run(spec))
    summary = {}
    for algo, rows in results.items():
        summary[algo] = {"update_s": statistics.median(r["update_s"] for r in rows),
                         "learn_sps": statistics.median(r["learn_sps"] for r in rows), "threads": rows[0]["threads"]}
    ratios = {k: summary[k]["update_s"] / summary["a2c"]["update_s"] for k in ("acktr-eigen", "acktr-factored")}
    print(f"batch {args.n_envs}x{args.n_steps}, kfac_update {args.kfac_update}")
    for algo, s in summary.items():
        print(f"  {algo:15s} update {s['update_s'] * 1000:8.1f} ms   learn {s['learn_sps']:7.1f} steps/s"
              f"   ({s['threads']} torch threads)")
    for algo, ratio in ratios.items():
        print(f"  {algo} / a2c cost per update: {ratio:.2f}x")
    print(json.dumps({"ratios": {k: round(v, 3) for k, v in ratios.items()},
                      **{k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in summary.items()}}))


if __name__ == "__main__":
    sys.exit(main())
