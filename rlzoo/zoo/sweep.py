"""``rlzoo sweep``: every (algorithm, env, seed) combination as an ordinary ``rlzoo train`` run.

Each run is the command ``python -m rlzoo.zoo.cli train --algo A --env E --seed S -f LOGS ...``, so a
sweep's run folders are exactly those of single ``rlzoo train`` calls (``run.json``, ``config.yml``,
``monitor/``, ``evaluations.csv``, ``model.zip``). Where the runs execute:

* default: a local pool of ``--jobs`` worker processes;
* ``--ray-address auto|HOST:PORT|local``: one Ray task per run, each asking ``--cpus-per-task`` CPUs
  (``local`` starts a private Ray instance; Ray is the optional extra ``rlzoo[ray]``);
* ``--emit-slurm FILE``: nothing runs; FILE is a SLURM array-job script with one task per run.
"""
from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo import run_lock
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.local_runs import LocalRuns, SweepStopped

_RUN_LINE = re.compile(r"^(?:training|resuming) \S+ on \S+: (?P<run>.+?) \(seed", re.MULTILINE)
_SKIPPED_LINE = re.compile(r"^skipped: (?P<why>.+)$", re.MULTILINE)
#: The ``skipped`` reason of a job a stopped sweep did not start
NOT_STARTED = "not started: the sweep was stopped"
_SEED_RANGE = re.compile(r"^(?P<a>\d+)(?:-(?P<b>\d+))?$")


@dataclass(frozen=True)
class SweepJob:
    """One run of a sweep."""

    algo: str
    env: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.algo} {self.env} seed {self.seed}"


