"""``rlzoo train``: config -> wrapped vector env -> model -> learn with callbacks -> run folder.

Run folder (API.md §2): ``config.yml``, ``run.json``, ``model.zip``, ``best_model.zip``,
``checkpoints/<steps>.zip`` (each with ``<steps>.vecnormalize.safetensors``), ``vecnormalize.safetensors``,
``monitor/``, ``evaluations.csv``, ``tb/``. Everything is validated before the folder is created,
and a failure while setting up removes it again, so bad input leaves nothing behind.
"""
from __future__ import annotations

import functools
import random
import shlex
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.config import ZooConfig, build_config, parse_key_values
from rlzoo.zoo.hyperparams_files import load_yaml
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.resolve import env_modules, is_atari, resolve_algo, resolve_env

VECNORMALIZE_SUFFIX = ".vecnormalize.safetensors"


# ----------------------------------------------------------------------------- environments
def _make_registered(env_id: str, modules: tuple, **kwargs: Any) -> gym.Env:
    """``gym.make`` after importing the modules that register ``env_id`` (also in subprocess workers)."""
    import importlib

    for module in modules:
        importlib.import_module(module)
    return gym.make(env_id, **kwargs)


def _wrap_env(env: gym.Env, atari: bool, wrappers: tuple, ignore_sigint: bool) -> gym.Env:
    """Wrappers applied on top of each sub-env's Monitor: Atari preprocessing, then the user's."""
    if ignore_sigint:  # subprocess workers: Ctrl-C goes to the whole process group; the parent handles it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if atari:
        from rlzoo.envs import AtariWrapper

        env = AtariWrapper(env)
    for wrapper_cls, kwargs in wrappers:
        env = wrapper_cls(env, **kwargs)
    return env


def make_env(config: ZooConfig, n_envs: int, seed: Optional[int], vec_env: str = "dummy",
             monitor_dir: Optional[Path] = None, start_index: int = 0, render_mode: Optional[str] = None,
             env_kwargs: Optional[dict] = None) -> Any:
    """The vector env of ``config`` without normalization: Monitor, Atari/user wrappers, frame stack."""
    from rlzoo.envs import VecFrameStack, get_env_spec, make_vec_env

    atari = is_atari(config.env_id)
    kwargs = {**config.env_kwargs, **(env_kwargs or {})}
    if atari and get_env_spec(config.env_id).kwargs.get("frameskip", 1) != 1:
        kwargs.setdefault("frameskip", 1)  # AtariWrapper skips frames itself
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    wrappers = tuple(config.env_wrappers())
    # no per-env wrapper when there is nothing to wrap, so that "auto"/"native" can use a native vector env
    wrap = (functools.partial(_wrap_env, atari=atari, wrappers=wrappers, ignore_sigint=vec_env == "subproc")
            if atari or wrappers or vec_env == "subproc" else None)
    try:
        if atari and vec_env == "native":
            from rlzoo.envs import make_atari_env

            if wrappers or config.env_modules:
                raise ValueError("--vec-env native cannot apply env_wrapper/gym_packages to Atari envs")
            kwargs.pop("frameskip", None)
            venv = make_atari_env(config.env_id, n_envs=n_envs, seed=seed, start_index=start_index,
                                  monitor_dir=monitor_dir, env_kwargs=kwargs, vec_env_cls="native")
        else:
            env_fn = (functools.partial(_make_registered, config.env_id, tuple(config.env_modules))
                      if config.env_modules else config.env_id)
            venv = make_vec_env(env_fn, n_envs=n_envs, seed=seed, start_index=start_index, monitor_dir=monitor_dir,
                                wrapper_class=wrap, env_kwargs=kwargs, vec_env_cls=vec_env)
    except TypeError as e:  # a wrong env_kwargs name surfaces as TypeError from the env constructor
        raise ZooError(f"cannot create {config.env_id}: {e}") from None
    except ValueError as e:  # --vec-env native/envpool for an env without one
        raise ZooError(f"cannot create {config.env_id} with --vec-env {vec_env}: {e}") from None
    if config.frame_stack:
        venv = VecFrameStack(venv, config.frame_stack)
    return venv


