"""The base class every algorithm derives from: env handling, learn plumbing, predict, save/load.

Algorithms only add what is theirs: ``_setup_model`` (networks, optimizers, buffers),
``_learn_loop`` (the collection/update cycle, provided by the on-/off-policy bases) and ``train``.
"""
from __future__ import annotations

import inspect
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from rlzoo.common.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical, check_action_space
from rlzoo.common.optim import make_adam
from rlzoo.common.policies import BasePolicy, is_image_space
from rlzoo.common import safe_io
from rlzoo.common.registry import short
from rlzoo.common.save_format import (ModelFileError, read_model_zip, space_to_json, state_from_files, state_to_files,
                                      to_json, write_model_zip)
from rlzoo.common.utils import flush_denormals, get_device, get_schedule_fn, set_global_seeds, tune_threads
from rlzoo.version import __version__
from rlzoo.envs import DummyVecEnv, Monitor, episode_stats, make_vec_env

if TYPE_CHECKING:
    from typing_extensions import Self

ALL_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
# constructor arguments that are plumbing, not hyperparameters
_NOT_HYPERPARAMS = {"self", "policy", "env", "device", "_init_setup_model"}


def wrap_env(env: Any, n_envs: int = 1, seed: int | None = None) -> gym.vector.VectorEnv:
    """An env id, a gymnasium Env or a vector env -> a same-step-autoreset vector env."""
    if isinstance(env, str):
        return make_vec_env(env, n_envs=n_envs, seed=seed)
    if isinstance(env, gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")
        if mode is not None and getattr(mode, "value", mode) != "SameStep":
            raise ValueError("rlzoo needs vector envs with same-step autoreset: use rlzoo.envs.DummyVecEnv / "
                             "SubprocVecEnv or gymnasium's autoreset_mode=AutoresetMode.SAME_STEP")
        return env
    if isinstance(env, gym.Env):
        wrapped = env if _has_monitor(env) else Monitor(env)
        return DummyVecEnv([lambda: wrapped])
    raise ValueError(f"env must be an env id, a gymnasium.Env or a vector env, not {type(env).__name__}")


def _has_monitor(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, Monitor):
            return True
        env = env.env
    return False


#: ``policy_kwargs`` keys that configure the optimizer, not the policy (as in SB3)
OPTIMIZER_KEYS = ("optimizer_class", "optimizer_kwargs")


class BaseAlgorithm:
    """Shared interface of all rlzoo algorithms (API.md §1).

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or a policy class
    :param env: env id, gymnasium Env or vector env (None only when loading)
    :param learning_rate: a float or a schedule of the remaining progress (1 -> 0)
    :param policy_kwargs: extra arguments for the policy (``net_arch``, ``activation_fn``, ...)
    :param tensorboard_log: folder for TensorBoard events (None: no TensorBoard)
    :param verbose: 0 silent, 1 training logs, 2 debug
    :param seed: seed of python, numpy, torch and the env; same seed on CPU -> identical run
    :param device: ``"auto"``, ``"cpu"`` or ``"cuda"``
    :param compile: run the update's network calls as ``torch.compile``'d graphs, forward and backward
        (CUDA graphs on GPU), instead of eagerly and with rlzoo's hand-written MLP passes; off by default:
        slower on CPU (README, "Speed")
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {}
    #: the optimizer that is part of the algorithm itself (ACKTR: "K-FAC"), which ``policy_kwargs``'
    #: ``OPTIMIZER_KEYS`` may not replace; None: they may
    fixed_optimizer: ClassVar[str | None] = None
    supported_action_spaces: ClassVar[tuple[type[spaces.Space], ...]] = ALL_ACTION_SPACES
    #: why ``compile=True`` is refused (an update that torch.compile cannot trace), or None
    not_compilable: ClassVar[str | None] = None
    # the optimizer saved with the model, built by ``_setup_model`` of algorithms that have a single one
    # (those with several override ``_state_objects``)
    optimizer: torch.optim.Optimizer

    def __init__(self, policy: str | type[BasePolicy], env: Any, learning_rate: float | Callable,
                 policy_kwargs: dict[str, Any] | None = None, tensorboard_log: str | None = None,
                 verbose: int = 0, seed: int | None = None, device: str | torch.device = "auto",
                 compile: bool = False) -> None:
        if compile and self.not_compilable is not None:
            raise ValueError(f"{type(self).__name__} cannot run with compile=True: {self.not_compilable}")
        self.compile = bool(compile)
        self.policy_class = self._resolve_policy(policy)
        self.policy_name = policy if isinstance(policy, str) else None
        self.learning_rate = learning_rate
        self.lr_schedule = get_schedule_fn(learning_rate)
        self.policy_kwargs = dict(policy_kwargs or {})
        self.tensorboard_log = tensorboard_log
        self.verbose = verbose
        self.seed = seed
        self.device = get_device(device)
        self.num_timesteps = 0
        self._total_timesteps = 0
        self._num_timesteps_at_start = 0
        self._n_updates = 0
        self._current_progress_remaining = 1.0
        self._last_obs: Any = None
        self._last_episode_starts: np.ndarray | None = None
        self.ep_info_buffer: deque[dict[str, float]] = deque(maxlen=100)
        # objects built on views of the policy's weights (numpy actors, hand-written passes), by name
        self._views_cache: tuple[Any, list[torch.Tensor], list[int], dict[str, Any]] | None = None
        self.start_time = time.time_ns()
        self.logger: Any = None
        self.policy: Any = None
        self.env: gym.vector.VectorEnv | None = None
        if seed is not None:
            set_global_seeds(seed)
        if env is not None:
            self.env = wrap_env(env, seed=seed)
            self.observation_space = self.env.single_observation_space
            self.action_space = self.env.single_action_space
            self.n_envs = self.env.num_envs
            check_action_space(self.action_space, self.supported_action_spaces, type(self).__name__)
            if seed is not None:
                self.action_space.seed(seed)

    # ------------------------------------------------------------------ construction helpers
    def _resolve_policy(self, policy: str | type[BasePolicy]) -> type[BasePolicy]:
        if isinstance(policy, str):
            if policy not in self.policy_aliases:
                raise ValueError(f"unknown policy {policy!r} for {type(self).__name__}: "
                                 f"choose from {', '.join(self.policy_aliases)}")
            return self.policy_aliases[policy]
        if isinstance(policy, type) and issubclass(policy, torch.nn.Module):
            return policy
        raise ValueError(f"policy must be a name ({', '.join(self.policy_aliases)}) or a policy class")

    def _setup_model(self) -> None:
        """Build networks, optimizers and buffers (each algorithm)."""
        raise NotImplementedError

    def _make_policy(self, **extra: Any) -> BasePolicy:
        """Instantiate the policy class with ``policy_kwargs`` on the model's device."""
        if self.device.type == "cpu":
            # build on one thread: LAPACK's QR in the orthogonal init rounds differently with other thread
            # counts, and the same seed must give the same weights whatever trained before in this process
            torch.set_num_threads(1)
        if self.fixed_optimizer is not None and any(k in self.policy_kwargs for k in OPTIMIZER_KEYS):
            raise ValueError(f"{type(self).__name__} takes no policy_kwargs.optimizer_class/optimizer_kwargs: its "
                             f"{self.fixed_optimizer} optimizer is the algorithm (set the algorithm's own settings)")
        kwargs = {k: v for k, v in self.policy_kwargs.items() if k not in OPTIMIZER_KEYS}
        policy = self.policy_class(self.observation_space, self.action_space, **{**kwargs, **extra})
        if self.device.type == "cpu":
            n_params = sum(p.numel() for p in policy.parameters() if p.requires_grad)  # no target copies
            tune_threads(small_model=not _has_image(self.observation_space) and n_params < SMALL_MODEL_PARAMS)
        return policy.to(self.device)

    def _policy_view(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()``, built once on the policy's current weights and rebuilt when the policy or the storage
        of its weights changed (``policy.to``, loading): what it holds are views that must follow them."""
        cache = self._views_cache
        if (cache is None or cache[0] is not self.policy
                or list(map(torch.Tensor.data_ptr, cache[1])) != cache[2]):
            params = list(self.policy.parameters())
            cache = self._views_cache = (self.policy, params, [p.data_ptr() for p in params], {})
        if name not in cache[3]:
            cache[3][name] = make()
        return cache[3][name]

    def _new_optimizer(self, params: Iterable[torch.Tensor], default: type[torch.optim.Optimizer],
                       **default_kwargs: Any) -> torch.optim.Optimizer:
        """The optimizer of ``params`` at the schedule's first learning rate: ``policy_kwargs["optimizer_class"]``
        with ``policy_kwargs["optimizer_kwargs"]`` when given (SB3's keys), else the algorithm's ``default``;
        ``default_kwargs`` apply to the default class only. Adam steps on flat buffers (:func:`make_adam`)."""
        cls = self.policy_kwargs.get("optimizer_class") or default
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ValueError(f"policy_kwargs.optimizer_class must be a torch optimizer class, got {cls!r}")
        user_kwargs = self.policy_kwargs.get("optimizer_kwargs") or {}
        if not isinstance(user_kwargs, dict):
            raise ValueError(f"policy_kwargs.optimizer_kwargs must be a mapping, got {user_kwargs!r}")
        kwargs = {**(default_kwargs if cls is default else {}), **user_kwargs}
        factory: Callable[..., torch.optim.Optimizer] = make_adam if cls is torch.optim.Adam else cls
        try:
            return factory(params, lr=self.lr_schedule(1.0), **kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"policy_kwargs.optimizer_kwargs {user_kwargs!r} do not fit {cls.__name__}: "
                             f"{safe_io.one_line(exc)}") from None

    def _update_learning_rate(self, optimizers: torch.optim.Optimizer | Iterable[torch.optim.Optimizer]) -> None:
        """Set the learning rate of ``optimizers`` from the schedule at the current progress."""
        lr = self.lr_schedule(self._current_progress_remaining)
        for opt in [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else optimizers:
            for group in opt.param_groups:
                group["lr"] = lr
        self.logger.record("train/learning_rate", lr)

    # ------------------------------------------------------------------ learning
    def _setup_learn(self, total_timesteps: int, callback: Any, reset_num_timesteps: bool, tb_log_name: str,
                     progress_bar: bool) -> tuple[int, Any]:
        from rlzoo.common.callbacks import CallbackList, ProgressBarCallback, make_callback
        from rlzoo.common.logger import configure_logger

        if self.env is None:
            raise ValueError("this model has no env: pass env= to load() or call set_env() before learn()")
        total_timesteps = int(total_timesteps)
        if total_timesteps <= 0:
            raise ValueError(f"total_timesteps must be positive, got {total_timesteps}")
        self.start_time = time.time_ns()
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._n_updates = 0
            self.ep_info_buffer = deque(maxlen=100)
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if reset_num_timesteps or self._last_obs is None:
            seed = self.seed if self._last_obs is None else None
            self._last_obs, _ = self.env.reset(seed=seed)
            self._last_episode_starts = np.ones((self.n_envs,), dtype=bool)
        self.logger = configure_logger(self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps)
        if self.compile:
            self._compile_networks()
        callback = make_callback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)
        return total_timesteps, callback

    def _compile_targets(self) -> list[tuple[Any, str]]:
        """``(object, method name)``: the network calls of the update, which ``compile=True`` replaces with
        their ``torch.compile``'d versions (each algorithm)."""
        return []

    def _compile_networks(self) -> None:
        """``compile=True``: from now on the update's network calls (:meth:`_compile_targets`) run as
        ``torch.compile``'d graphs, their backward passes too; on CUDA in "reduce-overhead" mode (CUDA
        graphs). Weights, state dicts and the file format are unchanged. A compiled method is an attribute of
        the object itself (its class keeps the eager one), so a later ``learn`` does not compile it again."""
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        for obj, name in self._compile_targets():
            if name not in vars(obj):
                setattr(obj, name, torch.compile(getattr(obj, name), mode=mode))

    def _update_current_progress_remaining(self) -> None:
        self._current_progress_remaining = 1.0 - self.num_timesteps / max(self._total_timesteps, 1)

    def _update_info_buffer(self, infos: dict[str, Any]) -> None:
        """Record finished episodes reported by Monitor in this step's infos."""
        if "final_info" in infos:
            self.ep_info_buffer.extend(episode_stats(infos))

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 1, tb_log_name: str = "run",
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> Self:
        """Train for ``total_timesteps`` environment steps; returns the model.

        ``callback``: a BaseCallback, a list of them, or a function ``f(locals_, globals_)`` called
        after every env step (return False to stop). ``reset_num_timesteps=False`` continues the
        step count (and the schedules) of an earlier call.
        """
        total_timesteps, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps,
                                                      tb_log_name, progress_bar)
        callback.on_training_start(locals(), globals())
        try:
            with flush_denormals(self.device.type == "cpu"):
                self._learn_loop(total_timesteps, callback, log_interval)
        finally:
            callback.on_training_end()
            self.logger.close()
        return self

    def _learn_loop(self, total_timesteps: int, callback: Any, log_interval: int) -> None:
        raise NotImplementedError

    def train(self, *args: Any, **kwargs: Any) -> None:
        """One update of the networks from collected experience (each algorithm, with its own arguments:
        none on-policy, ``(gradient_steps, batch_size)`` off-policy)."""
        raise NotImplementedError

    def _log_time(self) -> None:
        elapsed = max((time.time_ns() - self.start_time) / 1e9, 1e-9)
        self.logger.record("time/fps", int((self.num_timesteps - self._num_timesteps_at_start) / elapsed))
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        if self.ep_info_buffer:
            self.logger.record("rollout/ep_rew_mean", float(np.mean([e["r"] for e in self.ep_info_buffer])))
            self.logger.record("rollout/ep_len_mean", float(np.mean([e["l"] for e in self.ep_info_buffer])))

    # ------------------------------------------------------------------ acting
    def predict(self, observation: Any, state: Any | None = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any | None]:
        """Action(s) for one observation or a batch; returns ``(actions, state)``."""
        return self.policy.predict(observation, state, episode_start, deterministic)

    def action_probability(self, observation: Any, state: Any | None = None, mask: np.ndarray | None = None,
                           actions: np.ndarray | None = None, logp: bool = False) -> Any:
        """The policy's action distribution at ``observation``.

        Discrete: probabilities ``(n, n_actions)``; MultiDiscrete: a list of those per dimension;
        MultiBinary: probabilities of 1; Box: ``(mean, std)``. With ``actions``, the probability
        (or log-probability with ``logp``) of those actions instead.
        """
        obs, vectorized = self.policy.obs_to_tensor(observation)
        with torch.inference_mode():
            dist = self.policy.get_distribution(obs)
            if actions is not None:
                act = torch.as_tensor(np.asarray(actions), device=self.device)
                act = act.reshape(-1, *self.action_space.shape) if self.action_space.shape else act.reshape(-1)
                out = dist.log_prob(act)
                out = (out if logp else out.exp()).cpu().numpy()
                return out if vectorized else out[0]
            if isinstance(dist, Categorical):
                res: Any = dist.probs.cpu().numpy()
            elif isinstance(dist, MultiCategorical):
                res = [d.probs.cpu().numpy() for d in dist.parts]
            elif isinstance(dist, Bernoulli):
                res = dist.probs.cpu().numpy()
            elif isinstance(dist, DiagGaussian):
                res = (dist.mean.cpu().numpy(), dist.std.cpu().numpy())
            else:
                raise ValueError(f"action_probability is not available for {type(dist).__name__}")
        if vectorized:
            return res
        return tuple(r[0] for r in res) if isinstance(res, tuple) else (
            [r[0] for r in res] if isinstance(res, list) else res[0])

    # ------------------------------------------------------------------ env
    def get_env(self) -> gym.vector.VectorEnv | None:
        """The (vector) training env."""
        return self.env

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """Use another env with the same spaces and number of envs (continual learning)."""
        env = wrap_env(env)
        if env.single_observation_space != self.observation_space:
            raise ValueError(f"observation space mismatch: model has {self.observation_space}, "
                             f"env has {env.single_observation_space}")
        if env.single_action_space != self.action_space:
            raise ValueError(f"action space mismatch: model has {self.action_space}, env has {env.single_action_space}")
        if self.env is not None and env.num_envs != self.n_envs:
            raise ValueError(f"the model was built for {self.n_envs} envs, the new env has {env.num_envs}")
        self.n_envs = env.num_envs
        self.env = env
        if force_reset:
            self._last_obs = None

    # ------------------------------------------------------------------ persistence
    def _state_objects(self) -> dict[str, Any]:
        """Objects with ``state_dict``/``load_state_dict`` saved in the model file."""
        return {"policy": self.policy, "optimizer": self.optimizer}

    def _hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments saved in the model file, by argument name (``load`` passes them back).

        Each algorithm extends this with its own arguments: ``{**super()._hyperparameters(), ...}``.
        """
        saved = self._attrs("learning_rate", "policy_kwargs", "tensorboard_log", "verbose", "seed")
        if "compile" in inspect.signature(type(self).__init__).parameters:  # user algorithms may not take it
            saved["compile"] = self.compile
        return saved

    def _attrs(self, *names: str) -> dict[str, Any]:
        """``{name: self.name}`` for constructor arguments kept under their own name."""
        return {name: getattr(self, name) for name in names}

    def get_parameters(self) -> dict[str, dict[str, Any]]:
        """State dicts of the policy and optimizers, by name."""
        return {name: obj.state_dict() for name, obj in self._state_objects().items()}

    def set_parameters(self, params: str | dict[str, dict[str, Any]], exact_match: bool = True) -> None:
        """Load state dicts (as from :meth:`get_parameters`, or a model zip's path)."""
        if isinstance(params, str):
            _, files = read_model_zip(params)  # module tensors are checked against this model before reading
            params = {name: state_from_files(name, files, obj.state_dict() if isinstance(obj, torch.nn.Module)
                                             else None) for name, obj in self._state_objects().items()}
        objects = self._state_objects()
        missing = set(objects) - set(params)
        if exact_match and missing:
            raise ValueError(f"parameters lack {sorted(missing)}")
        for name, state in params.items():
            if name not in objects:
                raise ValueError(f"unknown parameter group {name!r}: expected {sorted(objects)}")
            objects[name].load_state_dict(state)

    def _policy_entry(self) -> Any:
        if self.policy_name is not None:
            return self.policy_name
        return to_json(self.policy_class)

    def save(self, path: str, exclude: list[str] | None = None) -> str:
        """Write the model (metadata JSON + safetensors, no pickle) to ``path`` (.zip added); atomic."""
        hparams = {k: v for k, v in self._hyperparameters().items() if k not in set(exclude or ())}
        policy_kwargs = getattr(self.policy, "constructor_kwargs", None)
        metadata = {
            "algo": type(self).__name__,
            "rlzoo_version": __version__,
            "torch_version": torch.__version__,
            "policy": self._policy_entry(),
            "policy_base": to_json(_rlzoo_base(type(self.policy))),
            "effective_policy_kwargs": to_json(policy_kwargs) if policy_kwargs is not None else None,
            "hyperparameters": to_json(hparams),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "n_envs": self.n_envs,
            "num_timesteps": self.num_timesteps,
            "n_updates": self._n_updates,
            "progress_remaining": self._current_progress_remaining,
        }
        files: dict[str, bytes] = {}
        for name, obj in self._state_objects().items():
            files.update(state_to_files(name, obj.state_dict()))
        return write_model_zip(path, metadata, files)

    @classmethod
    def load(cls, path: str, env: Any = None, device: str | torch.device = "auto",
             custom_objects: dict[str, Any] | None = None, **kwargs: Any) -> BaseAlgorithm:
        """Load a model saved by :meth:`save`; never imports or calls anything named by the file.

        ``custom_objects`` maps class names stored in the file (user-defined policies, features
        extractors or noises) to the classes to use; ``kwargs`` override hyperparameters. A file that
        is corrupt, hostile or too large raises :class:`ModelFileError` with a one-line message
        (README, "What a model file may contain").
        """
        from rlzoo.common import load_checks as lc

        path = os.fspath(path)
        custom_objects = dict(custom_objects or {})
        metadata, files = read_model_zip(path)
        algo = " ".join(metadata["algo"].split())[:40]
        if algo.lower() != cls.__name__.lower():
            raise ModelFileError(f"{path} holds a {algo} model, not {cls.__name__}: load it with {algo}.load")
        policy, hparams, obs_space, act_space, n_envs = lc.decode_metadata(cls, path, metadata, custom_objects)
        num_timesteps, n_updates, progress = lc.counters(metadata, path)
        hparams.update(kwargs)
        if hparams.get("learning_rate") is None:
            hparams["learning_rate"] = 0.0
        if env is not None:
            env = wrap_env(env)
            n_envs = env.num_envs
        # built first on the meta device: shapes without memory, checked against the file's headers
        shadow = lc.build_model(cls, path, policy, hparams, obs_space, act_space, n_envs, torch.device("meta"))
        expected = lc.expected_states(shadow)
        lc.check_members(path, files, shadow, expected)
        del shadow
        model = lc.build_model(cls, path, policy, hparams, obs_space, act_space, n_envs, device, env)
        try:
            for name, obj in model._state_objects().items():
                state = state_from_files(name, files, expected.get(name))
                if isinstance(obj, torch.optim.Optimizer):
                    lc.check_optimizer_state(name, state, obj)
                obj.load_state_dict(state)
        except ModelFileError as exc:
            raise ModelFileError(str(exc) if str(exc).startswith(path) else f"{path}: {exc}") from None
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise ModelFileError(f"{path}: saved tensors do not fit the {cls.__name__} model "
                                 f"({short(safe_io.one_line(exc), 160)})") from None
        model.num_timesteps, model._n_updates, model._current_progress_remaining = num_timesteps, n_updates, progress
        return model


# Below this many parameters (e.g. [64, 64] MLPs, DQN's [256, 256] Q-network) a network's matmuls are
# too small to gain from more intra-op threads, and one thread is fastest; above it (SAC's and
# TD3's critics, CNNs) torch's default (all cores, or OMP_NUM_THREADS) is ~1.4-1.7x faster on an
# idle 2-core machine (benchmarks/speed.py, as shipped vs 1-thread columns).
SMALL_MODEL_PARAMS = 100_000


def _has_image(space: spaces.Space) -> bool:
    if isinstance(space, spaces.Dict):
        return any(_has_image(s) for s in space.spaces.values())
    return is_image_space(space)


def _rlzoo_base(cls: type) -> type:
    """The nearest class in ``cls``'s ancestry defined inside rlzoo."""
    for klass in cls.__mro__:
        if klass.__module__.startswith("rlzoo."):
            return klass
    return cls
