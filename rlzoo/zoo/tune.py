"""``rlzoo optimize``: hyperparameter search with Optuna, by one worker or many cooperating ones.

* Storage: a journal file by default (``logs/<algo>/<EnvId>/optuna.log``; appends under a lock file,
  so it is safe on a shared file system), or any Optuna RDB URL (``sqlite:///tune.db``,
  ``postgresql://...``). Workers started with the same ``--storage`` and ``--study-name`` share
  one study.
* ``--max-total-trials`` caps the whole study: a new trial is created only after counting, under a
  lock, the trials already finished, running or waiting (journal and SQLite: a lock file; PostgreSQL
  and MySQL: an advisory lock). A worker that finds the cap reached stops once no trial of another
  worker is still running (one of them may yet be re-queued, see below).
* Heartbeat: a running trial records a heartbeat every ``--heartbeat-interval`` seconds, as a trial
  system attribute (journal and RDB alike; only Optuna's public storage API). A trial silent for ``--grace-period``
  seconds (its worker was killed or pre-empted) is marked FAIL by the next live worker and re-queued
  with the same parameters (``RetryHeartbeatStaleTrialCallback``); a re-queued trial replaces the failed
  one in the cap count.
* A trial trains ``--n-seeds-per-trial`` agents (seeds 0, 1, ... in every trial, so trials compare
  alike; ``--seed`` seeds the sampler only) one after the other, evaluating each one
  ``--n-evaluations`` times; every evaluation is reported to the pruner (step ``seed * n_evaluations
  + k``, so steps compare alike across trials). The score is the mean final evaluation over the
  seeds. NaN rewards or parameters (a diverging run) prune the trial.
* Output: ``<study>_trials.csv`` (one row per trial) and ``<study>_best.yml`` (the best trial as a
  ready ``hyperparams/<algo>.yml`` entry) next to the journal file (or in ``logs/<algo>/<EnvId>``).
  ``rlzoo train --storage S --study-name N --trial-id K`` trains with trial K's hyperparameters.
"""
from __future__ import annotations

import functools
import sys
import time
import warnings
from pathlib import Path
from enum import Enum
from typing import Any

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.study_storage import (MaxTrialsReached, default_storage, default_study_name, fail_stale_trials,
                                     is_rdb_url, load_study, open_storage, with_heartbeat)
from rlzoo.zoo.tune_objective import Objective
from rlzoo.zoo.tune_report import TrialReporter, print_summary, write_report


class Sampler(str, Enum):
    """``--sampler`` choices."""

    tpe = "tpe"
    random = "random"
    auto = "auto"


class Pruner(str, Enum):
    """``--pruner`` choices."""

    median = "median"
    halving = "halving"
    none = "none"


SAMPLERS = tuple(s.value for s in Sampler)
PRUNERS = tuple(p.value for p in Pruner)


# ----------------------------------------------------------------------------- studies
def _yaml_inline(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**9)
    return text.removesuffix("...\n").strip()


def study_owner(study: Any) -> tuple[str, str] | None:
    """``(algo, env_id)`` the study tunes, or None while no worker has claimed it yet."""
    owner = study.user_attrs.get("owner")
    if owner is None and study.user_attrs.get("algo") and study.user_attrs.get("env"):
        owner = [study.user_attrs["algo"], study.user_attrs["env"]]  # studies written before "owner" existed
    return (str(owner[0]), str(owner[1])) if owner else None


