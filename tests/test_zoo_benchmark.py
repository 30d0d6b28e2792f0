"""benchmarks/zoo: IQM/bootstrap statistics and the report written from run folders (no training)."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ZOO = Path(__file__).resolve().parent.parent / "benchmarks" / "zoo"


def _load(name: str):
    sys.path.insert(0, str(ZOO))
    try:
        spec = importlib.util.spec_from_file_location(f"zoo_bench_{name}", ZOO / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ZOO))


def test_iqm_and_bootstrap_interval():
    stats = _load("stats")
    assert stats.iqm([1, 2, 3, 4]) == pytest.approx(2.5)  # the middle two
    assert stats.iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # the outlier has no weight
    assert stats.iqm([7.0]) == 7.0
    x = np.array([154.6, 500, 109.2, 500, 151.1])
    lo, hi = stats.iqm_ci(x)
    assert x.min() <= lo <= stats.iqm(x) <= hi <= x.max()
    assert stats.iqm_ci(np.full(5, 3.0)) == (3.0, 3.0)


def _fake_run(folder: Path, seed: int, final: float, steps: int = 1000, wall: float = 10.0) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "seed": seed, "status": "finished", "n_timesteps": steps, "num_timesteps": steps,
        "started_at": "2026-01-01T00:00:00+00:00", "ended_at": "2026-01-01T00:00:10+00:00", "wall_time_s": wall}))
    (folder / "evaluations.csv").write_text(f"timesteps,mean_reward\n500,10.0\n{steps},{final}\n")


def test_report_from_run_folders(tmp_path, monkeypatch):
    run = _load("run")
    monkeypatch.setattr(run, "HERE", tmp_path)
    logs = tmp_path / "logs" / "full"
    for seed, final in enumerate([500, 500, 480, 120, 500]):
        _fake_run(logs / "dqn" / f"CartPole-v1_{seed + 1}", seed, final)
    _fake_run(logs / "dqn" / "CartPole-v1_9", 7, 0.0)  # a seed outside the benchmark's: ignored
    rows = [{"algo": "dqn", "env": "CartPole-v1", "group": "classic", "full": 1000, "reduced": 1000,
             "reference": "500 ± 0 (50k)", "threshold": 450.0},
            {"algo": "ppo", "env": "Acrobot-v1", "group": "classic", "full": 10**6, "reduced": 10**6}]
    run.report(rows, "full", [0, 1, 2, 3, 4], logs, tmp_path / "benchmark.md")
    text = (tmp_path / "benchmark.md").read_text()
    assert "| classic | dqn | CartPole-v1 | 1,000 | 5 | 420.0 ± 150.2 | 494.0 [" in text
    assert "4/5 (>= 450)" in text and "100 steps/s" not in text and "| 100 |" in text  # 1000 steps in 10 s
    assert "1 of 1 rows reach their threshold" in text
    assert "| classic | ppo | Acrobot-v1 | 1,000,000 |" in text.split("## Rows not run yet")[1]
    assert (tmp_path / "plots" / "CartPole-v1_full.png").is_file()


def test_estimate_takes_the_other_budgets_rate_for_the_same_group(tmp_path, monkeypatch):
    run = _load("run")
    monkeypatch.setattr(run, "HERE", tmp_path)
    _fake_run(tmp_path / "logs" / "full" / "td3" / "Pendulum-v1_1", 0, -150.0)  # small task: 100 steps/s
    _fake_run(tmp_path / "logs" / "reduced" / "td3" / "Hopper-v5_1", 0, 900.0, wall=100.0)  # MuJoCo: 10 steps/s
    rows = [{"algo": "td3", "env": "Pendulum-v1", "group": "classic", "full": 1000, "reduced": 1000},
            {"algo": "td3", "env": "Hopper-v5", "group": "mujoco", "full": 10**6, "reduced": 1000},
            {"algo": "td3", "env": "Walker2d-v5", "group": "mujoco", "full": 10**6, "reduced": 1000}]
    run.report(rows, "full", [0], tmp_path / "logs" / "full", tmp_path / "benchmark.md")
    not_run = (tmp_path / "benchmark.md").read_text().split("## Rows not run yet")[1]
    # 10**6 steps at the reduced MuJoCo runs' 10 steps/s: 27h46m, not 2h46m at the classic-control rate
    assert "| mujoco | td3 | Walker2d-v5 | 1,000,000 | 27h46m |" in not_run
    assert "| mujoco | td3 | Hopper-v5 | 1,000,000 | 27h46m |" in not_run


def test_wall_time_of_a_resumed_run_leaves_out_the_pause(tmp_path):
    run = _load("run")
    folder = tmp_path / "a2c" / "CartPole-v1_1"
    _fake_run(folder, 0, 500.0)
    info = json.loads((folder / "run.json").read_text())
    info["ended_at"] = "2026-01-02T00:00:00+00:00"  # stopped, resumed a day later
    info["wall_time_s"] = 25.0  # what rlzoo train summed over the two stretches of training
    (folder / "run.json").write_text(json.dumps(info))
    [found] = run.row_runs({"algo": "a2c", "env": "CartPole-v1"}, 1000, [0], tmp_path)
    assert found["wall"] == 25.0


def test_reduced_report_is_marked_and_applies_no_threshold(tmp_path, monkeypatch):
    run = _load("run")
    monkeypatch.setattr(run, "HERE", tmp_path)
    logs = tmp_path / "logs" / "reduced"
    for seed in range(2):
        _fake_run(logs / "sac" / f"Hopper-v5_{seed + 1}", seed, 900.0, steps=2000)
    rows = [{"algo": "sac", "env": "Hopper-v5", "group": "mujoco", "full": 10**6, "reduced": 2000,
             "reference": "2603 ± 1046 (1M)", "threshold": 1557.0}]
    run.report(rows, "reduced", [0, 1], logs, tmp_path / "benchmark_reduced.md")
    text = (tmp_path / "benchmark_reduced.md").read_text()
    assert "**Reduced budget" in text and "NOT the entries' results" in text
    assert "| mujoco | sac | Hopper-v5 | 2,000 (entry: 1,000,000) | 2 | 900.0 ± 0.0 |" in text
    assert ">= 1557" not in text and "Seed reliability" not in text
    assert (tmp_path / "plots" / "Hopper-v5_reduced.png").is_file()


def test_reduced_budget_selects_only_rows_cut_short(tmp_path, monkeypatch, capsys):
    run = _load("run")
    (tmp_path / "rows.yml").write_text(
        "seeds: 0-1\nrows:\n"
        "  - {algo: ppo, env: CartPole-v1, group: classic, full: 100000, reduced: 100000}\n"
        "  - {algo: sac, env: Hopper-v5, group: mujoco, full: 1000000, reduced: 200000}\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    assert run.main(["--budget", "reduced", "--dry-run", "--rows", str(tmp_path / "rows.yml")]) == 0
    out = capsys.readouterr().out
    assert "--envs Hopper-v5" in out and "CartPole" not in out


def test_per_seed_values_are_never_rounded_across_the_threshold():
    run = _load("run")
    # 93.6547 < 93.66 must not print as 93.7 next to ">= 93.66"
    assert run._fmt(93.6547, 93.66) == "93.65"
    assert run._fmt(-109.96, -110.0) == "-110.0"
    assert run._fmt(93.6547) == "93.7" and run._fmt(4989.4, 9100.0) == "4989"
    # below the threshold by less than its last decimal: more decimals, never "93.5" next to ">= 93.5"
    assert run._fmt(93.45005, 93.5) == "93.45" and run._fmt(93.36015, 93.4) == "93.36"
    assert run._fmt(9099.6, 9100.0) == "9099.6" and run._fmt(9100.4, 9100.0) == "9100"


def test_every_threshold_follows_the_rows_rule():
    """A row's threshold is its reference's mean - std (as printed, so within rounding), or with no reference
    the task's solved score; CartPole-v1's is 450 (issue 16)."""
    import re

    import gymnasium as gym
    import yaml

    gym.register_envs(pytest.importorskip("ale_py"))  # the Atari ids
    rows = yaml.safe_load((ZOO / "rows.yml").read_text())["rows"]
    checked = 0
    for row in rows:
        reference, threshold = row.get("reference"), row.get("threshold")
        if row["env"] == "CartPole-v1":
            assert threshold == 450.0, row
            continue
        if not reference:
            assert threshold == gym.spec(row["env"]).reward_threshold, row  # the solved score, or none
            continue
        match = re.match(r"(-?[\d.]+) ± ([\d.]+) \(", reference)
        assert match, row
        mean, std = float(match.group(1)), float(match.group(2))
        assert threshold is not None and abs(mean - std - threshold) <= 1.0 + 0.005 * abs(threshold), row
        checked += 1
    assert checked >= 40


def test_long_final_evaluation_scores_each_finished_run_and_writes_nothing(tmp_path, capsys):
    from typer.testing import CliRunner

    from rlzoo.zoo.cli import app

    logs = tmp_path / "logs"
    result = CliRunner().invoke(app, ["train", "--algo", "ppo", "--env", "CartPole-v1", "--seed", "3", "-f",
                                      str(logs), "-n", "256", "--no-progress", "--hyperparams", "n_envs=1",
                                      "n_steps=128", "batch_size=64", "n_epochs=1"])
    assert result.exit_code == 0, result.output
    run = logs / "ppo" / "CartPole-v1_1"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    final_eval = _load("final_eval")
    assert final_eval.main(["--logs", str(logs), "--long", "3", "--algos", "ppo"]) == 0
    line = capsys.readouterr().out.strip()
    head, _, score = line.partition(": ")
    assert head == "ppo CartPole-v1_1 seed 3" and score.endswith(" over 3 episodes")
    mean, std = (float(x) for x in score.split(" over ")[0].split(" ± "))
    assert 1 <= mean <= 500 and std >= 0  # CartPole returns: 1 a step, at most 500 steps
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # read-only
    assert final_eval.main(["--logs", str(logs), "--long", "3", "--algos", "dqn"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no finished run with a model.zip" in err  # no dqn run: nothing scored, and said so
    (run / "model.zip").write_bytes(b"not a zip")  # an unreadable model: named on stderr, exit 2
    assert final_eval.main(["--logs", str(logs), "--long", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and str(run) in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        final_eval.main(["--logs", str(tmp_path / "missing"), "--long", "3"])
    assert exc.value.code == 2


def _entry_comment(algo: str, env_id: str) -> str:
    """The comment lines under the key of the entry rlzoo picks for ``env_id`` in hyperparams/<algo>.yml."""
    from rlzoo.zoo.hyperparams_files import hyperparams_file, load_hyperparams_file, select_entry
    from rlzoo.zoo.resolve import is_atari

    path = hyperparams_file(algo)
    key, _ = select_entry(load_hyperparams_file(path), env_id, is_atari(env_id), str(path))
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.split(":", 1)[0] == key)
    comment = []
    for following in lines[start + 1:]:
        if not following.lstrip().startswith("#"):
            break
        comment.append(following.strip().lstrip("#").strip())
    return " ".join(comment)


def test_every_entry_with_committed_runs_says_what_they_reached():
    """An entry whose benchmark row has finished runs in benchmarks/zoo/logs must not still say "not yet run";
    one measured only at the reduced budget must say so (its figure is not the entry's result)."""
    run = _load("run")
    rows, _ = run.load_rows(ZOO / "rows.yml")
    checked = 0
    for row in rows:
        measured = {budget: run.row_runs(row, row[budget], list(range(5)), ZOO / "logs" / budget)
                    for budget in ("full", "reduced")}
        if not (measured["full"] or measured["reduced"]):
            continue
        comment = _entry_comment(row["algo"], row["env"])
        assert comment, row
        if measured["full"]:
            assert not comment.lower().startswith("not yet run"), (row["algo"], row["env"], comment)
        else:
            assert "reduced budget" in comment.lower(), (row["algo"], row["env"], comment)
        checked += 1
    assert checked >= 100


def _numbers(text: str) -> list[str]:
    """The numbers written in ``text``, as written ("-20.3", "500", "13.3"; "200,000" reads as two)."""
    return re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", text.replace(",", " "))


def _written_forms(reward: float) -> set[str]:
    """How a comment may write a final reward: one or two decimals, or none where it is whole or >= 1000."""
    forms = {f"{reward:.1f}", f"{reward:.2f}"}
    if abs(reward - round(reward)) < 0.05 or abs(reward) >= 1000:
        forms.add(f"{reward:.0f}")
    return forms


def _first_unstated(comment: str, finals: list[float]) -> int | None:
    """Index of the first final reward ``comment`` does not state (after the ones before it), or None."""
    written, at = _numbers(comment), 0
    for i, final in enumerate(finals):
        forms = _written_forms(final)
        while at < len(written) and written[at] not in forms:
            at += 1
        if at == len(written):
            return i
        at += 1
    return None


def test_entry_comments_give_the_final_reward_of_every_committed_run():
    """The per-seed rewards an entry's comment states are those of the committed run folders: each seed's final
    reward appears in the comment, in seed order, so a new run (or a rerun) cannot land without its comment."""
    run = _load("run")
    rows, _ = run.load_rows(ZOO / "rows.yml")
    checked = 0
    for row in rows:
        for budget in ("full", "reduced"):
            runs = run.row_runs(row, row[budget], list(range(5)), ZOO / "logs" / budget)
            if not runs:
                continue
            comment = _entry_comment(row["algo"], row["env"])
            missing = _first_unstated(comment, [r["final"] for r in runs])
            assert missing is None, (row["algo"], row["env"], budget, runs[missing]["seed"], runs[missing]["final"],
                                     comment)
            checked += 1
    assert checked >= 140


def test_a_comment_missing_or_misordering_a_seed_is_caught():
    comment = "PongNoFrameskip-v4 seeds 0-2: -20.3, -20.7 and -21.0 ± 0.0 (200,000 steps); 500 and 1000 on CartPole"
    assert _first_unstated(comment, [-20.3, -20.7, -21.0]) is None
    assert _first_unstated(comment, [-20.3, -20.7, -21.0, -19.8]) == 3  # a new seed's run, not in the comment
    assert _first_unstated(comment, [-20.7, -20.3]) == 1  # out of seed order
    assert _first_unstated(comment, [-20.34]) is None and _first_unstated(comment, [-20.4]) == 0
    assert _first_unstated(comment, [500.0, 999.96]) is None
    assert _first_unstated(comment, [13.3]) == 0 and _first_unstated("13 and 13.25", [13.3]) == 0


def test_running_one_seed_keeps_the_other_seeds_in_the_table(tmp_path, monkeypatch):
    run = _load("run")
    (tmp_path / "rows.yml").write_text(
        "seeds: 0-2\nrows:\n  - {algo: ppo, env: CartPole-v1, group: classic, full: 1000, reduced: 1000}\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    for seed, final in enumerate([500.0, 400.0, 300.0]):
        _fake_run(tmp_path / "logs" / "full" / "ppo" / f"CartPole-v1_{seed + 1}", seed, final)
    assert run.main(["--report-only", "--seeds", "1", "--rows", str(tmp_path / "rows.yml")]) == 0
    text = (tmp_path / "benchmark.md").read_text()
    assert "| classic | ppo | CartPole-v1 | 1,000 | 3 | 400.0 ± 81.6 |" in text
