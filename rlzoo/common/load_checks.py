"""What :meth:`BaseAlgorithm.load` checks before it builds a model from a file.

1. ``metadata.json`` is decoded through the registry only (:func:`decode_metadata`); hyperparameters
   must be parameters of the algorithm with the annotated JSON type (:func:`check_hyperparameters`).
2. The model is first built on PyTorch's ``meta`` device (:func:`build_model`): nothing is
   allocated, but every tensor's shape is known. Its buffers must fit :data:`MAX_LOAD_BUFFER_BYTES`
   and the tensors each ``<name>.safetensors`` header declares must be exactly the model's (shapes
   and dtypes), checked before any tensor is read.
3. Only then is the real model built and the states loaded.
"""
from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlzoo.common.registry import ModelFileError, short
from rlzoo.common.safe_io import one_line, safetensors_header
from rlzoo.common.save_format import check_tensors, from_json, space_from_json

if TYPE_CHECKING:
    from rlzoo.common.base import BaseAlgorithm

MAX_LOAD_BUFFER_BYTES = 4 << 30  # rollout buffers / replay memories a loaded model allocates
MAX_N_ENVS = 1 << 16
_BUILD_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, ArithmeticError,
                 RuntimeError, NotImplementedError, MemoryError, AssertionError)
_PLUMBING = {"self", "policy", "env", "device", "_init_setup_model"}

_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether a JSON value fits a simple annotation (``int``, ``float``, ``bool``, ``str``, ``Optional[...]``)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = text.replace(" ", "")
    if text.startswith("Optional[") and text.endswith("]"):
        return value is None or _type_ok(value, text[9:-1])
    if text.endswith("|None"):
        return value is None or _type_ok(value, text[:-5])
    if text not in _TYPES:
        return True  # Any, unions, schedules: the constructor checks them
    if isinstance(value, bool):
        return text == "bool"
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if text == "bool":  # files of the previous release may hold 0 / 1 where the constructor took them
        return isinstance(value, int) and value in (0, 1)
    if text == "int" and isinstance(value, float):
        return value.is_integer()  # e.g. buffer_size=1e6 given as a float and accepted by the constructor
    return isinstance(value, _TYPES[text])


def check_hyperparameters(cls: type[BaseAlgorithm], hparams: Any, path: str) -> dict[str, Any]:
    """Saved hyperparameters: a mapping of ``cls.__init__`` parameters with values of the annotated type."""
    if not isinstance(hparams, dict):
        raise ModelFileError(f"{path}: hyperparameters must be a mapping, got {short(hparams)}")
    params = inspect.signature(cls.__init__).parameters
    out = {}
    for key, value in hparams.items():
        if key in _PLUMBING:
            continue
        param = params.get(key)
        if param is None or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            raise ModelFileError(f"{path}: {short(key)} is not a hyperparameter of {cls.__name__}")
        if not _type_ok(value, param.annotation):
            raise ModelFileError(f"{path}: hyperparameter {key} must be {param.annotation}, got {short(value)}")
        out[key] = value
    kwargs = out.get("policy_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ModelFileError(f"{path}: policy_kwargs must be a mapping, got {short(kwargs)}")
    return out


def decode_metadata(cls: type, path: str, metadata: dict[str, Any],
                    custom_objects: dict[str, Any]) -> tuple[Any, dict[str, Any], Any, Any, int]:
    """``(policy, hyperparameters, observation space, action space, n_envs)`` of a model file."""
    try:
        hparams = check_hyperparameters(cls, from_json(metadata["hyperparameters"], custom_objects), path)
        obs_space = space_from_json(metadata["observation_space"])
        act_space = space_from_json(metadata["action_space"])
        policy = metadata["policy"]
        if not isinstance(policy, str):
            try:
                policy = from_json(policy, custom_objects)
                if not isinstance(policy, type):
                    raise ModelFileError(f"{path}: the policy entry is not a class")
            except ModelFileError:
                # a user subclass not given: rebuild its nearest rlzoo base with the effective kwargs
                policy = from_json(metadata["policy_base"], custom_objects)
                if not isinstance(policy, type):
                    raise ModelFileError(f"{path}: the policy_base entry is not a class") from None
                kwargs = from_json(metadata.get("effective_policy_kwargs") or {}, custom_objects)
                if not isinstance(kwargs, dict):
                    raise ModelFileError(f"{path}: effective_policy_kwargs must be a mapping") from None
                hparams["policy_kwargs"] = kwargs
    except KeyError as exc:
        raise ModelFileError(f"{path}: malformed metadata (no {short(exc.args[0])})") from None
    except ModelFileError as exc:
        raise ModelFileError(str(exc) if str(exc).startswith(path) else f"{path}: {exc}") from None
    n_envs = metadata.get("n_envs", 1)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or not 1 <= n_envs <= MAX_N_ENVS:
        raise ModelFileError(f"{path}: n_envs must be an integer in [1, {MAX_N_ENVS}], got {short(n_envs)}")
    return policy, hparams, obs_space, act_space, n_envs


def counters(metadata: dict[str, Any], path: str) -> tuple[int, int, float]:
    """``(num_timesteps, n_updates, progress_remaining)`` of a model file, type-checked."""
    out = []
    for key, default in (("num_timesteps", 0), ("n_updates", 0)):
        value = metadata.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
            raise ModelFileError(f"{path}: {key} must be a non-negative integer, got {short(value)}")
        out.append(value)
    progress = metadata.get("progress_remaining", 1.0)
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not -1.0 <= progress <= 1.0:
        raise ModelFileError(f"{path}: progress_remaining must be a number in [-1, 1], got {short(progress)}")
    return out[0], out[1], float(progress)


def _footprint(obj: Any, depth: int = 0, seen: set | None = None) -> int:
    """Bytes of the arrays and (meta) tensors held by ``obj``'s attributes (modules excluded)."""
    seen = set() if seen is None else seen
    total = 0
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, np.ndarray):
            total += value.nbytes
        elif isinstance(value, dict):
            total += sum(v.nbytes for v in value.values() if isinstance(v, np.ndarray))
        elif depth < 2 and hasattr(value, "__dict__") and not isinstance(value, (torch.nn.Module, type)) \
                and type(value).__module__.startswith("rlzoo."):
            total += _footprint(value, depth + 1, seen)
    return total


