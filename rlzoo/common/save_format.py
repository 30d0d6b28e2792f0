"""The saved-model format: a zip of JSON metadata and safetensors files — no pickle anywhere.

Layout of ``model.zip``::

    metadata.json        algorithm, rlzoo version, hyperparameters, spaces, num_timesteps
    <name>.safetensors   one file per torch object (policy, optimizers, extra tensors)
    <name>.json          the non-tensor part of an optimizer state (param_groups, scalars)

Loading parses JSON and safetensors only and never imports or calls anything named by the file.
Values that are not plain JSON (schedules, action noises, activation / policy / features-extractor
classes, spaces, arrays) are tagged dictionaries rebuilt only through :mod:`rlzoo.common.registry`;
a ``<name>.json`` state holds plain data only. Sizes are checked before anything is read
(:mod:`rlzoo.common.safe_io`).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any
from collections.abc import Iterator

import numpy as np
import torch
from gymnasium import spaces
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rlzoo.common import safe_io
from rlzoo.common.registry import ModelFileError, lookup, name_of, rebuild, short
from rlzoo.fileio import atomic_write_bytes

__all__ = ["ModelFileError", "FORMAT_VERSION", "space_to_json", "space_from_json", "to_json", "from_json",
           "state_to_files", "state_from_files", "write_model_zip", "read_model_zip", "zip_path"]

FORMAT_VERSION = 2  # 2: tags are registered names (1: full dotted names, still read)
MAX_SPACE_ELEMENTS = 1 << 24   # elements of one observation / action space (all parts of a Dict)
MAX_DISCRETE_N = 1 << 31
_ARRAY_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
                 "float32", "float64"}


# --------------------------------------------------------------------------- spaces
def space_to_json(space: spaces.Space) -> dict[str, Any]:
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


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ModelFileError(f"model file: {where} must be an integer in [{lo}, {hi}], got {short(value)}")
    return value


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8:
        raise ModelFileError(f"model file: {where} is not a shape, got {short(value)}")
    shape = tuple(_int(d, where, 0, MAX_SPACE_ELEMENTS) for d in value)
    if int(np.prod(shape, dtype=object)) > MAX_SPACE_ELEMENTS:
        raise ModelFileError(f"model file: {where} {shape} has more than {MAX_SPACE_ELEMENTS} elements")
    return shape


def _bounds(value: Any, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.full(shape, value, dtype=dtype)
    try:
        arr = np.array(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ModelFileError(f"model file: {where} is not an array of numbers ({safe_io.one_line(exc)})") from None
    if arr.shape != shape:
        raise ModelFileError(f"model file: {where} has shape {arr.shape}, the space has {shape}")
    return arr


def space_from_json(data: Any, _depth: int = 0) -> spaces.Space:
    """Rebuild a gymnasium space from :func:`space_to_json` output (sizes and types checked first)."""
    if not isinstance(data, dict):
        raise ModelFileError(f"model file: a space description must be an object, got {short(data)}")
    kind = data.get("type")
    try:
        if kind == "Box":
            if data.get("dtype") not in ("float32", "float64", "float16", "uint8", "int8", "int16", "int32",
                                         "int64", "uint16", "uint32", "uint64", "bool"):
                raise ModelFileError(f"model file: Box dtype {short(data.get('dtype'))} is not supported")
            dtype = np.dtype(data["dtype"])
            shape = _shape(data.get("shape"), "Box shape")
            return spaces.Box(_bounds(data.get("low"), shape, dtype, "Box low"),
                              _bounds(data.get("high"), shape, dtype, "Box high"), shape=shape, dtype=dtype)
        if kind == "Discrete":
            n = _int(data.get("n"), "Discrete n", 1, MAX_DISCRETE_N)
            return spaces.Discrete(n, start=_int(data.get("start", 0), "Discrete start", -MAX_DISCRETE_N,
                                                 MAX_DISCRETE_N))
        if kind == "MultiDiscrete":
            nvec = data.get("nvec")
            if not isinstance(nvec, list):
                raise ModelFileError(f"model file: MultiDiscrete nvec must be a list, got {short(nvec)}")
            arr = np.array(nvec, dtype=object)
            _shape(list(arr.shape), "MultiDiscrete shape")
            return spaces.MultiDiscrete(np.array([_int(v, "MultiDiscrete nvec", 1, MAX_DISCRETE_N)
                                                  for v in arr.reshape(-1)], dtype=np.int64).reshape(arr.shape))
        if kind == "MultiBinary":
            n_bin = data.get("n")
            shape = _shape(n_bin if isinstance(n_bin, list) else [n_bin], "MultiBinary n")
            return spaces.MultiBinary(list(shape) if isinstance(n_bin, list) else shape[0])
        if kind == "Dict":
            parts = data.get("spaces")
            if _depth > 4 or not isinstance(parts, dict) or not 0 < len(parts) <= 256:
                raise ModelFileError("model file: a Dict space must hold 1 to 256 spaces, at most 4 levels deep")
            space = spaces.Dict({str(k): space_from_json(v, _depth + 1) for k, v in parts.items()})
            if _depth == 0 and sum(int(np.prod(s.shape or (1,))) for s in _leaves(space)) > MAX_SPACE_ELEMENTS:
                raise ModelFileError(f"model file: a Dict space with more than {MAX_SPACE_ELEMENTS} elements")
            return space
    except ModelFileError:
        raise
    except (ValueError, TypeError, OverflowError, KeyError, MemoryError) as exc:
        raise ModelFileError(f"model file: invalid {kind} space ({safe_io.one_line(exc)})") from None
    raise ModelFileError(f"model file: unknown space description {short(data if kind is None else kind)}")


def _leaves(space: spaces.Space) -> Iterator[spaces.Space]:
    if isinstance(space, spaces.Dict):
        for s in space.spaces.values():
            yield from _leaves(s)
    else:
        yield space


# --------------------------------------------------------------------------- tagged values
def to_json(value: Any) -> Any:
    """Encode a hyperparameter value as JSON, tagging classes and registered objects."""
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
        # a user class is stored by its full name: loading it needs custom_objects={name: cls}
        return {"__class__": name_of(value) or f"{value.__module__}.{value.__qualname__}"}
    if hasattr(value, "to_config"):
        cls = type(value)
        return {"__object__": name_of(cls) or f"{cls.__module__}.{cls.__qualname__}",
                "config": to_json(value.to_config())}
    if isinstance(value, torch.device):
        return str(value)
    if callable(value):
        # an arbitrary user function (e.g. a custom schedule) cannot be stored safely
        return {"__unsaved__": repr(value)}
    raise ModelFileError(f"cannot store hyperparameter value {value!r} in a model file")


_TAGS = {"__ndarray__": {"__ndarray__", "dtype"}, "__space__": {"__space__"}, "__class__": {"__class__"},
         "__object__": {"__object__", "config"}, "__unsaved__": {"__unsaved__"}}


def from_json(value: Any, custom_objects: dict[str, Any], _depth: int = 0) -> Any:
    """Decode :func:`to_json` output; only registered tags (or ``custom_objects``) are rebuilt."""
    if _depth > safe_io.MAX_JSON_DEPTH:
        raise ModelFileError("model file: a value is nested too deeply")
    if isinstance(value, list):
        return [from_json(v, custom_objects, _depth + 1) for v in value]
    if not isinstance(value, dict):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ModelFileError(f"model file: unexpected value {short(value)}")
    tags = [t for t in _TAGS if t in value]
    if not tags:
        if any(isinstance(k, str) and k.startswith("__") and k.endswith("__") for k in value):
            raise ModelFileError(f"model file: unknown tag in {short(value)}")
        return {k: from_json(v, custom_objects, _depth + 1) for k, v in value.items()}
    tag = tags[0]
    if len(tags) > 1 or set(value) - _TAGS[tag]:
        raise ModelFileError(f"model file: malformed {tag} value {short(value)}")
    return _from_tagged(tag, value, custom_objects, _depth)


def _from_tagged(tag: str, value: dict[str, Any], custom_objects: dict[str, Any], _depth: int) -> Any:
    """Decode one tagged value of :func:`from_json` (``value`` holds exactly the keys of ``tag``)."""
    if tag == "__ndarray__":
        if not isinstance(value.get("dtype"), str) or value["dtype"] not in _ARRAY_DTYPES:
            raise ModelFileError(f"model file: array dtype {short(value.get('dtype'))} is not allowed")
        try:
            return np.array(from_json(value["__ndarray__"], {}, _depth + 1), dtype=np.dtype(value["dtype"]))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ModelFileError(f"model file: invalid array ({safe_io.one_line(exc)})") from None
    if tag == "__space__":
        return space_from_json(value["__space__"])
    if tag == "__class__":
        cls, entry = lookup(value["__class__"], custom_objects)
        if entry is not None and entry.config is not None:
            raise ModelFileError(f"model file: {value['__class__']} is an object, not a class value")
        return cls
    if tag == "__object__":
        cls, entry = lookup(value["__object__"], custom_objects)
        if "config" not in value:
            raise ModelFileError(f"model file: {short(value['__object__'])} has no config")
        return rebuild(value["__object__"], entry, cls, from_json(value["config"], custom_objects, _depth + 1))
    return None  # __unsaved__: a user function that was not stored


# --------------------------------------------------------------------------- state dicts
def _flatten_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a (possibly nested) state dict into tensors and a JSON remainder."""
    tensors: dict[str, torch.Tensor] = {}

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


