"""Chaos probes of ``rlzoo train`` as a cluster operator sees it (issue 13), then resume and check.

    nice -n 10 python benchmarks/chaos.py --quick          # about 3-5 minutes on a busy 2-core machine
    nice -n 10 python benchmarks/chaos.py --n 12 --seed 1  # more kills

Probes: SIGKILL/SIGTERM at random moments of short CartPole runs (start-up included) followed by
``--resume`` until the run is finished; two ``--resume`` of one folder at once; a full disk (a 2 MB
tmpfs, only as root; skipped when ``mount`` fails); hostile conf files. Every run folder is then
checked: run.json, config.yml, model and checkpoint zips, replay buffers, VecNormalize files, monitor
and evaluation CSVs must all be readable. Prints the counts; exits 1 when a count that must be 0 is not.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds a single command may take before it counts as a hang


class Counts(dict):
    """Named counters, printed at the end."""

    def add(self, key: str, n: int = 1) -> None:
        self[key] = self.get(key, 0) + n


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1"}


def cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``python -m rlzoo.zoo.cli ARGS`` (output to a pipe)."""
    return subprocess.Popen([sys.executable, "-m", "rlzoo.zoo.cli", *args], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, counts: Counts, timeout: float = TIMEOUT) -> tuple[int, str]:
    """Wait for ``proc``; a hang is counted and the process group killed."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        counts.add("hangs")
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += "\n[hang]"
    if "Traceback" in out:
        counts.add("tracebacks")
        print(f"--- traceback in output of {' '.join(proc.args[3:])}:\n{out[-1500:]}", file=sys.stderr)
    return proc.returncode, out


def run_cmd(args: list[str], cwd: Path, counts: Counts, timeout: float = TIMEOUT) -> tuple[int, str]:
    """Run a command to its end."""
    return finish(cli(args, cwd), counts, timeout)


# ----------------------------------------------------------------------------- file checks
def _zip_ok(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def _csv_ok(path: Path, comment: bool) -> bool:
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    if comment:
        if not lines or not lines[0].startswith("#"):
            return False
        json.loads(lines[0][1:])
        lines = lines[1:]
    if not lines:
        return True
    rows = list(csv.reader(lines))
    width = len(rows[0])
    for row in rows[1:]:
        if len(row) != width:
            return False
        try:
            [float(x) for x in row[:3] if x != ""]
        except ValueError:
            return False
    return True


def check_run(run: Path, counts: Counts) -> dict | None:
    """Count the corrupt files of a run folder; returns its run.json (None when unreadable)."""
    import yaml

    bad: list[str] = []
    try:
        info = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        info = None
        if (run / "run.json").exists():
            bad.append("run.json")
    try:
        yaml.safe_load((run / "config.yml").read_text())
    except FileNotFoundError:
        pass
    except (OSError, yaml.YAMLError):
        bad.append("config.yml")
    for path in [*run.glob("*.zip"), *run.glob("*.npz"), *run.glob("checkpoints/*.zip"),
                 *run.glob("checkpoints/*.npz")]:
        if not _zip_ok(path):
            bad.append(str(path.relative_to(run)))
    for path in run.glob("checkpoints/*.zip"):  # a checkpoint is written with its side files, never without
        buffer = path.with_name(f"{path.stem}_replay_buffer.npz")
        if info is not None and info.get("algo") == "dqn" and not buffer.is_file():
            bad.append(f"{path.relative_to(run)} without its replay buffer")
    for path in run.glob("monitor/*.csv"):
        if not _csv_ok(path, comment=True):
            bad.append(str(path.relative_to(run)))
    if (run / "evaluations.csv").exists() and not _csv_ok(run / "evaluations.csv", comment=False):
        bad.append("evaluations.csv")
    if bad:
        counts.add("corrupt files", len(bad))
        print(f"--- corrupt in {run}: {bad}", file=sys.stderr)
    return info


# ----------------------------------------------------------------------------- probes
def kill_probe(i: int, root: Path, rng: random.Random, counts: Counts) -> None:
    """Start a short run, kill it at a random moment, resume until finished, check the folder."""
    algo = rng.choice(["a2c", "ppo", "dqn"])
    total = {"a2c": 6000, "ppo": 6000, "dqn": 4000}[algo]
    work = root / f"kill{i}"
    work.mkdir()
    args = ["train", "--algo", algo, "--env", "CartPole-v1", "-n", str(total), "--seed", str(i), "-f", "logs",
            "--save-freq", "1000", "--eval-freq", "2000", "--eval-episodes", "2", "--no-progress"]
    if rng.random() < 0.3:
        args += ["--vec-env", "subproc"]
    sig = signal.SIGKILL if i % 2 == 0 else signal.SIGTERM  # both kinds, whatever the seed
    proc = cli(args, work)
    if i % 5 == 4:  # during start-up, at any moment
        delay = rng.uniform(0.3, 6.0)
        time.sleep(delay)
    else:  # once the run folder exists: a random moment of set-up or training
        t0 = time.time()
        while proc.poll() is None and time.time() - t0 < TIMEOUT and not list((work / "logs").rglob("run.json")):
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 10.0))
        delay = time.time() - t0
    if proc.poll() is None:
        proc.send_signal(sig)
        counts.add("kills tried")
        if sig == signal.SIGKILL:
            time.sleep(0.5)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # a node that goes away takes the env workers too
            except ProcessLookupError:
                pass
    code, out = finish(proc, counts)
    runs = sorted((work / "logs" / algo).glob("CartPole-v1_*")) if (work / "logs" / algo).is_dir() else []
    print(f"kill {i}: {algo} {signal.Signals(sig).name} after {delay:.1f}s -> exit {code}, "
          f"{'folder' if runs else 'no folder'}", flush=True)
    if not runs:
        counts.add("killed before the run folder existed")
        return
    run = runs[0]
    for _attempt in range(3):
        info = check_run(run, counts)
        if info is None:
            counts.add("folders left without run.json")
            return
        if info.get("status") == "finished" and info.get("num_timesteps", 0) >= total:
            break
        code, out = run_cmd(["train", "--algo", algo, "--env", "CartPole-v1", "--resume", str(run.relative_to(work)),
                             "--no-progress"], work, counts)
        if code != 0:
            print(f"    resume exit {code}: {out.strip().splitlines()[-1:] if out.strip() else ''}", flush=True)
    info = check_run(run, counts)
    if info and info.get("status") == "finished" and info.get("num_timesteps", 0) >= total:
        counts.add("runs resumed to their full step count")
    else:
        counts.add("runs not finished after 3 resumes")


def double_resume_probe(root: Path, counts: Counts) -> None:
    """Interrupt a run, then start two resumes of it at the same moment: one writes, one is refused."""
    work = root / "double"
    work.mkdir()
    args = ["train", "--algo", "a2c", "--env", "CartPole-v1", "-n", "30000", "--seed", "0", "-f", "logs",
            "--eval-freq", "0", "--save-freq", "1000", "--no-progress"]
    proc = cli(args, work)
    deadline = time.time() + TIMEOUT
    run = work / "logs" / "a2c" / "CartPole-v1_1"
    while time.time() < deadline and proc.poll() is None and not list(run.glob("checkpoints/*.zip")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    finish(proc, counts)
    resume = ["train", "--algo", "a2c", "--env", "CartPole-v1", "--resume", "logs/a2c/CartPole-v1_1", "--no-progress"]
    first, second = cli(resume, work), cli(resume, work)
    (c1, o1), (c2, o2) = finish(first, counts), finish(second, counts)
    refused = sum(code == 2 and "is being written by pid" in out for code, out in ((c1, o1), (c2, o2)))
    finished = sum(code == 0 for code in (c1, c2))
    info = check_run(run, counts) or {}
    errors = [line for line in (o1 + o2).splitlines() if line.startswith("error:")]
    print(f"double resume: exits {c1}, {c2}; refused {refused}; status {info.get('status')}, "
          f"{len(info.get('segments', []))} segments; {errors[:1]}", flush=True)
    counts.add("double resumes refused cleanly", int(refused == 1 and finished == 1))
    if not (info.get("status") == "finished" and len(info.get("segments", [])) == 2):
        counts.add("double resumes that lost a segment")


def disk_full_probe(root: Path, counts: Counts) -> None:
    """Train an off-policy run onto a 2 MB tmpfs: it must end 'failed' with one line, files intact."""
    mnt = root / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        print("disk full: skipped (needs root and mount)", flush=True)
        counts.add("disk-full probes skipped")
        return
    try:
        code, out = run_cmd(["train", "--algo", "dqn", "--env", "CartPole-v1", "-n", "20000", "--seed", "0",
                             "-f", str(mnt / "logs"), "--save-freq", "2000", "--eval-freq", "0", "--no-progress",
                             "--hyperparams", "buffer_size=20000"], root, counts)
        run = mnt / "logs" / "dqn" / "CartPole-v1_1"
        info = check_run(run, counts) or {}
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        print(f"disk full: exit {code}, status {info.get('status')}, error lines {len(errors)}: "
              f"{errors[0][:160] if errors else ''}", flush=True)
        counts.add("disk-full runs marked failed", int(info.get("status") == "failed" and code == 1
                                                      and len(errors) == 1))
        if info.get("status") == "running":
            counts.add("runs left running")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def hostile_confs(root: Path, quick: bool) -> dict[str, str]:
    """Conf files a cluster user might submit by mistake (or on purpose)."""
    bomb = "&a0 [64, 64, 64, 64, 64, 64, 64, 64, 64, 64]"
    for level in range(1, 10):
        bomb = f"&a{level} [{bomb}, " + ", ".join([f"*a{level - 1}"] * 9) + "]"
    confs = {
        "billion_laughs": f"n_timesteps: 64\npolicy_kwargs:\n  net_arch: {bomb}\n",
        "recursive_alias": "n_timesteps: 64\npolicy_kwargs: &p {net_arch: *p}\n",
        "deep_nesting": "n_timesteps: 64\npolicy_kwargs: {net_arch: " + "[" * 5000 + "]" * 5000 + "}\n",
        "n_steps_zero": "n_timesteps: 64\nn_steps: 0\n",
        "gamma_two": "n_timesteps: 64\ngamma: 2\n",
        "lr_inf": "n_timesteps: 64\nlearning_rate: .inf\n",
        "unknown_key": "n_timesteps: 64\nlearning_rat: 0.001\n",
        "huge": "n_timesteps: 64\n" + "".join(f"# padding {i:08d} " + "x" * 100 + "\n" for i in range(12000)),
        "binary": "\x00\x01\x02\xff garbage",
    }
    if quick:
        confs = {k: confs[k] for k in ("billion_laughs", "deep_nesting", "n_steps_zero", "lr_inf", "huge")}
    paths = {}
    for name, text in confs.items():
        path = root / f"{name}.yml"
        path.write_text(text, errors="surrogateescape")
        paths[name] = str(path)
    return paths


def hostile_probe(root: Path, counts: Counts, quick: bool) -> None:
    work = root / "hostile"
    work.mkdir()
    for name, path in hostile_confs(root, quick).items():
        start = time.time()
        code, out = run_cmd(["train", "--algo", "ppo", "--env", "CartPole-v1", "--conf-file", path, "-f", "logs",
                             "--no-progress", "--eval-freq", "0"], work, counts, timeout=120)
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        clean = code == 2 and len(errors) == 1
        counts.add("hostile confs refused with one line, exit 2" if clean else "hostile confs NOT refused cleanly")
        print(f"hostile {name}: exit {code} in {time.time() - start:.1f}s: {errors[0][:150] if errors else out[-200:]}",
              flush=True)
    if (work / "logs").exists() and any((work / "logs").rglob("run.json")):
        counts.add("run folders written by refused confs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6, help="number of kill probes")
    parser.add_argument("--quick", action="store_true", help="3 kill probes and 5 hostile confs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    n = 3 if args.quick and args.n == 6 else args.n
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="rlzoo-chaos-"))
    counts = Counts({"kills tried": 0, "runs resumed to their full step count": 0, "corrupt files": 0,
                     "runs left running": 0, "tracebacks": 0, "hangs": 0})
    start = time.time()
    try:
        for i in range(n):
            kill_probe(i, root, rng, counts)
        double_resume_probe(root, counts)
        disk_full_probe(root, counts)
        hostile_probe(root, counts, args.quick)
        for run_json in root.rglob("run.json"):
            try:
                if json.loads(run_json.read_text()).get("status") == "running":
                    counts.add("runs left running")
                    print(f"--- left running: {run_json.parent}", file=sys.stderr)
            except (OSError, ValueError):
                pass
    finally:
        if args.keep:
            print(f"work folder: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nchaos: {time.time() - start:.0f}s")
    for key, value in counts.items():
        print(f"  {key}: {value}")
    must_be_zero = ("corrupt files", "runs left running", "tracebacks", "hangs", "runs not finished after 3 resumes",
                    "hostile confs NOT refused cleanly", "double resumes that lost a segment",
                    "folders left without run.json", "run folders written by refused confs")
    sys.exit(1 if any(counts.get(k, 0) for k in must_be_zero) else 0)


if __name__ == "__main__":
    main()
