"""The algorithm registry and the hyperparameters each algorithm declares for its model files."""
from __future__ import annotations

import inspect

import pytest

from rlzoo import ALGOS
from rlzoo.algos import registry
from rlzoo.zoo.hyperparams_files import hyperparams_file
from rlzoo.zoo.search_spaces import SEARCH_SPACES

# constructor arguments that are plumbing, not hyperparameters (never saved)
PLUMBING = {"self", "policy", "env", "device", "_init_setup_model"}
ENVS = {"dqn": "CartPole-v1", "acer": "CartPole-v1"}


def test_registry_is_the_source_of_algos_files_and_search_spaces():
    specs = registry.specs()
    assert set(ALGOS) == set(specs) >= {"a2c", "acer", "acktr", "ddpg", "dqn", "ppo", "sac", "td3", "trpo"}
    for name, spec in specs.items():
        assert ALGOS[name].__name__ == spec.class_name
        assert hyperparams_file(name).is_file(), name
        assert SEARCH_SPACES[name] is spec.load_search_space()


def test_register_refuses_a_taken_name_and_upper_case():
    with pytest.raises(ValueError, match="taken"):
        registry.register(registry.AlgoSpec(name="ppo", cls="rlzoo.algos.a2c:A2C"))
    with pytest.raises(ValueError, match="lower-case"):
        registry.register(registry.AlgoSpec(name="PPO2", cls="rlzoo.algos.ppo:PPO"))


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_saved_hyperparameters_are_exactly_the_constructor_arguments(name):
    """Each algorithm declares what it saves; what load() passes back must be its constructor's arguments."""
    cls = ALGOS[name]
    params = inspect.signature(cls.__init__).parameters
    expected = {p for p, v in params.items() if p not in PLUMBING and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
    env = ENVS.get(name, "Pendulum-v1")
    model = cls("MlpPolicy", env, seed=0, **({"buffer_size": 100} if "buffer_size" in params else {}))
    saved = model._hyperparameters()
    assert set(saved) == expected
    assert saved["seed"] == 0
    if "buffer_size" in params:
        assert saved["buffer_size"] == 100


def test_policy_classes_named_at_their_old_place_in_model_files_still_resolve():
    """Files written before the networks moved into the algorithm packages name them in common/."""
    from rlzoo.algos.dqn.policies import DQNCnnPolicy
    from rlzoo.algos.sac.policies import SACPolicy
    from rlzoo.algos.td3.policies import TD3Policy
    from rlzoo.common.save_format import from_json

    for name, cls in (("TD3Policy", TD3Policy), ("SACPolicy", SACPolicy), ("DQNCnnPolicy", DQNCnnPolicy)):
        assert from_json({"__class__": f"rlzoo.common.off_policy_policies.{name}"}, {}) is cls