def _unflatten_state(structure: Any, tensors: dict[str, torch.Tensor], _depth: int = 0) -> Any:
    """Inverse of :func:`_flatten_state`: plain data (numbers, strings, lists), ``__tensor__`` references
    and ``__dict__`` pair lists only; every other object is refused."""
    if _depth > safe_io.MAX_JSON_DEPTH:
        raise ModelFileError("model file: a state is nested too deeply")
    if isinstance(structure, list):
        return [_unflatten_state(v, tensors, _depth + 1) for v in structure]
    if isinstance(structure, dict):
        if set(structure) == {"__tensor__"}:
            name = structure["__tensor__"]
            if not isinstance(name, str) or name not in tensors:
                raise ModelFileError(f"model file: state refers to a missing tensor {short(name)}")
            return tensors[name]
        if set(structure) == {"__dict__"} and isinstance(structure["__dict__"], list):
            out = {}
            for pair in structure["__dict__"]:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                        and not isinstance(pair[0], bool)):
                    raise ModelFileError(f"model file: malformed state entry {short(pair)}")
                out[pair[0]] = _unflatten_state(pair[1], tensors, _depth + 1)
            return out
        raise ModelFileError(f"model file: a state may hold only numbers, strings, lists and tensors, "
                             f"not {short(structure)}")
    if structure is None or isinstance(structure, (bool, int, float, str)):
        return structure
    raise ModelFileError(f"model file: unexpected state value {short(structure)}")


