"""The saved-model format: a zip of JSON metadata and safetensors files — no pickle anywhere.

Layout of ``model.zip``::

    metadata.json        algorithm, rlzoo version, hyperparameters, spaces, num_timesteps
    <name>.safetensors   one file per torch object (policy, optimizers, extra tensors)
    <name>.json          the non-tensor part of an optimizer state (param_groups, scalars)

Loading parses JSON and safetensors only, so a file can never run code. Values that are not
plain JSON (schedules, activation classes, spaces, noise objects) are written as tagged
dictionaries and rebuilt from a fixed allow-list of rlzoo and torch.nn classes.
"""
from __future__ import annotations

import importlib
import io
import json
import os
import zipfile
from typing import Any, Dict, Tuple

import numpy as np
import torch
from gymnasium import spaces
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rlzoo.fileio import atomic_write_bytes

FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a readable rlzoo model (corrupt, truncated, foreign or of another algorithm)."""


# --------------------------------------------------------------------------- JSON encoding
_ACTIVATIONS = {name: getattr(torch.nn, name) for name in (
    "ReLU", "Tanh", "ELU", "LeakyReLU", "SiLU", "GELU", "Sigmoid", "Softplus", "SELU", "Identity", "Mish")}


def space_to_json(space: spaces.Space) -> Dict[str, Any]:
    """Describe a gymnasium space as JSON."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(),
                "shape": list(space.shape), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise ModelFileError(f"cannot save a model for the space {space}")


def space_from_json(data: Dict[str, Any]) -> spaces.Space:
    """Rebuild a gymnasium space from :func:`space_to_json` output."""
    kind = data.get("type")
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        return spaces.Box(np.array(data["low"], dtype=dtype), np.array(data["high"], dtype=dtype),
                          shape=tuple(data["shape"]), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data.get("start", 0))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.array(data["nvec"]))
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({k: space_from_json(v) for k, v in data["spaces"].items()})
    raise ModelFileError(f"unknown space description {kind!r}")


