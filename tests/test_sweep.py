"""rlzoo sweep (local pool, Ray, SLURM array script) and rlzoo benchmark, with real processes."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_kit import cli_env, rlzoo

from rlzoo.zoo import cli
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.sweep import parse_names, parse_seeds

TINY = ["-n", "512", "--eval-freq", "256", "--eval-episodes", "1"]


def shape(run: Path) -> set:
    """Relative paths of a run folder (TensorBoard event file names normalized) plus its JSON/YAML keys."""
    import yaml

    names = set()
    for p in run.rglob("*"):
        rel = p.relative_to(run).as_posix()
        names.add(rel.rsplit("/", 1)[0] + "/events" if "events.out.tfevents" in rel else rel)
    names |= {f"run.json:{k}" for k in json.loads((run / "run.json").read_text())}
    names |= {f"config.yml:{k}" for k in yaml.safe_load((run / "config.yml").read_text())}
    return names


def test_parse_seeds_and_names():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3, 0-1,3") == [3, 0, 1]
    assert parse_names("ppo, a2c,ppo", "--algos") == ["ppo", "a2c"]
    for bad in ("4-0", "a", "1-", ""):
        with pytest.raises(ZooError):
            parse_seeds(bad)


def test_sweep_bad_input_is_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args, message in ((["--algos", "ppo,a2cc", "--envs", "CartPole-v1"], "did you mean 'a2c'"),
                          (["--algos", "ppo", "--envs", "CartPole-v9"], "unknown environment"),
                          (["--algos", "ppo", "--envs", "CartPole-v1", "--seeds", "5-2"], "--seeds")):
        with pytest.raises(SystemExit) as e:
            cli.main(["sweep", *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "logs").exists()  # nothing ran


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    out = rlzoo("sweep", "--algos", "a2c", "--envs", "CartPole-v1", "--seeds", "0-1", "--jobs", "2", *TINY,
                cwd=root)
    return root, out


def test_local_sweep_makes_train_run_folders_and_benchmark(local_sweep, monkeypatch, capsys):
    root, out = local_sweep
    runs = sorted((root / "logs" / "a2c").glob("CartPole-v1_*"))
    assert len(runs) == 2, out
    infos = [json.loads((r / "run.json").read_text()) for r in runs]
    assert sorted(i["seed"] for i in infos) == [0, 1]
    assert all(i["status"] == "finished" and i["argv"][0] == "train" and i["num_timesteps"] >= 512 for i in infos)
    assert shape(runs[0]) == shape(runs[1])
    assert {"config.yml", "run.json", "model.zip", "evaluations.csv", "monitor"} <= shape(runs[0])

    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as e:
        cli.main(["benchmark", "-f", "logs", "-o", "bench.md"])
    assert e.value.code == 0
    table = (root / "bench.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| a2c |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["a2c", "CartPole-v1", "2"] and " ± " in cells[4]
    rewards = [float((r / "evaluations.csv").read_text().splitlines()[-1].split(",")[1]) for r in runs]
    assert cells[4].startswith(f"{sum(rewards) / 2:.1f} ± ")
    capsys.readouterr()


def test_emit_slurm_script_runs_one_task(tmp_path, monkeypatch, capsys):
    script = tmp_path / "sweep.sh"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(["sweep", "--algos", "ppo,a2c", "--envs", "CartPole-v1", "--seeds", "0-1", "--jobs", "2",
                  "--cpus-per-task", "2", "--slurm-time", "01:00:00", "--emit-slurm", str(script), *TINY])
    assert e.value.code == 0
    assert "sbatch" in capsys.readouterr().out and not (tmp_path / "logs" / "ppo").exists()  # nothing trained
    text = script.read_text()
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --cpus-per-task=2", "#SBATCH --time=01:00:00"):
        assert line in text
    subprocess.run(["bash", "-n", str(script)], check=True)
    # task 3 = a2c, seed 1 (algo-major order), run here as SLURM would
    subprocess.run(["bash", str(script)], cwd="/", env=dict(cli_env(), SLURM_ARRAY_TASK_ID="3"), check=True,
                   capture_output=True, timeout=240)
    (run,) = (tmp_path / "logs" / "a2c").glob("CartPole-v1_*")
    info = json.loads((run / "run.json").read_text())
    assert (info["algo"], info["seed"], info["status"]) == ("a2c", 1, "finished")


@pytest.mark.slow  # starts a Ray instance (~10-40 s); Ray is an optional extra
def test_ray_sweep_has_the_shape_of_a_local_sweep(local_sweep, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rlzoo[ray]'")
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = rlzoo("sweep", "--algos", "a2c", "--envs", "CartPole-v1", "--seeds", "0-1", "--cpus-per-task", "1",
                    "--ray-address", context.address_info["gcs_address"], *TINY, cwd=tmp_path)
    finally:
        ray.shutdown()
    assert "on Ray at" in out
    ray_runs = sorted((tmp_path / "logs" / "a2c").glob("CartPole-v1_*"))
    local_runs = sorted((local_sweep[0] / "logs" / "a2c").glob("CartPole-v1_*"))
    assert len(ray_runs) == 2
    assert sorted(json.loads((r / "run.json").read_text())["seed"] for r in ray_runs) == [0, 1]
    assert all(json.loads((r / "run.json").read_text())["status"] == "finished" for r in ray_runs)
    assert {frozenset(shape(r)) for r in ray_runs} == {frozenset(shape(r)) for r in local_runs}