def state_to_files(name: str, state: dict[str, Any]) -> dict[str, bytes]:
    """Encode one state dict as ``<name>.safetensors`` (+ ``<name>.json`` for non-tensor parts)."""
    tensors, structure = _flatten_state(state)
    return {f"{name}.safetensors": st_save(tensors),
            f"{name}.json": json.dumps(structure).encode()}


def check_tensors(name: str, header: dict[str, Any], expected: dict[str, torch.Tensor]) -> None:
    """The tensors a ``<name>.safetensors`` header declares must be exactly ``expected`` (shapes, dtypes)."""
    declared = {k: v for k, v in header.items() if k != "__metadata__"}
    want = {f"s.{k}": v for k, v in expected.items() if isinstance(v, torch.Tensor)}
    if set(declared) != set(want):
        diff = sorted(set(declared) ^ set(want))
        raise ModelFileError(f"model file: {name} tensors do not fit the model (e.g. {diff[0][2:][:60]!r})")
    for key, desc in declared.items():
        tensor = want[key]
        dtype = str(tensor.dtype).replace("torch.", "")
        if list(tensor.shape) != desc["shape"] or _ST_DTYPES.get(desc["dtype"]) != dtype:
            raise ModelFileError(f"model file: {name} tensor {key[2:][:60]!r} is {desc['dtype']}{desc['shape']}, "
                                 f"the model has {dtype}{list(tensor.shape)}")