def build_model(cls: type, path: str, policy: Any, hparams: dict[str, Any], obs_space: Any, act_space: Any,
                n_envs: int, device: Any, env: Any = None) -> Any:
    """Construct the model (without loading states); any error is a one-line :class:`ModelFileError`."""
    try:
        model = cls(policy=policy, env=None, device=device, _init_setup_model=False, **hparams)
        model.observation_space, model.action_space = obs_space, act_space
        model.n_envs = n_envs
        if env is not None:
            model.n_envs = env.num_envs
            model.set_env(env)
        if str(device) == "meta":
            with torch.device("meta"):
                model._setup_model()
            need = _footprint(model)
            if need > MAX_LOAD_BUFFER_BYTES:
                raise ModelFileError(f"{path}: the saved settings need {need} bytes of buffers, more than "
                                     f"{MAX_LOAD_BUFFER_BYTES}")
        else:
            model._setup_model()
    except ModelFileError:
        raise
    except _BUILD_ERRORS as exc:
        raise ModelFileError(f"{path}: the saved settings do not make a {cls.__name__} model "
                             f"({type(exc).__name__}: {short(one_line(exc), 160)})") from None
    return model


def expected_states(model: Any) -> dict[str, dict[str, torch.Tensor]]:
    """State dicts (meta tensors) of the model's modules, by the member name they are saved under."""
    return {name: obj.state_dict() for name, obj in model._state_objects().items()
            if isinstance(obj, torch.nn.Module)}


def check_members(path: str, files: Any, model: Any, expected: dict[str, dict[str, torch.Tensor]]) -> None:
    """Every state member the model needs is there, and its safetensors header fits (modules: exactly the
    model's tensors) -- checked before any tensor is read."""
    for name in model._state_objects():
        member = f"{name}.safetensors"
        if member not in files or f"{name}.json" not in files:
            missing = member if member not in files else f"{name}.json"
            raise ModelFileError(f"{path}: model file lacks the member {missing}")
        header = safetensors_header(files[member], f"{path}: {member}")
        if name in expected:
            try:
                check_tensors(name, header, expected[name])
            except ModelFileError as exc:
                raise ModelFileError(f"{path}: {exc}") from None


def check_optimizer_state(name: str, state: Any, optimizer: torch.optim.Optimizer) -> None:
    """An optimizer state read from a file must have the optimizer's groups and per-parameter shapes."""
    if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list) \
            or not isinstance(state.get("state"), dict):
        raise ModelFileError(f"model file: {name} is not an optimizer state")
    groups = state["param_groups"]
    own = optimizer.param_groups
    if len(groups) != len(own) or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise ModelFileError(f"model file: {name} has {len(groups)} parameter groups, the model has {len(own)}")
    params: list[tuple[Any, torch.Tensor]] = []
    for g, mine in zip(groups, own, strict=True):
        if len(g["params"]) != len(mine["params"]):
            raise ModelFileError(f"model file: {name} groups do not fit the model's parameters")
        params.extend(zip(g["params"], mine["params"], strict=True))
    shapes = {i: p.shape for i, p in params if isinstance(i, int) and not isinstance(i, bool)}
    if len(shapes) != len(params):
        raise ModelFileError(f"model file: {name} names parameters by {short([i for i, _ in params][:3])}")
    for index, entry in state["state"].items():
        if index not in shapes or not isinstance(entry, dict):
            raise ModelFileError(f"model file: {name} has state for an unknown parameter {short(index)}")
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "momentum_buffer"):
            value = entry.get(key)
            if isinstance(value, torch.Tensor) and value.shape != shapes[index]:
                raise ModelFileError(f"model file: {name} {key} of parameter {index} has shape "
                                     f"{list(value.shape)}, the parameter has {list(shapes[index])}")
