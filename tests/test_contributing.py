"""CONTRIBUTING.md's "add an algorithm" steps, followed for a toy REINFORCE that lives in tests/.

The toy touches only what the steps name: its module (class + ``AlgoSpec``, tests/toy_reinforce.py),
its hyperparameter file (tests/toy_reinforce.yml) and its package metadata's ``rlzoo.algos`` entry
point (written here into a temporary site folder, as ``pip install`` of a package would).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from cli_kit import CLI

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def _site_with_entry_point(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    dist = site / "toy_reinforce-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-reinforce\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rlzoo.algos]\nreinforce = toy_reinforce:SPEC\n")
    return site


def _run(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), str(site)]),
           "MPLBACKEND": "Agg", "SDL_VIDEODRIVER": "dummy"}
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_registered_toy_algorithm_trains_from_the_command_line(tmp_path):
    site = _site_with_entry_point(tmp_path)
    listed = _run(["list"], site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "reinforce" in listed.stdout and "Reinforce" in listed.stdout

    out = _run(["train", "--algo", "reinforce", "--env", "CartPole-v1", "-n", "1024", "--seed", "3",
                "-f", str(tmp_path / "logs"), "--eval-freq", "0", "--no-progress"], site, tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    run_dir = tmp_path / "logs" / "reinforce" / "CartPole-v1_1"
    config = yaml.safe_load((run_dir / "config.yml").read_text())
    assert config["n_steps"] == 128 and config["n_envs"] == 4  # the toy's own YAML file was read
    assert (run_dir / "model.zip").is_file()

    sys.path.insert(0, str(TESTS))
    try:
        from toy_reinforce import Reinforce

        model = Reinforce.load(str(run_dir / "model.zip"))
    finally:
        sys.path.remove(str(TESTS))
    assert model.num_timesteps == 1024 and model.n_steps == 128 and model.gamma == 0.99

    typo = _run(["train", "--algo", "reinforc", "--env", "CartPole-v1", "-n", "64", "-f", str(tmp_path / "l2")],
                site, tmp_path)
    assert typo.returncode == 2 and "did you mean 'reinforce'" in (typo.stdout + typo.stderr).lower()
