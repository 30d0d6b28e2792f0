"""``rlzoo train``: config -> wrapped vector env -> model -> learn with callbacks -> run folder.

Run folder (API.md §2): ``config.yml``, ``run.json``, ``model.zip``, ``best_model.zip``,
``checkpoints/<steps>.zip`` (each with ``<steps>.vecnormalize.safetensors``), ``vecnormalize.safetensors``,
``monitor/``, ``evaluations.csv``, ``tb/``. Everything is validated before the folder is created,
and a failure while setting up removes it again, so bad input leaves nothing behind.
"""
from __future__ import annotations

import random
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlzoo.common.utils import threads_override
from rlzoo.zoo import run_folder as rf
from rlzoo.zoo import run_lock, stop_flag
from rlzoo.zoo.config import ZooConfig, build_config, parse_key_values
from rlzoo.zoo.env_factory import check_env_builds, close_envs, make_action_noise, make_env, normalize_env
from rlzoo.zoo.errors import RunFailed, ZooError
from rlzoo.zoo.options import TrainOptions, check_run_options
from rlzoo.zoo.resolve import env_modules, is_atari, resolve_algo, resolve_env
from rlzoo.zoo.resume import last_checkpoint, restart_from_scratch, resume_point
from rlzoo.zoo.run_status import free_space, is_disk_full, write_status
from rlzoo.zoo.stop_flag import StopRequested


# ----------------------------------------------------------------------------- saved-file names
def replay_buffer_path(model_path: Path) -> Path:
    """Replay buffer saved with a model: ``model.zip`` -> ``replay_buffer.npz``,
    ``checkpoints/K.zip`` -> ``checkpoints/K_replay_buffer.npz``."""
    if model_path.name == rf.MODEL_FILE:
        return model_path.parent / "replay_buffer.npz"
    return model_path.with_name(model_path.name[:-4] + "_replay_buffer.npz")


def vecnormalize_path(model_path: Path) -> Path:
    """Statistics saved with a model: ``model.zip`` -> ``vecnormalize.safetensors``,
    ``checkpoints/K.zip`` -> ``checkpoints/K.vecnormalize.safetensors``."""
    if model_path.name == rf.MODEL_FILE:
        return model_path.parent / rf.VECNORMALIZE_FILE
    from rlzoo.common.eval_callbacks import vecnormalize_path_beside

    return Path(vecnormalize_path_beside(str(model_path)))


# ----------------------------------------------------------------------------- training
@dataclass
class _Plan:
    """What a train command resolved to, before anything is written."""

    algo: str
    cls: Any  # the algorithm class (its constructor and ``load`` differ per algorithm)
    config: ZooConfig
    seed: int
    run_dir: Path | None  # set for --resume
    resume_model: Path | None = None
    resume_stats: Path | None = None
    info: dict[str, Any] | None = None


def _draw_seed() -> int:
    return random.SystemRandom().randrange(0, 2**31 - 1)


def _plan_new(opts: TrainOptions) -> _Plan:
    algo, cls = resolve_algo(opts.algo)
    gym_packages = list(opts.gym_packages)
    modules = env_modules(opts.env_id, gym_packages)
    env_id = resolve_env(opts.env_id, gym_packages)
    conf_file = None if opts.conf_file is None else str(opts.conf_file)
    config = build_config(algo, cls, env_id, atari=is_atari(env_id), conf_file=conf_file,
                          overrides=parse_key_values(list(opts.hyperparams), "--hyperparams"),
                          n_timesteps=opts.n_timesteps, n_envs=opts.n_envs,
                          env_kwargs=parse_key_values(list(opts.env_kwargs), "--env-kwargs"))
    config.env_modules = tuple(modules)
    return _Plan(algo, cls, config, _draw_seed() if opts.seed is None else int(opts.seed), None)


