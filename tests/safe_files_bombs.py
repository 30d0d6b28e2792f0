"""Child process of tests/test_safe_files.py::test_bombs_fail_fast_in_bounded_memory.

Builds bombs from a real PPO model and a real replay buffer in ``argv[1]``, caps the address space
at its current size + ``argv[2]`` MB (``RLIMIT_AS``), loads each bomb and prints one JSON line:
``{name: [error type, message, seconds]}`` plus the peak-RSS growth in MB.
"""
from __future__ import annotations

import io
import json
import resource
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from safe_files_kit import zip_bomb  # noqa: E402

from rlzoo import PPO  # noqa: E402
from rlzoo.common.replay import ReplayBuffer  # noqa: E402


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def _rewrite(src: Path, dst: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, data if info.filename == member else zin.read(info))


def main() -> None:
    root, extra_mb = Path(sys.argv[1]), int(sys.argv[2])
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=8, policy_kwargs={"net_arch": [8]}, seed=0)
    base = Path(model.save(root / "base.zip"))
    bombs: dict[str, tuple] = {}
    zip_bomb(root / "honest.zip", base, "policy.safetensors", 1280, declare_small=False)
    zip_bomb(root / "lying.zip", base, "policy.safetensors", 1280, declare_small=True)
    bombs["zip member declaring 1.25 GiB"] = (PPO.load, root / "honest.zip")
    bombs["zip member inflating 1.25 GiB, declaring 1000 bytes"] = (PPO.load, root / "lying.zip")
    with zipfile.ZipFile(base) as zf:
        blob = zf.read("policy.safetensors")
        meta = json.loads(zf.read("metadata.json"))
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    name = next(k for k in header if k.endswith("weight"))
    for label, shape, offsets in (("tensor declaring 100000 x 100000", [100000, 100000], [0, 40_000_000_000]),
                                  ("tensor declaring a transposed shape", header[name]["shape"][::-1],
                                   header[name]["data_offsets"])):
        h = dict(header)
        h[name] = {**header[name], "shape": shape, "data_offsets": offsets}
        raw = json.dumps(h).encode()
        path = root / f"tensor_{len(bombs)}.zip"
        _rewrite(base, path, "policy.safetensors", len(raw).to_bytes(8, "little") + raw + blob[8 + n:])
        bombs[label] = (PPO.load, path)
    meta["observation_space"] = {"type": "Box", "low": 0.0, "high": 1.0, "shape": [1000000, 1000000],
                                 "dtype": "float32"}
    _rewrite(base, root / "space.zip", "metadata.json", json.dumps(meta).encode())
    bombs["Box space of 10^12 elements"] = (PPO.load, root / "space.zip")
    meta["observation_space"] = {"type": "Box", "low": 0.0, "high": 1.0, "shape": [4], "dtype": "float32"}
    meta["hyperparameters"]["n_steps"] = 2 ** 40
    _rewrite(base, root / "nsteps.zip", "metadata.json", json.dumps(meta).encode())
    bombs["rollout buffer of 2^40 steps"] = (PPO.load, root / "nsteps.zip")

    obs, act = PPO.load(base).observation_space, PPO.load(base).action_space
    buf = ReplayBuffer(64, obs, act, seed=0)
    buf_path = Path(buf.save(str(root / "buf.npz")))
    arr = io.BytesIO()
    np.lib.format.write_array_header_1_0(arr, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 9, 1, 4)})
    with zipfile.ZipFile(buf_path) as zin, zipfile.ZipFile(root / "rows.npz", "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, arr.getvalue() + bytes(64) if info.filename == "observations.npy" else zin.read(info))
    bombs["replay array declaring 10^9 rows"] = (lambda p: ReplayBuffer(64, obs, act, seed=0).load(str(p)),
                                                 root / "rows.npz")
    zip_bomb(root / "npz_bomb.npz", buf_path, "observations.npy", 1280, declare_small=False)
    bombs["replay member inflating 1.25 GiB"] = (lambda p: ReplayBuffer(64, obs, act, seed=0).load(str(p)),
                                                 root / "npz_bomb.npz")

    PPO.load(base)  # warm-up: every lazy import and allocation of a normal load happened before the cap
    ReplayBuffer(64, obs, act, seed=0).load(str(buf_path))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    limit = _vm_bytes() + extra_mb * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    results = {}
    for label, (load, path) in bombs.items():
        t0 = time.perf_counter()
        try:
            load(path)
            results[label] = ["loaded", "", time.perf_counter() - t0]
        except BaseException as exc:  # noqa: BLE001 - reported to the parent test
            results[label] = [type(exc).__name__, str(exc), time.perf_counter() - t0]
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    print(json.dumps({"results": results, "rss_growth_mb": growth}))


if __name__ == "__main__":
    main()
