"""The zoo benchmark: run the rows of ``rows.yml`` through ``rlzoo sweep``, then write ``benchmark.md``
and one PNG of learning curves per env.

    python benchmarks/zoo/run.py                                # every row, full budgets, local pool
    python benchmarks/zoo/run.py --budget reduced --jobs 8      # every row at <= 200k steps where marked
    python benchmarks/zoo/run.py --groups classic --algos dqn,ppo --jobs 2
    python benchmarks/zoo/run.py --ray-address auto             # one Ray task per run
    python benchmarks/zoo/run.py --report-only                  # only rewrite benchmark.md and the PNGs

Each row is one ``rlzoo sweep --resume`` call (seeds 0-4 by default, 10 deterministic evaluation
episodes every tenth of the budget, a checkpoint every tenth), so stopping this script and starting
it again continues the unfinished runs instead of starting over, and skips the finished ones.
Run folders go to ``benchmarks/zoo/logs/<budget>/``. A run's final reward is its last evaluation
(the final model, 10 deterministic episodes on a separate env). ``--seeds`` picks the seeds to run; the
table is always written over all of rows.yml's seeds, so adding one seed's run keeps the others' figures.
"""
from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.errors import ZooError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from stats import iqm, iqm_ci  # noqa: E402

# rough single-core env steps/s used to estimate rows not run yet (replaced by measured rates per algo)
DEFAULT_RATE = {"a2c": 2500, "ppo": 1500, "trpo": 2000, "acktr": 1500, "acer": 800, "dqn": 400, "ddpg": 120,
                "td3": 120, "sac": 80}
IMAGE_RATE = 60  # CnnPolicy rows (Atari, CarRacing)


def load_rows(path: Path) -> tuple[list[dict], str]:
    """The rows of ``rows.yml`` and its default seeds."""
    data = yaml.safe_load(path.read_text())
    return data["rows"], str(data.get("seeds", "0-4"))


def select(rows: list[dict], algos: str | None, envs: str | None, groups: str | None) -> list[dict]:
    def keep(row: dict, key: str, wanted: str | None) -> bool:
        return wanted is None or row[key] in wanted.split(",")
    return [r for r in rows if keep(r, "algo", algos) and keep(r, "env", envs) and keep(r, "group", groups)]


