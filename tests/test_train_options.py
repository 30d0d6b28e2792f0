"""``TrainOptions``: the one options object of ``rlzoo train`` (issue 14), and ``--resume``'s reuse of it."""
from __future__ import annotations

import dataclasses
import json

import pytest

from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.options import RUN_OPTIONS, TrainOptions, check_run_options


def test_options_are_frozen_and_default_to_the_command_line():
    opts = TrainOptions(algo="ppo", env_id="CartPole-v1")
    assert (opts.vec_env, opts.eval_freq, opts.eval_episodes, opts.n_eval_envs) == ("auto", 10_000, 5, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.eval_freq = 1  # type: ignore[misc]  # the point: assignment is refused


def test_stored_options_are_the_run_options_as_json():
    opts = TrainOptions(algo="ppo", env_id="CartPole-v1", eval_env_kwargs=("a=1",), hyperparams=("n_steps=8",))
    stored = opts.stored()
    assert tuple(stored) == RUN_OPTIONS
    assert stored["eval_env_kwargs"] == ["a=1"]
    assert json.loads(json.dumps(stored)) == stored


def test_resume_reuses_stored_options_not_given_again():
    opts = TrainOptions(algo="ppo", env_id="CartPole-v1", eval_freq=7, device="cpu", given=frozenset({"eval_freq"}))
    stored = {**TrainOptions(algo="ppo", env_id="CartPole-v1").stored(), "eval_freq": 100, "device": "cuda",
              "save_freq": 64, "algo": "dqn"}
    resumed = opts.with_stored(stored)
    assert resumed.eval_freq == 7  # given on the command line
    assert (resumed.device, resumed.save_freq) == ("cuda", 64)  # from run.json
    assert resumed.algo == "ppo"  # not a run option
    assert opts.device == "cpu"  # the original is unchanged


@pytest.mark.parametrize("name, value", [("eval_freq", -1), ("eval_episodes", 0), ("verbose", True),
                                         ("vec_env", "threads"), ("n_eval_envs", None), ("num_threads", 0),
                                         ("eval_env_kwargs", "a=1"), ("eval_env_kwargs", [1])])
def test_run_options_read_back_are_checked(name, value):
    opts = TrainOptions(algo="ppo", env_id="CartPole-v1").with_stored({name: value})
    with pytest.raises(ZooError, match=f"run option {name}"):
        check_run_options(opts)


def test_check_returns_the_parsed_eval_env_kwargs():
    opts = TrainOptions(algo="ppo", env_id="CartPole-v1").with_stored({"eval_env_kwargs": ["a=1", "b=[1, 2]"]})
    assert check_run_options(opts) == {"a": 1, "b": [1, 2]}