_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def state_from_files(name: str, files: Mapping, expected: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Inverse of :func:`state_to_files`; with ``expected`` (a module's state dict, e.g. on the meta
    device) the declared tensors must match it before anything is allocated."""
    try:
        blob, raw = files[f"{name}.safetensors"], files[f"{name}.json"]
    except KeyError as exc:
        raise ModelFileError(f"model file lacks the member {exc.args[0]}") from None
    header = safe_io.safetensors_header(blob, f"model file member {name}.safetensors")
    if expected is not None:
        check_tensors(name, header, expected)
    structure = safe_io.load_json(raw, f"model file member {name}.json")
    try:
        tensors = st_load(blob)
    except Exception as exc:  # safetensors raises its own error types on corrupt data
        raise ModelFileError(f"model file member {name} is corrupt ({type(exc).__name__})") from None
    return _unflatten_state(structure, tensors)


# --------------------------------------------------------------------------- zip files
def zip_path(path: str) -> str:
    """``path`` with a ``.zip`` suffix added when it has none."""
    path = os.fspath(path)
    return path if path.endswith(".zip") else path + ".zip"


def write_model_zip(path: str, metadata: dict[str, Any], files: dict[str, bytes]) -> str:
    """Write metadata and member files into ``path`` (.zip added) atomically; return the path."""
    path = zip_path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps({"format_version": FORMAT_VERSION, **metadata}, indent=1))
        for name, data in files.items():
            zf.writestr(name, data)
    atomic_write_bytes(path, buf.getvalue())
    return path


class ModelMembers(Mapping):
    """The members of a model zip, each read on first access with a bounded read (sizes checked at open)."""

    def __init__(self, path: str, infos: dict[str, zipfile.ZipInfo]) -> None:
        self.path, self._infos = path, infos
        self._cache: dict[str, bytes] = {}

    def __getitem__(self, name: str) -> bytes:
        if name not in self._cache:
            if name not in self._infos:
                raise KeyError(name)
            with safe_io.open_zip(self.path, "model file") as zf:
                self._cache[name] = safe_io.read_member(zf, self._infos[name], self.path)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(n for n in self._infos if n != "metadata.json")

    def __len__(self) -> int:
        return sum(1 for _ in self)


def read_model_zip(path: str) -> tuple[dict[str, Any], ModelMembers]:
    """Check a model zip's listing and read its metadata; members are read lazily, when asked for.

    Raises :class:`ModelFileError` with a one-line reason on failure.
    """
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".zip"):
        path += ".zip"
    if not os.path.isfile(path):
        raise ModelFileError(f"model file not found: {path}")
    with safe_io.open_zip(path, "model file") as zf:
        infos = safe_io.check_zip_listing(zf, path)
        if "metadata.json" not in infos:
            raise ModelFileError(f"{path} is not an rlzoo model (no metadata.json)")
        raw = safe_io.read_member(zf, infos["metadata.json"], path)
    metadata = safe_io.load_json(raw, f"{path}: metadata.json")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("algo"), str):
        got = metadata.get("algo", metadata) if isinstance(metadata, dict) else metadata
        raise ModelFileError(f"{path} is not an rlzoo model (metadata without algorithm: {short(got)})")
    version = metadata.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(f"{path}: format_version must be an integer, got {short(version)}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer rlzoo (format {version})")
    return metadata, ModelMembers(path, infos)
