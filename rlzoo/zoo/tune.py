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

import csv
import functools
import io
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path
from enum import Enum
from typing import Any

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.study_storage import (MaxTrialsReached, count_used_trials, default_storage, default_study_name,
                                     fail_stale_trials, is_rdb_url, load_study, open_storage, with_heartbeat)


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


# ----------------------------------------------------------------------------- the objective
def _finite_params(model: Any) -> bool:
    import torch

    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())


@functools.cache
def _trial_eval_callback_cls() -> type:
    from rlzoo.callbacks import EvalCallback

    class TrialEvalCallback(EvalCallback):
        """EvalCallback that reports each evaluation to the trial and stops on pruning or NaN."""

        def __init__(self, eval_env: Any, trial: Any, step_offset: int, n_eval_episodes: int, eval_freq: int,
                     deterministic: bool, max_evals: int) -> None:
            super().__init__(eval_env, n_eval_episodes=n_eval_episodes, eval_freq=eval_freq,
                             deterministic=deterministic, verbose=0, warn=False)
            self.trial = trial
            self.step_offset = step_offset
            self.n_evals, self.max_evals = 0, max_evals
            self.pruned = False
            self.diverged = False

        def _on_step(self) -> bool:
            if self.eval_freq <= 0 or self.n_calls % self.eval_freq != 0 or self.n_evals >= self.max_evals:
                return True  # (rollouts longer than the budget overshoot it: only max_evals are reported)
            continue_training = super()._on_step()
            value = self.last_mean_reward
            if not math.isfinite(value) or not _finite_params(self.model):
                self.diverged = True
                return False
            self.trial.report(value, self.step_offset + self.n_evals)
            self.n_evals += 1
            if self.trial.should_prune():
                self.pruned = True
                return False
            return continue_training

    return TrialEvalCallback


