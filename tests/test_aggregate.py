"""IQM / stratified bootstrap / performance profiles (rlzoo.zoo.aggregate), checked against rliable and by
hand; ``rlzoo plot --aggregate``, ``plot --source eval``, ``benchmark --iqm`` on hand-written run folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlzoo.zoo import aggregate as agg
from rlzoo.zoo.cli import app

runner = CliRunner()
# a fixed table: 6 runs (rows) x 3 tasks (columns) of normalized scores
TABLE = np.array([[0.10, 0.80, 0.35], [0.95, 0.20, 0.50], [0.40, 0.65, 0.05],
                  [0.70, 0.30, 0.90], [0.25, 0.55, 0.60], [0.85, 0.15, 0.45]])
TASKS = [TABLE[:, j] for j in range(TABLE.shape[1])]


def test_point_estimates_by_hand():
    flat = np.sort(TABLE.ravel())  # 18 scores: int(0.25 * 18) = 4 trimmed from each end
    assert agg.iqm(TASKS) == pytest.approx(flat[4:14].mean())
    assert agg.iqm([np.arange(8.0)]) == pytest.approx(3.5)  # mean of 2, 3, 4, 5
    task_means = TABLE.mean(axis=0)
    assert agg.mean(TASKS) == pytest.approx(task_means.mean())
    assert agg.median(TASKS) == pytest.approx(np.median(task_means))
    assert agg.optimality_gap([np.array([0.5, 1.2, 0.9])]) == pytest.approx((0.5 + 0.0 + 0.1) / 3)


def test_point_estimates_match_rliable():
    metrics = pytest.importorskip("rliable.metrics")
    assert agg.iqm(TASKS) == pytest.approx(metrics.aggregate_iqm(TABLE))
    assert agg.mean(TASKS) == pytest.approx(metrics.aggregate_mean(TABLE))
    assert agg.median(TASKS) == pytest.approx(metrics.aggregate_median(TABLE))
    assert agg.optimality_gap(TASKS) == pytest.approx(metrics.aggregate_optimality_gap(TABLE))


def test_bootstrap_resamples_each_task_separately():
    # task A always scores 0, task B always 1: every stratified resample has exactly 6 zeros and 6
    # ones, so the mean never moves; a bootstrap pooling the runs of both tasks would spread.
    tasks = [np.zeros(6), np.ones(6)]
    point, low, high = agg.stratified_bootstrap(tasks, agg.mean, reps=500, seed=1)
    assert point == low == high == 0.5
    point, low, high = agg.stratified_bootstrap(TASKS, agg.iqm, reps=2000, seed=0)
    assert low < point < high and high - low > 0.05
    assert agg.stratified_bootstrap(TASKS, agg.iqm, reps=2000, seed=0) == (point, low, high)  # seeded


def test_bootstrap_interval_against_a_plain_reference():
    # the same percentile bootstrap written out loop by loop with the same random draws
    rng = np.random.default_rng(7)
    ref = []
    for _ in range(300):
        resampled = [t[rng.integers(0, t.size, size=t.size)] for t in TASKS]
        flat = np.sort(np.concatenate(resampled))
        ref.append(flat[4:14].mean())
    expected = np.percentile(ref, [2.5, 97.5])
    _, low, high = agg.stratified_bootstrap(TASKS, agg.iqm, reps=300, seed=7)
    assert (low, high) == pytest.approx(tuple(expected))


def test_bootstrap_interval_close_to_rliable():
    try:
        from rliable import library
    except Exception as e:  # noqa: BLE001 - rliable.library needs arch, whose import fails on pandas 3
        pytest.skip(f"rliable.library cannot be imported here ({type(e).__name__}: {e})")
    intervals = library.get_interval_estimates({"a": TABLE}, lambda x: np.array([agg.iqm([x[:, j] for j in
                                                                                           range(x.shape[1])])]),
                                               reps=4000)[1]["a"][:, 0]
    _, low, high = agg.stratified_bootstrap(TASKS, agg.iqm, reps=4000, seed=0)
    assert (low, high) == pytest.approx(tuple(intervals), abs=0.03)


def test_performance_profile():
    taus = np.array([0.0, 0.3, 0.5, 0.9, 1.0])
    curve = agg.score_distribution([np.array([0.2, 0.6]), np.array([0.4, 0.4, 0.95, 1.0])], taus)
    # task 1: >0: 1, >0.3: .5, >0.5: .5, >0.9: 0, >1: 0; task 2: 1, 1, .5, .5, 0 -> averaged per task
    assert curve == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    point, low, high = agg.profile_bootstrap(TASKS, taus, reps=200)
    assert np.all(low <= point + 1e-12) and np.all(point <= high + 1e-12)


def test_normalize_min_max_and_bounds():
    raw = {"a": {"E": np.array([0.0, 10.0]), "F": np.array([-5.0])}, "b": {"E": np.array([20.0])}}
    scores, envs, used = agg.normalize(raw)
    assert envs == ["E"] and used == {"E": (0.0, 20.0)}  # F: only algorithm a ran it
    assert scores["a"][0] == pytest.approx([0.0, 0.5]) and scores["b"][0] == pytest.approx([1.0])
    scores, _, _ = agg.normalize(raw, {"E": (-20.0, 20.0)})
    assert scores["a"][0] == pytest.approx([0.5, 0.75])


# ----------------------------------------------------------------------------- the commands
def _fake_run(root: Path, algo: str, env: str, n: int, seed: int, rewards: list[float],
              success: list[float] | None = None) -> Path:
    run = root / algo / f"{env}_{n}"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"algo": algo, "env": env, "seed": seed, "status": "finished",
                                              "num_timesteps": 1000 * len(rewards), "wall_time_s": 1.0}))
    header = "timesteps,mean_reward,std_reward,mean_ep_length" + (",success_rate" if success else "")
    rows = [f"{1000 * (i + 1)},{r},0.0,10" + (f",{success[i]}" if success else "") for i, r in enumerate(rewards)]
    (run / "evaluations.csv").write_text("\n".join([header, *rows]) + "\n")
    return run


@pytest.fixture
def fake_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    finals = {("ppo", "CartPole-v1"): [500, 480, 350, 500, 20], ("a2c", "CartPole-v1"): [200, 150, 500, 90, 120],
              ("ppo", "Acrobot-v1"): [-80, -90, -500, -85, -100], ("a2c", "Acrobot-v1"): [-100, -120, -95, -500, -110]}
    for (algo, env), values in finals.items():
        for seed, value in enumerate(values):
            _fake_run(tmp_path / "logs", algo, env, seed + 1, seed, [value / 2, value],
                      success=[0.0, 1.0] if env == "CartPole-v1" else None)
    return finals


def test_plot_aggregate_png_and_svg(fake_logs):
    result = runner.invoke(app, ["plot", "--aggregate", "-o", "agg.png", "--bootstrap-reps", "200",
                                 "--score-bounds", "CartPole-v1=0:500", "Acrobot-v1=-500:0"])
    assert result.exit_code == 0, result.output
    png = Path("agg.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # the printed IQM is the IQM of the normalized final scores
    for algo in ("ppo", "a2c"):
        cart = np.array(fake_logs[(algo, "CartPole-v1")]) / 500
        acro = (np.array(fake_logs[(algo, "Acrobot-v1")]) + 500) / 500
        line = next(ln for ln in result.output.splitlines() if ln.startswith(f"{algo}: IQM"))
        assert f"IQM {agg.iqm([acro, cart]):.3f} [" in line
    result = runner.invoke(app, ["plot", "--aggregate", "-o", "agg.svg", "--bootstrap-reps", "50"])
    assert result.exit_code == 0, result.output
    assert b"<svg" in Path("agg.svg").read_bytes()[:2000]


def test_plot_bad_input(fake_logs):
    for args, needle in ((["--aggregate", "-o", "x.jpg"], ".svg"),
                         (["--aggregate", "--score-bounds", "CartPole-v1=1"], "ENV=LOW:HIGH"),
                         (["--score-bounds", "CartPole-v1=0:1"], "--aggregate"),
                         (["-y", "success"], "--source eval")):
        result = runner.invoke(app, ["plot", *args])
        assert result.exit_code == 2 and needle in result.output, (args, result.output)


def test_plot_evaluation_and_success_curves(fake_logs):
    from rlzoo.zoo.plot import eval_curve

    x, y = eval_curve(Path("logs/ppo/CartPole-v1_1"), "success")
    assert list(x) == [1000, 2000] and list(y) == [0.0, 1.0]
    assert list(eval_curve(Path("logs/ppo/CartPole-v1_1"), "length")[1]) == [10.0, 10.0]
    assert list(eval_curve(Path("logs/ppo/CartPole-v1_1"), "reward")[1]) == [250.0, 500.0]
    result = runner.invoke(app, ["plot", "--source", "eval", "-y", "success", "--env", "CartPole-v1", "-o", "s.png"])
    assert result.exit_code == 0, result.output
    assert Path("s.png").stat().st_size > 10_000
    result = runner.invoke(app, ["plot", "--source", "eval", "-o", "e.svg"])
    assert result.exit_code == 0 and b"<svg" in Path("e.svg").read_bytes()[:2000]
    # no success rates on Acrobot
    result = runner.invoke(app, ["plot", "--source", "eval", "-y", "success", "--env", "Acrobot-v1", "-o", "n.png"])
    assert result.exit_code == 2 and "success_rate" in result.output


def test_benchmark_iqm_column(fake_logs):
    result = runner.invoke(app, ["benchmark", "--iqm", "--env", "CartPole-v1"])
    assert result.exit_code == 0, result.output
    row = next(ln for ln in result.output.splitlines() if ln.startswith("| ppo | CartPole-v1"))
    values = np.array(fake_logs[("ppo", "CartPole-v1")], dtype=float)  # 5 runs: int(1.25) = 1 cut each end
    assert f"| {np.sort(values)[1:4].mean():.1f} [" in row
    assert "IQM [95% CI]" in result.output
    assert "IQM" not in runner.invoke(app, ["benchmark"]).output