def _plan_resume(run_dir: Path, algo: str, env_id: str, n_timesteps: int | None,
                 gym_packages: list[str]) -> _Plan:
    """What ``--resume run_dir`` continues: the run's algorithm, configuration, seed and last intact save."""
    if not run_dir.exists():
        raise ZooError(f"--resume: run folder '{run_dir}' does not exist")
    if not run_dir.is_dir():
        raise ZooError(f"--resume: '{run_dir}' is not a run folder (it is a file)")
    info = rf.read_run_info(run_dir)
    algo_name, cls = resolve_algo(str(info.get("algo", algo)))
    if algo_name != algo.lower():
        raise ZooError(f"{run_dir} is a {algo_name} run, not {algo}")
    saved_env = str(info.get("env", env_id))
    if rf.env_folder_name(saved_env) != rf.env_folder_name(env_id):
        raise ZooError(f"{run_dir} is a run on {saved_env}, not {env_id}")
    run_file = run_dir / rf.RUN_FILE
    seed = info.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ZooError(f"{run_file}: 'seed' must be an integer in [0, 2^32), got {seed!r}")
    saved_total = info.get("n_timesteps", 0)
    if isinstance(saved_total, bool) or not isinstance(saved_total, int) or saved_total < 0:
        raise ZooError(f"{run_file}: 'n_timesteps' must be a non-negative integer, got {saved_total!r}")
    packages = info.get("gym_packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise ZooError(f"{run_file}: 'gym_packages' must be a list of module names, got {packages!r}")
    modules = list(packages) + list(gym_packages)
    env_id = resolve_env(saved_env, modules)
    if not (run_dir / rf.CONFIG_FILE).is_file():
        raise ZooError(f"{run_dir} has no {rf.CONFIG_FILE} to resume from")
    rf.check_config(run_dir / rf.CONFIG_FILE)
    config = build_config(algo_name, cls, env_id, atari=is_atari(env_id), conf_file=str(run_dir / rf.CONFIG_FILE),
                          n_timesteps=n_timesteps or saved_total or None)
    config.env_modules = tuple(modules)
    model_path, steps, notes = resume_point(run_dir, config, cls)
    for note in notes:
        print(f"note: {note}", flush=True)
    if model_path is None:
        if any(rf.list_checkpoints(run_dir)) or (run_dir / rf.MODEL_FILE).exists():
            raise ZooError(f"{run_dir}: no intact model or checkpoint to resume from ({'; '.join(notes)})")
        print(f"note: {run_dir} stopped before its first save; starting it again from 0 timesteps "
              "with the same configuration and seed", flush=True)
    elif steps >= config.n_timesteps:
        raise ZooError(f"{run_dir} already reached {steps} of {config.n_timesteps} timesteps "
                       "(give a larger total with -n to train further)")
    stats = vecnormalize_path(model_path) if model_path is not None else None
    return _Plan(algo_name, cls, config, int(seed), run_dir, model_path,
                 stats if stats is not None and stats.is_file() else None, info)


def _remove_new_run(run_dir: Path, created: list[Path]) -> None:
    """Undo a run folder whose setup failed (and the parent folders this command created)."""
    run_lock.release(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass


def _create_run_dir(log_folder: str, algo: str, env_id: str, unique: bool = False) -> Path:
    try:
        return rf.create_run_dir(log_folder, algo, env_id, unique=unique)
    except OSError as e:
        raise ZooError(f"-f {log_folder}: cannot create a run folder there: {e.strerror or e}") from None


def _stopped_message(where: str) -> None:
    print(f"interrupted by {stop_flag.signal_name()} {where}", file=sys.stderr, flush=True)


def train(opts: TrainOptions) -> Path:
    """Train one agent into a run folder; returns the folder. See ``rlzoo train --help``.

    With ``opts.resume``, every run option (``RUN_OPTIONS``) not named in ``opts.given`` (the options
    given on the command line) is taken from the run's ``run.json``.
    ``opts.track``: a :class:`rlzoo.zoo.tracking.TrackingOptions` to log the run to Weights & Biases;
    ``opts.uuid``: append a random UUID to the run folder name (``<EnvId>_<N>_<uuid>``).
    """
    installed_here = stop_flag.install()
    locked: list[Path] = []
    try:
        if opts.track is not None:
            from rlzoo.zoo.tracking import require_wandb

            require_wandb()  # before anything is written
        return _train(opts, locked)
    except StopRequested as e:
        raise SystemExit(128 + e.signum) from None
    except OSError as e:  # a full disk while setting up (the learn phase records it in run.json itself)
        if is_disk_full(e):
            raise RunFailed(f"no space left on device: {' '.join(str(e).split())[:300]}") from None
        raise
    finally:
        for run_dir in locked:
            run_lock.release(run_dir)
        if installed_here:
            stop_flag.restore()


def _train(opts: TrainOptions, locked: list[Path]) -> Path:
    """Plan, check, create (or reopen) the run folder, set up and learn; ``locked``: the run folders locked."""
    if opts.n_timesteps is not None and opts.n_timesteps <= 0:
        raise ZooError(f"the number of timesteps must be positive, got {opts.n_timesteps}")
    if stop_flag.received() is not None:
        _stopped_message("before the run started; nothing was written")
        stop_flag.check()
    plan, opts = _plan(opts, locked)
    eval_env_kwargs = check_run_options(opts)
    if eval_env_kwargs and opts.eval_freq > 0:
        check_env_builds(plan.config, "--eval-env-kwargs", eval_env_kwargs)
    if stop_flag.received() is not None:
        _stopped_message("before the run folder was created; nothing was written")
        stop_flag.check()
    with threads_override(opts.num_threads):  # over rlzoo's per-model choice (tune_threads), as RLZOO_NUM_THREADS
        return _build_and_learn(plan, opts, locked, eval_env_kwargs)


def _build_and_learn(plan: _Plan, opts: TrainOptions, locked: list[Path], eval_env_kwargs: dict[str, Any]) -> Path:
    """Create (or reopen) the run folder, set up the model and its envs, and learn."""
    run_dir, new_run, created = _open_run_dir(plan, opts, locked)
    model, envs, callbacks, guard = _setup_or_undo(plan, run_dir, new_run, created, opts, eval_env_kwargs)
    tracker = None
    if opts.track is not None:
        from rlzoo.zoo.tracking import start_training_run

        try:
            tracker = start_training_run(opts.track, plan.algo, plan.config.env_id, plan.seed, run_dir,
                                         plan.config.hyperparams)
        except BaseException:
            close_envs(envs)
            raise
        callbacks.append(tracker.callback())
    return _learn(plan, run_dir, new_run, model, envs, callbacks, guard, opts, tracker)


def _plan(opts: TrainOptions, locked: list[Path]) -> tuple[_Plan, TrainOptions]:
    """The plan of a new run or of ``--resume`` (then with the run options stored in its run.json)."""
    if opts.resume is not None:
        resume = Path(opts.resume)
        if resume.is_dir() and (resume / rf.RUN_FILE).is_file():
            run_lock.acquire(resume)  # before reading anything: the state read must be the one we continue
            locked.append(resume)
        plan = _plan_resume(resume, opts.algo, opts.env_id, opts.n_timesteps, list(opts.gym_packages))
        stored = (plan.info or {}).get("options")
        return plan, (opts.with_stored(stored) if isinstance(stored, dict) else opts)
    plan = _plan_new(opts)
    if opts.trained_agent is not None:
        _check_trained_agent(Path(opts.trained_agent), plan.cls)
    check_env_builds(plan.config, "--env-kwargs" if opts.env_kwargs else plan.config.source)
    return plan, opts


def _open_run_dir(plan: _Plan, opts: TrainOptions, locked: list[Path]) -> tuple[Path, bool, list[Path]]:
    """``(run folder, new run?, parent folders created)``: a new, locked run folder, or the resumed one."""
    if plan.run_dir is not None:
        return plan.run_dir, False, []
    created = [folder for folder in (Path(opts.log_folder), Path(opts.log_folder) / plan.algo)
               if not folder.exists()]
    run_dir = _create_run_dir(opts.log_folder, plan.algo, plan.config.env_id, unique=bool(opts.uuid))
    run_lock.acquire(run_dir)
    locked.append(run_dir)
    return run_dir, True, created


def _setup_or_undo(plan: _Plan, run_dir: Path, new_run: bool, created: list[Path], opts: TrainOptions,
                   eval_env_kwargs: dict[str, Any]) -> tuple[Any, list[Any], list[Any], Any]:
    """:func:`_setup`; when it fails, a new run folder is removed again and a stop is recorded."""
    try:
        return _setup(plan, run_dir, new_run, opts, eval_env_kwargs)
    except StopRequested:
        if (run_dir / rf.RUN_FILE).is_file():
            steps = int((plan.info or {}).get("num_timesteps", 0)) if not new_run else 0
            write_status(run_dir, "interrupted", num_timesteps=steps)
            _stopped_message(f"while setting up; {run_dir} marked interrupted at {steps} timesteps\n"
                             f"resume with: rlzoo train --algo {plan.algo} --env {plan.config.env_id} "
                             f"--resume {run_dir}")
        else:
            _remove_new_run(run_dir, created)
            _stopped_message("before the run folder was written; nothing was kept")
        raise
    except BaseException:
        if new_run:
            _remove_new_run(run_dir, created)
        raise


def _learn(plan: _Plan, run_dir: Path, new_run: bool, model: Any, envs: list[Any], callbacks: list[Any],
           guard: Any, opts: TrainOptions, tracker: Any = None) -> Path:
    """Run ``model.learn`` and record how it ended (finished, interrupted, diverged, failed)."""
    from rlzoo.zoo.divergence import TrainingDiverged, non_finite_part

    config, env = plan.config, envs[0]
    total = config.n_timesteps
    remaining = total - model.num_timesteps
    print(f"{'resuming' if not new_run else 'training'} {plan.algo} on {config.env_id}: {run_dir} "
          f"(seed {plan.seed}, {model.num_timesteps}/{total} timesteps, {config.n_envs} envs)", flush=True)
    tb_name = "run" if opts.tensorboard_log is None else f"{plan.algo}_{run_dir.name}"
    learn_kwargs = {} if opts.log_interval is None else {"log_interval": int(opts.log_interval)}
    t0 = time.time()
    try:
        with guard:
            try:
                model.learn(remaining, callback=callbacks, reset_num_timesteps=new_run, tb_log_name=tb_name,
                            progress_bar=bool(opts.progress), **learn_kwargs)
            except StopRequested:
                guard.stopped = True
            if stop_flag.received() is not None and model.num_timesteps < total:
                guard.stopped = True
            what = non_finite_part(model)
            if what is not None:
                raise TrainingDiverged(int(model.num_timesteps), what)
            status = "interrupted" if guard.stopped else "finished"
            if guard.stopped and getattr(model, "rollout_buffer", None) is not None \
                    and guard.rollout_start_timesteps is not None:
                # the partial on-policy rollout was thrown away: count from its start
                model.num_timesteps = guard.rollout_start_timesteps
            _save_final(model, env, run_dir)
    except TrainingDiverged as e:
        close_envs(envs)
        if tracker is not None:
            tracker.finish(summary={"status": "diverged"}, exit_code=1)
        checkpoint = last_checkpoint(run_dir)
        kept = (f"kept the last finite checkpoint {checkpoint.relative_to(run_dir)}" if checkpoint is not None
                else "no finite checkpoint was saved (use --save-freq to keep some)")
        write_status(run_dir, "diverged", num_timesteps=int(e.timesteps), error=f"diverged: {e}",
                     last_finite_checkpoint=str(checkpoint.relative_to(run_dir)) if checkpoint else None)
        raise RunFailed(f"training diverged: {e}; {kept}; {run_dir} marked diverged "
                        "(lower the learning rate or check the rewards)") from None
    except BaseException as e:
        if tracker is not None:
            tracker.finish(summary={"status": "interrupted" if isinstance(e, (KeyboardInterrupt, SystemExit,
                                                                              StopRequested)) else "failed"},
                           exit_code=1)
        close_envs(envs)
        stopped = isinstance(e, (KeyboardInterrupt, SystemExit, StopRequested))
        reason = f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]
        if is_disk_full(e):
            free_space(run_dir)
            reason = f"no space left on device ({' '.join(str(e).split())[:300]})"
        write_status(run_dir, "interrupted" if stopped else "failed", num_timesteps=int(model.num_timesteps),
                     error=reason)
        if is_disk_full(e):
            raise RunFailed(f"{run_dir}: {reason}; run marked failed") from None
        raise
    close_envs(envs)
    if tracker is not None:
        tracker.finish(run_dir, f"{plan.algo}-{run_dir.name}",
                       summary={"status": status, "num_timesteps": int(model.num_timesteps)})
    info = write_status(run_dir, status, num_timesteps=int(model.num_timesteps),
                        wall_time_s=round(float(rf.read_run_info(run_dir).get("wall_time_s", 0.0))
                                          + time.time() - t0, 1)) or {"num_timesteps": int(model.num_timesteps)}
    if status == "interrupted":
        print(f"interrupted by {guard.signal_name} at {model.num_timesteps}/{total} timesteps; model saved to "
              f"{run_dir / rf.MODEL_FILE}\nresume with: rlzoo train --algo {plan.algo} --env {config.env_id} "
              f"--resume {run_dir}", flush=True)
        raise SystemExit(128 + int(guard.received))
    print(f"finished: {info['num_timesteps']} timesteps in {time.time() - t0:.1f}s; model saved to "
          f"{run_dir / rf.MODEL_FILE}", flush=True)
    return run_dir


def _check_trained_agent(path: Path, cls: type) -> None:
    """``-i``: the file exists and holds a model of ``cls``."""
    from rlzoo.common.save_format import read_model_zip

    if not path.is_file():
        raise ZooError(f"trained agent '{path}' does not exist")
    metadata, _ = read_model_zip(str(path))
    if str(metadata.get("algo", "")).lower() != cls.__name__.lower():
        raise ZooError(f"{path} holds a {metadata.get('algo')} model, not {cls.__name__}")


def _write_run_info(plan: _Plan, run_dir: Path, new_run: bool, opts: TrainOptions) -> tuple[int, list[Any]]:
    """Write config.yml/run.json of a new run (or start a resumed run over when it has no save);
    returns the first monitor index and the run's earlier segments."""
    config = plan.config
    if new_run:
        rf.atomic_write_text(run_dir / rf.CONFIG_FILE, config.to_yaml())
        info = rf.new_run_info(plan.algo, config.env_id, run_dir, plan.seed, config.n_timesteps, list(opts.argv))
        info["options"] = opts.stored()
        if opts.trained_agent is not None:
            info["trained_agent"] = str(opts.trained_agent)
        if config.env_modules:
            info["gym_packages"] = list(config.env_modules)
        rf.atomic_write_json(run_dir / rf.RUN_FILE, info)
        return 0, []
    segments = list((plan.info or {}).get("segments", []))
    if plan.resume_model is None:
        restart_from_scratch(run_dir)
        segments = []
    return len(segments) * config.n_envs, segments  # new monitor files, fresh env seeds


def _make_model(plan: _Plan, env: Any, opts: TrainOptions, tb: str) -> Any:
    """The model: loaded from the resumed save or from ``-i``, or a new one."""
    config, cls = plan.config, plan.cls
    device, verbose = opts.device, opts.verbose
    kwargs = dict(config.model_kwargs)
    if config.noise is not None:
        kwargs["action_noise"] = make_action_noise(config.noise, env.single_action_space)
    if plan.resume_model is not None:
        model = cls.load(str(plan.resume_model), env=env, device=device, tensorboard_log=tb, verbose=verbose)
        buffer = replay_buffer_path(plan.resume_model)
        if hasattr(model, "load_replay_buffer") and buffer.is_file():
            model.load_replay_buffer(buffer)
    elif opts.trained_agent is not None:
        kwargs.pop("policy_kwargs", None)  # the saved network decides its architecture
        model = cls.load(str(opts.trained_agent), env=env, device=device, tensorboard_log=tb, verbose=verbose,
                         seed=plan.seed, **kwargs)
        model.num_timesteps = 0
    else:
        model = cls(config.policy, env, seed=plan.seed, device=device, tensorboard_log=tb, verbose=verbose,
                    **kwargs)
    return model


def _setup(plan: _Plan, run_dir: Path, new_run: bool, opts: TrainOptions,
           eval_env_kwargs: dict[str, Any]) -> tuple[Any, list[Any], list[Any], Any]:
    """Write config.yml/run.json, build the envs (training env first), the model and the callbacks.

    The stop flag is read between the steps (:class:`StopRequested` once a signal arrived)."""
    config = plan.config
    start_index, segments = _write_run_info(plan, run_dir, new_run, opts)
    env_seed = plan.seed + start_index
    stop_flag.check()
    tb = str(run_dir / rf.TB_DIR) if opts.tensorboard_log is None else opts.tensorboard_log

    env = make_env(config, config.n_envs, env_seed, opts.vec_env, run_dir / rf.MONITOR_DIR, start_index)
    try:
        stop_flag.check()
        env = normalize_env(env, config, plan.resume_stats if not new_run else _trained_stats(opts.trained_agent))
        model = _make_model(plan, env, opts, tb)
        stop_flag.check()
    except BaseException:
        close_envs([env])
        raise
    envs = [env]
    start_steps = int(model.num_timesteps)
    if not new_run:
        segments.append({"started_at": rf.now(), "from_timesteps": start_steps,
                         "command": shlex.join(["rlzoo", *opts.argv])})
        if int((plan.info or {}).get("n_timesteps", 0)) != config.n_timesteps:  # -n gave a new total
            rf.atomic_write_text(run_dir / rf.CONFIG_FILE, config.to_yaml())
        rf.update_run_info(run_dir, status="running", segments=segments, num_timesteps=start_steps,
                           n_timesteps=config.n_timesteps, options=opts.stored(), error=None, ended_at=None)
    try:
        guard, callbacks = _callbacks(plan, run_dir, model, envs, start_index, opts, eval_env_kwargs)
    except BaseException:
        close_envs(envs)
        raise
    return model, envs, callbacks, guard


def _callbacks(plan: _Plan, run_dir: Path, model: Any, envs: list[Any], start_index: int, opts: TrainOptions,
               eval_env_kwargs: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The signal guard and the callbacks of a run (the evaluation env is appended to ``envs``)."""
    from rlzoo.callbacks import CheckpointCallback, EvalCallback
    from rlzoo.zoo.divergence import DivergenceGuard
    from rlzoo.zoo.signals import SignalGuard

    config = plan.config
    guard = SignalGuard()
    n = config.n_envs
    save_every = max(opts.save_freq // n, 1) if opts.save_freq > 0 else 0
    callbacks: list[Any] = [guard, DivergenceGuard(save_every=save_every)]
    if opts.eval_freq > 0:
        eval_env = make_env(config, int(opts.n_eval_envs), plan.seed + 10_000 + start_index, "dummy", None,
                            env_kwargs=eval_env_kwargs)
        eval_env = normalize_env(eval_env, config, training=False)
        envs.append(eval_env)
        callbacks.append(EvalCallback(eval_env, n_eval_episodes=opts.eval_episodes,
                                      eval_freq=max(opts.eval_freq // n, 1), log_path=str(run_dir),
                                      best_model_save_path=str(run_dir), deterministic=not is_atari(config.env_id),
                                      verbose=1, warn=False, stop_check=guard.should_stop, on_timesteps=True,
                                      eval_at_end=True))
    if save_every:
        callbacks.append(CheckpointCallback(save_every, str(run_dir / rf.CHECKPOINT_DIR), name_prefix="",
                                            save_vecnormalize=True,
                                            save_replay_buffer=hasattr(model, "save_replay_buffer")))
    for callback_cls, callback_kwargs in config.callbacks():
        callbacks.append(callback_cls(**callback_kwargs))
    return guard, callbacks


def _trained_stats(trained_agent: Path | None) -> Path | None:
    """VecNormalize statistics saved next to a ``-i`` model, when there are any."""
    if trained_agent is None:
        return None
    path = vecnormalize_path(Path(trained_agent))
    return path if path.is_file() else None


def _save_final(model: Any, env: Any, run_dir: Path) -> None:
    """Save ``model.zip``, VecNormalize statistics and the replay buffer as one unit.

    The model goes to a temporary file first; the side files are written (each atomically), and the
    model is renamed into place last, so a ``model.zip`` is never newer than its side files and a
    failure (disk full) leaves the previous ``model.zip`` in place.
    """
    from rlzoo.envs import unwrap_vec_normalize
    from rlzoo.fileio import atomic_path

    with atomic_path(run_dir / rf.MODEL_FILE, suffix=".zip") as tmp:
        model.save(tmp)
        if hasattr(model, "save_replay_buffer") and getattr(model, "replay_buffer", None) is not None:
            model.save_replay_buffer(str(replay_buffer_path(run_dir / rf.MODEL_FILE)))
        vec_normalize = unwrap_vec_normalize(env)
        if vec_normalize is not None:
            vec_normalize.save(run_dir / rf.VECNORMALIZE_FILE)


def load_run_config(run_dir: Path, algo: str, cls: type, env_id: str) -> ZooConfig:
    """The configuration a run was trained with (its ``config.yml``)."""
    path = run_dir / rf.CONFIG_FILE
    if not path.is_file():
        raise ZooError(f"{run_dir} has no {rf.CONFIG_FILE}")
    rf.check_config(path)
    return build_config(algo, cls, env_id, atari=is_atari(env_id), conf_file=str(path))