class Objective:
    """Train and evaluate one trial's hyperparameters (the Optuna objective of a worker)."""

    def __init__(self, algo: str, cls: type, env_id: str, fixed: dict, conf_file: Path | None,
                 n_timesteps: int | None, n_envs: int | None, env_kwargs: dict, n_evaluations: int,
                 eval_episodes: int, n_seeds: int, seed: int, device: str, ctx: Any) -> None:
        self.algo, self.cls, self.env_id = algo, cls, env_id
        self.fixed, self.conf_file = fixed, conf_file
        self.n_timesteps, self.n_envs, self.env_kwargs = n_timesteps, n_envs, env_kwargs
        self.n_evaluations, self.eval_episodes, self.n_seeds = n_evaluations, eval_episodes, n_seeds
        self.seed, self.device, self.ctx = seed, device, ctx
        self.tracking: Any = None  # TrackingOptions: one W&B run per trial (--track)
        self.study_name, self.track_folder = "", Path(".")

    def config(self, hyperparams: dict, full_budget: bool = False) -> Any:
        """The validated experiment config of a trial (its hyperparameters over the file entry);
        ``full_budget``: the file's ``n_timesteps`` instead of the tuning budget ``-n``."""
        from rlzoo.zoo.config import build_config
        from rlzoo.zoo.resolve import is_atari

        return build_config(self.algo, self.cls, self.env_id, atari=is_atari(self.env_id), conf_file=self.conf_file,
                            overrides=hyperparams, n_timesteps=None if full_budget else self.n_timesteps,
                            n_envs=self.n_envs, env_kwargs=self.env_kwargs)

    def __call__(self, trial: Any) -> float:
        import optuna

        from rlzoo.zoo.search_spaces import sample_hyperparams

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sampled = sample_hyperparams(self.algo, trial, self.cls, self.ctx)
        hyperparams = {**sampled, **self.fixed}
        trial.set_user_attr("hyperparams", hyperparams)
        finals: list[float] = []
        tracker = None
        if self.tracking is not None:
            from rlzoo.zoo.tune_extras import trial_tracker

            tracker = trial_tracker(self.tracking, self.study_name, trial, self.algo, self.env_id, hyperparams,
                                    self.track_folder)
        state, value = "failed", None
        try:
            config = self.config(hyperparams)
            trial.set_user_attr("n_timesteps", config.n_timesteps)
            for s in range(self.n_seeds):
                finals.append(self._train_one(trial, config, self.seed + s, s * self.n_evaluations, tracker))
                trial.set_user_attr("seed_rewards", finals)
            if not all(math.isfinite(f) for f in finals):
                raise optuna.TrialPruned("diverged: non-finite reward")
            value = float(sum(finals) / len(finals))
            state = "complete"
        except optuna.TrialPruned as e:
            trial.set_user_attr("note", str(e))
            state = "pruned"
            raise
        except Exception as e:  # the trial fails (the worker goes on); keep a one-line reason
            trial.set_user_attr("note", " ".join(f"{type(e).__name__}: {e}".split())[:300])
            raise
        finally:
            if tracker is not None:
                tracker.finish(summary={"state": state, "value": value, "seed_rewards": finals},
                               exit_code=0 if state != "failed" else 1)
        return value

    def _train_one(self, trial: Any, config: Any, seed: int, step_offset: int, tracker: Any = None) -> float:
        import optuna

        from rlzoo.evaluation import evaluate_policy
        from rlzoo.zoo.experiment import make_action_noise, make_env, normalize_env
        from rlzoo.zoo.resolve import is_atari

        env = normalize_env(make_env(config, config.n_envs, seed), config)
        eval_env = normalize_env(make_env(config, 1, seed + 10_000), config, training=False)
        try:
            kwargs = dict(config.model_kwargs)
            if config.noise is not None:  # noise_type/noise_std, as rlzoo train builds it
                kwargs["action_noise"] = make_action_noise(config.noise, env.single_action_space)
            model = self.cls(config.policy, env, seed=seed, device=self.device, verbose=0, **kwargs)
            eval_freq = max(config.n_timesteps // (self.n_evaluations * config.n_envs), 1)
            callback = _trial_eval_callback_cls()(eval_env, trial, step_offset, self.eval_episodes, eval_freq,
                                                  deterministic=not is_atari(config.env_id),
                                                  max_evals=self.n_evaluations)
            try:
                with warnings.catch_warnings():  # overflow warnings of a diverging run: it is pruned below
                    warnings.simplefilter("ignore", RuntimeWarning)
                    model.learn(config.n_timesteps,
                                callback=[callback, tracker.callback()] if tracker is not None else callback)
            except Exception as e:  # NaN in a distribution, an exploding loss ...
                if not _finite_params(model):
                    raise optuna.TrialPruned(f"diverged: {type(e).__name__}: {e}") from None
                raise
            if callback.diverged:
                raise optuna.TrialPruned("diverged: non-finite reward or parameters")
            if callback.pruned:
                raise optuna.TrialPruned(f"pruned at evaluation {callback.n_evals} of seed {seed}")
            if callback.n_evals == 0:
                mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=self.eval_episodes,
                                          deterministic=not is_atari(config.env_id))
                assert isinstance(mean, float)  # the (mean, std) form: return_episode_rewards is False
                return float(mean)
            return float(callback.last_mean_reward)
        finally:
            env.close()
            eval_env.close()


# ----------------------------------------------------------------------------- progress display
class TrialReporter:
    """Optuna callback: a rich progress bar of trials and one line per finished trial."""

    def __init__(self, n_trials: int | None, cap: int | None, enabled: bool, fixed: Any = ()) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn)

        self.console = Console(highlight=False)
        self.cap, self.n_trials, self.own = cap, n_trials, 0
        self.fixed = set(fixed)  # hyperparameters given with --hyperparams: their sampled twins are not shown
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, disable=not enabled, transient=True)
        self.task = self.progress.add_task("trials", total=cap or n_trials)

    def __enter__(self) -> TrialReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        self.own += 1
        seconds = trial.duration.total_seconds() if trial.duration is not None else float("nan")
        value = f"{trial.value:.4g}" if trial.value is not None else "-"
        params = " ".join(f"{k}={_short(v)}" for k, v in trial.params.items() if k not in self.fixed)
        note = trial.user_attrs.get("note", "")
        self.console.print(f"trial {trial.number:>3} {trial.state.name:<8} value {value:>9} ({seconds:.1f} s) "
                           f"{params}{'  ' + note if note else ''}", soft_wrap=True)
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value) if complete else None
        done = count_used_trials(finished) if self.cap else self.own
        best_text = f"best {best.value:.4g} (trial {best.number})" if best else "no complete trial yet"
        self.progress.update(self.task, completed=done, description=f"trials · {best_text}")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- reports
