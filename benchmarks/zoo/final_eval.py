"""Evaluate the final model of finished benchmark runs whose last evaluation fell before the end.

    python benchmarks/zoo/final_eval.py                      # every run under logs/full that needs it
    python benchmarks/zoo/final_eval.py --dry-run            # list them only
    python benchmarks/zoo/final_eval.py --long 100 --algos trpo --envs LunarLanderContinuous-v3

Before rlzoo's EvalCallback counted from the model's own step count, a run resumed from a checkpoint
evaluated on a schedule shifted by the resume point, so its last evaluation could be hundreds of
thousands of steps before the end and the benchmark's "final reward" was not the final model's.
Runs made since evaluate their final model themselves. For the older ones, this script evaluates
``model.zip`` as the callback does (10 deterministic episodes on a separate env with the run's frozen
VecNormalize statistics, seed = run seed + 10,000) and appends the row at the run's final timestep to
``evaluations.csv``; it writes ``final_eval`` into ``run.json`` so that the row is traceable.

``--long N`` only reads: it scores the final model of every finished run of the chosen rows over N
deterministic episodes (seed = run seed + 20,000, so other episodes than the callback's) and prints the mean
± std of each. The benchmark scores a seed by its last 10-episode evaluation, whose noise on some tasks is
as wide as the gap between a seed and its threshold; this shows how much of a row's count is that noise.
It needs the runs' ``model.zip`` files, which git does not keep: run the row first.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def needs_final_eval(run: Path) -> bool:
    """A finished, resumed run whose last evaluation is more than half an evaluation interval before the end
    (runs never resumed end within one rollout of their last evaluation and are left as they are)."""
    info_file, evals = run / "run.json", run / "evaluations.csv"
    if not info_file.is_file() or not evals.is_file():
        return False
    info = json.loads(info_file.read_text())
    with open(evals, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if info.get("status") != "finished" or not rows or len(info.get("segments", [])) < 2 or "final_eval" in info:
        return False
    first, last, end = int(rows[0]["timesteps"]), int(rows[-1]["timesteps"]), int(info["num_timesteps"])
    return end - last > first // 2  # more than half an evaluation interval untested


def final_model_returns(run: Path, algo: str, env_id: str, seed: int, episodes: int) -> tuple[list[float], list[int]]:
    """Episode returns and lengths of a run's ``model.zip`` on a separate env seeded ``seed``, with the run's
    frozen VecNormalize statistics (deterministic actions; Atari: sampled, as in the SB3 zoo)."""
    from rlzoo.evaluation import evaluate_policy
    from rlzoo.zoo.enjoy import load_agent, make_agent_env

    agent = load_agent(algo, env_id, str(run.parent.parent), exp_id=int(run.name.rsplit("_", 1)[1]))
    assert agent.run_dir == run
    env = make_agent_env(agent, seed, None, [])
    rewards, lengths = evaluate_policy(agent.model, env, n_eval_episodes=episodes, deterministic=not agent.atari,
                                       return_episode_rewards=True)
    env.close()
    return list(rewards), list(lengths)


def final_eval(run: Path, algo: str, env_id: str, episodes: int = 10) -> float:
    from rlzoo.fileio import atomic_path
    from rlzoo.zoo import run_folder as rf

    info = rf.read_run_info(run)
    rewards, lengths = final_model_returns(run, algo, env_id, int(info["seed"]) + 10_000, episodes)
    evals = run / "evaluations.csv"
    with open(evals, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = list(reader.fieldnames or []), list(reader)
    row = {"timesteps": int(info["num_timesteps"]), "mean_reward": float(np.mean(rewards)),
           "std_reward": float(np.std(rewards)), "mean_ep_length": float(np.mean(lengths)),
           **{f"reward_{i}": r for i, r in enumerate(rewards)}}
    with atomic_path(evals) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows([*rows, row])
    rf.update_run_info(run, final_eval={"by": "benchmarks/zoo/final_eval.py", "timesteps": row["timesteps"],
                                        "mean_reward": row["mean_reward"], "episodes": episodes})
    return row["mean_reward"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, default=HERE / "logs" / "full")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--long", type=int, default=None, metavar="N",
                        help="only print each finished run's final model over N episodes (writes nothing)")
    parser.add_argument("--algos", default=None, help="with --long: only these algorithms, e.g. trpo,ppo")
    parser.add_argument("--envs", default=None, help="with --long: only these env ids")
    args = parser.parse_args(argv)
    if args.long is not None:
        if args.long < 1:
            parser.error("--long must be >= 1")
        if not args.logs.is_dir():
            parser.error(f"--logs {args.logs}: no such folder")
        return print_long(args.logs, args.long, args.algos, args.envs)
    for run in sorted(args.logs.glob("*/*_*")):
        if not needs_final_eval(run):
            continue
        algo, env_id = run.parent.name, run.name.rsplit("_", 1)[0]
        if args.dry_run:
            print(f"{run}: needs a final evaluation")
            continue
        print(f"{run}: final model {final_eval(run, algo, env_id):.1f}", flush=True)
    return 0


def print_long(logs: Path, episodes: int, algos: str | None, envs: str | None) -> int:
    """Print the ``--long`` scores of the finished runs with a model under ``logs``; 2 if a run's files could
    not be read (each such run is named on stderr), else 0."""
    from rlzoo.common.save_format import ModelFileError
    from rlzoo.zoo import run_folder as rf
    from rlzoo.zoo.errors import ZooError

    runs = [p for p in logs.glob("*/*_*") if p.is_dir() and p.name.rsplit("_", 1)[1].isdigit()]
    scored = failed = 0
    for run in sorted(runs, key=lambda p: (p.parent.name, p.name.rsplit("_", 1)[0], int(p.name.rsplit("_", 1)[1]))):
        algo, env_id = run.parent.name, run.name.rsplit("_", 1)[0]
        if (algos and algo not in algos.split(",")) or (envs and env_id not in envs.split(",")):
            continue
        try:
            info = rf.read_run_info(run)
            if info.get("status") != "finished" or not (run / "model.zip").is_file():
                continue
            rewards, _ = final_model_returns(run, algo, env_id, int(info["seed"]) + 20_000, episodes)
        except (ZooError, ModelFileError, OSError) as e:  # the files of a run are untrusted input
            print(f"{run}: {' '.join(str(e).split())}", file=sys.stderr)
            failed += 1
            continue
        scored += 1
        print(f"{algo} {run.name} seed {info['seed']}: {np.mean(rewards):.2f} ± {np.std(rewards):.2f} over {episodes} "
              "episodes", flush=True)
    if not scored and not failed:
        print(f"no finished run with a model.zip under {logs} matched", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
