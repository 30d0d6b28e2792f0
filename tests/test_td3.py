"""TD3: learns a continuous task, delayed policy updates, twin critics, n_envs and episode train_freq."""
import numpy as np
import pytest
import torch
from offpolicy_envs import Target, target_score

from rlzoo import TD3
from rlzoo.common.off_policy import polyak_update
from rlzoo.envs import DummyVecEnv
from rlzoo.evaluation import evaluate_policy
from rlzoo.noise import NormalActionNoise, VectorizedActionNoise

FAST = dict(learning_rate=3e-3, learning_starts=200, batch_size=64, policy_kwargs=dict(net_arch=[32, 32]))


def test_td3_learns_target():
    noise = NormalActionNoise(np.zeros(1), 0.2 * np.ones(1))
    model = TD3("MlpPolicy", DummyVecEnv([Target] * 2), action_noise=noise, seed=0, **FAST).learn(2000)
    assert target_score(model) > -0.02  # random actions: about -0.67
    assert isinstance(model._noise, VectorizedActionNoise)  # one noise process per env
    assert len(model.critic.q_networks) == 2


@pytest.mark.slow
def test_td3_pendulum():
    model = TD3("MlpPolicy", "Pendulum-v1", seed=0, learning_rate=1e-3, learning_starts=1000, gamma=0.98,
                action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))).learn(8000)
    assert evaluate_policy(model, model.env, n_eval_episodes=5)[0] > -400


def test_delayed_actor_updates():
    model = TD3("MlpPolicy", DummyVecEnv([Target]), seed=0, policy_delay=3, learning_starts=10, **{
        k: v for k, v in FAST.items() if k != "learning_starts"})
    model.learn(10)  # nothing trained yet (trains once num_timesteps > learning_starts)
    actor_before = [p.clone() for p in model.actor.parameters()]
    critic_before = [p.clone() for p in model.critic.parameters()]
    model.train(gradient_steps=2, batch_size=8)  # updates 1, 2: critic only
    assert all(torch.equal(a, b) for a, b in zip(actor_before, model.actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(critic_before, model.critic.parameters()))
    model.train(gradient_steps=1, batch_size=8)  # update 3: actor too
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, model.actor.parameters()))
    assert all(p.requires_grad for p in model.critic.parameters())  # unfrozen after the actor step


def test_polyak_update():
    online, target = [torch.ones(3), torch.full((2,), 2.0)], [torch.zeros(3), torch.zeros(2)]
    polyak_update(online, target, 0.1)
    torch.testing.assert_close(target[0], torch.full((3,), 0.1))
    torch.testing.assert_close(target[1], torch.full((2,), 0.2))
    polyak_update(online, target, 1.0)
    torch.testing.assert_close(target[1], online[1])


def test_episode_train_freq_and_gradient_steps_minus_one():
    calls = []
    model = TD3("MlpPolicy", DummyVecEnv([Target] * 3), seed=0, train_freq=(2, "episode"), gradient_steps=-1,
                **FAST)
    original = model.train
    model.train = lambda steps, batch_size: (calls.append(steps), original(steps, batch_size))
    model.learn(300)
    # 3 one-step episodes per vector step: 2 episodes are reached after 1 vector step = 3 transitions
    assert calls and set(calls) == {3}
