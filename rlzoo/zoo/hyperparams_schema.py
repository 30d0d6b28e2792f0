"""The schema of a hyperparameter entry and its validation.

An entry's keys are the algorithm's constructor arguments (read from its signature and type hints:
:func:`constructor_schema`) plus the zoo's own keys (:data:`ZOO_KEYS`). :func:`validate_entry` checks
every key and value before anything is written: an unknown key names the closest allowed one, a
wrong type is a one-line :class:`ZooError`. Turning the checked plain values into Python objects is
:mod:`rlzoo.zoo.config`'s work.
"""
from __future__ import annotations

import inspect
import math
import typing
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from rlzoo.common.registry import lookup
from rlzoo.zoo.errors import ZooError, did_you_mean
from rlzoo.zoo.resolve import import_object
from rlzoo.zoo.validation import check_env_kwargs, check_ranges

#: Keys every entry may use besides the algorithm's constructor arguments.
ZOO_KEYS: dict[str, str] = {
    "n_timesteps": "total environment steps to train",
    "n_envs": "number of parallel environments",
    "policy": "policy name (MlpPolicy, CnnPolicy, MultiInputPolicy)",
    "normalize": "VecNormalize: true/false or a mapping of VecNormalize arguments",
    "frame_stack": "number of stacked frames (VecFrameStack)",
    "env_wrapper": "gymnasium wrapper import path, mapping {path: kwargs}, or a list of them",
    "callback": "callback import path, mapping {path: kwargs}, or a list of them",
    "env_kwargs": "mapping of keyword arguments for gymnasium.make",
    "noise_type": "action noise: normal or ornstein-uhlenbeck",
    "noise_std": "standard deviation of the action noise",
}

#: Constructor arguments that come from command-line options, never from a hyperparameter file.
CLI_ONLY = {"env": "--env", "seed": "--seed", "device": "--device", "tensorboard_log": "-tb"}
_IGNORED_PARAMS = {"self", "_init_setup_model", "args", "kwargs"}

NOISE_TYPES = ("normal", "ornstein-uhlenbeck")

#: ``activation_fn`` names -> ``torch.nn`` class names (a fixed table, nothing is evaluated).
ACTIVATIONS = {
    "relu": "ReLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU", "selu": "SELU",
    "gelu": "GELU", "silu": "SiLU", "swish": "SiLU", "mish": "Mish", "sigmoid": "Sigmoid",
    "softplus": "Softplus", "identity": "Identity",
}
#: ``optimizer_class`` names -> the registered names of optimizer classes (``RMSpropTF``: rlzoo's TensorFlow-style
#: RMSprop, SB3's ``RMSpropTFLike``; ``rmsprop`` is torch's, eps outside the root, what SB3's A2C uses by default).
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "sgd": "SGD", "adagrad": "Adagrad",
              "rmsprop_tf": "RMSpropTF", "rmsproptflike": "RMSpropTF"}
CLASS_KEYS = ("features_extractor_class", "optimizer_class", "activation_fn")


# ----------------------------------------------------------------------------- schema
@dataclass
class ParamSpec:
    """What a constructor argument accepts, read from its type hint and default value."""

    name: str
    kinds: frozenset = frozenset()  # subset of {bool, int, float, str, dict, list, None, "schedule"}; empty = any
    default: Any = None


def _hint_kinds(hint: Any) -> set:
    """Map a resolved type hint to the YAML kinds it accepts; an empty set means 'do not check'."""
    import types

    if hint is inspect.Parameter.empty or hint is Any:
        return set()
    if isinstance(hint, str):  # an annotation typing.get_type_hints could not resolve: not checked
        return set()
    if hint is None or hint is type(None):
        return {None}
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        kinds: set = set()
        for arg in typing.get_args(hint):
            sub = _hint_kinds(arg)
            if not sub:
                return set()
            kinds |= sub
        return kinds
    base = origin if origin is not None else hint
    return _base_kinds(getattr(base, "__name__", str(base)))


