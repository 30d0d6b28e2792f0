"""Shared by tests/test_safe_files.py and benchmarks/fuzz_files.py: real saved files of every kind rlzoo
reads back, their loaders, hostile payloads, mutations, and a guard that records writes and imports.

Everything here works on files under one temp folder; :class:`Guard` (an audit hook) records any
file opened for writing, any new module imported and any process started while it is armed.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import random
import shutil
import signal
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np
import yaml

# hostile values a file may carry: tags naming callables, garbage configs, sizes, nesting
SENTINEL_NAME = "pwned"


def payloads(sentinel: Path) -> list[Any]:
    """Values swapped into JSON / YAML documents (tags naming code, garbage, huge and deep values)."""
    target = str(sentinel / SENTINEL_NAME)
    deep: Any = 0
    for _ in range(5000):
        deep = [deep]
    return [
        {"__object__": "rlzoo.fileio.atomic_write_bytes", "config": {"path": target, "data": "x"}},
        {"__object__": "rlzoo.zoo.cli.main", "config": {}},
        {"__class__": "rlzoo.zoo.cli.main"},
        {"__class__": "os.system"},
        {"__object__": "os.system", "config": {"command": f"touch {target}"}},
        {"__object__": "subprocess.Popen", "config": {"args": ["touch", target]}},
        {"__object__": "builtins.open", "config": {"file": target, "mode": "w"}},
        {"__class__": "rlzoo.common.save_format.write_model_zip"},
        {"__object__": "rlzoo.common.utils.get_schedule_fn", "config": {"value": 1}},
        {"__object__": "rlzoo.common.utils.LinearSchedule", "config": {"initial_value": "garbage"}},
        {"__object__": "LinearSchedule", "config": {"initial_value": 1.0, "path": target}},
        {"__object__": "NormalActionNoise", "config": {"mean": [[0.0]] * 3, "sigma": "x"}},
        {"__object__": "VectorizedActionNoise",
         "config": {"noise": {"__object__": "rlzoo.fileio.atomic_write_bytes", "config": {}}, "n_envs": 2}},
        {"__object__": "ActorCriticPolicy", "config": {}},
        {"__class__": "LinearSchedule"},
        {"__ndarray__": [1, 2], "dtype": "O"},
        {"__ndarray__": [[1], [2, 3]], "dtype": "float32"},
        {"__space__": {"type": "Box", "low": 0.0, "high": 1.0, "shape": [1000000, 1000000], "dtype": "float32"}},
        {"__space__": {"type": "Discrete", "n": 10 ** 30}},
        {"__tensor__": "s.nothing"}, {"__dict__": [[{"a": 1}, 2]]}, {"__dict__": "x"},
        {"type": "Box", "low": 0.0, "high": 1.0, "shape": [10 ** 12], "dtype": "float32"},
        {"type": "Dict", "spaces": {"a": {"type": "Dict", "spaces": {}}}},
        10 ** 30, -(10 ** 30), 2 ** 63, -1, 0, 1e308, -1e308, float("nan"), float("inf"), True, None, "", "x" * 10000,
        [], [0] * 100000, {}, {"__weird__": 1}, deep, [[[[[[[[[[1]]]]]]]]]],
        "rlzoo.zoo.cli.main", "os.system", "MlpPolicy", "CnnPolicy",
    ]


# --------------------------------------------------------------------------- the files
ALGO_ENVS = {"a2c": "CartPole-v1", "ppo": "CartPole-v1", "trpo": "CartPole-v1", "acktr": "CartPole-v1",
             "acer": "CartPole-v1", "dqn": "CartPole-v1", "ddpg": "Pendulum-v1", "td3": "Pendulum-v1",
             "sac": "Pendulum-v1"}
_ALGO_KWARGS = {"a2c": {"n_steps": 4}, "ppo": {"n_steps": 16, "batch_size": 8}, "trpo": {"n_steps": 16},
                "acktr": {"n_steps": 4}, "acer": {"n_steps": 4, "buffer_size": 16, "replay_start": 8},
                "dqn": {"buffer_size": 64}, "ddpg": {"buffer_size": 64}, "td3": {"buffer_size": 64},
                "sac": {"buffer_size": 64}}


def build_files(root: Path) -> dict[str, Path]:
    """Save one real file of every kind under ``root``: ``{kind: path}`` (kinds are the loader keys)."""
    import gymnasium as gym

    from rlzoo import ALGOS
    from rlzoo.algos.acer.replay import SegmentReplayMemory
    from rlzoo.common.prioritized_replay import PrioritizedReplayBuffer
    from rlzoo.common.replay import ReplayBuffer
    from rlzoo.envs import DummyVecEnv, VecNormalize
    from rlzoo.noise import AdaptiveParamNoiseSpec, NormalActionNoise
    from rlzoo.utils import linear_schedule
    from rlzoo.zoo import run_folder as rf

    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for algo, env in ALGO_ENVS.items():
        model = ALGOS[algo]("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0, **_ALGO_KWARGS[algo])
        files[f"model:{algo}"] = Path(model.save(root / f"{algo}.zip"))
        if algo == "ddpg":  # objects in the metadata: a schedule, action and parameter noise
            model = ALGOS[algo]("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0, buffer_size=64,
                                learning_rate=linear_schedule(1e-3),
                                action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
                                param_noise=AdaptiveParamNoiseSpec())
            files["model:ddpg_noise"] = Path(model.save(root / "ddpg_noise.zip"))
    vn = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    vn.reset(seed=0)
    for _ in range(5):
        vn.step(np.zeros((1, 1), dtype=np.float32))
    vn.save(root / "vecnormalize.safetensors")
    files["vecnormalize"] = root / "vecnormalize.safetensors"
    obs_space, act_space = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2)
    rng = np.random.default_rng(0)
    for kind, cls in (("replay", ReplayBuffer), ("replay_per", PrioritizedReplayBuffer)):
        buf = cls(32, obs_space, act_space, seed=0)
        for _ in range(10):
            o = rng.random((1, 3), dtype=np.float32)
            buf.add(o, o, np.array([1]), np.array([1.0]), np.array([False]))
        files[kind] = Path(buf.save(str(root / f"{kind}.npz")))
    mem = SegmentReplayMemory(16, 4, 1, obs_space, act_space, 2)
    files["acer_memory"] = Path(mem.save(root / "acer_memory.npz"))
    run = root / "logs" / "a2c" / "CartPole-v1_1"
    run.mkdir(parents=True)
    shutil.copy(files["model:a2c"], run / rf.MODEL_FILE)
    (run / rf.CONFIG_FILE).write_text("n_envs: 1\nn_steps: 4\nn_timesteps: 1000\npolicy: MlpPolicy\n"
                                      "policy_kwargs:\n  net_arch:\n  - 8\n")
    rf.atomic_write_json(run / rf.RUN_FILE, rf.new_run_info("a2c", "CartPole-v1", run, 0, 1000, ["train"]))
    files["run:config.yml"] = run / rf.CONFIG_FILE
    files["run:run.json"] = run / rf.RUN_FILE
    return files


def loaders(files: dict[str, Path]) -> dict[str, Callable[[Path], Any]]:
    """``{kind: load(path)}``: what rlzoo does with a file of that kind (path: a mutated copy)."""
    import gymnasium as gym

    from rlzoo import ALGOS
    from rlzoo.algos.acer.replay import SegmentReplayMemory
    from rlzoo.common.prioritized_replay import PrioritizedReplayBuffer
    from rlzoo.common.replay import ReplayBuffer
    from rlzoo.envs import DummyVecEnv, VecNormalize

    venv = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    obs_space, act_space = gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2)
    out: dict[str, Callable[[Path], Any]] = {}
    for kind in files:
        if kind.startswith("model:"):
            algo = kind.split(":")[1].split("_")[0]
            out[kind] = lambda p, cls=ALGOS[algo]: cls.load(p, device="cpu")
    out["vecnormalize"] = lambda p: VecNormalize.load(p, venv)
    out["replay"] = lambda p: ReplayBuffer(32, obs_space, act_space, seed=0).load(str(p))
    out["replay_per"] = lambda p: PrioritizedReplayBuffer(32, obs_space, act_space, seed=0).load(str(p))
    out["acer_memory"] = lambda p: SegmentReplayMemory(16, 4, 1, obs_space, act_space, 2).load(p)
    out["run:config.yml"] = out["run:run.json"] = _load_run
    return out


def _load_run(path: Path) -> Any:
    """What ``enjoy`` / ``record-gif`` and ``train --resume`` read from a run folder (no env is made)."""
    from rlzoo.zoo.enjoy import load_agent
    from rlzoo.zoo.experiment import _plan_resume

    run_dir = path.parent
    log_folder = run_dir.parent.parent
    load_agent("a2c", "CartPole-v1", str(log_folder), device="cpu")
    return _plan_resume(run_dir, "a2c", "CartPole-v1", None, [])


def expected_errors(kind: str) -> tuple[type, ...]:
    """The documented error types of a loader: ModelFileError (a ValueError); ZooError for run folders."""
    from rlzoo.common.save_format import ModelFileError
    from rlzoo.zoo.errors import ZooError

    return (ModelFileError, ZooError) if kind.startswith("run:") else (ModelFileError,)


# --------------------------------------------------------------------------- mutations
def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value[:20]):
            out.extend(_paths(v, prefix + (i,)))
    return out


def swap_value(doc: Any, rng: random.Random, values: list[Any]) -> Any:
    """``doc`` with one value (anywhere, the root included) replaced by one of ``values``, or a key dropped."""
    paths = _paths(doc)
    path = rng.choice(paths)
    new = rng.choice(values)
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.1:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    """A few random bytes changed, or a truncation, or an insertion."""
    if not data:
        return b"\x00"
    choice = rng.random()
    if choice < 0.2:
        return data[:rng.randrange(len(data))]
    buf = bytearray(data)
    if choice < 0.3:
        pos = rng.randrange(len(buf))
        buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        return bytes(buf)
    for _ in range(rng.randint(1, 8)):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def _mutate_json_bytes(data: bytes, rng: random.Random, values: list[Any]) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return flip_bytes(data, rng)
    doc = swap_value(doc, rng, values)
    try:
        return json.dumps(doc).encode()
    except (ValueError, RecursionError):
        return data


def _mutate_safetensors(data: bytes, rng: random.Random, values: list[Any]) -> bytes:
    n = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError:
        return flip_bytes(data, rng)
    meta = header.get("__metadata__")
    if isinstance(meta, dict) and meta and rng.random() < 0.5:  # VecNormalize: config/counts JSON strings
        key = rng.choice(sorted(meta))
        try:
            meta[key] = json.dumps(swap_value(json.loads(meta[key]), rng, values))
        except (ValueError, RecursionError):
            try:
                meta[key] = json.dumps(rng.choice(values))[:1000]
            except (ValueError, RecursionError):
                meta[key] = "[[[["
    else:
        header = swap_value(header, rng, values + [[10 ** 6, 10 ** 6], "F64", "I8", [0, 10 ** 12], [-1]])
    try:
        raw = json.dumps(header).encode()
    except (ValueError, RecursionError):
        return flip_bytes(data, rng)
    return len(raw).to_bytes(8, "little") + raw + data[8 + n:]


def _mutate_npy(data: bytes, rng: random.Random, values: list[Any]) -> bytes:
    if data[:6] != b"\x93NUMPY" or rng.random() < 0.3:
        return flip_bytes(data, rng)
    hlen = int.from_bytes(data[8:10], "little")
    header = data[10:10 + hlen].decode("latin1")
    new = rng.choice([header.replace("'shape': (", "'shape': (1000000000, "),
                      header.replace("<f4", "|O").replace("<i8", "|O").replace("|u1", "|O"),
                      header.replace("'shape': (", "'shape': (2, "),
                      header.replace("False", "True"), "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }",
                      header.replace("}", ", 'x': __import__('os').system('true')}")])
    raw = new.encode("latin1").ljust(hlen)[:max(hlen, len(new))]
    if rng.random() < 0.5 and b"__meta__" not in data:
        raw = new.encode("latin1")
        raw = raw + b" " * ((64 - (10 + len(raw) + 1) % 64) % 64) + b"\n"
    return data[:8] + len(raw).to_bytes(2, "little") + raw + data[10 + hlen:]


def mutate_zip(data: bytes, rng: random.Random, values: list[Any]) -> bytes:
    """One member of a zip mutated as its format allows (JSON value swap, safetensors header, .npy
    header, byte flips), the zip rebuilt; or the zip's own bytes flipped."""
    if rng.random() < 0.25:
        return flip_bytes(data, rng)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
        compression = zf.infolist()[0].compress_type
    name = rng.choice(sorted(members))
    payload = members[name]
    if name == "__meta__.npy" and rng.random() < 0.7:  # replay buffer meta: JSON in a uint8 array
        arr = np.lib.format.read_array(io.BytesIO(payload))
        new = _mutate_json_bytes(arr.tobytes(), rng, values)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.frombuffer(new, dtype=np.uint8))
        members[name] = buf.getvalue()
    elif name.endswith(".json"):
        members[name] = _mutate_json_bytes(payload, rng, values)
    elif name.endswith(".safetensors"):
        members[name] = _mutate_safetensors(payload, rng, values)
    elif name.endswith(".npy"):
        members[name] = _mutate_npy(payload, rng, values)
    else:
        members[name] = flip_bytes(payload, rng)
    if rng.random() < 0.05:
        members[f"extra{rng.randrange(9)}.json"] = b"{}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return buf.getvalue()


