"""Policy evaluation over whole episodes, and VecNormalize statistics sharing for eval envs."""
from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any, Literal, overload

import gymnasium as gym
import numpy as np

# (rlzoo.envs.native vector envs record Monitor-like episodes themselves)
_MONITOR_CLASSES = ("Monitor", "RecordEpisodeStatistics", "CartPoleNativeVecEnv", "AtariNativeVecEnv", "EnvPoolVecEnv")


def is_vector_env(env: Any) -> bool:
    """True for a gymnasium vector env (or a wrapper of one)."""
    return isinstance(env, gym.vector.VectorEnv) or (hasattr(env, "num_envs") and hasattr(env, "single_action_space"))


def as_vector_env(env: Any) -> Any:
    """Return ``env`` if it is a vector env, else a one-env DummyVecEnv around it (same instance)."""
    if is_vector_env(env):
        return env
    if not isinstance(env, gym.Env):
        raise ValueError(f"expected a gymnasium.Env or a vector env, got {type(env).__name__}")
    from rlzoo.envs import DummyVecEnv

    return DummyVecEnv([lambda: env])


def _inner(env: Any) -> Any:
    """The next wrapped env of a (vector) wrapper, or None."""
    for attr in ("venv", "env"):
        inner = getattr(env, attr, None)
        if inner is not None and inner is not env:
            return inner
    return None


def unwrap_vec_normalize(venv: Any) -> Any | None:
    """The first VecNormalize in a vector-wrapper chain, or None."""
    from rlzoo.envs import unwrap_vec_normalize as _unwrap

    return _unwrap(venv)


def sync_envs_normalization(env: Any, eval_env: Any) -> None:
    """Copy VecNormalize statistics (obs_rms, ret_rms) from ``env`` to ``eval_env`` and freeze the latter."""
    source, target = unwrap_vec_normalize(env), unwrap_vec_normalize(eval_env)
    if source is None or target is None or source is target:
        return
    if hasattr(target, "copy_stats_from"):
        target.copy_stats_from(source)
    else:
        target.obs_rms = copy.deepcopy(source.obs_rms)
        target.ret_rms = copy.deepcopy(source.ret_rms)
    target.training = False


def is_monitored(venv: Any) -> bool | None:
    """Whether the envs inside ``venv`` carry a Monitor (or RecordEpisodeStatistics).

    None when it cannot be told (envs in subprocesses)."""
    probe = venv
    while probe is not None:  # a vector-level episode recorder counts too
        if type(probe).__name__ in _MONITOR_CLASSES:
            return True
        probe = _inner(probe)
    base = getattr(venv, "unwrapped", venv)
    envs = getattr(base, "envs", None)
    if envs:
        env = envs[0]
        while env is not None:
            if type(env).__name__ in _MONITOR_CLASSES:
                return True
            env = getattr(env, "env", None)
        return False
    if hasattr(base, "call"):  # envs in subprocesses: ask them (Monitor and RecordEpisodeStatistics keep lengths)
        try:
            return bool(all(base.call("has_wrapper_attr", "episode_lengths")))
        except Exception:
            return None
    return None


def _env_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Info dict of env ``i`` from gymnasium's vectorised infos (dict of arrays with ``_key`` masks)."""
    info: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        if mask is not None and not mask[i]:
            continue
        info[key] = _env_info(value, i) if isinstance(value, dict) else value[i]
    return info


