"""Files that are safe to open (issue 12): a closed registry of what a file may name, bounded
resources on load, regression fixtures of the previous release, and a short fuzz run.

The long fuzz run is ``benchmarks/fuzz_files.py``.
"""
from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from safe_files_kit import (SENTINEL_NAME, Guard, build_files, expected_errors, json_locations,  # noqa: E402
                            json_put, loaders, mutate, payloads, run_case)

from rlzoo import ALGOS  # noqa: E402
from rlzoo.common.registry import ModelFileError, lookup, register_saveable  # noqa: E402
from rlzoo.common.save_format import from_json, to_json  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
CODE_TAGS = ["rlzoo.fileio.atomic_write_bytes", "rlzoo.zoo.cli.main", "os.system", "subprocess.Popen",
             "builtins.open", "rlzoo.common.save_format.write_model_zip", "rlzoo.common.utils.get_schedule_fn"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Real files of every kind, their loaders (warmed up), the guard, and a sentinel folder."""
    root = tmp_path_factory.mktemp("safe_files")
    files = build_files(root / "files")
    load = loaders(files)
    import rlzoo.zoo.cli  # noqa: F401  (the CLI module is imported before any guard is armed)
    for kind, path in files.items():  # warm-up: every lazy import of a normal load happens here
        load[kind](path)
    sentinel = root / "sentinel"
    sentinel.mkdir()
    return files, load, Guard.get(), sentinel


def _assert_clean(guard: Guard, sentinel: Path) -> None:
    assert not guard.writes, f"files opened for writing: {guard.writes[:3]}"
    assert not guard.imports, f"modules imported: {guard.imports[:3]}"
    assert not guard.other, f"other events: {guard.other[:3]}"
    assert not (sentinel / SENTINEL_NAME).exists()


def _rewrite_member(src: Path, dst: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, data if info.filename == member else zin.read(info))


# --------------------------------------------------------------------------- regression fixtures
def test_previous_release_files_load_and_predict_the_same_actions():
    expected = json.loads((DATA / "expected_actions.json").read_text())
    n = 0
    for name, entry in expected.items():
        if name.startswith("__"):
            continue
        model = ALGOS[entry["algo"].lower()].load(DATA / f"{name}.zip", device="cpu")
        actions, _ = model.predict(np.array(entry["obs"], dtype=np.float32), deterministic=True)
        np.testing.assert_allclose(actions, np.array(entry["actions"]), rtol=0, atol=1e-6)
        n += 1
    assert n == 13
    from rlzoo import DDPG, PPO
    from rlzoo.noise import AdaptiveParamNoiseSpec, NormalActionNoise
    from rlzoo.utils import LinearSchedule

    ppo = PPO.load(DATA / "ppo_linear_schedule.zip")
    assert isinstance(ppo.learning_rate, LinearSchedule) and ppo.clip_range.final_value == 0.1
    ddpg = DDPG.load(DATA / "ddpg_action_noise.zip")
    assert isinstance(ddpg.action_noise, NormalActionNoise) and isinstance(ddpg.param_noise, AdaptiveParamNoiseSpec)
    a2c = ALGOS["a2c"].load(DATA / "a2c_custom_arch.zip")
    assert a2c.policy_kwargs["activation_fn"].__name__ == "ReLU"


def test_previous_release_buffers_and_statistics_load():
    import gymnasium as gym

    from rlzoo.envs import DummyVecEnv, VecNormalize

    expected = json.loads((DATA / "expected_actions.json").read_text())["__vecnormalize__"]
    vn = VecNormalize.load(DATA / "pendulum.vecnormalize.safetensors", DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    np.testing.assert_array_equal(vn.obs_rms.mean, expected["obs_mean"])
    assert vn.ret_rms.count == expected["ret_count"]
    dqn = ALGOS["dqn"].load(DATA / "dqn.zip", env="CartPole-v1")
    dqn.load_replay_buffer(DATA / "dqn_replay.npz")
    assert dqn.replay_buffer.size() == 32
    acer = ALGOS["acer"].load(DATA / "acer.zip", env="CartPole-v1")
    acer.load_replay_buffer(DATA / "acer_replay.npz")
    assert len(acer.replay_memory) > 0


# --------------------------------------------------------------------------- the registry
def test_no_dynamic_import_in_the_library_core():
    for path in (Path(__file__).resolve().parents[1] / "rlzoo" / "common").glob("*.py"):
        assert "import_module" not in path.read_text(), path


def test_registry_is_closed_and_maps_legacy_names_by_lookup():
    from torch import nn

    from rlzoo.common.policies import ActorCriticPolicy
    from rlzoo.utils import LinearSchedule

    assert lookup("rlzoo.common.policies.ActorCriticPolicy")[0] is ActorCriticPolicy
    assert lookup("torch.nn.modules.activation.ReLU")[0] is nn.ReLU
    assert lookup("LinearSchedule")[0] is LinearSchedule
    for tag in CODE_TAGS + ["rlzoo.common.policies.BasePolicy.__init__", "torch.nn.Module", "rlzoo.ALGOS",
                            "rlzoo.common.registry.register_class"]:
        with pytest.raises(ModelFileError, match="not a value rlzoo may load"):
            lookup(tag)
    # garbage configs of registered objects: ModelFileError, never TypeError
    for value in ({"__object__": "LinearSchedule", "config": {"initial_value": "x"}},
                  {"__object__": "LinearSchedule", "config": {}},
                  {"__object__": "ConstantSchedule", "config": {"value": 1, "other": 2}},
                  {"__object__": "NormalActionNoise", "config": {"mean": [0.0, 1.0], "sigma": [1.0, 2.0, 3.0]}},
                  {"__object__": "OrnsteinUhlenbeckActionNoise", "config": {"mean": [0.0], "sigma": [1.0], "dt": -1}},
                  {"__object__": "AdaptiveParamNoiseSpec", "config": {"initial_stddev": None,
                                                                      "desired_action_stddev": 1,
                                                                      "adoption_coefficient": 2}},
                  {"__object__": "VectorizedActionNoise", "config": {"noise": 3, "n_envs": 2}},
                  {"__object__": "LinearSchedule", "config": [1, 2]},
                  {"__class__": "LinearSchedule"}, {"__object__": "ReLU", "config": {}},
                  {"__ndarray__": [1], "dtype": "object"}, {"__weird__": 1}):
        with pytest.raises(ModelFileError) as err:
            from_json(value, {})
        assert "\n" not in str(err.value)


def test_custom_objects_and_explicit_registration():
    from rlzoo.common.noise import ActionNoise

    class MyNoise(ActionNoise):
        def __init__(self, scale: float) -> None:
            self.scale = scale

        def to_config(self):
            return {"scale": self.scale}

    stored = to_json(MyNoise(0.5))
    assert stored["__object__"].endswith("MyNoise")
    with pytest.raises(ModelFileError, match="custom_objects"):
        from_json(stored, {})
    assert from_json(stored, {stored["__object__"]: MyNoise}).scale == 0.5
    with pytest.raises(ValueError, match="registered twice"):
        register_saveable("LinearSchedule", config={})(MyNoise)


def test_user_policy_subclass_needs_custom_objects_or_falls_back_to_its_base(tmp_path):
    from rlzoo import PPO
    from rlzoo.common.policies import ActorCriticPolicy

    class MyPolicy(ActorCriticPolicy):
        pass

    path = PPO(MyPolicy, "CartPole-v1", n_steps=16, batch_size=8, policy_kwargs={"net_arch": [8]}).save(tmp_path / "m")
    assert type(PPO.load(path).policy) is ActorCriticPolicy
    name = f"{MyPolicy.__module__}.{MyPolicy.__qualname__}"
    assert type(PPO.load(path, custom_objects={name: MyPolicy}).policy) is MyPolicy


# --------------------------------------------------------------------------- tag attacks
def _attack_cases(files):
    """(kind, member, location) of every JSON value of every model file and the other JSON files."""
    for kind, path in files.items():
        if kind.startswith("model:"):
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    if member.endswith(".json"):
                        for where in json_locations(json.loads(zf.read(member))):
                            yield kind, member, where


def test_tag_attacks_on_every_model_json_location_are_refused(world, tmp_path):
    files, load, guard, sentinel = world
    tags = payloads(sentinel)[:9]  # the entries naming code or writing files
    tried = refused = 0
    cases = list(_attack_cases(files))
    assert len(cases) > 1000
    # every 5th location, and the first of every member of every algorithm (all: benchmarks/fuzz_files.py)
    seen: set = set()
    chosen = [c for i, c in enumerate(cases) if i % 5 == 0 or (c[0], c[1]) not in seen and not seen.add((c[0], c[1]))]
    assert {(k, m) for k, m, _ in chosen} == {(k, m) for k, m, _ in cases}
    for i, (kind, member, where) in enumerate(chosen):
        with zipfile.ZipFile(files[kind]) as zf:
            doc = json.loads(zf.read(member))
        value = tags[i % len(tags)]
        bad = tmp_path / f"{i}.zip"
        _rewrite_member(files[kind], bad, member, json.dumps(json_put(doc, where, value)).encode())
        outcome, detail = run_case(kind, load[kind], bad, guard)
        tried += 1
        if outcome == "ok":  # a value the loader never reads (e.g. rlzoo_version) may stay as it is; an
            # unknown policy class falls back to the file's rlzoo base class (policy_base)
            assert where and where[0] in ("rlzoo_version", "torch_version", "policy", "policy_base",
                                          "effective_policy_kwargs"), (kind, member, where)
            continue
        assert outcome == "refused", (kind, member, where, outcome, detail)
        refused += 1
        if member != "metadata.json" or (where and where[0] in ("hyperparameters", "policy", "policy_base",
                                                                 "effective_policy_kwargs")):
            # where tagged values are decoded, the refusal names the tag
            name = value.get("__object__") or value.get("__class__")
            assert name[:40] in detail, (kind, member, where, detail)
    _assert_clean(guard, sentinel)
    assert refused > 0.75 * tried
    print(f"tag attacks on model files: {tried} tried, {refused} refused with ModelFileError")


@pytest.mark.parametrize("kind", ["vecnormalize", "replay", "replay_per", "run:run.json", "run:config.yml"])
def test_tag_attacks_on_other_files_are_refused_or_harmless(world, tmp_path, kind):
    files, load, guard, sentinel = world
    rng = random.Random(kind)
    values = payloads(sentinel)
    outcomes = []
    for i in range(12 if kind.startswith("run:") else 40):
        bad = tmp_path / f"{i}_{files[kind].name}"
        if kind.startswith("run:"):
            bad = tmp_path / f"logs{i}" / "a2c" / "CartPole-v1_1" / files[kind].name
            bad.parent.mkdir(parents=True)
            for other in files[kind].parent.iterdir():
                if other.is_file():
                    (bad.parent / other.name).write_bytes(other.read_bytes())
        bad.write_bytes(mutate(kind, files[kind].read_bytes(), rng, values[i % 9:i % 9 + 1] + values))
        outcome, detail = run_case(kind, load[kind], bad, guard)
        assert outcome in ("ok", "refused"), (kind, outcome, detail)
        outcomes.append(outcome)
    _assert_clean(guard, sentinel)
    assert outcomes.count("refused") >= len(outcomes) // 4


# --------------------------------------------------------------------------- bounded resources
def test_bombs_fail_fast_in_bounded_memory(tmp_path):
    script = Path(__file__).resolve().parent / "safe_files_bombs.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), "300"], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report["results"]) == 8
    for label, (error, message, seconds) in report["results"].items():
        assert error == "ModelFileError", (label, error, message)
        assert "\n" not in message and seconds < 5, (label, message, seconds)
    assert report["rss_growth_mb"] < 300
    print(f"bombs: peak RSS grew {report['rss_growth_mb']:.1f} MB under RLIMIT_AS = start + 300 MB")


def test_zip_listing_caps(tmp_path, world):
    files, load, guard, sentinel = world
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(files["model:ppo"]) as zin, zipfile.ZipFile(many, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        for i in range(300):
            zout.writestr(f"junk{i}", b"")
    with pytest.raises(ModelFileError, match="members"):
        load["model:ppo"](many)
    dup = tmp_path / "dup.zip"
    with zipfile.ZipFile(files["model:ppo"]) as zin, zipfile.ZipFile(dup, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zout.writestr("metadata.json", b"{}")
    with pytest.raises(ModelFileError, match="twice"):
        load["model:ppo"](dup)


def test_npz_members_are_checked_before_reading(tmp_path, world):
    files, load, guard, sentinel = world
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    pickled = tmp_path / "pickled.npz"
    with zipfile.ZipFile(files["replay"]) as zin, zipfile.ZipFile(pickled, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, buf.getvalue() if info.filename == "rewards.npy" else zin.read(info))
    with guard.armed_for():
        with pytest.raises(ModelFileError, match="non-numeric dtype"):
            load["replay"](pickled)
    _assert_clean(guard, sentinel)


# --------------------------------------------------------------------------- fuzz (short run)
KINDS = sorted(["model:a2c", "model:ppo", "model:trpo", "model:acktr", "model:acer", "model:dqn", "model:ddpg",
                "model:td3", "model:sac", "model:ddpg_noise", "vecnormalize", "replay", "replay_per",
                "acer_memory", "run:run.json", "run:config.yml"])


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), rng=st.randoms(use_true_random=False))
def test_fuzz_mutated_files_load_or_fail_cleanly(world, tmp_path, kind, rng):
    files, load, guard, sentinel = world
    data = mutate(kind, files[kind].read_bytes(), rng, payloads(sentinel))
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis runs all examples in one tmp_path
    if kind.startswith("run:"):
        case = folder / "logs" / "a2c" / "CartPole-v1_1"
        case.mkdir(parents=True)
        for other in files[kind].parent.iterdir():
            if other.is_file():
                (case / other.name).write_bytes(other.read_bytes())
        path = case / files[kind].name
    else:
        path = folder / files[kind].name
    path.write_bytes(data)
    outcome, detail = run_case(kind, load[kind], path, guard, limit=20.0)
    assert outcome in ("ok", "refused"), (kind, outcome, detail)
    assert issubclass(expected_errors(kind)[0], ValueError)
    _assert_clean(guard, sentinel)


def test_hyperparameters_and_counters_are_type_checked(world, tmp_path):
    files, load, guard, sentinel = world
    with zipfile.ZipFile(files["model:ppo"]) as zf:
        meta = json.loads(zf.read("metadata.json"))
    for change, match in (({"n_steps": "16"}, "n_steps must be int"), ({"gamma": True}, "gamma must be float"),
                          ({"evil": 1}, "not a hyperparameter of PPO"), ({"n_steps": 2 ** 40}, "PPO model"),
                          ({"policy_kwargs": [1]}, "policy_kwargs must be a mapping")):
        bad_meta = json.loads(json.dumps(meta))
        bad_meta["hyperparameters"].update(change)
        bad = tmp_path / "bad.zip"
        _rewrite_member(files["model:ppo"], bad, "metadata.json", json.dumps(bad_meta).encode())
        with pytest.raises(ModelFileError, match=match):
            load["model:ppo"](bad)
    for key, value in (("num_timesteps", -1), ("n_envs", 10 ** 9), ("progress_remaining", "x"),
                       ("format_version", 99)):
        bad = tmp_path / "bad.zip"
        _rewrite_member(files["model:ppo"], bad, "metadata.json", json.dumps({**meta, key: value}).encode())
        with pytest.raises(ModelFileError, match=key.split("_")[0]):
            load["model:ppo"](bad)
