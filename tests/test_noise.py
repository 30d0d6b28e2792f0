"""Action noise and adaptive parameter noise."""
import numpy as np
import pytest

from rlzoo.common.save_format import from_json, to_json
from rlzoo.noise import (AdaptiveParamNoiseSpec, NormalActionNoise, OrnsteinUhlenbeckActionNoise,
                         VectorizedActionNoise)


def test_normal_noise_statistics():
    np.random.seed(0)
    noise = NormalActionNoise(mean=np.array([0.0, 1.0]), sigma=np.array([0.1, 0.5]))
    samples = np.stack([noise() for _ in range(20_000)])
    assert samples.shape == (20_000, 2)
    np.testing.assert_allclose(samples.mean(0), [0.0, 1.0], atol=0.02)
    np.testing.assert_allclose(samples.std(0), [0.1, 0.5], rtol=0.03)


def test_ou_noise_is_correlated_and_resets():
    np.random.seed(0)
    noise = OrnsteinUhlenbeckActionNoise(mean=np.zeros(1), sigma=0.3 * np.ones(1), theta=0.15, dt=1e-2)
    xs = np.array([noise()[0] for _ in range(20_000)])
    # strongly autocorrelated (a random walk with slow mean reversion), unlike white noise
    assert np.corrcoef(xs[:-1], xs[1:])[0, 1] > 0.95
    # stationary std of the discretized process: sigma * sqrt(dt / (1 - (1 - theta dt)^2))
    expected = 0.3 * np.sqrt(1e-2 / (1 - (1 - 0.15 * 1e-2) ** 2))
    assert abs(xs[5_000:].std() - expected) / expected < 0.5
    noise.reset()
    np.testing.assert_array_equal(noise.noise_prev, [0.0])
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(2), np.ones(2), initial_noise=[1.0, -1.0])
    noise()
    noise.reset()
    np.testing.assert_array_equal(noise.noise_prev, [1.0, -1.0])


def test_vectorized_noise_resets_per_env():
    np.random.seed(0)
    vec = VectorizedActionNoise(OrnsteinUhlenbeckActionNoise(np.zeros(2), np.ones(2)), n_envs=3)
    for _ in range(10):
        sample = vec()
    assert sample.shape == (3, 2)
    assert not np.allclose(sample[0], sample[1])  # independent processes
    vec.reset([1])
    np.testing.assert_array_equal(vec.noises[1].noise_prev, np.zeros(2))
    assert np.all(vec.noises[0].noise_prev != 0) and np.all(vec.noises[2].noise_prev != 0)


def test_param_noise_adapts_in_the_right_direction():
    spec = AdaptiveParamNoiseSpec(initial_stddev=0.1, desired_action_stddev=0.2, adoption_coefficient=1.01)
    spec.adapt(0.5)  # perturbed actions too far: smaller perturbation
    assert spec.current_stddev == pytest.approx(0.1 / 1.01)
    spec.adapt(0.05)  # too close: larger perturbation
    spec.adapt(0.05)
    assert spec.current_stddev == pytest.approx(0.1 * 1.01)
    # repeated adaptation against a distance proportional to the scale converges to the target
    for _ in range(2_000):
        spec.adapt(3.0 * spec.current_stddev)
    assert spec.current_stddev == pytest.approx(0.2 / 3.0, rel=0.03)


def test_noise_serializes_to_json():
    for noise in (NormalActionNoise(np.zeros(2), 0.1 * np.ones(2)),
                  OrnsteinUhlenbeckActionNoise(np.zeros(1), np.ones(1), theta=0.2, dt=0.05),
                  VectorizedActionNoise(NormalActionNoise(np.zeros(1), np.ones(1)), 2)):
        clone = from_json(to_json(noise), {})
        assert type(clone) is type(noise) and repr(clone) == repr(noise)
    spec = AdaptiveParamNoiseSpec(0.2, 0.3, 1.05)
    spec.adapt(10.0)
    clone = from_json(to_json(spec), {})
    assert clone.current_stddev == spec.current_stddev and clone.desired_action_stddev == 0.3


def test_bad_noise_arguments():
    with pytest.raises(ValueError):
        NormalActionNoise(np.zeros(2), -np.ones(2))
    with pytest.raises(ValueError):
        OrnsteinUhlenbeckActionNoise(np.zeros(1), np.ones(1), dt=0.0)
    with pytest.raises(ValueError):
        AdaptiveParamNoiseSpec(adoption_coefficient=1.0)