_BASE_KINDS: dict[str, set] = {
    "bool": {bool}, "int": {int}, "float": {float, int}, "str": {str}, "None": {None}, "NoneType": {None},
    "dict": {dict}, "Dict": {dict}, "Mapping": {dict}, "MutableMapping": {dict},
    "list": {list}, "List": {list}, "Sequence": {list}, "tuple": {"tuple"}, "Tuple": {"tuple"},
    "Callable": {"schedule"}, "Schedule": {"schedule"},
}


def _base_kinds(name: str) -> set:
    return set(_BASE_KINDS.get(name.split(".")[-1], set()))


def constructor_schema(cls: type[Any]) -> dict[str, ParamSpec]:
    """Constructor arguments of an algorithm class that a hyperparameter file may set."""
    sig = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        hints = {}
    schema: dict[str, ParamSpec] = {}
    for name, p in sig.parameters.items():
        if name in _IGNORED_PARAMS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in CLI_ONLY or name == "policy":
            continue
        kinds = _hint_kinds(hints.get(name, p.annotation))
        default = None if p.default is inspect.Parameter.empty else p.default
        if not kinds and default is not None:
            # no usable hint: trust the default's type; a number may also be a schedule
            kinds = _base_kinds(type(default).__name__)
            if kinds == {float, int} or kinds == {int}:
                kinds |= {float, int, "schedule"} if isinstance(default, float) else set()
        if kinds and p.default is None:
            kinds.add(None)
        schema[name] = ParamSpec(name, frozenset(kinds), default)
    return schema


def allowed_keys(cls: type[Any]) -> list[str]:
    """Every key an entry for ``cls`` may contain, sorted."""
    return sorted(set(constructor_schema(cls)) | set(ZOO_KEYS))


# ----------------------------------------------------------------------------- value checks
def is_schedule_str(value: Any) -> bool:
    """Whether ``value`` is a linear schedule string such as ``lin_3e-4``."""
    return isinstance(value, str) and value.startswith("lin_")


def _parse_schedule(value: str, where: str, key: str) -> float:
    try:
        initial = float(value[4:])
    except ValueError:
        raise ZooError(f"{where}: '{key}' has a malformed schedule {value!r} "
                       "(expected lin_<number>, e.g. lin_3e-4)") from None
    if not math.isfinite(initial):
        raise ZooError(f"{where}: '{key}' schedule must start at a finite number, got {value!r}")
    return initial


