"""Bounded reading of files rlzoo loads back: zips, JSON, safetensors headers and ``.npz`` arrays.

Every reader checks what a file *declares* (zip member sizes, safetensors shapes, ``.npy`` headers)
against fixed caps or against what the caller expects before reading or allocating, and reads with
bounded reads, since declared sizes can lie. All failures are a :class:`ModelFileError` (a
``ValueError``) with a one-line message.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from typing import Any
from collections.abc import Iterable

import numpy as np

from rlzoo.common.registry import ModelFileError

# caps (documented in the README, "What a model file may contain")
MAX_ZIP_TOTAL_BYTES = 1 << 30      # 1 GiB: sum of the uncompressed sizes of the members read
MAX_ZIP_MEMBERS = 256              # members listed in one model zip
MAX_COMPRESSION_RATIO = 200        # uncompressed / compressed, for members above RATIO_CHECK_BYTES
RATIO_CHECK_BYTES = 1 << 20        # small members may compress well (JSON, zero biases)
MAX_JSON_BYTES = 64 << 20          # one JSON document (metadata.json, <name>.json)
MAX_SAFETENSORS_HEADER = 16 << 20  # the JSON header of one safetensors blob
MAX_JSON_DEPTH = 64                # nesting of lists / objects in any JSON the package reads

SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64,
                      "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16,
                      "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_}
_ITEMSIZE = {"BF16": 2}


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when empty)."""
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split())[:200] if text else type(exc).__name__