def mutate(kind: str, data: bytes, rng: random.Random, values: list[Any]) -> bytes:
    """A mutated copy of the bytes of a file of ``kind``."""
    if kind in ("vecnormalize",):
        return _mutate_safetensors(data, rng, values) if rng.random() < 0.7 else flip_bytes(data, rng)
    if kind == "run:run.json":
        return _mutate_json_bytes(data, rng, values) if rng.random() < 0.8 else flip_bytes(data, rng)
    if kind == "run:config.yml":
        if rng.random() < 0.2:
            return flip_bytes(data, rng)
        if rng.random() < 0.1:  # deep nesting, written as text (safe_dump cannot write it)
            depth = rng.choice([50, 70, 500, 3000])
            return data + f"deep: {'[' * depth}1{']' * depth}\n".encode()
        doc = swap_value(yaml.safe_load(data), rng, values)
        if rng.random() < 0.1:  # an alias bomb
            return b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n".encode()
                for i in range(9)) + b"n_timesteps: 1000\n"
        try:
            return yaml.safe_dump(doc).encode()
        except (yaml.YAMLError, RecursionError, ValueError):
            return data
    return mutate_zip(data, rng, values)


# --------------------------------------------------------------------------- guard
class Guard:
    """Audit hook: while armed, records files opened for writing, new imports and started processes."""

    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _EVENTS = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.remove",
               "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "shutil.copyfile", "shutil.move",
               "os.symlink", "os.link", "os.truncate", "os.chmod", "ctypes.dlopen", "exec")
    _instance: Guard | None = None

    def __init__(self) -> None:
        self.armed = False
        self.writes: list[str] = []
        self.imports: list[str] = []
        self.other: list[str] = []

    @classmethod
    def get(cls) -> Guard:
        """The process's one guard (audit hooks cannot be removed)."""
        if cls._instance is None:
            cls._instance = Guard()
            sys.addaudithook(cls._instance._hook)
        return cls._instance

    def _hook(self, event: str, args: tuple) -> None:
        if not self.armed:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & self._WRITE_FLAGS)
            if writing:
                self.writes.append(str(path))
        elif event == "import":
            self.imports.append(str(args[0]))
        elif event in self._EVENTS or event.startswith(("os.exec", "os.spawn")):
            if event == "exec" and self._from_typing():
                return  # typing.get_type_hints evaluating rlzoo's own annotation strings (zoo config schema)
            self.other.append(f"{event} {str(args)[:80]}")

    @staticmethod
    def _from_typing() -> bool:
        frame = inspect.currentframe()
        for _ in range(4):
            frame = frame.f_back if frame is not None else None
            if frame is not None and frame.f_code.co_filename.endswith(os.sep + "typing.py"):
                return True
        return False

    @contextlib.contextmanager
    def armed_for(self) -> Any:
        """Record during the ``with`` block."""
        self.armed = True
        try:
            yield self
        finally:
            self.armed = False