def sweep_command(row: dict, steps: int, seeds: str, logs: Path, jobs: int | None, ray: str | None) -> list[str]:
    """The ``rlzoo sweep`` command of one row."""
    tenth = max(steps // 10, 1)
    cmd = [sys.executable, "-m", "rlzoo.zoo.cli", "sweep", "--algos", row["algo"], "--envs", row["env"],
           "--seeds", seeds, "-n", str(steps), "-f", str(logs), "--resume", "--no-progress",
           "--eval-freq", str(tenth), "--eval-episodes", "10", "--save-freq", str(tenth)]
    if ray:
        cmd += ["--ray-address", ray]
    elif jobs:
        cmd += ["--jobs", str(jobs)]
    return cmd


# ----------------------------------------------------------------------------- results
def row_runs(row: dict, steps: int, seeds: list[int], logs: Path) -> list[dict]:
    """The latest finished run of each seed: seed, final reward, curve, steps, wall time."""
    base = logs / row["algo"]
    found: dict[int, dict] = {}
    prefix = rf.env_folder_name(row["env"]) + "_"
    for run in sorted(base.glob(prefix + "*"), key=lambda p: int(p.name.rsplit("_", 1)[-1] or 0)):
        try:
            info = rf.read_run_info(run)  # run.json, type-checked as rlzoo reads it
        except ZooError:
            continue
        if (info.get("status") != "finished" or info.get("seed") not in seeds
                or int(info.get("n_timesteps", 0)) != steps):
            continue
        curve = []
        try:
            with open(run / "evaluations.csv", newline="") as f:
                curve = [(int(float(r["timesteps"])), float(r["mean_reward"])) for r in csv.DictReader(f)]
        except (OSError, KeyError, ValueError):
            pass
        if not curve:
            continue
        # wall time: the training time rlzoo train records, summed over resumes (as `rlzoo benchmark` reads it),
        # not the span from start to end, which would count the hours a stopped run waited to be resumed
        found[info["seed"]] = {"seed": info["seed"], "final": curve[-1][1], "curve": curve,
                               "steps": info.get("num_timesteps", steps), "wall": info.get("wall_time_s"),
                               "run": run.name}
    return [found[s] for s in sorted(found)]


def _fmt(x: float, threshold: float | None = None) -> str:
    """One decimal below 1000 (none above), or as many as the threshold has, and more where needed so that a
    value shown is never rounded across it (93.6547 against 93.66 shows as 93.65, not 93.7; 93.4500 against
    93.5 as 93.45, not 93.5)."""
    decimals = 1 if threshold is None else max(1, len(f"{threshold:g}".partition(".")[2]))
    decimals = decimals if abs(x) < 1000 else 0
    while threshold is not None and decimals < 6 and (float(f"{x:.{decimals}f}") >= threshold) != (x >= threshold):
        decimals += 1
    return f"{x:.{decimals}f}"


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def plot_env(env_id: str, rows: list[dict], results: dict, out: Path, thresholds: bool = True) -> bool:
    """Mean ± std of the evaluation curves over seeds, per algo, with the references as dashed lines
    (and the thresholds as dotted ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    for row in rows:
        runs = results.get((row["algo"], row["env"]))
        if not runs:
            continue
        xs = sorted({t for r in runs for t, _ in r["curve"]})
        ys = np.array([[np.interp(x, *zip(*r["curve"], strict=True)) for x in xs] for r in runs])
        line, = ax.plot(xs, ys.mean(0), label=f"rlzoo {row['algo']} ({len(runs)} seed{'s' if len(runs) != 1 else ''})")
        ax.fill_between(xs, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), alpha=0.2, color=line.get_color())
        if row.get("reference"):
            mean = float(row["reference"].split(" ")[0])
            ax.axhline(mean, ls="--", lw=1, color=line.get_color(), label=f"SB3 zoo {row['algo']}: {row['reference']}")
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    levels = {row.get("threshold") for row in rows
              if thresholds and row.get("threshold") is not None and results.get((row["algo"], row["env"]))}
    for t in levels:
        ax.axhline(t, ls=":", lw=1, color="grey")
    ax.set(title=f"{env_id}: deterministic evaluation (10 episodes)", xlabel="env steps", ylabel="mean reward")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


def _steps_per_s(runs: list[dict]) -> list[float]:
    """Env steps per second of each run that recorded its wall time."""
    return [r["steps"] / r["wall"] for r in runs if r["wall"]]


def report(rows: list[dict], budget: str, seeds: list[int], logs: Path, out_md: Path) -> None:
    """Write ``benchmark.md`` and the PNGs from the finished runs under ``logs``."""
    results: dict[tuple[str, str], list[dict]] = {}
    rates: dict[tuple[str, str], list[float]] = {}  # (algo, group or "") -> steps/s of its finished runs
    for row in rows:
        runs = row_runs(row, row[budget], seeds, logs)
        if runs:
            results[(row["algo"], row["env"])] = runs
            for key in ((row["algo"], row["group"]), (row["algo"], "")):
                rates.setdefault(key, []).extend(_steps_per_s(runs))
    reduced = budget == "reduced"
    other = "full" if reduced else "reduced"
    other_rates: dict[tuple[str, str], list[float]] = {}  # (algo, group) -> steps/s at the other budget
    for row in rows:  # only for groups this budget has not measured yet
        if (row["algo"], row["group"]) not in rates and row[other] != row[budget]:
            runs = row_runs(row, row[other], seeds, logs.parent / other)
            other_rates.setdefault((row["algo"], row["group"]), []).extend(_steps_per_s(runs))
    lines = [f"# rlzoo zoo benchmark ({budget} budget)", ""]
    if reduced:
        lines += ["**Reduced budget: these runs stop at `reduced` steps (rows.yml), well short of the entries' "
                  "own `n_timesteps` (the `entry` figure in the steps column). Their rewards are NOT the entries' "
                  "results and are not comparable with the reference, which is the SB3 zoo's at the full budget; "
                  "no threshold applies. They show that the rows run end to end and how far they get on a 2-core "
                  "CPU; run `python benchmarks/zoo/run.py --budget full` on a bigger machine for the real "
                  "figures.** Rows that ran at their full budget on every seed are in `benchmark.md`, not here.", ""]
    lines += ["Produced by `python benchmarks/zoo/run.py --budget " + budget + "` (rows: `benchmarks/zoo/rows.yml`). "
             "Each run is `rlzoo train` with the shipped entry; final reward = last evaluation "
             "(final model, 10 episodes on a separate env; deterministic actions, except on Atari, "
             "sampled as in the SB3 zoo). IQM: interquartile mean over seeds "
             "with a 95% percentile bootstrap CI (`benchmarks/zoo/stats.py`). Threshold: the reference's "
             "mean - std, else the task's solved score (CartPole-v1: 450). Wall time and steps/s are per run, "
             "measured on the shared 2-core machine under load (other jobs running): compare them only "
             "within this table. Disk: an off-policy run keeps its final replay buffer and those of its two newest "
             "checkpoints, each holding the transitions added so far (Humanoid: about 2.9 GB per million, so about "
             "1.7 GB for a 200k-step run and 9 GB for a full one).", "",
             "| group | algo | env | steps | seeds | final reward (mean ± std) | IQM [95% CI] | >= threshold | "
             "reference (SB3 zoo) | wall per run | steps/s | per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    reliable = measured = 0
    for row in rows:
        runs = results.get((row["algo"], row["env"]))
        if not runs:
            continue
        finals = np.array([r["final"] for r in runs])
        lo, hi = iqm_ci(finals)
        thr = None if reduced else row.get("threshold")
        hits = int((finals >= thr).sum()) if thr is not None else None
        if thr is not None and row["group"] in ("classic", "box2d") and len(runs) >= 5:
            measured += 1
            reliable += hits >= 4
        entry = f" (entry: {row['full']:,})" if reduced else ""
        walls = [r["wall"] for r in runs if r["wall"]]
        wall = float(np.mean(walls)) if walls else math.nan
        sps = float(np.mean(_steps_per_s(runs))) if walls else math.nan
        lines.append(
            f"| {row['group']} | {row['algo']} | {row['env']} | {row[budget]:,}{entry} | {len(runs)} | "
            f"{_fmt(finals.mean())} ± {_fmt(finals.std())} | {_fmt(iqm(finals))} [{_fmt(lo)}, {_fmt(hi)}] | "
            f"{'' if hits is None else f'{hits}/{len(runs)} (>= {thr:g})'} | {row.get('reference', '')} | "
            f"{_hms(wall) if walls else '?'} | {sps:.0f} | {', '.join(_fmt(f, thr) for f in finals)} |")
    if not reduced:
        lines += ["", f"**Seed reliability (classic control and Box2D, rows with 5 seeds):** {reliable} of "
                  f"{measured} rows reach their threshold on >= 4 of 5 seeds."]
    lines += ["", "## Curves", ""]
    envs = list(dict.fromkeys(r["env"] for r in rows))
    for env in envs:
        png = HERE / "plots" / f"{rf.env_folder_name(env)}_{budget}.png"
        if plot_env(env, [r for r in rows if r["env"] == env], results, png, thresholds=not reduced):
            lines.append(f"- {env}: ![{env}](plots/{png.name}) (dashed: the SB3 zoo's reported final reward"
                         + (" at the full budget)" if reduced else "; dotted: threshold)"))
    lines += ["", "## Rows not run yet", "",
              "Estimated time for the seeds run one after the other at the median steps/s per run measured "
              f"above for the same algorithm in the same group, else in the same group at the {other} budget, "
              "else for the same algorithm (on this loaded "
              "machine; an idle core is several times faster), else rough "
              "defaults (`DEFAULT_RATE` in run.py; CnnPolicy rows at ~60 steps/s).", "",
              "| group | algo | env | steps | estimated time (5 seeds) |", "|---|---|---|---|---|"]
    total = 0.0
    for row in rows:
        if (row["algo"], row["env"]) in results:
            continue
        image = row["env"] == "CarRacing-v3" or row["group"] == "atari"
        measured_rates = (rates.get((row["algo"], row["group"])) or other_rates.get((row["algo"], row["group"]))
                          or rates.get((row["algo"], "")))
        rate = IMAGE_RATE if image else (np.median(measured_rates) if measured_rates else DEFAULT_RATE[row["algo"]])
        seconds = row[budget] * len(seeds) / rate
        total += seconds
        lines.append(f"| {row['group']} | {row['algo']} | {row['env']} | {row[budget]:,} | {_hms(seconds)} |")
    lines += ["", f"Total not run: about {total / 3600:.0f} CPU-hours at these rates.", ""]
    out_md.write_text("\n".join(lines))
    print(f"wrote {out_md} ({len(results)} rows with results; reliability {reliable}/{measured})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=("full", "reduced"), default="full")
    parser.add_argument("--jobs", type=int, default=None, help="local runs at once (rlzoo sweep --jobs)")
    parser.add_argument("--ray-address", default=None, help="run on Ray (rlzoo sweep --ray-address)")
    parser.add_argument("--algos", default=None, help="only these algorithms, e.g. dqn,ppo")
    parser.add_argument("--envs", default=None, help="only these env ids")
    parser.add_argument("--groups", default=None, help="only these groups: classic,box2d,mujoco,atari")
    parser.add_argument("--seeds", default=None, help="seeds (default: rows.yml's, 0-4)")
    parser.add_argument("--rows", type=Path, default=HERE / "rows.yml")
    parser.add_argument("--report-only", action="store_true", help="only write benchmark.md and the PNGs")
    parser.add_argument("--dry-run", action="store_true", help="print the sweep commands; run nothing")
    args = parser.parse_args(argv)
    rows, default_seeds = load_rows(args.rows)
    seeds_text = args.seeds or default_seeds
    from rlzoo.zoo.sweep import parse_seeds

    seeds = parse_seeds(seeds_text)
    logs = HERE / "logs" / args.budget
    if args.budget == "reduced":  # rows whose entry fits the machine are the full table's, not this one's
        rows = [row for row in rows if row["reduced"] < row["full"]]
    chosen = select(rows, args.algos, args.envs, args.groups)
    if not args.report_only:
        for row in chosen:
            cmd = sweep_command(row, row[args.budget], seeds_text, logs, args.jobs, args.ray_address)
            print(" ".join(cmd[1:]) if args.dry_run else f"== {row['algo']} {row['env']} ({row[args.budget]:,} steps)",
                  flush=True)
            if not args.dry_run and subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:
                print(f"row {row['algo']} {row['env']}: some runs failed (see above); continuing", flush=True)
    if not args.dry_run:
        # the table covers every run of rows.yml's seeds (and any given here), not only those this call launched:
        # `--seeds 0` adds seed 0's run to a table that keeps its other seeds
        report_seeds = sorted(set(parse_seeds(default_seeds)) | set(seeds))
        name = "benchmark.md" if args.budget == "full" else "benchmark_reduced.md"
        if args.budget == "reduced":  # rows run in full on every seed: reported in benchmark.md
            rows = [row for row in rows
                    if len(row_runs(row, row["full"], report_seeds, HERE / "logs" / "full")) < len(report_seeds)]
        report(rows, args.budget, report_seeds, logs, HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