def normalize_env(venv: Any, config: ZooConfig, stats: Optional[Path] = None, training: bool = True) -> Any:
    """Wrap ``venv`` in VecNormalize (new, or with saved statistics); evaluation mode when not training."""
    if config.normalize is None:
        return venv
    from rlzoo.envs import VecNormalize

    if stats is not None:
        venv = VecNormalize.load(stats, venv)
    else:
        venv = VecNormalize(venv, **config.normalize)
    venv.training = training
    if not training:
        venv.norm_reward = False
    return venv


def replay_buffer_path(model_path: Path) -> Path:
    """Replay buffer saved with a model: ``model.zip`` -> ``replay_buffer.npz``,
    ``checkpoints/K.zip`` -> ``checkpoints/K_replay_buffer.npz``."""
    if model_path.name == rf.MODEL_FILE:
        return model_path.parent / "replay_buffer.npz"
    return model_path.with_name(model_path.name[:-4] + "_replay_buffer.npz")


def make_action_noise(noise: Optional[tuple[str, float]], action_space: Any) -> Any:
    """``noise_type``/``noise_std`` -> an action-noise object for the action space (None without)."""
    if noise is None:
        return None
    import numpy as np

    from rlzoo.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    kind, std = noise
    shape = action_space.shape
    if not shape:
        raise ZooError(f"noise_type needs a Box action space, got {action_space}")
    mean, sigma = np.zeros(shape, dtype=np.float64), np.full(shape, std, dtype=np.float64)
    return NormalActionNoise(mean, sigma) if kind == "normal" else OrnsteinUhlenbeckActionNoise(mean, sigma)


def vecnormalize_path(model_path: Path) -> Path:
    """Statistics saved with a model: ``model.zip`` -> ``vecnormalize.safetensors``,
    ``checkpoints/K.zip`` -> ``checkpoints/K.vecnormalize.safetensors``."""
    if model_path.name == rf.MODEL_FILE:
        return model_path.parent / rf.VECNORMALIZE_FILE
    return model_path.with_name(model_path.name[:-4] + VECNORMALIZE_SUFFIX)


# ----------------------------------------------------------------------------- training
@dataclass
class _Plan:
    """What a train command resolved to, before anything is written."""

    algo: str
    cls: type
    config: ZooConfig
    seed: int
    run_dir: Optional[Path]  # set for --resume
    resume_model: Optional[Path] = None
    resume_stats: Optional[Path] = None
    info: Optional[dict] = None


def _draw_seed() -> int:
    return random.SystemRandom().randrange(0, 2**31 - 1)


def _plan_new(algo: str, env_id: str, n_timesteps: Optional[int], seed: Optional[int], n_envs: Optional[int],
              hyperparams: list[str], env_kwargs: list[str], conf_file: Optional[Path],
              gym_packages: list[str]) -> _Plan:
    algo, cls = resolve_algo(algo)
    modules = env_modules(env_id, gym_packages)
    env_id = resolve_env(env_id, gym_packages)
    config = build_config(algo, cls, env_id, atari=is_atari(env_id), conf_file=conf_file,
                          overrides=parse_key_values(hyperparams, "--hyperparams"), n_timesteps=n_timesteps,
                          n_envs=n_envs, env_kwargs=parse_key_values(env_kwargs, "--env-kwargs"))
    config.env_modules = tuple(modules)
    return _Plan(algo, cls, config, _draw_seed() if seed is None else int(seed), None)