def _coerce_number(value: Any) -> Any:
    """YAML 1.1 reads ``1e5`` (no dot) as a string: accept numeric strings for numeric keys."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


_KIND_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
               list: "a list", "tuple": "a list", None: "null", "schedule": "a lin_<value> schedule"}


def _check_kind(value: Any, spec: ParamSpec, where: str) -> Any:
    """Validate (and lightly normalize) ``value`` against ``spec``; return the plain YAML value."""
    kinds = spec.kinds
    if not kinds:
        return value
    if value is None:
        if None in kinds:
            return None
    elif is_schedule_str(value):
        if "schedule" in kinds:
            _parse_schedule(value, where, spec.name)
            return value
    elif isinstance(value, bool):
        if bool in kinds:
            return value
    else:
        number = _coerce_number(value) if (int in kinds or float in kinds) else value
        if isinstance(number, int) and not isinstance(number, bool) and int in kinds:
            return number
        if isinstance(number, float) and int in kinds and float not in kinds and number.is_integer():
            return int(number)
        if isinstance(number, (int, float)) and not isinstance(number, bool) and float in kinds:
            return float(number)
        if isinstance(value, str) and str in kinds:
            return value
        if isinstance(value, dict) and dict in kinds:
            return value
        if isinstance(value, list) and (list in kinds or "tuple" in kinds):
            return value
    shown = [k for k in sorted(kinds, key=lambda k: list(_KIND_NAMES).index(k))
             if not (k is int and float in kinds) and not (k == "tuple" and list in kinds)]
    expected = " or ".join(_KIND_NAMES[k] for k in shown)
    raise ZooError(f"{where}: '{spec.name}' must be {expected}, got {value!r}")


def _positive_int(value: Any, where: str, key: str, allow_zero: bool = False) -> int:
    number = _coerce_number(value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int):
        raise ZooError(f"{where}: '{key}' must be a positive integer, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        raise ZooError(f"{where}: '{key}' must be positive, got {number}")
    return number


ImportSpec = str | dict[str, dict[str, Any]]  # "import.path" or {"import.path": {kwargs}}


def _import_spec_list(value: Any, where: str, key: str) -> list[ImportSpec]:
    """Normalize ``env_wrapper``/``callback`` values to a list of ``path`` or ``{path: kwargs}``."""
    try:
        return _import_specs(value, where, key)
    except ZooError as e:
        if str(e).startswith(where):
            raise
        raise ZooError(f"{where}: {e}") from None


def _import_specs(value: Any, where: str, key: str) -> list[ImportSpec]:
    items = value if isinstance(value, list) else [value]
    out: list[ImportSpec] = []
    for item in items:
        if isinstance(item, str):
            import_object(item, key)
            out.append(item)
        elif isinstance(item, dict) and len(item) == 1:
            (path, kwargs), = item.items()
            if kwargs is None:
                kwargs = {}
            if not isinstance(path, str) or not isinstance(kwargs, dict):
                raise ZooError(f"{where}: '{key}' entries are 'import.path' or "
                               f"{{import.path: {{kwargs}}}}, got {item!r}")
            import_object(path, key)
            out.append({path: kwargs})
        else:
            raise ZooError(f"{where}: '{key}' entries are 'import.path' or "
                           f"{{import.path: {{kwargs}}}}, got {item!r}")
    return out


def _check_net_arch(value: Any, where: str) -> None:
    def int_list(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)

    if int_list(value):
        return
    if isinstance(value, dict) and value and all(isinstance(k, str) and int_list(v) for k, v in value.items()):
        return
    raise ZooError(
        f"{where}: policy_kwargs.net_arch must be a list of layer sizes like [64, 64] "
        f"or a mapping like {{pi: [64, 64], vf: [64, 64]}}, got {value!r}"
    )


def _check_class_name(key: str, value: Any, where: str) -> None:
    table = ACTIVATIONS if key == "activation_fn" else OPTIMIZERS if key == "optimizer_class" else {}
    if not isinstance(value, str):
        example = next(iter(table), "my_pkg.MyClass")
        raise ZooError(f"{where}: policy_kwargs.{key} must be a name such as {example!r}, got {value!r}")
    if class_from_table(key, value) is not None:
        return
    if "." in value:
        try:
            import_object(value, f"policy_kwargs.{key}")
        except ZooError as e:
            raise ZooError(f"{where}: {e}") from None
        return
    raise ZooError(f"{where}: unknown policy_kwargs.{key} {value!r}{did_you_mean(value.lower(), table)} "
                   f"(known: {', '.join(table)})")


def class_from_table(key: str, value: str) -> Any:
    """The class a YAML class key (see ``CLASS_KEYS``) names, or None when the name is not a known one."""
    import torch

    if key == "activation_fn":
        lowered = {v.lower(): v for v in ACTIVATIONS.values()}
        bare = value.lower().removeprefix("nn.").removeprefix("torch.nn.")
        name = ACTIVATIONS.get(value.lower()) or lowered.get(bare)
        return getattr(torch.nn, name) if name else None
    if key == "optimizer_class":
        lowered = {v.lower(): v for v in OPTIMIZERS.values()}
        name = OPTIMIZERS.get(value.lower()) or lowered.get(value.lower().removeprefix("torch.optim."))
        return lookup(name)[0] if name else None  # the classes a model file may name, by the same names
    return None


def _check_policy_kwargs(value: Any, where: str) -> dict:
    if isinstance(value, str):
        raise ZooError(
            f"{where}: policy_kwargs must be a YAML mapping (e.g. {{net_arch: [64, 64], activation_fn: relu}}), "
            f"not a string: {value!r}"
        )
    if not isinstance(value, dict):
        raise ZooError(f"{where}: policy_kwargs must be a mapping, got {value!r}")
    for key, item in value.items():
        if key == "net_arch":
            _check_net_arch(item, where)
        elif key in CLASS_KEYS:
            _check_class_name(key, item, where)
        elif key.endswith("_kwargs") and not isinstance(item, dict):
            raise ZooError(f"{where}: policy_kwargs.{key} must be a mapping, got {item!r}")
    return value


def _check_policy_name(value: Any, where: str, key: str) -> Any:
    if not isinstance(value, str) or not value:
        raise ZooError(f"{where}: 'policy' must be a policy name such as 'MlpPolicy', got {value!r}")
    return value


def _check_frame_stack(value: Any, where: str, key: str) -> Any:
    return False if value in (False, None) else _positive_int(value, where, key)


def _check_import_value(value: Any, where: str, key: str) -> Any:
    return None if value is None else _import_spec_list(value, where, key)


def _check_env_kwargs_value(value: Any, where: str, key: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ZooError(f"{where}: 'env_kwargs' must be a mapping of argument names to values, got {value!r}")
    return value


def _check_noise_type(value: Any, where: str, key: str) -> Any:
    if value not in NOISE_TYPES and value is not None:
        raise ZooError(f"{where}: 'noise_type' must be one of {', '.join(NOISE_TYPES)}, got {value!r}")
    return value


def _check_noise_std(value: Any, where: str, key: str) -> float:
    number = _coerce_number(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
        raise ZooError(f"{where}: 'noise_std' must be a non-negative number, got {value!r}")
    return float(number)


#: Checks of the keys with their own rules: ``check(value, where, key)`` -> the normalized value.
_VALUE_CHECKS: dict[str, Callable[[Any, str, str], Any]] = {
    "n_timesteps": _positive_int,
    "n_envs": _positive_int,
    "policy": _check_policy_name,
    "normalize": lambda value, where, key: _check_normalize(value, where),
    "frame_stack": _check_frame_stack,
    "env_wrapper": _check_import_value,
    "callback": _check_import_value,
    "env_kwargs": _check_env_kwargs_value,
    "noise_type": _check_noise_type,
    "noise_std": _check_noise_std,
    "policy_kwargs": lambda value, where, key: {} if value is None else _check_policy_kwargs(value, where),
}


def _check_key_name(key: Any, schema: dict[str, ParamSpec], algo: str, where: str) -> None:
    """``key`` must be a string naming a constructor argument or a zoo key."""
    if not isinstance(key, str):
        raise ZooError(f"{where}: hyperparameter names must be strings, got {key!r}")
    if key in CLI_ONLY:
        raise ZooError(f"{where}: '{key}' is set on the command line with {CLI_ONLY[key]}, not in hyperparameters")
    if key not in schema and key not in ZOO_KEYS:
        allowed = sorted(set(schema) | set(ZOO_KEYS))
        raise ZooError(
            f"{where}: unknown hyperparameter '{key}' for {algo}{did_you_mean(key, allowed)} "
            f"(allowed: {', '.join(allowed)})"
        )


def validate_entry(entry: dict[str, Any], cls: type[Any], algo: str, where: str) -> dict[str, Any]:
    """Check every key and value of one entry; return the normalized plain entry.

    Raises :class:`ZooError` naming the first problem (unknown key with the closest allowed key).
    """
    schema = constructor_schema(cls)
    out: dict[str, Any] = {}
    for key, value in entry.items():
        _check_key_name(key, schema, algo, where)
        check = _VALUE_CHECKS.get(key)
        out[key] = check(value, where, key) if check is not None else _check_kind(value, schema[key], where)
    if ("noise_type" in out or "noise_std" in out) and "action_noise" not in schema:
        raise ZooError(f"{where}: noise_type/noise_std need an algorithm with action noise; {algo} has none")
    check_ranges(out, where)
    if out.get("env_kwargs"):
        check_env_kwargs(out["env_kwargs"], f"{where} env_kwargs")
    return out


def _check_normalize(value: Any, where: str) -> Any:
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, str):
        raise ZooError(f"{where}: 'normalize' must be true/false or a mapping (e.g. {{norm_reward: false}}), "
                       f"got {value!r}")
    if not isinstance(value, dict):
        raise ZooError(f"{where}: 'normalize' must be true/false or a mapping, got {value!r}")
    from rlzoo.envs import VecNormalize

    params = [p for p in inspect.signature(VecNormalize.__init__).parameters if p not in ("self", "venv")]
    for key in value:
        if params and key not in params:
            raise ZooError(f"{where}: unknown normalize option '{key}'{did_you_mean(str(key), params)} "
                           f"(allowed: {', '.join(params)})")
    return value
