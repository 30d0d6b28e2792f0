"""TD3: learns a continuous task, delayed policy updates, twin critics, n_envs and episode train_freq."""
import numpy as np
import torch
from toy_envs import Target, target_score

from rlzoo import TD3
from rlzoo.common.off_policy import LeanAdam, polyak_update
from rlzoo.envs import DummyVecEnv
from rlzoo.noise import NormalActionNoise, VectorizedActionNoise

FAST = dict(learning_rate=3e-3, learning_starts=200, batch_size=64, policy_kwargs=dict(net_arch=[32, 32]))


def test_td3_learns_target():
    noise = NormalActionNoise(np.zeros(1), 0.2 * np.ones(1))
    model = TD3("MlpPolicy", DummyVecEnv([Target] * 2), action_noise=noise, seed=0, **FAST).learn(2000)
    assert target_score(model) > -0.02  # random actions: about -0.67
    assert isinstance(model._noise, VectorizedActionNoise)  # one noise process per env
    assert len(model.critic.q_networks) == 2


def test_delayed_actor_updates():
    model = TD3("MlpPolicy", DummyVecEnv([Target]), seed=0, policy_delay=3, learning_starts=10, **{
        k: v for k, v in FAST.items() if k != "learning_starts"})
    model.learn(10)  # nothing trained yet (trains once num_timesteps > learning_starts)
    actor_before = [p.clone() for p in model.actor.parameters()]
    critic_before = [p.clone() for p in model.critic.parameters()]
    model.train(gradient_steps=2, batch_size=8)  # updates 1, 2: critic only
    assert all(torch.equal(a, b) for a, b in zip(actor_before, model.actor.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(critic_before, model.critic.parameters(), strict=True))
    model.train(gradient_steps=1, batch_size=8)  # update 3: actor too
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, model.actor.parameters(), strict=True))
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


def test_lean_adam_matches_torch_adam():
    def run(cls, steps=15, state=None):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        opt = cls(net.parameters(), lr=1e-2)
        if state is not None:
            net.load_state_dict(state[0])
            opt.load_state_dict(state[1])
        x = torch.randn(32, 3)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            net(x).square().mean().backward()
            opt.step()
        return net, opt

    lean, lean_opt = run(LeanAdam)
    ref, ref_opt = run(torch.optim.Adam)
    for p, q in zip(lean.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # the state dict continues a run exactly like torch's Adam
    resumed, _ = run(LeanAdam, steps=5, state=(lean.state_dict(), lean_opt.state_dict()))
    longer, _ = run(torch.optim.Adam, steps=20)
    for p, q in zip(resumed.parameters(), longer.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