class Hang(Exception):
    """A load that ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Any:
    """Raise :class:`Hang` in the main thread after ``seconds``."""
    def handler(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds} s")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_case(kind: str, load: Callable[[Path], Any], path: Path, guard: Guard, limit: float = 20.0) -> tuple[str, str]:
    """Load a (mutated) file; ``(outcome, detail)`` with outcome ok / refused / unexpected / multiline / hang."""
    errors = expected_errors(kind)
    try:
        with guard.armed_for(), time_limit(limit):
            load(path)
    except Hang as exc:
        return "hang", str(exc)
    except errors as exc:
        return ("refused", str(exc)) if "\n" not in str(exc) and str(exc).strip() else ("multiline", repr(exc))
    except Exception as exc:  # noqa: BLE001 - anything else is what the fuzz looks for
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        return "unexpected", f"{type(exc).__name__}: {str(exc)[:300]} at {where.filename}:{where.lineno}"
    return "ok", ""


def zip_bomb(path: Path, base: Path, member: str, inflated_mib: int, declare_small: bool) -> None:
    """A copy of the zip ``base`` whose ``member`` inflates to ``inflated_mib`` MiB of zeros (built from one
    repeated deflate block, in well under a second); ``declare_small`` writes a 1000-byte size in the headers."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    stream = block * inflated_mib + b"\x03\x00"
    size = 1000 if declare_small else inflated_mib << 20
    with zipfile.ZipFile(base) as src:
        members = {i.filename: src.read(i) for i in src.infolist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if name != member:
                zf.writestr(name, data)
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size, info.compress_size, info.CRC = size, len(stream), zlib.crc32(bytes(1000))
        info.header_offset = zf.fp.tell()
        zf.fp.write(info.FileHeader(zip64=size > 0xFFFFFFFF))
        zf.fp.write(stream)
        zf.filelist.append(info)
        zf.NameToInfo[member] = info
        zf.start_dir = zf.fp.tell()
        zf._didModify = True


def json_locations(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every place a value sits in a JSON document (the root included), lists cut at 3 items."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from json_locations(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            yield from json_locations(v, prefix + (i,))


def json_put(doc: Any, where: tuple, value: Any) -> Any:
    """``doc`` with the value at ``where`` (a path from :func:`json_locations`) replaced by ``value``."""
    if not where:
        return value
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    return doc
