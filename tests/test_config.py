"""Hyperparameter files and run folders of the zoo (no training)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from rlzoo import ALGOS, A2C, PPO
from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.config import build_config, parse_key_values
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.hyperparams_files import hyperparams_file, load_hyperparams_file, parse_yaml, tuned_envs
from rlzoo.zoo.hyperparams_schema import validate_entry
from rlzoo.zoo.resolve import import_object, resolve_algo, resolve_env

ISSUE_ENVS = ["CartPole-v1", "MountainCar-v0", "LunarLander-v3", "Pendulum-v1", "LunarLanderContinuous-v3",
              "Reacher-v5", "HalfCheetah-v5", "atari", "default"]


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_shipped_files_have_the_tuned_envs_and_validate(algo):
    entries = tuned_envs(algo)
    assert set(ISSUE_ENVS) <= set(entries)
    for env in entries:
        if env in ("atari", "default"):
            continue
        resolve_env(env)  # every tuned id exists in gymnasium's registry
    data = load_hyperparams_file(hyperparams_file(algo))
    for name, entry in data.items():
        validate_entry(entry, ALGOS[algo], algo, name)


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_registered_algorithm_file_validates(algo):
    """Any algorithm in ALGOS with a hyperparams/<algo>.yml is picked up: all its entries validate."""
    path = hyperparams_file(algo)
    if not path.is_file():
        pytest.skip(f"no {path.name} yet")
    for env in tuned_envs(algo):
        config = build_config(algo, ALGOS[algo], env, atari=env == "atari")
        assert config.n_timesteps > 0


def test_published_values_resolve_to_objects():
    config = build_config("ppo", PPO, "CartPole-v1")
    assert config.n_envs == 8 and config.n_timesteps == 100_000
    lr = config.model_kwargs["learning_rate"]
    assert callable(lr) and lr(1.0) == pytest.approx(1e-3) and lr(0.5) == pytest.approx(5e-4)
    cheetah = build_config("ppo", PPO, "HalfCheetah-v5")
    pk = cheetah.model_kwargs["policy_kwargs"]
    assert pk["activation_fn"] is torch.nn.ReLU and pk["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    assert cheetah.normalize == {"gamma": 0.98}  # VecNormalize's gamma follows the algorithm's
    # YAML anchors and merge keys
    lander_c = build_config("ppo", PPO, "LunarLanderContinuous-v3")
    assert lander_c.hyperparams["n_steps"] == 1024 and lander_c.normalize is not None
    reacher = build_config("a2c", A2C, "Reacher-v5")
    assert reacher.hyperparams["learning_rate"] == "lin_0.00096" and reacher.n_envs == 4


def test_fallback_entries():
    assert build_config("ppo", PPO, "FrozenLake-v1").source.endswith("[default]")  # no tuned entry
    atari = build_config("ppo", PPO, "PongNoFrameskip-v4", atari=True)
    assert atari.source.endswith("[atari]") and atari.policy == "CnnPolicy" and atari.frame_stack == 4


def test_overrides_and_cli_options_win():
    config = build_config("ppo", PPO, "CartPole-v1",
                          overrides=parse_key_values(["n_steps=64", "gamma=0.9", "learning_rate=lin_3e-4",
                                                      "policy_kwargs={net_arch: [32, 32], activation_fn: tanh}"],
                                                     "--hyperparams"),
                          n_timesteps=5000, n_envs=2, env_kwargs={"sutton_barto_reward": True})
    assert config.hyperparams["n_steps"] == 64 and config.n_timesteps == 5000 and config.n_envs == 2
    assert config.model_kwargs["policy_kwargs"]["activation_fn"] is torch.nn.Tanh
    assert config.env_kwargs == {"sutton_barto_reward": True}


@pytest.mark.parametrize("entry, message", [
    ({"n_step": 64}, "unknown hyperparameter 'n_step' for ppo; did you mean 'n_steps'?"),
    ({"n_steps": "abc"}, "'n_steps' must be an integer"),
    ({"n_steps": 6.5}, "'n_steps' must be an integer"),
    ({"gamma": "high"}, "'gamma' must be a number"),
    ({"gamma": "lin_0.9"}, "'gamma' must be a number"),
    ({"learning_rate": "lin_abc"}, "malformed schedule"),
    ({"normalize_advantage": 3}, "'normalize_advantage' must be true/false"),
    ({"n_timesteps": 0}, "'n_timesteps' must be positive"),
    ({"n_timesteps": -5}, "'n_timesteps' must be positive"),
    ({"n_envs": "many"}, "'n_envs' must be a positive integer"),
    ({"policy_kwargs": "dict(net_arch=[64])"}, "policy_kwargs must be a YAML mapping"),
    ({"policy_kwargs": {"activation_fn": "relux"}}, "did you mean 'relu'"),
    ({"policy_kwargs": {"net_arch": [64, "x"]}}, "net_arch must be a list of layer sizes"),
    ({"normalize": "yes please"}, "'normalize' must be true/false or a mapping"),
    ({"normalize": {"norm_rew": False}}, "unknown normalize option 'norm_rew'; did you mean 'norm_reward'?"),
    ({"env_wrapper": "os; rm -rf /"}, "invalid env_wrapper path"),
    ({"env_wrapper": "no_such_module_xyz.Wrapper"}, "cannot import env_wrapper"),
    ({"seed": 3}, "set on the command line with --seed"),
    ({"noise_type": "normal"}, "need an algorithm with action noise"),
])
def test_bad_entries_are_one_line_errors(entry, message):
    with pytest.raises(ZooError) as info:
        validate_entry(entry, PPO, "ppo", "test.yml [CartPole-v1]")
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith("test.yml [CartPole-v1]")


def test_unknown_key_lists_the_allowed_ones():
    with pytest.raises(ZooError, match=r"allowed: .*batch_size.*n_timesteps"):
        validate_entry({"batchsize": 2}, PPO, "ppo", "x")


def test_policy_name_and_policy_kwargs_keys_are_checked():
    with pytest.raises(ZooError, match="unknown policy 'MLPPolicy' for ppo; did you mean 'MlpPolicy'"):
        build_config("ppo", PPO, "CartPole-v1", overrides={"policy": "MLPPolicy"})
    with pytest.raises(ZooError, match="unknown policy_kwargs key 'net_arc'.*did you mean 'net_arch'"):
        build_config("ppo", PPO, "CartPole-v1", overrides={"policy_kwargs": {"net_arc": [8]}})


def test_malformed_yaml_and_duplicate_keys(tmp_path):
    with pytest.raises(ZooError, match=r"f.yml: malformed YAML at line \d+, column \d+"):
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "f.yml")
    with pytest.raises(ZooError, match="duplicate key 'n_steps'"):
        parse_yaml("n_steps: 1\nn_steps: 2\n", "f.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("CartPole-v1:\n  n_steps: [\n")
    with pytest.raises(ZooError, match="malformed YAML"):
        build_config("ppo", PPO, "CartPole-v1", conf_file=str(bad))
    with pytest.raises(ZooError, match="expected key=value"):
        parse_key_values(["n_steps"], "--hyperparams")


def test_config_yml_round_trips_through_conf_file(tmp_path):
    config = build_config("ppo", PPO, "HalfCheetah-v5", overrides={"n_steps": 256})
    path = tmp_path / "config.yml"
    path.write_text(config.to_yaml())
    again = build_config("ppo", PPO, "HalfCheetah-v5", conf_file=str(path))
    assert again.hyperparams == config.hyperparams
    # a file keyed by env id works too, with anchors
    keyed = tmp_path / "keyed.yml"
    keyed.write_text("base: &b\n  n_timesteps: 1000\n  n_steps: 16\nCartPole-v1:\n  <<: *b\n  gamma: 0.9\n")
    c = build_config("ppo", PPO, "CartPole-v1", conf_file=str(keyed))
    assert c.hyperparams["n_steps"] == 16 and c.hyperparams["gamma"] == 0.9


def test_yaml_float_notation_is_accepted():
    entry = validate_entry({"n_timesteps": "1e5", "learning_rate": "3e-4", "n_steps": 2048.0}, PPO, "ppo", "x")
    assert entry == {"n_timesteps": 100000, "learning_rate": 3e-4, "n_steps": 2048}


def test_env_wrapper_and_callback_import_paths():
    entry = validate_entry({"env_wrapper": [{"gymnasium.wrappers.TimeLimit": {"max_episode_steps": 50}}],
                            "callback": "rlzoo.callbacks.ProgressBarCallback"}, PPO, "ppo", "x")
    config = build_config("ppo", PPO, "CartPole-v1", overrides=entry)
    (wrapper, kwargs), = config.env_wrappers()
    import gymnasium

    assert wrapper is gymnasium.wrappers.TimeLimit and kwargs == {"max_episode_steps": 50}
    assert import_object("rlzoo.envs:VecNormalize") is not None
    with pytest.raises(ZooError, match="has no attribute"):
        import_object("rlzoo.envs.NoSuchThing")


def test_names_with_suggestions():
    with pytest.raises(ZooError, match="unknown algorithm 'ppo2'; did you mean 'ppo'"):
        resolve_algo("ppo2")
    with pytest.raises(ZooError, match="unknown environment 'CartPol-v1'; did you mean 'CartPole-v1'"):
        resolve_env("CartPol-v1")
    with pytest.raises(ZooError, match="did you mean 'LunarLander-v3'"):
        resolve_env("LunarLander-v2")
    assert resolve_env("PongNoFrameskip-v4") == "PongNoFrameskip-v4"
    with pytest.raises(ZooError, match="cannot import gym package 'no_such_pkg_xyz'"):
        resolve_env("no_such_pkg_xyz:Foo-v0")


def test_run_folders_never_collide(tmp_path):
    paths: list[Path] = []
    lock = threading.Lock()

    def create() -> None:
        path = rf.create_run_dir(tmp_path, "ppo", "CartPole-v1")
        with lock:
            paths.append(path)

    threads = [threading.Thread(target=create) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in paths}) == 12
    assert sorted(n for n, _ in rf.list_runs(tmp_path, "ppo", "CartPole-v1")) == list(range(1, 13))
    assert rf.create_run_dir(tmp_path, "ppo", "CartPole-v1").name == "CartPole-v1_13"
    assert rf.find_run(tmp_path, "ppo", "CartPole-v1", 0).name == "CartPole-v1_13"
    assert rf.find_run(tmp_path, "ppo", "CartPole-v1", 4).name == "CartPole-v1_4"
    assert rf.env_folder_name("ALE/Pong-v5") == "ALE-Pong-v5"


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "run.json"
    rf.atomic_write_json(path, {"status": "running"})

    class Boom:
        pass

    with pytest.raises(TypeError):
        rf.atomic_write_json(path, {"status": Boom()})
    assert rf.read_run_info(tmp_path)["status"] == "running"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left behind