def _plan_resume(run_dir: Path, algo: str, env_id: str, n_timesteps: Optional[int],
                 gym_packages: list[str]) -> _Plan:
    if not run_dir.is_dir():
        raise ZooError(f"run folder '{run_dir}' does not exist")
    info = rf.read_run_info(run_dir)
    algo_name, cls = resolve_algo(str(info.get("algo", algo)))
    if algo_name != algo.lower():
        raise ZooError(f"{run_dir} is a {algo_name} run, not {algo}")
    saved_env = str(info.get("env", env_id))
    if rf.env_folder_name(saved_env) != rf.env_folder_name(env_id):
        raise ZooError(f"{run_dir} is a run on {saved_env}, not {env_id}")
    modules = list(info.get("gym_packages", [])) + list(gym_packages)
    env_id = resolve_env(saved_env, modules)
    if not (run_dir / rf.CONFIG_FILE).is_file():
        raise ZooError(f"{run_dir} has no {rf.CONFIG_FILE} to resume from")
    config = build_config(algo_name, cls, env_id, atari=is_atari(env_id), conf_file=run_dir / rf.CONFIG_FILE,
                          n_timesteps=n_timesteps or int(info.get("n_timesteps", 0)) or None)
    config.env_modules = tuple(modules)
    model_path, steps = latest_model(run_dir)
    if model_path is None:
        raise ZooError(f"{run_dir} has no saved model or checkpoint to resume from")
    if steps >= config.n_timesteps:
        raise ZooError(f"{run_dir} already reached {steps} of {config.n_timesteps} timesteps "
                       "(give a larger total with -n to train further)")
    stats = vecnormalize_path(model_path)
    if config.normalize is not None and not stats.is_file():
        raise ZooError(f"VecNormalize statistics {stats} are missing; cannot resume {run_dir}")
    seed = int(info.get("seed", 0))
    return _Plan(algo_name, cls, config, seed, run_dir, model_path, stats if stats.is_file() else None, info)


def latest_model(run_dir: Path) -> tuple[Optional[Path], int]:
    """The saved model of a run with the most timesteps: ``model.zip`` or the last checkpoint."""
    from rlzoo.common.save_format import ModelFileError, read_model_zip

    candidates: list[tuple[int, Path]] = list(rf.list_checkpoints(run_dir))
    model = run_dir / rf.MODEL_FILE
    if model.is_file():
        try:
            metadata, _ = read_model_zip(str(model))
            candidates.append((int(metadata.get("num_timesteps", 0)), model))
        except ModelFileError:
            pass  # a model.zip that cannot be read: fall back to the checkpoints
    if not candidates:
        return None, 0
    steps, path = max(candidates, key=lambda c: (c[0], c[1].name == rf.MODEL_FILE))
    return path, steps