def parse_names(text: str, what: str) -> list[str]:
    """``"ppo,a2c"`` -> ``["ppo", "a2c"]`` (order kept, duplicates dropped)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ZooError(f"{what}: expected a comma-separated list, got {text!r}")
    return list(dict.fromkeys(names))


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,10-11"`` -> ``[0, 3, 10, 11]``."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        m = _SEED_RANGE.match(part)
        if not m:
            raise ZooError(f"--seeds: expected numbers and ranges like 0-4,7, got {text!r}")
        a, b = int(m.group("a")), int(m.group("b") or m.group("a"))
        if b < a:
            raise ZooError(f"--seeds: range {part} is empty")
        seeds.extend(range(a, b + 1))
    return list(dict.fromkeys(seeds))


def plan(algos: list[str], envs: list[str], seeds: list[int], train_options: list[str],
         gym_packages: list[str] | None = None) -> list[SweepJob]:
    """Check every algorithm/env (and its configuration) before anything runs; return the jobs."""
    from rlzoo.zoo.config import build_config, parse_key_values
    from rlzoo.zoo.resolve import is_atari, resolve_algo, resolve_env

    resolved_algos = [resolve_algo(a) for a in algos]
    resolved_envs = [resolve_env(e, gym_packages) for e in envs]
    overrides, conf_file = _config_options(train_options)
    for algo, cls in resolved_algos:
        for env in resolved_envs:
            build_config(algo, cls, env, atari=is_atari(env), conf_file=conf_file,
                         overrides=parse_key_values(overrides, "--hyperparams"))
    return [SweepJob(algo, env, seed) for algo, _ in resolved_algos for env in resolved_envs for seed in seeds]


def _config_options(train_options: list[str]) -> tuple[list[str], str | None]:
    overrides, conf_file, i = [], None, 0
    while i < len(train_options) - 1:
        if train_options[i] == "--hyperparams":
            overrides.append(train_options[i + 1])
        elif train_options[i] == "--conf-file":
            conf_file = train_options[i + 1]
        i += 1
    return overrides, conf_file


def train_args(job: SweepJob, log_folder: str, train_options: list[str]) -> list[str]:
    """The ``rlzoo`` arguments of one run."""
    return ["train", "--algo", job.algo, "--env", job.env, "--seed", str(job.seed), "-f", log_folder,
            "--no-progress", *train_options]


def _option(options: list[str], flag: str) -> str | None:
    return next((options[i + 1] for i in range(len(options) - 1) if options[i] == flag), None)


def earlier_run(job: SweepJob, log_folder: str, n_timesteps: int | None = None) -> tuple[str, Path | None]:
    """What an earlier sweep left for ``job`` in ``log_folder``: ``("finished", dir)`` when a run of the
    same algo, env and seed reached its total (or ``n_timesteps``; a run made for a larger budget does not
    count for a smaller one), ``("resume", dir)`` for the most advanced one with a saved model or
    checkpoint, else ``("new", None)``."""
    from rlzoo.zoo.resume import latest_model

    best: tuple[int, Path] | None = None
    for _, run_dir in rf.list_runs(log_folder, job.algo, job.env):
        try:
            info = rf.read_run_info(run_dir)
        except ZooError:
            continue
        if info.get("seed") != job.seed:
            continue
        total = n_timesteps or int(info.get("n_timesteps", 0))
        if info.get("status") == "finished" and int(info.get("num_timesteps", 0)) >= total:
            if n_timesteps is not None and int(info.get("n_timesteps", 0)) > n_timesteps:
                continue  # a longer run: its final model is not one of this budget
            return "finished", run_dir
        _, steps = latest_model(run_dir)
        if steps > 0 and steps < total and (best is None or steps > best[0]):
            best = (steps, run_dir)
    return ("resume", best[1]) if best else ("new", None)


def run_train(args: list[str], cwd: str, threads: int = 1, runs: LocalRuns | None = None) -> dict:
    """Run ``python -m rlzoo.zoo.cli <args>`` (this interpreter) and report how it went.

    Used by the local pool (with its ``runs``) and, on the cluster node, by each Ray task.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.time()
    runs = runs if runs is not None else LocalRuns()
    proc = runs.start([sys.executable, "-m", "rlzoo.zoo.cli", *args], cwd=cwd, env=env,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc is None:
        return {"returncode": 0, "run_dir": None, "wall_s": 0.0, "host": socket.gethostname(), "error": "",
                "skipped": NOT_STARTED}
    try:
        stdout, stderr = proc.communicate()
    finally:
        runs.ended(proc)
    m = _RUN_LINE.search(stdout)
    skipped = _SKIPPED_LINE.search(stdout)
    if skipped and not m and proc.returncode == 0:  # train --resume-or-new ran nothing
        return {"returncode": 0, "run_dir": None, "wall_s": round(time.time() - start, 1),
                "host": socket.gethostname(), "error": "", "skipped": skipped.group("why")}
    result = {"returncode": proc.returncode, "run_dir": m.group("run") if m else None,
              "wall_s": round(time.time() - start, 1), "host": socket.gethostname(),
              "error": " ".join(stderr.strip().splitlines()[-1:]) if proc.returncode else ""}
    if runs.stopped_by is not None and proc.returncode in (128 + runs.stopped_by, -runs.stopped_by):
        # saved and marked interrupted (or stopped before its handlers were in place): --resume continues it
        result["interrupted"] = True
    return result


#: Under the log folder: a lock file per (algo, env, seed), held by the ``train --resume-or-new`` that runs it
CLAIMS_DIR = ".sweep-claims"


def resume_or_new(job: SweepJob, log_folder: str, n_timesteps: int | None) -> tuple[Path | None, str | None]:
    """What ``rlzoo train --resume-or-new`` does for ``job``: ``(run_dir, None)`` to continue that run,
    ``(None, None)`` to start a new one, ``(None, why)`` to skip it.

    The job is first claimed for the life of this process (``<log_folder>/.sweep-claims/<algo>_<env>_seed<N>.lock``),
    then the log folder is looked at: a job another process holds, or one that already finished, is
    skipped. So sweeps and requeued batch tasks over the same runs, started at any times, run each once."""
    claim_file = Path(log_folder) / CLAIMS_DIR / f"{job.algo}_{rf.env_folder_name(job.env)}_seed{job.seed}.lock"
    holder = run_lock.claim(claim_file)
    if holder is not None:
        return None, f"{job.label} is being run by {holder}"
    kind, run_dir = earlier_run(job, log_folder, n_timesteps)
    if kind == "finished":
        return None, f"{job.label} already finished in {run_dir}"
    return run_dir, None


def run_local(jobs: list[SweepJob], args: list[list[str]], n_jobs: int, threads: int,
              on_result: Callable[[SweepJob, dict], None]) -> None:
    """Run the jobs on a pool of ``n_jobs`` local processes; raise :class:`SweepStopped` after a
    SIGINT/SIGTERM, once every run it reached has saved itself (see :class:`LocalRuns`)."""
    cwd = os.getcwd()
    runs = LocalRuns()
    with runs.forwarding_signals(), ThreadPoolExecutor(max_workers=n_jobs) as pool:
        futures = {pool.submit(run_train, a, cwd, threads, runs): job for job, a in zip(jobs, args, strict=True)}
        for future in as_completed(futures):
            on_result(futures[future], future.result())
    if runs.stopped_by is not None:
        raise SweepStopped(runs.stopped_by)


def run_ray(jobs: list[SweepJob], args: list[list[str]], address: str, cpus_per_task: float,
            on_result: Callable[[SweepJob, dict], None]) -> None:
    """Run one Ray task per job on the cluster at ``address`` (``local``: a private local instance)."""
    try:
        import ray
    except ImportError:
        raise ZooError("--ray-address needs Ray: pip install 'rlzoo[ray]'") from None
    import logging

    try:
        if address == "local":
            ray.init(logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
        else:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as e:  # ConnectionError, RuntimeError ...
        raise ZooError(f"cannot connect to Ray at '{address}': {' '.join(str(e).split())[:300]}") from None
    try:
        remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(run_train)
        threads = max(int(cpus_per_task), 1)
        pending = {remote.remote(a, os.getcwd(), threads): job for job, a in zip(jobs, args, strict=True)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except Exception as e:  # the task itself died (node lost, ...)
                result = {"returncode": -1, "run_dir": None, "wall_s": 0.0, "host": "?",
                          "error": " ".join(str(e).split())[:300]}
            on_result(job, result)
    finally:
        ray.shutdown()


def slurm_script(jobs: list[SweepJob], args: list[list[str]], log_folder: str, cpus_per_task: int,
                 max_parallel: int | None = None, time_limit: str | None = None,
                 partition: str | None = None) -> str:
    """A SLURM array-job script: task ``i`` runs ``args[i]``.

    SIGTERM reaches ``rlzoo train`` 120 s before the time limit (``--signal=B:TERM@120`` and
    ``exec``), so a pre-empted or timed-out run saves its model and is marked interrupted.
    """
    n = len(jobs)
    array = f"0-{n - 1}" + (f"%{max_parallel}" if max_parallel else "")
    slurm_dir = Path(log_folder) / "slurm"
    lines = [
        "#!/bin/bash",
        f"# rlzoo sweep: {n} runs, one SLURM array task each. Submit with: sbatch {{this file}}",
        "#SBATCH --job-name=rlzoo-sweep",
        f"#SBATCH --array={array}",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        f"#SBATCH --output={slurm_dir}/%x_%A_%a.out",
        "#SBATCH --signal=B:TERM@120",
    ]
    if time_limit:
        lines.append(f"#SBATCH --time={time_limit}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    lines += ["set -euo pipefail", "", "RUNS=("]
    lines += [f"  {shlex.quote(shlex.join(a))}  # {job.label}" for job, a in zip(jobs, args, strict=True)]
    lines += [
        ")",
        'i="${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (or set SLURM_ARRAY_TASK_ID)}"',
        f"cd {shlex.quote(os.getcwd())}",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}" MKL_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        'eval "set -- ${RUNS[$i]}"',
        f'exec {shlex.quote(sys.executable)} -m rlzoo.zoo.cli "$@"',
        "",
    ]
    return "\n".join(lines)


def sweep(algos: str, envs: str, seeds: str, log_folder: str = "logs", jobs: int | None = None,
          ray_address: str | None = None, cpus_per_task: float = 1, emit_slurm: Path | None = None,
          slurm_time: str | None = None, slurm_partition: str | None = None, train_options: list[str] | None = None,
          gym_packages: list[str] | None = None, dry_run: bool = False, progress: bool = True,
          resume: bool = False) -> list[tuple[SweepJob, dict]]:
    """Run (or emit) every combination; returns ``(job, result)`` pairs. See ``rlzoo sweep --help``.

    With ``resume``, a job whose earlier run (same log folder, algo, env and seed) finished is skipped
    and one that was interrupted continues from its last saved model: each run is ``rlzoo train
    --resume-or-new``, which claims its job and looks again as it starts (:func:`resume_or_new`), so
    overlapping sweeps, and SLURM tasks that are requeued, run each job once."""
    if cpus_per_task <= 0:
        raise ZooError(f"--cpus-per-task must be positive, got {cpus_per_task}")
    if jobs is not None and jobs <= 0:
        raise ZooError(f"--jobs must be positive, got {jobs}")
    if emit_slurm is not None and ray_address is not None:
        raise ZooError("use either --ray-address or --emit-slurm, not both")
    options = list(train_options or []) + [x for p in gym_packages or [] for x in ("--gym-packages", p)]
    plan_jobs = plan(parse_names(algos, "--algos"), parse_names(envs, "--envs"), parse_seeds(seeds), options,
                     gym_packages)
    log_folder = os.path.abspath(log_folder)  # the same folder for every worker and node
    args = [train_args(job, log_folder, options) for job in plan_jobs]
    if resume:  # what is there now, for the summary; each run decides again as it starts (--resume-or-new)
        n_option = _option(options, "-n")
        earlier = [earlier_run(job, log_folder, int(n_option) if n_option else None)[0] for job in plan_jobs]
        keep = [kind != "finished" for kind in earlier]
        print(f"sweep --resume: {keep.count(False)} run(s) already finished, {earlier.count('resume')} to resume, "
              f"{earlier.count('new')} new", flush=True)
        plan_jobs = [j for j, k in zip(plan_jobs, keep, strict=True) if k]
        args = [[*a, "--resume-or-new"] for a, k in zip(args, keep, strict=True) if k]

    if emit_slurm is not None:
        (Path(log_folder) / "slurm").mkdir(parents=True, exist_ok=True)
        rf.atomic_write_text(emit_slurm, slurm_script(plan_jobs, args, log_folder, max(int(cpus_per_task), 1), jobs,
                                                      slurm_time, slurm_partition))
        os.chmod(emit_slurm, 0o755)
        print(f"wrote {emit_slurm}: a SLURM array of {len(plan_jobs)} runs; submit it with: sbatch {emit_slurm}")
        return []
    if dry_run:
        for a in args:
            print(shlex.join(["rlzoo", *a]))
        return []

    n_jobs = jobs or max((os.cpu_count() or 1) // max(int(cpus_per_task), 1), 1)
    where = f"Ray at {ray_address} ({cpus_per_task} CPU per run)" if ray_address else f"{n_jobs} local process(es)"
    print(f"sweep: {len(plan_jobs)} runs ({algos} x {envs} x seeds {seeds}) on {where}; logs in {log_folder}",
          flush=True)
    results: list[tuple[SweepJob, dict]] = []
    with _SweepProgress(len(plan_jobs), progress) as bar:
        def on_result(job: SweepJob, result: dict) -> None:
            results.append((job, result))
            bar.done(job, result)

        if ray_address:
            run_ray(plan_jobs, args, ray_address, cpus_per_task, on_result)
        else:
            try:
                run_local(plan_jobs, args, n_jobs, max(int(cpus_per_task), 1), on_result)
            except SweepStopped as stop:
                saved = sum(bool(r.get("interrupted")) for _, r in results)
                print(f"sweep stopped by {stop}: {saved} run(s) saved and marked interrupted, "
                      f"{sum(r.get('skipped') == NOT_STARTED for _, r in results)} not started; "
                      "run the same sweep with --resume to continue", flush=True)
                raise SystemExit(128 + stop.signum) from None
    failed = [(j, r) for j, r in results if r["returncode"] != 0]
    n_skipped = sum("skipped" in r for _, r in results)
    print(f"sweep done: {len(results) - len(failed) - n_skipped} of {len(results)} runs finished"
          + (f", {n_skipped} skipped" if n_skipped else "")
          + (f"; summarize them with: rlzoo benchmark -f {log_folder}" if not failed else ""), flush=True)
    if failed:
        raise ZooError(f"{len(failed)} of {len(results)} runs failed: "
                       + "; ".join(f"{j.label}: {r['error'] or 'exit ' + str(r['returncode'])}" for j, r in failed[:3]))
    return results


class _SweepProgress:
    """A rich progress bar of finished runs, and one line per run."""

    def __init__(self, total: int, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(highlight=False)
        self.progress = Progress(TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=self.console, disable=not (enabled and sys.stdout.isatty()), transient=True)
        self.task = self.progress.add_task("runs", total=total)
        self.total, self.count = total, 0

    def __enter__(self) -> _SweepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def done(self, job: SweepJob, result: dict) -> None:
        self.count += 1
        status = "ok" if result["returncode"] == 0 else f"FAILED (exit {result['returncode']}): {result['error']}"
        if result.get("interrupted"):
            status = "interrupted: saved, --resume continues it"
        elif "skipped" in result:
            status = f"skipped: {result['skipped']}"
        self.console.print(f"[{self.count}/{self.total}] {job.label}: {status} in {result['wall_s']:.1f} s"
                           f" -> {result['run_dir'] or '?'}", soft_wrap=True)
        self.progress.advance(self.task)


def register(app: Any) -> None:
    """Add ``rlzoo sweep`` to the Typer app (called by ``rlzoo.zoo.cli``)."""
    import typer

    @app.command("sweep")
    def sweep_command(
        algos: str = typer.Option(..., "--algos", help="Comma-separated algorithms, e.g. ppo,a2c."),
        envs: str = typer.Option(..., "--envs", help="Comma-separated env ids, e.g. CartPole-v1,Pendulum-v1."),
        seeds: str = typer.Option("0-4", "--seeds", help="Seeds: ranges and lists, e.g. 0-4 or 0,3,7."),
        log_folder: str = typer.Option("logs", "-f", "--log-folder", help="Root folder of the run folders."),
        jobs: int | None = typer.Option(
            None, "--jobs", "-j", help="Local runs at once (default: CPUs / cpus-per-task); SLURM: array limit."),
        ray_address: str | None = typer.Option(
            None, "--ray-address", help="Run on Ray: auto, HOST:PORT, or local (a private instance)."),
        cpus_per_task: float = typer.Option(1, "--cpus-per-task", help="CPUs per run (Ray request, SLURM, threads)."),
        emit_slurm: Path | None = typer.Option(
            None, "--emit-slurm", help="Write a SLURM array script instead of running."),
        slurm_time: str | None = typer.Option(None, "--slurm-time", help="SLURM time limit per run, e.g. 04:00:00."),
        slurm_partition: str | None = typer.Option(None, "--slurm-partition", help="SLURM partition."),
        n_timesteps: int | None = typer.Option(
            None, "-n", "--n-timesteps", help="Timesteps per run (default: the file's)."),
        n_envs: int | None = typer.Option(None, "--n-envs", help="Parallel envs per run (default: the file's)."),
        eval_freq: int | None = typer.Option(None, "--eval-freq", help="Evaluate every K timesteps (train's default)."),
        eval_episodes: int | None = typer.Option(None, "--eval-episodes", help="Episodes per evaluation."),
        save_freq: int | None = typer.Option(None, "--save-freq", help="Checkpoint every K timesteps."),
        hyperparams: list[str] | None = typer.Option(None, "--hyperparams", "-params", help="key=value for every run."),
        conf_file: Path | None = typer.Option(None, "--conf-file", "-conf", help="Hyperparameter YAML for every run."),
        device: str | None = typer.Option(None, "--device", help="Torch device of every run."),
        gym_packages: list[str] | None = typer.Option(None, "--gym-packages", help="Modules registering envs."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the train commands; run nothing."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        resume: bool = typer.Option(False, "--resume",
                                    help="Skip runs that already finished in -f; continue interrupted ones."),
    ) -> None:
        """Train every algo x env x seed combination, each an ordinary `rlzoo train` run folder."""
        options: list[str] = []
        for flag, value in (("-n", n_timesteps), ("--n-envs", n_envs), ("--eval-freq", eval_freq),
                            ("--eval-episodes", eval_episodes), ("--save-freq", save_freq), ("--device", device),
                            ("--conf-file", str(conf_file) if conf_file else None)):
            if value is not None:
                options += [flag, str(value)]
        for item in hyperparams or []:
            options += ["--hyperparams", item]
        sweep(algos, envs, seeds, log_folder=log_folder, jobs=jobs, ray_address=ray_address,
              cpus_per_task=cpus_per_task, emit_slurm=emit_slurm, slurm_time=slurm_time,
              slurm_partition=slurm_partition, train_options=options, gym_packages=gym_packages or [],
              dry_run=dry_run, progress=progress, resume=resume)
