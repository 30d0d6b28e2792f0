"""Optuna search spaces, one per algorithm (``rlzoo optimize``).

Each ``sample_<algo>(trial, ctx)`` draws hyperparameters with ``trial.suggest_*`` and returns them
as a plain hyperparameter-file entry (the YAML values of ``hyperparams/<algo>.yml``: schedules as
``lin_<value>``, ``policy_kwargs`` as a mapping with an activation *name*), so the best trial is a
ready YAML entry and ``rlzoo train --trial-id K`` passes the same values through the normal config
validation. The ranges follow the published RL Zoo tuning practice (log-uniform learning rates and
entropy coefficients, discrete sets for rollout and batch sizes, a few network sizes).

Keys an algorithm's constructor does not have are dropped (with a warning) by
:func:`sample_hyperparams`, so a space written for an algorithm that changes still samples.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from collections.abc import Iterator, Mapping
from typing import Any
from collections.abc import Callable

#: Discount factors tried by every space.
GAMMAS = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]
GAE_LAMBDAS = [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]
MAX_GRAD_NORMS = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0]
#: Hidden layers by size name; actor-critic methods get separate pi/vf (or pi/qf) heads.
NET_SIZES = {"tiny": [64], "small": [64, 64], "medium": [256, 256], "big": [400, 300]}


@dataclass(frozen=True)
class SpaceContext:
    """What a search space may depend on: parallel envs, action space kind, training budget."""

    n_envs: int = 1
    continuous: bool = False  # Box actions
    n_timesteps: int = 100_000


SampleFn = Callable[[Any, SpaceContext], dict[str, Any]]


# ----------------------------------------------------------------------------- helpers
def _learning_rate(trial: Any, low: float = 1e-5, high: float = 1e-2, schedule: bool = True) -> Any:
    """Log-uniform learning rate, optionally decayed linearly to 0 (``lin_<value>``)."""
    lr = trial.suggest_float("learning_rate", low, high, log=True)
    if schedule and trial.suggest_categorical("lr_schedule", ["constant", "linear"]) == "linear":
        return f"lin_{lr:.6g}"
    return lr


def _actor_critic_kwargs(trial: Any, ctx: SpaceContext, sizes: tuple = ("small", "medium"),
                         critic_key: str = "vf", ortho: bool = False) -> dict:
    """``policy_kwargs`` of an actor-critic MLP: net_arch with separate heads and an activation."""
    size = trial.suggest_categorical("net_arch", list(sizes))
    activation = trial.suggest_categorical("activation_fn", ["tanh", "relu"])
    layers = NET_SIZES[size]
    kwargs: dict = {"net_arch": {"pi": list(layers), critic_key: list(layers)}, "activation_fn": activation}
    if ortho:
        kwargs["ortho_init"] = trial.suggest_categorical("ortho_init", [False, True])
    if ctx.continuous:
        kwargs["log_std_init"] = trial.suggest_float("log_std_init", -4.0, 1.0)
    return kwargs


def _rollout_steps(trial: Any, ctx: SpaceContext, choices: list) -> int:
    """``n_steps`` per env, cut to what the training budget can fill (a rollout of 2048 x 8 envs
    would otherwise cost far more than a 10k-step tuning budget)."""
    n_steps = trial.suggest_categorical("n_steps", choices)
    return min(n_steps, max(ctx.n_timesteps // max(ctx.n_envs, 1), min(choices)))


def _off_policy_common(trial: Any, ctx: SpaceContext) -> dict:
    """Replay, update schedule and target smoothing shared by DQN/DDPG/TD3/SAC."""
    buffer_size = trial.suggest_categorical("buffer_size", [10_000, 100_000, 1_000_000])
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 32, 64, 128, 256])
    return {
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "learning_rate": _learning_rate(trial, 1e-5, 1e-2, schedule=False),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256, 512]),
        "buffer_size": min(buffer_size, max(ctx.n_timesteps, 1000)),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1000, 10_000, 20_000]),
        "train_freq": train_freq,
        "gradient_steps": train_freq,  # one gradient step per collected transition (per env)
    }


# ----------------------------------------------------------------------------- on-policy
def sample_ppo(trial: Any, ctx: SpaceContext) -> dict:
    """PPO (Schulman et al., 2017): rollout/minibatch sizes, epochs, clipping, GAE, network."""
    n_steps = _rollout_steps(trial, ctx, [8, 16, 32, 64, 128, 256, 512, 1024, 2048])
    batch_size = trial.suggest_categorical("batch_size", [8, 16, 32, 64, 128, 256, 512])
    return {
        "n_steps": n_steps,
        "batch_size": min(batch_size, n_steps * ctx.n_envs),  # a minibatch never exceeds the rollout
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "learning_rate": _learning_rate(trial, 1e-5, 1e-2),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "n_epochs": trial.suggest_categorical("n_epochs", [1, 5, 10, 20]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", GAE_LAMBDAS),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", MAX_GRAD_NORMS),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
        "policy_kwargs": _actor_critic_kwargs(trial, ctx, ortho=True),
    }


def sample_a2c(trial: Any, ctx: SpaceContext) -> dict:
    """A2C (Mnih et al., 2016): short rollouts, RMSprop or Adam, advantage normalization, network."""
    return {
        "n_steps": _rollout_steps(trial, ctx, [5, 8, 16, 32, 64, 128, 256, 512]),
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "gae_lambda": trial.suggest_categorical("gae_lambda", GAE_LAMBDAS),
        "learning_rate": _learning_rate(trial, 1e-5, 1e-2),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", MAX_GRAD_NORMS),
        "use_rms_prop": trial.suggest_categorical("use_rms_prop", [True, False]),
        "normalize_advantage": trial.suggest_categorical("normalize_advantage", [False, True]),
        "policy_kwargs": _actor_critic_kwargs(trial, ctx, ortho=True),
    }


def sample_trpo(trial: Any, ctx: SpaceContext) -> dict:
    """TRPO (Schulman et al., 2015): KL step size, conjugate-gradient iterations, critic updates."""
    n_steps = _rollout_steps(trial, ctx, [64, 128, 256, 512, 1024, 2048])
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
    return {
        "n_steps": n_steps,
        "batch_size": min(batch_size, n_steps * ctx.n_envs),
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "gae_lambda": trial.suggest_categorical("gae_lambda", GAE_LAMBDAS),
        "learning_rate": _learning_rate(trial, 1e-5, 1e-2),  # the critic's learning rate
        "target_kl": trial.suggest_categorical("target_kl", [0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.001]),
        "cg_max_steps": trial.suggest_categorical("cg_max_steps", [5, 10, 20, 25, 30]),
        "n_critic_updates": trial.suggest_categorical("n_critic_updates", [5, 10, 20, 25, 30]),
        "policy_kwargs": _actor_critic_kwargs(trial, ctx, ortho=True),
    }


def sample_acktr(trial: Any, ctx: SpaceContext) -> dict:
    """ACKTR (Wu et al., 2017): K-FAC step size (learning rate), trust-region clip, damping."""
    return {
        "n_steps": _rollout_steps(trial, ctx, [8, 16, 20, 32, 64]),
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "gae_lambda": trial.suggest_categorical("gae_lambda", GAE_LAMBDAS),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 1.0, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.1, 1.0),
        "kfac_clip": trial.suggest_categorical("kfac_clip", [0.0001, 0.001, 0.01]),
        "kfac_damping": trial.suggest_categorical("kfac_damping", [0.001, 0.01, 0.1]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", MAX_GRAD_NORMS),
        "policy_kwargs": _actor_critic_kwargs(trial, ctx),
    }


def sample_acer(trial: Any, ctx: SpaceContext) -> dict:
    """ACER (Wang et al., 2017): replay ratio, Q-loss weight, truncation constant, trust region."""
    return {
        "n_steps": _rollout_steps(trial, ctx, [5, 10, 20, 32]),
        "gamma": trial.suggest_categorical("gamma", GAMMAS),
        "learning_rate": _learning_rate(trial, 1e-5, 1e-2),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "q_coef": trial.suggest_float("q_coef", 0.25, 1.0),
        "replay_ratio": trial.suggest_categorical("replay_ratio", [0.0, 1.0, 2.0, 4.0, 8.0]),
        "buffer_size": trial.suggest_categorical("buffer_size", [5000, 10_000, 50_000]),
        "correction_term": trial.suggest_categorical("correction_term", [5.0, 10.0, 20.0]),
        "delta": trial.suggest_categorical("delta", [0.5, 1.0, 2.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.5, 1.0, 5.0, 10.0]),
        "policy_kwargs": _actor_critic_kwargs(trial, ctx, critic_key="qf"),
    }


# ----------------------------------------------------------------------------- off-policy
def sample_dqn(trial: Any, ctx: SpaceContext) -> dict:
    """DQN (Mnih et al., 2015): replay, target-network period, epsilon-greedy schedule, network."""
    params = _off_policy_common(trial, ctx)
    params.update({
        "target_update_interval": trial.suggest_categorical("target_update_interval", [1, 1000, 5000, 10_000]),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
        "double_q": trial.suggest_categorical("double_q", [False, True]),
        "dueling": trial.suggest_categorical("dueling", [False, True]),
        "policy_kwargs": {
            "net_arch": list(NET_SIZES[trial.suggest_categorical("net_arch", ["tiny", "small", "medium"])])},
    })
    return params


def _continuous_net(trial: Any, critic_key: str = "qf") -> dict:
    layers = NET_SIZES[trial.suggest_categorical("net_arch", ["small", "medium", "big"])]
    return {"net_arch": {"pi": list(layers), critic_key: list(layers)},
            "activation_fn": trial.suggest_categorical("activation_fn", ["relu", "tanh"])}


def _action_noise(trial: Any) -> dict:
    noise = trial.suggest_categorical("noise_type", ["normal", "ornstein-uhlenbeck", "none"])
    if noise == "none":
        return {}
    return {"noise_type": noise, "noise_std": trial.suggest_float("noise_std", 0.0, 1.0)}


def sample_sac(trial: Any, ctx: SpaceContext) -> dict:
    """SAC (Haarnoja et al., 2018): replay, Polyak tau, automatic entropy tuning, network."""
    params = _off_policy_common(trial, ctx)
    params.update({
        "tau": trial.suggest_categorical("tau", [0.001, 0.005, 0.01, 0.02, 0.05, 0.08]),
        "ent_coef": "auto",
        "policy_kwargs": _continuous_net(trial),
    })
    return params


def sample_td3(trial: Any, ctx: SpaceContext) -> dict:
    """TD3 (Fujimoto et al., 2018): replay, exploration noise, network."""
    params = _off_policy_common(trial, ctx)
    params.update({**_action_noise(trial), "policy_kwargs": _continuous_net(trial)})
    return params


def sample_ddpg(trial: Any, ctx: SpaceContext) -> dict:
    """DDPG (Lillicrap et al., 2016): replay, Polyak tau, exploration noise, network."""
    params = _off_policy_common(trial, ctx)
    params.update({
        "tau": trial.suggest_categorical("tau", [0.001, 0.005, 0.01, 0.02, 0.05]),
        **_action_noise(trial),
        "policy_kwargs": _continuous_net(trial),
    })
    return params


class _SearchSpaces(Mapping[str, SampleFn]):
    """Algorithm name -> search space, as the registry (:mod:`rlzoo.algos.registry`) declares them."""

    def _spaces(self) -> dict[str, Any]:
        from rlzoo.algos.registry import specs

        return {name: spec.search_space for name, spec in specs().items() if spec.search_space is not None}

    def __getitem__(self, algo: str) -> SampleFn:
        from rlzoo.algos.registry import get

        spec = get(algo)
        space = spec.load_search_space() if spec is not None else None
        if space is None:
            raise KeyError(algo)
        return space

    def __iter__(self) -> Iterator[str]:
        return iter(self._spaces())

    def __len__(self) -> int:
        return len(self._spaces())


#: Search space of every algorithm, by lower-case name (read from the registry).
SEARCH_SPACES: Mapping[str, SampleFn] = _SearchSpaces()


def _constructor_params(cls: type[Any]) -> set[str]:
    return {name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "policy", "env")}


def sample_hyperparams(algo: str, trial: Any, cls: type[Any], ctx: SpaceContext) -> dict[str, Any]:
    """Draw one trial's hyperparameters for ``algo`` (a plain hyperparameter-file entry).

    Keys the class (or its ``MlpPolicy``, for ``policy_kwargs``) does not accept are dropped with a
    warning (``noise_type``/``noise_std`` are zoo keys, kept when the class has ``action_noise``).
    """
    from rlzoo.zoo.errors import ZooError

    space = SEARCH_SPACES.get(algo)
    if space is None:
        raise ZooError(f"no search space for '{algo}' (spaces exist for: {', '.join(sorted(SEARCH_SPACES))})")
    params = space(trial, ctx)
    accepted = _constructor_params(cls)
    if "action_noise" in accepted:
        accepted |= {"noise_type", "noise_std"}
    dropped = sorted(set(params) - accepted)
    policy_cls = (getattr(cls, "policy_aliases", None) or {}).get("MlpPolicy")
    if isinstance(params.get("policy_kwargs"), dict) and policy_cls is not None:
        policy_params = inspect.signature(policy_cls.__init__).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in policy_params.values()):
            kwargs = params["policy_kwargs"]
            dropped += [f"policy_kwargs.{k}" for k in sorted(set(kwargs) - set(policy_params))]
            params["policy_kwargs"] = {k: v for k, v in kwargs.items() if k in policy_params}
    if dropped:
        warnings.warn(f"{cls.__name__} has no {', '.join(dropped)}: left out of the search", UserWarning, stacklevel=2)
    return {k: v for k, v in params.items() if k in accepted}