def _remove_new_run(run_dir: Path, created: list[Path]) -> None:
    """Undo a run folder whose setup failed (and the parent folders this command created)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass


def train(algo: str, env_id: str, n_timesteps: Optional[int] = None, seed: Optional[int] = None,
          log_folder: str = "logs", n_envs: Optional[int] = None, vec_env: str = "auto", device: str = "auto",
          tensorboard_log: Optional[str] = None, eval_freq: int = 10_000, eval_episodes: int = 5,
          save_freq: int = 0, hyperparams: Optional[list[str]] = None, env_kwargs: Optional[list[str]] = None,
          conf_file: Optional[Path] = None, trained_agent: Optional[Path] = None, resume: Optional[Path] = None,
          progress: bool = True, gym_packages: Optional[list[str]] = None, verbose: int = 0,
          argv: Optional[list[str]] = None) -> Path:
    """Train one agent into a run folder; returns the folder. See ``rlzoo train --help``."""
    if n_timesteps is not None and n_timesteps <= 0:
        raise ZooError(f"the number of timesteps must be positive, got {n_timesteps}")
    if resume is not None:
        plan = _plan_resume(Path(resume), algo, env_id, n_timesteps, gym_packages or [])
    else:
        plan = _plan_new(algo, env_id, n_timesteps, seed, n_envs, hyperparams or [], env_kwargs or [],
                         conf_file, gym_packages or [])
        if trained_agent is not None:
            _check_trained_agent(Path(trained_agent), plan.cls)
    argv = list(argv or [])
    config = plan.config

    # ---- the run folder (created last, removed again if the setup fails)
    created: list[Path] = []
    if plan.run_dir is None:
        for folder in (Path(log_folder), Path(log_folder) / plan.algo):
            if not folder.exists():
                created.append(folder)
        run_dir = rf.create_run_dir(log_folder, plan.algo, config.env_id)
        new_run = True
    else:
        run_dir = plan.run_dir
        new_run = False
    try:
        model, envs, callbacks, guard = _setup(plan, run_dir, new_run, vec_env, device, tensorboard_log, eval_freq,
                                               eval_episodes, save_freq, trained_agent, verbose, argv)
    except BaseException:
        if new_run:
            _remove_new_run(run_dir, created)
        raise
    env = envs[0]

    # ---- learn
    total = config.n_timesteps
    remaining = total - model.num_timesteps
    print(f"{'resuming' if not new_run else 'training'} {plan.algo} on {config.env_id}: {run_dir} "
          f"(seed {plan.seed}, {model.num_timesteps}/{total} timesteps, {config.n_envs} envs)", flush=True)
    tb_name = "run" if tensorboard_log is None else f"{plan.algo}_{run_dir.name}"
    t0 = time.time()
    status = "running"
    try:
        with guard:
            model.learn(remaining, callback=callbacks, reset_num_timesteps=new_run, tb_log_name=tb_name,
                        progress_bar=progress)
            status = "interrupted" if guard.stopped else "finished"
            if guard.stopped and getattr(model, "rollout_buffer", None) is not None \
                    and guard.rollout_start_timesteps is not None:
                # the partial on-policy rollout was thrown away: count from its start
                model.num_timesteps = guard.rollout_start_timesteps
            _save_final(model, env, run_dir)
    except BaseException as e:
        _close(envs)
        failed = "interrupted" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "failed"
        rf.update_run_info(run_dir, status=failed, num_timesteps=int(model.num_timesteps),
                           error=f"{type(e).__name__}: {e}"[:500])
        raise
    _close(envs)
    info = rf.update_run_info(run_dir, status=status, num_timesteps=int(model.num_timesteps),
                              wall_time_s=round(float(rf.read_run_info(run_dir).get("wall_time_s", 0.0))
                                                + time.time() - t0, 1))
    if status == "interrupted":
        print(f"interrupted by {guard.signal_name} at {model.num_timesteps}/{total} timesteps; model saved to "
              f"{run_dir / rf.MODEL_FILE}\nresume with: rlzoo train --algo {plan.algo} --env {config.env_id} "
              f"--resume {run_dir}", flush=True)
        raise SystemExit(128 + int(guard.received))
    print(f"finished: {info['num_timesteps']} timesteps in {time.time() - t0:.1f}s; model saved to "
          f"{run_dir / rf.MODEL_FILE}", flush=True)
    return run_dir


def _close(envs: list) -> None:
    for env in envs:
        try:
            env.close()
        except Exception:  # closing must not hide the result of the run
            pass


def _check_trained_agent(path: Path, cls: type) -> None:
    from rlzoo.common.save_format import read_model_zip

    if not path.is_file():
        raise ZooError(f"trained agent '{path}' does not exist")
    metadata, _ = read_model_zip(str(path))
    if str(metadata.get("algo", "")).lower() != cls.__name__.lower():
        raise ZooError(f"{path} holds a {metadata.get('algo')} model, not {cls.__name__}")


def _setup(plan: _Plan, run_dir: Path, new_run: bool, vec_env: str, device: str, tensorboard_log: Optional[str],
           eval_freq: int, eval_episodes: int, save_freq: int, trained_agent: Optional[Path], verbose: int,
           argv: list[str]) -> tuple:
    """Write config.yml/run.json, build the envs (training env first), the model and the callbacks."""
    from rlzoo.callbacks import CheckpointCallback, EvalCallback

    config, cls = plan.config, plan.cls
    if new_run:
        rf.atomic_write_text(run_dir / rf.CONFIG_FILE, config.to_yaml())
        info = rf.new_run_info(plan.algo, config.env_id, run_dir, plan.seed, config.n_timesteps, argv)
        if trained_agent is not None:
            info["trained_agent"] = str(trained_agent)
        if config.env_modules:
            info["gym_packages"] = list(config.env_modules)
        rf.atomic_write_json(run_dir / rf.RUN_FILE, info)
        start_index, env_seed = 0, plan.seed
    else:
        info = plan.info or {}
        segments = list(info.get("segments", []))
        start_index = len(segments) * config.n_envs  # new monitor files, fresh env seeds
        env_seed = plan.seed + start_index
    tb = str(run_dir / rf.TB_DIR) if tensorboard_log is None else tensorboard_log

    env = make_env(config, config.n_envs, env_seed, vec_env, run_dir / rf.MONITOR_DIR, start_index)
    try:
        env = normalize_env(env, config, plan.resume_stats if not new_run else _trained_stats(trained_agent))
        kwargs = dict(config.model_kwargs)
        if config.noise is not None:
            kwargs["action_noise"] = make_action_noise(config.noise, env.single_action_space)
        if plan.resume_model is not None:
            model = cls.load(str(plan.resume_model), env=env, device=device, tensorboard_log=tb, verbose=verbose)
            buffer = replay_buffer_path(plan.resume_model)
            if hasattr(model, "load_replay_buffer") and buffer.is_file():
                model.load_replay_buffer(buffer)
        elif trained_agent is not None:
            kwargs.pop("policy_kwargs", None)  # the saved network decides its architecture
            model = cls.load(str(trained_agent), env=env, device=device, tensorboard_log=tb, verbose=verbose,
                             seed=plan.seed, **kwargs)
            model.num_timesteps = 0
        else:
            model = cls(config.policy, env, seed=plan.seed, device=device, tensorboard_log=tb, verbose=verbose,
                        **kwargs)
    except BaseException:
        env.close()
        raise
    envs = [env]
    start_steps = int(model.num_timesteps)
    if not new_run:
        segments = list((plan.info or {}).get("segments", []))
        segments.append({"started_at": rf.now(), "from_timesteps": start_steps, "command": shlex.join(["rlzoo", *argv])})
        if int((plan.info or {}).get("n_timesteps", 0)) != config.n_timesteps:  # -n gave a new total
            rf.atomic_write_text(run_dir / rf.CONFIG_FILE, config.to_yaml())
        rf.update_run_info(run_dir, status="running", segments=segments, num_timesteps=start_steps,
                           n_timesteps=config.n_timesteps)

    from rlzoo.zoo.signals import SignalGuard

    guard = SignalGuard()
    callbacks: list = [guard]
    n = config.n_envs
    if eval_freq > 0:
        eval_env = make_env(config, 1, plan.seed + 10_000 + start_index, "dummy", None)
        eval_env = normalize_env(eval_env, config, training=False)
        envs.append(eval_env)
        callbacks.append(EvalCallback(eval_env, n_eval_episodes=eval_episodes, eval_freq=max(eval_freq // n, 1),
                                      log_path=str(run_dir), best_model_save_path=str(run_dir),
                                      deterministic=not is_atari(config.env_id), verbose=1, warn=False))
    if save_freq > 0:
        callbacks.append(CheckpointCallback(max(save_freq // n, 1), str(run_dir / rf.CHECKPOINT_DIR), name_prefix="",
                                            save_vecnormalize=True,
                                            save_replay_buffer=hasattr(model, "save_replay_buffer")))
    for callback_cls, callback_kwargs in config.callbacks():
        callbacks.append(callback_cls(**callback_kwargs))
    return model, envs, callbacks, guard


def _trained_stats(trained_agent: Optional[Path]) -> Optional[Path]:
    """VecNormalize statistics saved next to a ``-i`` model, when there are any."""
    if trained_agent is None:
        return None
    path = vecnormalize_path(Path(trained_agent))
    return path if path.is_file() else None


def _save_final(model: Any, env: Any, run_dir: Path) -> None:
    """Save ``model.zip``, VecNormalize statistics and the replay buffer (each write is atomic)."""
    from rlzoo.envs import unwrap_vec_normalize

    model.save(str(run_dir / rf.MODEL_FILE))
    vec_normalize = unwrap_vec_normalize(env)
    if vec_normalize is not None:
        vec_normalize.save(run_dir / rf.VECNORMALIZE_FILE)
    if hasattr(model, "save_replay_buffer") and getattr(model, "replay_buffer", None) is not None:
        model.save_replay_buffer(str(replay_buffer_path(run_dir / rf.MODEL_FILE)))


def load_run_config(run_dir: Path, algo: str, cls: type, env_id: str) -> ZooConfig:
    """The configuration a run was trained with (its ``config.yml``)."""
    path = run_dir / rf.CONFIG_FILE
    if not path.is_file():
        raise ZooError(f"{run_dir} has no {rf.CONFIG_FILE}")
    load_yaml(path)
    return build_config(algo, cls, env_id, atari=is_atari(env_id), conf_file=path)
