"""``rlzoo enjoy``: run a trained agent from a run folder and report its episode rewards."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.config import ZooConfig, parse_key_values
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.experiment import load_run_config, make_env, normalize_env, vecnormalize_path
from rlzoo.zoo.resolve import env_modules, is_atari, resolve_algo, resolve_env


@dataclass
class Agent:
    """A trained model with the configuration and statistics of its run."""

    run_dir: Path
    model_path: Path
    model: Any
    config: ZooConfig
    stats: Path | None
    atari: bool


def load_agent(algo: str, env_id: str, log_folder: str, exp_id: int = 0, load_best: bool = False,
               load_checkpoint: int | None = None, device: str = "auto",
               gym_packages: list[str] | None = None, load_last_checkpoint: bool = False) -> Agent:
    """Find the run, pick the model file (final, best, checkpoint K or the last checkpoint) and load it."""
    algo, cls = resolve_algo(algo)
    modules = env_modules(env_id, gym_packages)
    run_dir = rf.find_run(log_folder, algo, env_id, exp_id)
    info_file = run_dir / rf.RUN_FILE
    if info_file.is_file():  # the modules that registered a custom env at training time
        modules = list(rf.read_run_info(run_dir).get("gym_packages", [])) + modules
    env_id = resolve_env(env_id.split(":", 1)[-1], modules)
    if load_last_checkpoint:
        checkpoints = rf.list_checkpoints(run_dir)
        if not checkpoints:
            raise ZooError(f"{run_dir} has no checkpoints (train with --save-freq > 0)")
        load_checkpoint = checkpoints[-1][0]
    if load_checkpoint is not None:
        checkpoints = rf.list_checkpoints(run_dir)
        model_path = run_dir / rf.CHECKPOINT_DIR / f"{load_checkpoint}.zip"
        if not model_path.is_file():
            have = ", ".join(str(k) for k, _ in checkpoints) or "none"
            raise ZooError(f"no checkpoint {load_checkpoint} in {run_dir / rf.CHECKPOINT_DIR} (checkpoints: {have})")
    elif load_best:
        model_path = run_dir / rf.BEST_MODEL_FILE
        if not model_path.is_file():
            raise ZooError(f"{run_dir} has no {rf.BEST_MODEL_FILE} (train with --eval-freq > 0)")
    else:
        model_path = run_dir / rf.MODEL_FILE
        if not model_path.is_file():
            hint = " (training may still be running; try --load-best or --load-checkpoint)"
            raise ZooError(f"{run_dir} has no {rf.MODEL_FILE}{hint}")
    config = load_run_config(run_dir, algo, cls, env_id)
    config.env_modules = tuple(modules)
    stats = None
    if config.normalize is not None:
        stats = vecnormalize_path(model_path)
        if not stats.is_file():
            fallback = run_dir / rf.VECNORMALIZE_FILE
            if not fallback.is_file():
                raise ZooError(f"VecNormalize statistics for {model_path} are missing ({stats})")
            print(f"warning: {stats.name} not found, using {fallback}", file=sys.stderr)
            stats = fallback
    model = cls.load(str(model_path), device=device)
    return Agent(run_dir, model_path, model, config, stats, is_atari(env_id))


def has_display() -> bool:
    """Whether a window can be opened (a display on Linux; always assumed elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def make_agent_env(agent: Agent, seed: int, render_mode: str | None, env_kwargs: list[str], n_envs: int = 1,
                   monitor_dir: Path | None = None, norm_reward: bool = False) -> Any:
    """Evaluation envs like the training ones (frozen VecNormalize statistics; raw rewards unless
    ``norm_reward``); ``monitor_dir``: write the episodes' monitor CSV files there."""
    extra = parse_key_values(env_kwargs, "--env-kwargs")
    venv = make_env(agent.config, n_envs, seed, "dummy", monitor_dir, render_mode=render_mode, env_kwargs=extra)
    try:
        venv = normalize_env(venv, agent.config, agent.stats, training=False)
        if norm_reward and agent.config.normalize is not None:
            venv.norm_reward = bool(agent.config.normalize.get("norm_reward", True))
        return venv
    except BaseException:
        venv.close()
        raise


def enjoy(algo: str, env_id: str, log_folder: str = "logs", exp_id: int = 0, load_best: bool = False,
          load_checkpoint: int | None = None, n_timesteps: int = 1000, render: bool = True,
          deterministic: bool | None = None, seed: int = 0, env_kwargs: list[str] | None = None,
          gym_packages: list[str] | None = None, device: str = "auto", n_envs: int = 1,
          norm_reward: bool = False, load_last_checkpoint: bool = False, reward_log: Path | None = None) -> dict:
    """Run the agent for ``n_timesteps`` steps of ``n_envs`` envs; print and return mean ± std episode reward
    and length. ``norm_reward``: report the rewards as VecNormalize scales them (as the agent was trained);
    ``reward_log``: a folder receiving the episodes' monitor CSV files (``rlzoo plot`` reads them)."""
    from rlzoo.envs import episode_stats

    agent = load_agent(algo, env_id, log_folder, exp_id, load_best, load_checkpoint, device, gym_packages,
                       load_last_checkpoint)
    if norm_reward and agent.config.normalize is None:
        print("--norm-reward: this run has no VecNormalize, rewards are the env's own", file=sys.stderr)
        norm_reward = False
    if reward_log is not None:
        Path(reward_log).mkdir(parents=True, exist_ok=True)
    if deterministic is None:
        deterministic = not agent.atari
    if render and not has_display():
        print("no display found: running without rendering (pass --no-render to silence this)", file=sys.stderr)
        render = False
    env = make_agent_env(agent, seed, "human" if render else None, env_kwargs or [], n_envs,
                         Path(reward_log) if reward_log is not None else None, norm_reward)
    print(f"enjoying {agent.model_path} on {agent.config.env_id} for {n_timesteps} steps "
          f"({'deterministic' if deterministic else 'stochastic'}"
          f"{f', {n_envs} envs' if n_envs > 1 else ''}{', normalized rewards' if norm_reward else ''})", flush=True)
    rewards: list[float] = []
    lengths: list[int] = []
    partial = 0.0
    try:
        obs, _ = env.reset(seed=seed)
        state, episode_start = None, np.ones((n_envs,), dtype=bool)
        scaled = np.zeros(n_envs)  # the rewards as env.step returns them (normalized with --norm-reward)
        for _ in range(n_timesteps):
            action, state = agent.model.predict(obs, state=state, episode_start=episode_start,
                                                deterministic=deterministic)
            obs, reward, terminated, truncated, infos = env.step(action)
            scaled += np.asarray(reward, dtype=np.float64).reshape(n_envs)
            partial = float(scaled.sum())
            episode_start = np.logical_or(terminated, truncated)
            final_info = infos.get("final_info") or {}
            ended = np.flatnonzero(final_info["_episode"]) if "episode" in final_info else np.empty(0, np.intp)
            # Monitor's records, in env order: one per ended env
            for i, record in zip(ended, episode_stats(infos), strict=True):
                value = float(scaled[i]) if norm_reward else float(record["r"])
                scaled[i] = 0.0
                rewards.append(value)
                lengths.append(int(record["l"]))
                print(f"episode {len(rewards)}: reward {value:.2f}, length {record['l']}", flush=True)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        env.close()
    if not rewards:
        print(f"no episode finished in {n_timesteps} steps (reward so far {partial:.2f}); use a larger -n")
        return {"episodes": 0}
    result = {"episodes": len(rewards), "mean_reward": float(np.mean(rewards)), "std_reward": float(np.std(rewards)),
              "mean_length": float(np.mean(lengths)), "std_length": float(np.std(lengths))}
    print(f"mean reward {result['mean_reward']:.2f} ± {result['std_reward']:.2f}, mean length "
          f"{result['mean_length']:.1f} ± {result['std_length']:.1f} over {len(rewards)} episodes", flush=True)
    return result