def _yaml_inline(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**9)
    return text.removesuffix("...\n").strip()


def write_report(study: Any, out_dir: Path, algo: str, env_id: str, base_entry: dict,
                 tuning_timesteps: int | None) -> tuple[Path, Path | None]:
    """Write ``<study>_trials.csv`` and (with a complete trial) ``<study>_best.yml`` into ``out_dir``."""
    import yaml
    from optuna.trial import TrialState

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", study.study_name)
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({name for t in trials for name in t.params})
    header = ["number", "state", "value", "duration_s", "datetime_start", "retry_of", "n_reports",
              "seed_rewards"] + [f"params_{n}" for n in param_names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for t in trials:
        writer.writerow([t.number, t.state.name, "" if t.value is None else t.value,
                         "" if t.duration is None else round(t.duration.total_seconds(), 2),
                         "" if t.datetime_start is None else t.datetime_start.isoformat(timespec="seconds"),
                         t.system_attrs.get("failed_trial", ""), len(t.intermediate_values),
                         json.dumps(t.user_attrs.get("seed_rewards", []))]
                        + [t.params.get(n, "") for n in param_names])
    csv_path = out_dir / f"{stem}_trials.csv"
    rf.atomic_write_text(csv_path, buffer.getvalue())

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return csv_path, None
    best = max(complete, key=lambda t: t.value)
    entry = {**base_entry, **best.user_attrs.get("hyperparams", {})}
    budget = f", {tuning_timesteps} timesteps per seed while tuning" if tuning_timesteps else ""
    text = (f"# Best trial of study '{study.study_name}': trial {best.number}, mean final evaluation reward "
            f"{best.value:.4g}{budget}.\n"
            f"# Paste this entry into hyperparams/{algo}.yml, or train with it directly:\n"
            f"#   rlzoo train --algo {algo} --env {env_id} --conf-file {stem}_best.yml\n"
            + yaml.safe_dump({env_id: entry}, sort_keys=True, default_flow_style=False))
    yml_path = out_dir / f"{stem}_best.yml"
    rf.atomic_write_text(yml_path, text)
    return csv_path, yml_path


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
            reason = _work(study, backend, objective, n_trials, timeout, bool(heartbeat_interval), heartbeat_interval,
                           reporter)
    finally:
        csv_path, yml_path = write_report(study, out_dir, algo, env_id, entry.hyperparams, base.n_timesteps)
    _summary(study, reporter, reason, csv_path, yml_path)
    if optimization_log_path is not None:
        from rlzoo.zoo.tune_extras import write_optimization_plots

        for path in write_optimization_plots(study, Path(optimization_log_path)):
            print(f"optimization plot: {path}", flush=True)
    return study


def _work(study: Any, storage: Any, objective: Any, n_trials: int | None, timeout: float | None, heartbeat: bool,
          interval: int, reporter: TrialReporter) -> str:
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
            if not heartbeat or not others:
                return str(e)
            if not waiting_said:
                reporter.console.print(f"{e}; waiting for {len(others)} running trial(s) of other workers "
                                       "(a trial whose worker died is re-queued after the grace period)")
                waiting_said = True
            time.sleep(max(interval, 1))
        except UpdateFinishedTrialError:  # another worker declared our trial stale and failed it
            continue
        except optuna.exceptions.StorageInternalError as e:
            raise ZooError(f"storage error: {e}") from None


def _summary(study: Any, reporter: TrialReporter, reason: str, csv_path: Path, yml_path: Path | None) -> None:
    from collections import Counter

    from optuna.trial import TrialState
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    console = reporter.console
    console.print(f"worker done ({reason}): this worker ran {reporter.own} trial(s); study has {len(trials)} trial(s): "
                  + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())), soft_wrap=True)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value, reverse=True)
    if complete:
        table = Table(title=f"best trials of '{study.study_name}'")
        for column in ("trial", "value", "hyperparameters"):
            table.add_column(column)
        for t in complete[:5]:
            table.add_row(str(t.number), f"{t.value:.4g}", " ".join(f"{k}={_short(v)}" for k, v in t.params.items()))
        console.print(table)
    console.print(f"trials report: {csv_path}", soft_wrap=True)
    if yml_path is not None:
        console.print(f"best hyperparameters: {yml_path}", soft_wrap=True)


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