def _step_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Info of env ``i`` for the step just taken: with same-step autoreset the step's own info of a
    finished episode sits in ``infos["final_info"]``; merge it over the reset info."""
    info = _env_info(infos, i)
    final = info.pop("final_info", None)
    return {**info, **final} if isinstance(final, dict) else info


EvalCallbackFn = Callable[[dict[str, Any], dict[str, Any]], None]


@overload
def evaluate_policy(model: Any, env: Any, n_eval_episodes: int = ..., deterministic: bool = ..., render: bool = ...,
                    callback: EvalCallbackFn | None = ..., reward_threshold: float | None = ...,
                    return_episode_rewards: Literal[False] = ..., warn: bool = ...) -> tuple[float, float]: ...


@overload
def evaluate_policy(model: Any, env: Any, n_eval_episodes: int = ..., deterministic: bool = ..., render: bool = ...,
                    callback: EvalCallbackFn | None = ..., reward_threshold: float | None = ..., *,
                    return_episode_rewards: Literal[True], warn: bool = ...) -> tuple[list[float], list[int]]: ...


@overload
def evaluate_policy(model: Any, env: Any, n_eval_episodes: int = ..., deterministic: bool = ..., render: bool = ...,
                    callback: EvalCallbackFn | None = ..., reward_threshold: float | None = ...,
                    return_episode_rewards: bool = ...,
                    warn: bool = ...) -> tuple[float, float] | tuple[list[float], list[int]]: ...


def evaluate_policy(
    model: Any,
    env: Any,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    render: bool = False,
    callback: EvalCallbackFn | None = None,
    reward_threshold: float | None = None,
    return_episode_rewards: bool = False,
    warn: bool = True,
) -> tuple[float, float] | tuple[list[float], list[int]]:
    """Run ``n_eval_episodes`` full episodes and report the return.

    Episodes are spread evenly over the envs of a vector env (env ``i`` runs its share only), so
    that envs with short episodes do not dominate the mean. When the envs are wrapped in a
    Monitor, an episode ends only when the Monitor reports one (``info["episode"]``): reward and
    length are the Monitor's, so Atari life losses or reward clipping below it change nothing.
    Otherwise the rewards seen by the agent are summed.

    :param model: anything with ``predict(obs, state, episode_start, deterministic)``
    :param env: a vector env or a single ``gymnasium.Env``
    :param callback: called as ``callback(locals_, globals_)`` for every env after every step
    :param reward_threshold: raise ``AssertionError`` if the mean reward is below it (SB3
        semantics; raised explicitly, so it also fires under ``python -O``)
    :param return_episode_rewards: return the per-episode lists instead of mean and std
    :param warn: warn when the env has no Monitor
    :return: ``(mean_reward, std_reward)`` or ``(episode_rewards, episode_lengths)``
    """
    if n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes must be >= 1, got {n_eval_episodes}")
    venv = as_vector_env(env)
    n_envs = venv.num_envs
    monitored = is_monitored(venv)
    if warn and monitored is False:
        warnings.warn("evaluate_policy: the env has no Monitor wrapper, so the returned rewards and lengths "
                      "are those seen by the agent (after any reward-changing wrappers); wrap it in "
                      "rlzoo.envs.Monitor to report the original episode returns", UserWarning, stacklevel=2)

    targets = np.full(n_envs, n_eval_episodes // n_envs, dtype=np.int64)
    targets[: n_eval_episodes % n_envs] += 1
    counts = np.zeros(n_envs, dtype=np.int64)
    current_rewards = np.zeros(n_envs, dtype=np.float64)
    current_lengths = np.zeros(n_envs, dtype=np.int64)
    episode_rewards: list[float] = []
    episode_lengths: list[int] = []

    observations, _ = venv.reset()
    states = None
    episode_starts = np.ones(n_envs, dtype=bool)
    while (counts < targets).any():
        actions, states = model.predict(observations, state=states, episode_start=episode_starts,
                                        deterministic=deterministic)
        observations, rewards, terminated, truncated, infos = venv.step(actions)
        dones = np.logical_or(terminated, truncated)
        current_rewards += rewards
        current_lengths += 1
        if callback is not None:
            for env_i in range(n_envs):
                callback({"model": model, "env": venv, "i": env_i, "observations": observations, "actions": actions,
                          "rewards": rewards, "dones": dones, "infos": infos, "reward": rewards[env_i],
                          "done": bool(dones[env_i]), "info": _step_info(infos, env_i), "episode_counts": counts,
                          "episode_count_targets": targets, "current_rewards": current_rewards,
                          "current_lengths": current_lengths}, globals())
        for i in np.flatnonzero(dones).tolist():
            episode = _step_info(infos, i).get("episode")
            if episode is None and monitored:
                # a Monitor sits below the wrapper that ended this "episode" (e.g. an Atari life loss)
                continue
            if counts[i] < targets[i]:
                if episode is not None:
                    episode_rewards.append(float(episode["r"]))
                    episode_lengths.append(int(episode["l"]))
                else:
                    episode_rewards.append(float(current_rewards[i]))
                    episode_lengths.append(int(current_lengths[i]))
                counts[i] += 1
            current_rewards[i] = 0.0
            current_lengths[i] = 0
        episode_starts = dones
        if render:
            venv.render()

    mean_reward = float(np.mean(episode_rewards))
    std_reward = float(np.std(episode_rewards))
    if reward_threshold is not None and mean_reward < reward_threshold:
        raise AssertionError(f"mean reward {mean_reward:.2f} is below the threshold {reward_threshold:.2f}")
    if return_episode_rewards:
        return episode_rewards, episode_lengths
    return mean_reward, std_reward
