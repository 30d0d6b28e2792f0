"""rlzoo optimize: search spaces, study-wide trial cap across worker processes, heartbeat recovery of
a SIGKILLed worker's trial (journal file and sqlite:///), reports, and ``train --trial-id``."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from cli_kit import CLI, cli_env

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from rlzoo import ALGOS  # noqa: E402
from rlzoo.zoo import tune  # noqa: E402
from rlzoo.zoo.config import check_policy  # noqa: E402
from rlzoo.zoo.hyperparams_schema import validate_entry  # noqa: E402
from rlzoo.zoo.search_spaces import SEARCH_SPACES, SpaceContext, sample_hyperparams  # noqa: E402

# a trial of a2c on CartPole-v1 that takes a fraction of a second: 256 steps, one 1-episode evaluation
FAST = ["--algo", "a2c", "--env", "CartPole-v1", "-n", "256", "--n-evaluations", "1", "--eval-episodes", "1",
        "--sampler", "random", "--pruner", "none", "--no-progress"]


def rlzoo(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=tune.open_storage(storage, must_exist=True))


# ----------------------------------------------------------------------------- search spaces
BUILT_IN = {"ppo", "a2c", "dqn", "sac", "td3", "ddpg", "trpo", "acktr", "acer"}


@pytest.mark.parametrize("algo", sorted(set(ALGOS) | BUILT_IN))
def test_search_space_samples_valid_entries(algo):
    assert algo in SEARCH_SPACES
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cls = ALGOS.get(algo)
    for i in range(5):
        trial = study.ask()
        ctx = SpaceContext(n_envs=4, continuous=bool(i % 2), n_timesteps=256 if i % 2 else 50_000)
        if cls is None:  # the algorithm has not landed in rlzoo yet: the space still samples
            params = SEARCH_SPACES[algo](trial, ctx)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the space only uses names the algorithm and its policy have
                params = sample_hyperparams(algo, trial, cls, ctx)
            validate_entry(params, cls, algo, "sampled")  # every value passes the hyperparameter-file checks
            check_policy(cls, algo, "MlpPolicy", params.get("policy_kwargs") or {}, "sampled")
        assert params and "learning_rate" in params
        if "batch_size" in params and "n_steps" in params:
            assert params["batch_size"] <= params["n_steps"] * ctx.n_envs
        if "n_steps" in params:  # rollouts fit the budget (or are the smallest choice)
            assert params["n_steps"] * ctx.n_envs <= max(ctx.n_timesteps, 64 * ctx.n_envs)
        study.tell(trial, 0.0)


# ----------------------------------------------------------------------------- in-process worker
def test_optimize_in_process_seeds_reports_and_nan_pruning(tmp_path):
    storage = str(tmp_path / "study.log")
    study = tune.optimize("a2c", "CartPole-v1", n_trials=2, n_timesteps=256, n_evaluations=2, eval_episodes=1,
                          n_seeds_per_trial=2, sampler="random", pruner="none", storage=storage, study_name="s",
                          seed=3, heartbeat_interval=0, progress=False)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        assert sorted(t.intermediate_values) == [0, 1, 2, 3]  # 2 evaluations x 2 seeds reported for pruning
        assert len(t.user_attrs["seed_rewards"]) == 2
        assert t.value == pytest.approx(sum(t.user_attrs["seed_rewards"]) / 2)
    report = (tmp_path / "s_trials.csv").read_text()
    assert report.startswith("number,state,value") and len(report.splitlines()) == 3
    best = (tmp_path / "s_best.yml").read_text()
    from rlzoo.zoo.hyperparams_files import parse_yaml

    entry = parse_yaml(best, "best")["CartPole-v1"]
    winner = max(trials, key=lambda t: t.value)
    assert entry["n_timesteps"] == 500_000  # the file's full budget, not the tuning budget
    assert all(entry[k] == v for k, v in winner.user_attrs["hyperparams"].items())

    # an absurd learning rate diverges: the trial is pruned, not failed and not scored
    study = tune.optimize("a2c", "CartPole-v1", n_trials=1, n_timesteps=2000, n_evaluations=2, eval_episodes=1,
                          sampler="random", pruner="none", storage=storage, study_name="nan", seed=0,
                          hyperparams=["learning_rate=1e30", "n_steps=5"], heartbeat_interval=0,
                          progress=False)
    (t,) = study.get_trials()
    assert t.state == TrialState.PRUNED and "diverged" in t.user_attrs["note"]


# ----------------------------------------------------------------------------- several workers
@pytest.fixture(scope="module")
def two_worker_study(tmp_path_factory):
    """Two worker processes on one journal file with --max-total-trials 6."""
    root = tmp_path_factory.mktemp("workers")
    storage = str(root / "shared" / "optuna.log")
    args = [*FAST, "--storage", storage, "--study-name", "shared", "--max-total-trials", "6",
            "--heartbeat-interval", "1"]
    workers = [rlzoo("optimize", *args, "--seed", str(i), cwd=root) for i in range(2)]
    outputs = [finish(w) for w in workers]
    return root, storage, outputs


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_workers_racing_on_a_fresh_study_agree_on_its_owner(tmp_path, kind):
    """Workers that open a new study together must all see one complete owner (algo and env), never half of one."""
    import threading

    storage = str(tmp_path / "optuna.log") if kind == "journal" else f"sqlite:///{tmp_path / 'optuna.db'}"
    claims = [("a2c", "CartPole-v1"), ("ppo", "Pendulum-v1")] * 4
    seen: list = [None] * len(claims)
    start = threading.Barrier(len(claims))

    def worker(i: int) -> None:
        try:
            start.wait(timeout=30)
            seen[i] = tune.join_study(tune.open_storage(storage), "race", *claims[i])[1]
        except Exception as e:  # reported by the assertion below
            seen[i] = repr(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(claims))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and seen[0] in claims, seen
    assert tune.study_owner(load(storage, "race")) == seen[0]
    # a study made outside rlzoo is claimed by the first worker; one written by an older rlzoo keeps its owner
    optuna.create_study(storage=tune.open_storage(storage), study_name="plain")
    joined = tune.join_study(tune.open_storage(storage), "plain", "sac", "Pendulum-v1", wait=0.1)
    assert joined[1] == ("sac", "Pendulum-v1")
    old = optuna.create_study(storage=tune.open_storage(storage), study_name="old")
    old.set_user_attr("algo", "dqn")
    old.set_user_attr("env", "CartPole-v1")
    assert tune.join_study(tune.open_storage(storage), "old", "a2c", "CartPole-v1")[1] == ("dqn", "CartPole-v1")


def test_study_of_another_algo_is_refused_with_one_line(tmp_path):
    storage = str(tmp_path / "optuna.log")
    tune.join_study(tune.open_storage(storage), "s", "a2c", "CartPole-v1")
    out = subprocess.run([*CLI, "optimize", *FAST, "--algo", "ppo", "--n-trials", "1",
                          "--storage", storage, "--study-name", "s"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    expected = f"error: study 's' in {storage} tunes a2c on CartPole-v1, not ppo on CartPole-v1"
    assert out.stderr.strip().splitlines() == [expected]
    assert load(storage, "s").get_trials() == []


def test_two_workers_stop_at_max_total_trials_exactly(two_worker_study):
    _, storage, outputs = two_worker_study
    trials = load(storage, "shared").get_trials()
    assert len(trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in trials)
    ran = [int(out.split("this worker ran ")[1].split()[0]) for out in outputs]
    assert sum(ran) == 6, outputs
    assert all("--max-total-trials" in out or "ran its" in out for out in outputs)


def test_train_trial_id_reproduces_hyperparameters(two_worker_study, monkeypatch, capsys):
    from rlzoo.zoo import cli
    from rlzoo.zoo.hyperparams_files import load_yaml

    root, storage, _ = two_worker_study
    monkeypatch.chdir(root)
    trial = load(storage, "shared").get_trials()[4]
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--algo", "a2c", "--env", "CartPole-v1", "--storage", storage, "--study-name", "shared",
                  "--trial-id", "4", "-n", "64", "--eval-freq", "0", "--no-progress", "-f", "runs",
                  "--hyperparams", "vf_coef=0.123"])
    assert e.value.code == 0, capsys.readouterr()
    config = load_yaml(root / "runs" / "a2c" / "CartPole-v1_1" / "config.yml")
    expected = dict(trial.user_attrs["hyperparams"], vf_coef=0.123)  # --hyperparams still wins
    assert {k: config[k] for k in expected} == expected
    assert config["n_timesteps"] == 64

    for bad, message in ((["--trial-id", "99"], "no trial 99"),
                         (["--study-name", "nope", "--trial-id", "0"], "no study 'nope'"),
                         (["--storage", storage], "add --trial-id")):
        with pytest.raises(SystemExit) as e:
            cli.main(["train", "--algo", "a2c", "--env", "CartPole-v1", "--storage", storage, "--study-name", "shared",
                      *bad, "-f", "runs"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_sigkilled_worker_trial_is_failed_and_retried(tmp_path, kind):
    storage = str(tmp_path / "optuna.log") if kind == "journal" else f"sqlite:///{tmp_path / 'optuna.db'}"
    heartbeat = ["--heartbeat-interval", "1", "--grace-period", "3"]
    # worker A: one long trial (many evaluations); killed with SIGKILL once it is running
    doomed = rlzoo("optimize", *FAST, "-n", "400000", "--n-evaluations", "200", "--n-trials", "1",
                   "--storage", storage, "--study-name", "s", *heartbeat, cwd=tmp_path)
    deadline = time.monotonic() + 90
    running = []
    while not running:
        failed = doomed.stdout.read() if doomed.poll() else "timeout"
        assert doomed.poll() is None and time.monotonic() < deadline, failed
        time.sleep(0.5)
        try:
            running = [t for t in load(storage, "s").get_trials(states=(TrialState.RUNNING,))
                       if "hyperparams" in t.user_attrs]
        except (KeyError, Exception):  # no file / no study yet
            running = []
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    lost = running[0]

    # worker B: the study may hold 2 trials; the dead worker's trial must be failed, re-queued and run
    out = finish(rlzoo("optimize", *FAST, "--max-total-trials", "2", "--storage", storage, "--study-name", "s",
                       *heartbeat, cwd=tmp_path))
    trials = load(storage, "s").get_trials()
    states = {t.number: t.state for t in trials}
    assert states[lost.number] == TrialState.FAIL, out
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE, out
    # the failed trial's parameters as stored now (a snapshot taken while it ran may predate its last ones)
    [failed] = [t for t in trials if t.number == lost.number]
    assert retries[0].params == failed.params and failed.params.items() >= lost.params.items()
    assert sorted(s.name for s in states.values()) == ["COMPLETE", "COMPLETE", "FAIL"], out