def to_json(value: Any) -> Any:
    """Encode a hyperparameter value as JSON, tagging classes and rlzoo objects."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, spaces.Space):
        return {"__space__": space_to_json(value)}
    if isinstance(value, type):
        return {"__class__": f"{value.__module__}.{value.__qualname__}"}
    if hasattr(value, "to_config"):
        cls = type(value)
        return {"__object__": f"{cls.__module__}.{cls.__qualname__}", "config": to_json(value.to_config())}
    if isinstance(value, torch.device):
        return str(value)
    if callable(value):
        # an arbitrary user function (e.g. a custom schedule) cannot be stored safely
        return {"__unsaved__": repr(value)}
    raise ModelFileError(f"cannot store hyperparameter value {value!r} in a model file")


# classes that moved since a release wrote their path into model files: old path -> new path
MOVED_CLASSES = {f"rlzoo.common.off_policy_policies.{name}": f"rlzoo.algos.{pkg}.policies.{name}"
                 for pkg, names in {"dqn": ("QNetwork", "DQNPolicy", "DQNCnnPolicy", "DQNMultiInputPolicy"),
                                    "td3": ("Actor", "TD3Policy", "TD3CnnPolicy", "TD3MultiInputPolicy"),
                                    "sac": ("SquashedGaussianActor", "SACPolicy", "SACCnnPolicy",
                                            "SACMultiInputPolicy")}.items()
                 for name in names}


def _resolve_class(path: str, custom_objects: Dict[str, Any]) -> Any:
    """Import only rlzoo classes or torch.nn activations; anything else must come from the caller."""
    if path in custom_objects:
        return custom_objects[path]
    path = MOVED_CLASSES.get(path, path)
    short = path.rsplit(".", 1)[-1]
    if path.startswith("torch.nn.") and short in _ACTIVATIONS:
        return _ACTIVATIONS[short]
    if path.startswith("rlzoo."):
        module, _, name = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ModelFileError(f"model file refers to {path}, which this rlzoo version lacks") from exc
    raise ModelFileError(f"model file refers to the class {path}, which is not part of rlzoo: "
                         f"pass it with custom_objects={{'{path}': YourClass}} to load")


def from_json(value: Any, custom_objects: Dict[str, Any]) -> Any:
    """Decode :func:`to_json` output."""
    if isinstance(value, list):
        return [from_json(v, custom_objects) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
    if "__space__" in value:
        return space_from_json(value["__space__"])
    if "__class__" in value:
        return _resolve_class(value["__class__"], custom_objects)
    if "__object__" in value:
        cls = _resolve_class(value["__object__"], custom_objects)
        config = from_json(value["config"], custom_objects)
        return cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    if "__unsaved__" in value:
        return None
    return {k: from_json(v, custom_objects) for k, v in value.items()}


# --------------------------------------------------------------------------- state dicts
def _flatten_state(state: Dict[str, Any]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Split a (possibly nested) state dict into tensors and a JSON remainder."""
    tensors: Dict[str, torch.Tensor] = {}

    def walk(obj: Any, prefix: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[prefix] = obj.detach().cpu().contiguous().clone()
            return {"__tensor__": prefix}
        if isinstance(obj, dict):
            return {"__dict__": [[to_json(k), walk(v, f"{prefix}.{k}")] for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            return [walk(v, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return to_json(obj)

    return tensors, walk(state, "s")


def _unflatten_state(structure: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    if isinstance(structure, list):
        return [_unflatten_state(v, tensors) for v in structure]
    if isinstance(structure, dict):
        if "__tensor__" in structure:
            return tensors[structure["__tensor__"]]
        if "__dict__" in structure:
            return {k: _unflatten_state(v, tensors) for k, v in structure["__dict__"]}
        return from_json(structure, {})
    return structure


def state_to_files(name: str, state: Dict[str, Any]) -> Dict[str, bytes]:
    """Encode one state dict as ``<name>.safetensors`` (+ ``<name>.json`` for non-tensor parts)."""
    tensors, structure = _flatten_state(state)
    return {f"{name}.safetensors": st_save(tensors),
            f"{name}.json": json.dumps(structure).encode()}


def state_from_files(name: str, files: Dict[str, bytes]) -> Dict[str, Any]:
    """Inverse of :func:`state_to_files`."""
    try:
        tensors = st_load(files[f"{name}.safetensors"])
        structure = json.loads(files[f"{name}.json"])
    except KeyError as exc:
        raise ModelFileError(f"model file lacks the member {exc.args[0]}") from None
    except Exception as exc:  # safetensors raises its own error types on corrupt data
        raise ModelFileError(f"model file member {name} is corrupt ({type(exc).__name__})") from None
    return _unflatten_state(structure, tensors)


# --------------------------------------------------------------------------- zip files
def zip_path(path: str) -> str:
    """``path`` with a ``.zip`` suffix added when it has none."""
    path = os.fspath(path)
    return path if path.endswith(".zip") else path + ".zip"


def write_model_zip(path: str, metadata: Dict[str, Any], files: Dict[str, bytes]) -> str:
    """Write metadata and member files into ``path`` (.zip added) atomically; return the path."""
    path = zip_path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps({"format_version": FORMAT_VERSION, **metadata}, indent=1))
        for name, data in files.items():
            zf.writestr(name, data)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_model_zip(path: str) -> Tuple[Dict[str, Any], Dict[str, bytes]]:
    """Read and check a model zip; raise :class:`ModelFileError` with a one-line reason on failure."""
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".zip"):
        path += ".zip"
    if not os.path.exists(path):
        raise ModelFileError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "metadata.json" not in names:
                raise ModelFileError(f"{path} is not an rlzoo model (no metadata.json)")
            files = {n: zf.read(n) for n in names}
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path} is not a valid zip file (truncated or corrupt)") from None
    except (OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from None
    try:
        metadata = json.loads(files.pop("metadata.json"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: metadata.json is not valid JSON") from None
    if not isinstance(metadata, dict) or "algo" not in metadata:
        raise ModelFileError(f"{path} is not an rlzoo model (metadata without algorithm)")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer rlzoo (format {metadata['format_version']})")
    return metadata, files