# --------------------------------------------------------------------------- JSON
def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def load_json(data: bytes | str, what: str) -> Any:
    """Parse a JSON document of at most MAX_JSON_BYTES and MAX_JSON_DEPTH levels."""
    if len(data) > MAX_JSON_BYTES:
        raise ModelFileError(f"{what} is larger than {MAX_JSON_BYTES} bytes")
    try:
        value = json.loads(data)
    except RecursionError:
        raise ModelFileError(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise ModelFileError(f"{what} is not valid JSON ({one_line(exc)})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


# --------------------------------------------------------------------------- zips
def check_zip_listing(zf: zipfile.ZipFile, where: str, max_total: int = MAX_ZIP_TOTAL_BYTES,
                      max_members: int = MAX_ZIP_MEMBERS) -> dict[str, zipfile.ZipInfo]:
    """Check a zip's declared member count and sizes; return ``{name: info}`` (duplicates refused)."""
    infos = zf.infolist()
    if len(infos) > max_members:
        raise ModelFileError(f"{where} has {len(infos)} members, more than {max_members}")
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        if info.filename in by_name:
            raise ModelFileError(f"{where} lists the member {info.filename!r} twice")
        by_name[info.filename] = info
        total += info.file_size
        if info.file_size > RATIO_CHECK_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise ModelFileError(f"{where}: member {info.filename!r} inflates {info.file_size} bytes from "
                                 f"{info.compress_size} (ratio above {MAX_COMPRESSION_RATIO})")
    if total > max_total:
        raise ModelFileError(f"{where} declares {total} uncompressed bytes, more than {max_total}")
    return by_name


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Read one member with a bounded read: never more than its declared (already checked) size."""
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except Exception as exc:  # noqa: BLE001 - zlib/bz2/lzma/CRC/short-read errors of untrusted data alike
        raise ModelFileError(f"{where}: member {info.filename!r} is corrupt ({one_line(exc)})") from None
    if len(data) != info.file_size:
        raise ModelFileError(f"{where}: member {info.filename!r} does not have its declared size")
    return data


def open_zip(path: str, what: str) -> zipfile.ZipFile:
    """Open a zip file, turning every failure into a one-line :class:`ModelFileError`."""
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ModelFileError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {one_line(exc)}") from None
    except Exception:  # noqa: BLE001 - BadZipFile, struct/Unicode/overflow errors of a corrupt directory
        raise ModelFileError(f"{path} is not a readable {what} (not a valid zip file: truncated or corrupt)") from None


# --------------------------------------------------------------------------- safetensors
def safetensors_header(data: bytes, where: str) -> dict[str, dict[str, Any]]:
    """Parse and check the header of a safetensors blob: ``{name: {"dtype", "shape", "data_offsets"}}``.

    The blob is ``8-byte little-endian header length + JSON header + data``; every tensor's declared
    shape must match its byte range, and the ranges must lie inside the data. ``__metadata__`` (a
    string map) is returned under that key.
    """
    if len(data) < 8:
        raise ModelFileError(f"{where} is truncated (no safetensors header)")
    n = int.from_bytes(data[:8], "little")
    if n > min(len(data) - 8, MAX_SAFETENSORS_HEADER):
        raise ModelFileError(f"{where} declares a {n}-byte header in a {len(data)}-byte blob")
    header = load_json(data[8:8 + n], f"{where} header")
    if not isinstance(header, dict):
        raise ModelFileError(f"{where} header is not a JSON object")
    n_data = len(data) - 8 - n
    for name, desc in header.items():
        if name == "__metadata__":
            if not isinstance(desc, dict) or not all(isinstance(v, str) for v in desc.values()):
                raise ModelFileError(f"{where} header metadata is not a string map")
            continue
        if (not isinstance(desc, dict) or not isinstance(desc.get("dtype"), str)
                or desc["dtype"] not in SAFETENSORS_DTYPES
                or not isinstance(desc.get("shape"), list) or not isinstance(desc.get("data_offsets"), list)):
            raise ModelFileError(f"{where}: tensor {name[:60]!r} has a malformed description")
        shape, offsets = desc["shape"], desc["data_offsets"]
        if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40 for d in shape) \
                or len(shape) > 16 or len(offsets) != 2 \
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
            raise ModelFileError(f"{where}: tensor {name[:60]!r} has a malformed shape or offsets")
        itemsize = _ITEMSIZE.get(desc["dtype"]) or np.dtype(SAFETENSORS_DTYPES[desc["dtype"]]).itemsize
        begin, end = offsets
        if not 0 <= begin <= end <= n_data or end - begin != int(np.prod(shape, dtype=object)) * itemsize:
            raise ModelFileError(f"{where}: tensor {name[:60]!r} declares shape {shape} that does not fit its data")
    return header


# --------------------------------------------------------------------------- .npz
def read_npz(path: str, where: str, expected: Any, only: Iterable[str] | None = None,
             what: str = "array file") -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` file (``allow_pickle=False``), checking each member's ``.npy``
    header before reading it.

    ``expected(name, shape, dtype)`` is called with every member's declared shape and dtype and must
    raise :class:`ModelFileError` for a member the caller does not want (unknown name, wrong dtype,
    a shape larger than the buffer it goes into); that is how the caps follow the buffer's own
    configured size. Members are read only after all declarations passed; with ``only``, just those
    arrays are read (and checked). The data a file may make this read is what it declares and
    actually holds: stored members are as large on disk, compressed ones are refused above the
    compression-ratio cap.
    """
    zf = open_zip(path, what)
    with zf:
        infos = check_zip_listing(zf, where, max_total=1 << 62, max_members=4096)
        if sum(i.compress_size for i in infos.values()) > file_size(path):
            raise ModelFileError(f"{where}: the zip directory declares more data than the file holds")
        if only is not None:
            wanted = {f"{n}.npy" for n in only}
            infos = {n: i for n, i in infos.items() if n in wanted}
        declared: dict[str, tuple[zipfile.ZipInfo, tuple[int, ...], np.dtype, bool]] = {}
        total = 0
        for name, info in infos.items():
            if not name.endswith(".npy"):
                raise ModelFileError(f"{where}: member {name!r} is not a .npy array")
            with warnings.catch_warnings():  # numpy warns about (and re-parses) Python 2 headers
                warnings.simplefilter("ignore")
                shape, dtype, fortran = _npy_header(zf, info, where)
            expected(name[:-4], shape, dtype)
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            total += nbytes
            if info.file_size < nbytes:
                raise ModelFileError(f"{where}: array {name[:-4]!r} is shorter than its declared shape {shape}")
            if info.file_size > nbytes + 65536 + 16:
                raise ModelFileError(f"{where}: array {name[:-4]!r} is longer than its declared shape {shape}")
            declared[name] = (info, shape, dtype, fortran)
        out = {}
        for name, (info, shape, dtype, _fortran) in declared.items():
            try:
                with zf.open(info) as f:
                    arr = np.lib.format.read_array(f, allow_pickle=False)
            except Exception as exc:  # noqa: BLE001 - corrupt member data (zlib, CRC, short read, header)
                raise ModelFileError(f"{where}: array {name[:-4]!r} is corrupt ({one_line(exc)})") from None
            if arr.shape != shape or arr.dtype != dtype:
                raise ModelFileError(f"{where}: array {name[:-4]!r} does not match its header")
            out[name[:-4]] = arr
    return out


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # noqa: BLE001 - numpy parses the header with ast/tokenize: any error is a bad header
        raise ModelFileError(f"{where}: member {info.filename!r} has no valid .npy header ({one_line(exc)})") from None
    if dtype.hasobject or dtype.kind not in "biufc":
        raise ModelFileError(f"{where}: array {info.filename[:-4]!r} has the non-numeric dtype {dtype}")
    if len(shape) > 16 or any(d < 0 or d >= 1 << 40 for d in shape):
        raise ModelFileError(f"{where}: array {info.filename[:-4]!r} declares the shape {shape}")
    return tuple(int(d) for d in shape), dtype, bool(fortran)


def expect_arrays(spec: dict[str, tuple[tuple[int, ...], Any]], where: str) -> Any:
    """An ``expected`` callback for :func:`read_npz`: exactly the arrays ``{name: (shape, dtype or dtypes)}``."""
    def check(name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        if name not in spec:
            raise ModelFileError(f"{where}: unexpected array {name[:60]!r}")
        want_shape, want = spec[name]
        dtypes = [np.dtype(d) for d in (want if isinstance(want, (list, tuple)) else [want])]
        if dtype not in dtypes:
            raise ModelFileError(f"{where}: array {name!r} has dtype {dtype}, expected {dtypes[0]}")
        if tuple(shape) != tuple(want_shape):
            raise ModelFileError(f"{where}: array {name!r} has shape {tuple(shape)}, expected {tuple(want_shape)}")
    return check


def file_size(path: str | os.PathLike) -> int:
    """Size of a file in bytes (``ModelFileError`` when it cannot be read)."""
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise ModelFileError(f"cannot read {os.fspath(path)}: {one_line(exc)}") from None