def join_study(backend: Any, study_name: str, algo: str, env_id: str, sampler: Any = None, pruner: Any = None,
               wait: float = 10.0) -> tuple[Any, tuple[str, str]]:
    """Create or load study ``study_name``; return it with the ``(algo, env_id)`` it tunes.

    Workers starting together race on a fresh study. Creating a study is atomic in every Optuna storage, so
    the one worker whose create succeeds writes the owner; the others wait (up to ``wait`` s) to read it.
    A study with no owner after that (made outside rlzoo) is claimed by the worker that finds it.
    """
    import optuna

    try:
        study = optuna.create_study(storage=backend, study_name=study_name, direction="maximize",
                                    sampler=sampler, pruner=pruner)
        study.set_user_attr("owner", [algo, env_id])
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=backend, study_name=study_name, sampler=sampler, pruner=pruner)
    deadline = time.monotonic() + wait
    while (owner := study_owner(study)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if owner is None:
        study.set_user_attr("owner", [algo, env_id])
        owner = (algo, env_id)
    return study, owner


def trial_overrides(algo: str, env_id: str, storage: str | None, study_name: str | None,
                    trial_id: int | None, log_folder: str = "logs") -> list[str]:
    """``key=value`` overrides (``--hyperparams`` syntax) with the hyperparameters of trial number ``trial_id``."""
    import optuna

    from rlzoo.zoo.resolve import resolve_algo, resolve_env

    if trial_id is None:
        raise ZooError("--storage/--study-name select a study; "
                       "add --trial-id K to train with trial K's hyperparameters")
    if trial_id < 0:
        raise ZooError(f"--trial-id must be >= 0, got {trial_id}")
    algo, _ = resolve_algo(algo)
    env_id = resolve_env(env_id)
    storage_text = storage or default_storage(log_folder, algo, env_id)
    study_name = study_name or default_study_name(algo, env_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(open_storage(storage_text, must_exist=True), study_name, storage_text)
    owner = study_owner(study)
    if owner is not None and owner != (algo, env_id):
        raise ZooError(f"study '{study_name}' tunes {owner[0]} on {owner[1]}, not {algo} on {env_id}")
    trials = study.get_trials(deepcopy=False)
    match = [t for t in trials if t.number == trial_id]
    if not match:
        raise ZooError(f"study '{study_name}' has no trial {trial_id} (trials 0-{len(trials) - 1})" if trials
                       else f"study '{study_name}' has no trials yet")
    hyperparams = match[0].user_attrs.get("hyperparams")
    if hyperparams is None:
        raise ZooError(f"trial {trial_id} of study '{study_name}' has no hyperparameters yet "
                       f"(state {match[0].state.name})")
    print(f"hyperparameters of trial {trial_id} ({match[0].state.name}, value {match[0].value}) "
          f"of study '{study_name}' in {storage_text}", flush=True)
    return [f"{key}={_yaml_inline(value)}" for key, value in hyperparams.items()]


# ----------------------------------------------------------------------------- optimize
def _make_sampler(name: str, n_startup_trials: int, seed: int | None) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: parallel workers see running trials as bad, so they do not propose the same point
    return optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, seed=seed, multivariate=True,
                                      constant_liar=True)


def _make_pruner(name: str, n_startup_trials: int, n_evaluations: int) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_evaluations // 3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)
    return optuna.pruners.NopPruner()


def optimize(algo: str, env_id: str, n_trials: int | None = None, max_total_trials: int | None = None,
             n_timesteps: int | None = None, n_evaluations: int = 10, eval_episodes: int = 5,
             n_seeds_per_trial: int = 1, sampler: str = "tpe", pruner: str = "median", n_startup_trials: int = 5,
             storage: str | None = None, study_name: str | None = None, seed: int | None = None,
             timeout: float | None = None, heartbeat_interval: int = 60, grace_period: int | None = None,
             max_retry: int = 3, log_folder: str = "logs", conf_file: Path | None = None,
             hyperparams: list[str] | None = None, env_kwargs: list[str] | None = None,
             n_envs: int | None = None, device: str = "auto", gym_packages: list[str] | None = None,
             progress: bool = True, verbose: int = 0, optimization_log_path: Path | None = None,
             track: Any = None) -> Any:
    """Run one tuning worker on the study; returns the Optuna study. See ``rlzoo optimize --help``.

    ``optimization_log_path``: write Optuna's history and importance plots there at the end;
    ``track``: a :class:`rlzoo.zoo.tracking.TrackingOptions`, one W&B run per trial."""
    import gymnasium as gym
    import optuna

    from rlzoo.zoo.config import parse_key_values
    from rlzoo.zoo.resolve import resolve_algo, resolve_env
    from rlzoo.zoo.search_spaces import SEARCH_SPACES, SpaceContext

    # ---- check everything before touching the storage
    if n_trials is None and max_total_trials is None:
        raise ZooError("give --n-trials N (trials of this worker) and/or --max-total-trials M (trials of the study)")
    for name, value in (("--n-trials", n_trials), ("--max-total-trials", max_total_trials),
                        ("--n-evaluations", n_evaluations), ("--eval-episodes", eval_episodes),
                        ("--n-seeds-per-trial", n_seeds_per_trial), ("--n-timesteps", n_timesteps)):
        if value is not None and value <= 0:
            raise ZooError(f"{name} must be positive, got {value}")
    if sampler not in SAMPLERS:
        raise ZooError(f"unknown sampler '{sampler}' (choose from {', '.join(SAMPLERS)})")
    if pruner not in PRUNERS:
        raise ZooError(f"unknown pruner '{pruner}' (choose from {', '.join(PRUNERS)})")
    if track is not None:
        from rlzoo.zoo.tracking import require_wandb

        require_wandb()
    if heartbeat_interval < 0 or (grace_period is not None and grace_period <= heartbeat_interval):
        raise ZooError("--heartbeat-interval must be >= 0 and --grace-period larger than it")
    algo, cls = resolve_algo(algo)
    if algo not in SEARCH_SPACES:
        raise ZooError(f"no search space for '{algo}' (spaces exist for: {', '.join(sorted(SEARCH_SPACES))})")
    env_id = resolve_env(env_id, gym_packages)
    fixed = parse_key_values(hyperparams, "--hyperparams")
    objective = Objective(algo, cls, env_id, fixed, conf_file, n_timesteps, n_envs,
                          parse_key_values(env_kwargs, "--env-kwargs"), n_evaluations, eval_episodes,
                          n_seeds_per_trial, 0, device, None)  # every trial trains seeds 0..n-1: alike
    base = objective.config(fixed)  # validates the file entry and the fixed overrides now
    entry = objective.config(fixed, full_budget=True)  # the best-trial YAML keeps the file's full budget
    probe = gym.make(env_id, **base.env_kwargs)
    continuous = isinstance(probe.action_space, gym.spaces.Box)
    probe.close()
    objective.ctx = SpaceContext(n_envs=base.n_envs, continuous=continuous, n_timesteps=base.n_timesteps)

    storage_text = storage or default_storage(log_folder, algo, env_id)
    study_name = study_name or default_study_name(algo, env_id)
    out_dir = (Path(storage_text).parent if not is_rdb_url(storage_text)
               else Path(log_folder) / algo / rf.env_folder_name(env_id))

    # failed trials are reported by TrialReporter (one line); Optuna's own log adds tracebacks
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose >= 2 else optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler_text = sampler
    if sampler == "auto":
        from rlzoo.zoo.tune_extras import auto_sampler

        sampler_obj, sampler_text = auto_sampler(algo, cls, objective.ctx, fixed, max_total_trials or n_trials,
                                                 n_startup_trials, seed,
                                                 functools.partial(_make_sampler, "tpe", n_startup_trials, seed))
    else:
        sampler_obj = _make_sampler(sampler, n_startup_trials, seed)
    objective.tracking, objective.study_name, objective.track_folder = track, study_name, out_dir
    backend = open_storage(storage_text, heartbeat_interval, grace_period, max_retry, max_total_trials)
    study, owner = join_study(backend, study_name, algo, env_id, sampler_obj,
                              _make_pruner(pruner, n_startup_trials, n_evaluations * n_seeds_per_trial))
    if owner != (algo, env_id):
        raise ZooError(f"study '{study_name}' in {storage_text} tunes {owner[0]} on {owner[1]}, not {algo} on {env_id}")

    cap = f", study cap {max_total_trials}" if max_total_trials else ""
    print(f"optimizing {algo} on {env_id}: study '{study_name}' in {storage_text} ({sampler_text} sampler, {pruner} "
          f"pruner, {base.n_timesteps} timesteps x {n_seeds_per_trial} seed(s) per trial"
          f"{f', {n_trials} trials for this worker' if n_trials else ''}{cap})", flush=True)
    reporter = TrialReporter(n_trials, max_total_trials, progress and sys.stdout.isatty(), fixed)
    try:
        with reporter:
            reason = _work(study, backend, objective, n_trials, timeout, reporter)
    finally:
        csv_path, yml_path = write_report(study, out_dir, algo, env_id, entry.hyperparams, base.n_timesteps)
    print_summary(study, reporter, reason, csv_path, yml_path)
    if optimization_log_path is not None:
        from rlzoo.zoo.tune_extras import write_optimization_plots

        for path in write_optimization_plots(study, Path(optimization_log_path)):
            print(f"optimization plot: {path}", flush=True)
    return study


def _work(study: Any, storage: Any, objective: Any, n_trials: int | None, timeout: float | None,
          reporter: TrialReporter) -> str:
    """Run trials until this worker's ``n_trials``, the timeout, or the study cap; returns why it stopped.

    At the cap, a worker with a heartbeat waits while other trials are still running: if their
    worker died, the trial turns stale, is re-queued, and this worker runs it.
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    deadline = None if timeout is None else time.monotonic() + timeout
    waiting_said = False
    run_trial = with_heartbeat(storage, study, objective)

    def after_trial(study: Any, trial: Any) -> None:
        reporter(study, trial)
        fail_stale_trials(storage, study)  # before the next trial is created, as Optuna does for RDB storages

    while True:
        remaining = None if n_trials is None else n_trials - reporter.own
        if remaining is not None and remaining <= 0:
            return f"ran its {n_trials} trials"
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return "timeout"
        try:
            fail_stale_trials(storage, study)
            study.optimize(run_trial, n_trials=remaining, timeout=left, catch=(Exception,),
                           callbacks=[after_trial], gc_after_trial=True)
            return "timeout" if deadline is not None and time.monotonic() >= deadline else f"ran its {n_trials} trials"
        except MaxTrialsReached as e:
            others = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
            if not storage.heartbeat_interval or not others:
                return str(e)
            if not waiting_said:
                reporter.console.print(f"{e}; waiting for {len(others)} running trial(s) of other workers "
                                       "(a trial whose worker died is re-queued after the grace period)")
                waiting_said = True
            time.sleep(max(storage.heartbeat_interval, 1))
        except UpdateFinishedTrialError:  # another worker declared our trial stale and failed it
            continue
        except optuna.exceptions.StorageInternalError as e:
            raise ZooError(f"storage error: {e}") from None


# ----------------------------------------------------------------------------- command line
def register(app: Any) -> None:
    """Add ``rlzoo optimize`` to the Typer app (called by ``rlzoo.zoo.cli``)."""
    import typer

    @app.command("optimize")
    def optimize_command(
        algo: str = typer.Option(..., "--algo", help="Algorithm name (see `rlzoo list`)."),
        env: str = typer.Option(..., "--env", help="Gymnasium env id."),
        n_trials: int | None = typer.Option(None, "--n-trials", help="Trials run by this worker."),
        max_total_trials: int | None = typer.Option(None, "--max-total-trials",
                                                       help="Cap on the trials of the whole study (all workers)."),
        n_timesteps: int | None = typer.Option(None, "-n", "--n-timesteps",
                                                  help="Training steps per seed of a trial (default: the file's)."),
        n_evaluations: int = typer.Option(10, "--n-evaluations", help="Evaluations per seed, reported for pruning."),
        eval_episodes: int = typer.Option(5, "--eval-episodes", help="Episodes per evaluation."),
        n_seeds_per_trial: int = typer.Option(1, "--n-seeds-per-trial", help="Seeds averaged in a trial's score."),
        sampler: Sampler = typer.Option(Sampler.tpe, "--sampler",
                                        help="tpe, random or auto (GP for small all-numeric spaces, else TPE)."),
        pruner: Pruner = typer.Option(Pruner.median, "--pruner", help="median, halving or none."),
        n_startup_trials: int = typer.Option(5, "--n-startup-trials", help="Random trials before TPE and pruning."),
        storage: str | None = typer.Option(
            None, "--storage", help="Journal FILE.log (default logs/<algo>/<env>/optuna.log) or RDB URL."),
        study_name: str | None = typer.Option(None, "--study-name", help="Study name (default <algo>_<env>)."),
        seed: int | None = typer.Option(None, "--seed", help="Sampler seed (give each worker its own)."),
        timeout: float | None = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
        heartbeat_interval: int = typer.Option(60, "--heartbeat-interval", help="Seconds between heartbeats (0: off)."),
        grace_period: int | None = typer.Option(None, "--grace-period",
                                                   help="Seconds without heartbeat before a trial is failed and "
                                                        "re-queued (default 2 x interval)."),
        max_retry: int = typer.Option(3, "--max-retry", help="Re-queues of a trial whose worker died."),
        log_folder: str = typer.Option("logs", "-f", "--log-folder", help="Root folder of logs and reports."),
        conf_file: Path | None = typer.Option(None, "--conf-file", "-conf", help="Base hyperparameter YAML file."),
        hyperparams: list[str] | None = typer.Option(None, "--hyperparams", "-params",
                                                        help="Fixed key=value hyperparameters (not tuned)."),
        env_kwargs: list[str] | None = typer.Option(None, "--env-kwargs", help="key=value for gymnasium.make."),
        n_envs: int | None = typer.Option(None, "--n-envs", help="Parallel envs (default: the file's)."),
        device: str = typer.Option("auto", "--device", help="Torch device."),
        gym_packages: list[str] | None = typer.Option(None, "--gym-packages", help="Modules registering envs."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the trial progress bar."),
        verbose: int = typer.Option(0, "--verbose", "-v", help="2: Optuna's own log lines."),
        optimization_log_path: Path | None = typer.Option(
            None, "--optimization-log-path", help="Folder for Optuna's history and importance plots (PNG; HTML too "
                                                  "with plotly)."),
        track: bool = typer.Option(False, "--track", help="One W&B run per trial (pip install 'rlzoo[tracking]')."),
        wandb_project: str = typer.Option("rlzoo", "--wandb-project", "--wandb-project-name", help="W&B project."),
        wandb_entity: str | None = typer.Option(None, "--wandb-entity", help="W&B entity (user or team)."),
        wandb_tags: list[str] | None = typer.Option(None, "--wandb-tags", help="W&B tags of the trial runs."),
    ) -> None:
        """Tune hyperparameters with Optuna; start it several times on one --storage to add workers."""
        optimize(algo, env, n_trials=n_trials, max_total_trials=max_total_trials, n_timesteps=n_timesteps,
                 n_evaluations=n_evaluations, eval_episodes=eval_episodes, n_seeds_per_trial=n_seeds_per_trial,
                 sampler=sampler.value, pruner=pruner.value, n_startup_trials=n_startup_trials, storage=storage,
                 study_name=study_name, seed=seed, timeout=timeout, heartbeat_interval=heartbeat_interval,
                 grace_period=grace_period, max_retry=max_retry, log_folder=log_folder, conf_file=conf_file,
                 hyperparams=hyperparams or [], env_kwargs=env_kwargs or [], n_envs=n_envs, device=device,
                 gym_packages=gym_packages or [], progress=progress, verbose=verbose,
                 optimization_log_path=optimization_log_path, track=_tracking(track, wandb_project, wandb_entity,
                                                                              wandb_tags))


def _tracking(track: bool, project: str, entity: str | None, tags: list[str] | None) -> Any:
    """``--track`` options as TrackingOptions (None without --track)."""
    if not track:
        if entity or tags:
            raise ZooError("--wandb-entity and --wandb-tags need --track")
        return None
    from rlzoo.zoo.tracking import TrackingOptions, require_wandb

    require_wandb()
    return TrackingOptions(project=project, entity=entity, tags=list(tags or []))
