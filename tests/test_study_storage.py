"""The storage of ``rlzoo optimize`` in one process: the trial cap holds through Optuna's own ``optimize``
for both storage kinds, a running trial records heartbeats, and a silent one is failed and re-queued once."""
from __future__ import annotations

import time

import pytest

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from rlzoo.zoo.study_storage import (HEARTBEAT_ATTR, MaxTrialsReached, fail_stale_trials, open_storage,  # noqa: E402
                                     with_heartbeat)


def _storage_text(tmp_path, kind: str) -> str:
    return str(tmp_path / "optuna.log") if kind == "journal" else f"sqlite:///{tmp_path / 'optuna.db'}"


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_cap_stops_optimize_at_max_total_trials(tmp_path, kind):
    storage = open_storage(_storage_text(tmp_path, kind), max_total_trials=3)
    study = optuna.create_study(storage=storage, study_name="cap")
    with pytest.raises(MaxTrialsReached):
        study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=10)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3
    # a re-queued trial replaces one that counted: it is created past the cap
    study.enqueue_trial({"x": 0.5})
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert len(study.get_trials()) == 4


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_heartbeat_is_recorded_while_a_trial_runs(tmp_path, kind):
    storage = open_storage(_storage_text(tmp_path, kind), heartbeat_interval=1)
    study = optuna.create_study(storage=storage, study_name="beat")
    seen: list[float] = []

    def objective(trial):
        time.sleep(2.5)  # long enough for the thread's beats after the first one
        frozen = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))[0]
        seen.append(frozen.system_attrs[HEARTBEAT_ATTR])
        return 0.0

    start = time.time()
    study.optimize(with_heartbeat(storage, study, objective), n_trials=1)
    assert seen and seen[0] > start + 0.5  # refreshed by the thread, not only stamped at the start
    assert study.get_trials()[0].state == TrialState.COMPLETE
    # without a heartbeat the objective is passed through untouched
    assert with_heartbeat(open_storage(_storage_text(tmp_path / "x", kind)), study, objective) is objective


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_silent_trial_is_failed_and_requeued_once(tmp_path, kind, capsys):
    storage = open_storage(_storage_text(tmp_path, kind), heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="stale")
    lost = study.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})  # RUNNING, never beats
    fail_stale_trials(storage, study)
    assert study.get_trials()[0].state == TrialState.RUNNING  # still inside its grace period
    time.sleep(2.5)
    fail_stale_trials(storage, study)
    fail_stale_trials(storage, study)  # a second pass (another worker) finds nothing more to do
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == {"x": lost.params["x"]}
    assert trials[1].system_attrs["failed_trial"] == lost.number
    assert "re-queued" in capsys.readouterr().out
