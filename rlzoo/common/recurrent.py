"""Recurrent (LSTM) actor-critic policies for PPO and A2C: ``MlpLstmPolicy``, ``CnnLstmPolicy``,
``MultiInputLstmPolicy``, as the original Stable Baselines had.

A policy is ``features extractor -> LSTM -> MLP (pi / vf latents) -> heads``. The hidden state of
each env is carried from step to step and reset (multiplied by ``1 - episode_start``) at the first
step of every episode. A sequence ``[T, n_envs]`` is fed to torch's fused ``nn.LSTM`` in as few
calls as possible: it is cut only at the time indices where some env starts an episode, and every
segment between two cuts is one ``nn.LSTM`` call over its whole time span (no Python loop over envs,
and over time only from one episode start to the next).

The critic either shares the actor's LSTM (``shared_lstm=True``: both losses train it, as in SB2),
has its own LSTM (``enable_critic_lstm=True``, the default), or is feed-forward on the features.
``layer_norm=True`` (SB2's ``MlpLnLstmPolicy``) puts a ``LayerNorm`` on the LSTM input and on its
output; the cell itself stays torch's fused LSTM (SB2 normalized the gate pre-activations inside
the cell, which would need a Python loop over time steps).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.common.distributions import Distribution, DistributionHead
from rlzoo.common.policies import (
    BaseFeaturesExtractor,
    BasePolicy,
    CombinedExtractor,
    NatureCNN,
    NetArch,
    create_mlp,
    orthogonal_init,
    policy_variant,
)
from rlzoo.common.utils import space_shape

LSTMState = tuple[torch.Tensor, torch.Tensor]


class RNNStates(NamedTuple):
    """Hidden and cell states ``[n_lstm_layers, n_envs, hidden]`` of the actor and critic LSTMs."""

    pi: LSTMState
    vf: LSTMState

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> RNNStates:
        """The states with ``fn`` applied to each of the four tensors."""
        return RNNStates((fn(self.pi[0]), fn(self.pi[1])), (fn(self.vf[0]), fn(self.vf[1])))


def lstm_sequence(lstm: nn.LSTM, features: torch.Tensor, state: LSTMState,
                  episode_starts: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
    """Run ``lstm`` over ``features [T, N, F]`` from ``state``, resetting each env's state where
    ``episode_starts [T, N]`` is 1 (before that step is processed).

    The sequence is cut at the time indices where any env starts an episode; each segment is one
    fused ``nn.LSTM`` call. Returns the outputs ``[T, N, H]`` and the final state.
    """
    n_steps = features.shape[0]
    starts = episode_starts.to(features.dtype)
    cuts = [0]
    if n_steps > 1:
        cuts += (torch.nonzero(starts[1:].any(dim=1)).flatten() + 1).tolist()
    cuts.append(n_steps)
    h, c = state
    outputs = []
    for t0, t1 in itertools.pairwise(cuts):
        keep = (1.0 - starts[t0]).view(1, -1, 1)
        out, (h, c) = lstm(features[t0:t1], (h * keep, c * keep))
        outputs.append(out)
    return (outputs[0] if len(outputs) == 1 else torch.cat(outputs)), (h, c)


class RecurrentActorCriticPolicy(BasePolicy):
    """LSTM actor-critic for PPO and A2C.

    :param net_arch: MLP after the LSTM, a list or ``dict(pi=[...], vf=[...])`` (default 64-64;
        none after the Nature CNN)
    :param activation_fn: activation class of the MLP (default ``nn.Tanh``)
    :param ortho_init: orthogonal initialization (gains sqrt(2) / 0.01 / 1; LSTM weights gain 1)
    :param log_std_init: initial log standard deviation for Box actions
    :param lstm_hidden_size: units per LSTM layer
    :param n_lstm_layers: stacked LSTM layers
    :param shared_lstm: the critic uses the actor's LSTM (trained by both losses)
    :param enable_critic_lstm: the critic has its own LSTM (when not shared); else it is feed-forward
    :param layer_norm: LayerNorm on the LSTM input and output (cf. SB2's ``MlpLnLstmPolicy``)
    :param lstm_kwargs: extra ``nn.LSTM`` arguments (e.g. ``dropout``)
    """

    recurrent = True

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 net_arch: NetArch | None = None, activation_fn: type[nn.Module] = nn.Tanh,
                 ortho_init: bool = True, log_std_init: float = 0.0,
                 features_extractor_class: type[BaseFeaturesExtractor] | None = None,
                 features_extractor_kwargs: dict[str, Any] | None = None, normalize_images: bool = True,
                 lstm_hidden_size: int = 256, n_lstm_layers: int = 1, shared_lstm: bool = False,
                 enable_critic_lstm: bool = True, layer_norm: bool = False,
                 lstm_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(observation_space, action_space, features_extractor_class,
                         features_extractor_kwargs, normalize_images)
        if shared_lstm and enable_critic_lstm:
            enable_critic_lstm = False  # one LSTM for both; a second would be unused
        if lstm_hidden_size < 1 or n_lstm_layers < 1:
            raise ValueError("lstm_hidden_size and n_lstm_layers must be >= 1")
        if net_arch is None:
            net_arch = [] if self.features_extractor_class is NatureCNN else [64, 64]
        self.net_arch, self.activation_fn = net_arch, activation_fn
        self.ortho_init, self.log_std_init = ortho_init, log_std_init
        self.lstm_hidden_size, self.n_lstm_layers = lstm_hidden_size, n_lstm_layers
        self.shared_lstm, self.enable_critic_lstm, self.layer_norm = shared_lstm, enable_critic_lstm, layer_norm
        self.lstm_kwargs = dict(lstm_kwargs or {})
        if self.lstm_kwargs.get("batch_first") or self.lstm_kwargs.get("bidirectional"):
            raise ValueError("lstm_kwargs: batch_first and bidirectional LSTMs are not supported (sequences are "
                             "time-major and causal)")
        self.constructor_kwargs = {
            "net_arch": net_arch, "activation_fn": activation_fn, "ortho_init": ortho_init,
            "log_std_init": log_std_init,
            "features_extractor_class": self.features_extractor_class,
            "features_extractor_kwargs": self.features_extractor_kwargs, "normalize_images": normalize_images,
            "lstm_hidden_size": lstm_hidden_size, "n_lstm_layers": n_lstm_layers, "shared_lstm": shared_lstm,
            "enable_critic_lstm": enable_critic_lstm, "layer_norm": layer_norm, "lstm_kwargs": self.lstm_kwargs}
        self.features_extractor = self.make_features_extractor()
        features_dim = self.features_extractor.features_dim
        self.lstm_actor = self._make_lstm(features_dim)
        self.lstm_critic = self._make_lstm(features_dim) if enable_critic_lstm else None
        norm = (lambda dim: nn.LayerNorm(dim)) if layer_norm else (lambda dim: nn.Identity())
        self.ln_in_pi, self.ln_out_pi = norm(features_dim), norm(lstm_hidden_size)
        self.ln_in_vf, self.ln_out_vf = ((norm(features_dim), norm(lstm_hidden_size)) if enable_critic_lstm
                                         else (nn.Identity(), nn.Identity()))
        pi_arch, vf_arch = ((list(net_arch.get("pi", [])), list(net_arch.get("vf", []))) if isinstance(net_arch, dict)
                            else (list(net_arch), list(net_arch)))
        vf_in = lstm_hidden_size if (shared_lstm or enable_critic_lstm) else features_dim
        self.policy_net = create_mlp(lstm_hidden_size, pi_arch, activation_fn)
        self.value_mlp = create_mlp(vf_in, vf_arch, activation_fn)
        self.action_head = DistributionHead(action_space, pi_arch[-1] if pi_arch else lstm_hidden_size, log_std_init)
        self.value_net = nn.Linear(vf_arch[-1] if vf_arch else vf_in, 1)
        if ortho_init:
            self._orthogonal_init()

    def _make_lstm(self, input_size: int) -> nn.LSTM:
        return nn.LSTM(input_size, self.lstm_hidden_size, num_layers=self.n_lstm_layers, **self.lstm_kwargs)

    def _orthogonal_init(self) -> None:
        gains = {self.features_extractor: np.sqrt(2), self.policy_net: np.sqrt(2), self.value_mlp: np.sqrt(2),
                 self.action_head.linear: 0.01, self.value_net: 1.0}
        orthogonal_init(gains)
        for lstm in (self.lstm_actor, self.lstm_critic):
            if lstm is None:
                continue
            for name, param in lstm.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(param, gain=1.0)
                elif name.startswith("bias"):
                    nn.init.zeros_(param)

    # ------------------------------------------------------------------ states
    def initial_state(self, n_envs: int, device: torch.device | None = None) -> RNNStates:
        """Zero hidden and cell states of both LSTMs for ``n_envs`` envs."""
        shape = (self.n_lstm_layers, n_envs, self.lstm_hidden_size)
        device = device if device is not None else self.device

        def zeros() -> LSTMState:
            return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

        return RNNStates(zeros(), zeros())

    # ------------------------------------------------------------------ forward passes
    def _features(self, obs: Any, n_steps: int, n_envs: int) -> torch.Tensor:
        """Observations flattened time-major ``[T * N, ...]`` -> features ``[T, N, F]``."""
        return self.extract_features(obs).reshape(n_steps, n_envs, -1)

    def _latents(self, obs: Any, states: RNNStates, episode_starts: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, RNNStates]:
        """Actor and critic latents ``[T * N, ...]`` and the states after the sequence."""
        n_steps, n_envs = episode_starts.shape
        features = self._features(obs, n_steps, n_envs)
        out_pi, state_pi = lstm_sequence(self.lstm_actor, self.ln_in_pi(features), states.pi, episode_starts)
        out_pi = self.ln_out_pi(out_pi)
        if self.shared_lstm:
            out_vf, state_vf = out_pi, states.vf
        elif self.lstm_critic is not None:
            out_vf, state_vf = lstm_sequence(self.lstm_critic, self.ln_in_vf(features), states.vf, episode_starts)
            out_vf = self.ln_out_vf(out_vf)
        else:
            out_vf, state_vf = features, states.vf
        latent_pi = self.policy_net(out_pi.reshape(n_steps * n_envs, -1))
        latent_vf = self.value_mlp(out_vf.reshape(n_steps * n_envs, -1))
        return latent_pi, latent_vf, RNNStates(state_pi, state_vf)

    def forward(self, obs: Any, states: RNNStates, episode_starts: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, RNNStates]:
        """One step for ``N`` envs (``episode_starts [N]``): (actions, values, log_probs, next states)."""
        latent_pi, latent_vf, states = self._latents(obs, states, episode_starts.reshape(1, -1))
        dist = self.action_head(latent_pi)
        actions = dist.get_actions(deterministic)
        return actions, self.value_net(latent_vf).squeeze(-1), dist.log_prob(actions), states

    def evaluate_actions(self, obs: Any, actions: torch.Tensor, states: RNNStates, episode_starts: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities and entropy ``[T * N]`` of a sequence replayed from ``states``
        (observations and actions flattened time-major, ``episode_starts [T, N]``)."""
        latent_pi, latent_vf, _ = self._latents(obs, states, episode_starts)
        dist = self.action_head(latent_pi)
        return self.value_net(latent_vf).squeeze(-1), dist.log_prob(actions), dist.entropy()

    def predict_values(self, obs: Any, states: RNNStates | None = None,
                       episode_starts: torch.Tensor | None = None) -> torch.Tensor:
        """Critic values of one step for ``N`` envs from the critic's state (zero state if None)."""
        n_envs = self._batch_size(obs)
        starts = (torch.zeros(1, n_envs, device=self.device) if episode_starts is None
                  else episode_starts.reshape(1, -1).to(self.device))
        features = self._features(obs, 1, n_envs)
        if self.shared_lstm or self.lstm_critic is not None:
            lstm = self.lstm_actor if self.shared_lstm or self.lstm_critic is None else self.lstm_critic
            ln_in, ln_out = (self.ln_in_pi, self.ln_out_pi) if self.shared_lstm else (self.ln_in_vf, self.ln_out_vf)
            if states is None:
                states = self.initial_state(n_envs)
            state = states.pi if self.shared_lstm else states.vf
            out, _ = lstm_sequence(lstm, ln_in(features), state, starts)
            features = ln_out(out)
        return self.value_net(self.value_mlp(features.reshape(n_envs, -1))).squeeze(-1)

    def get_distribution(self, obs: Any, states: RNNStates | None = None,
                         episode_starts: torch.Tensor | None = None) -> Distribution:
        """The action distribution of one step for ``N`` envs (from zero states if None)."""
        return self.step_distribution(obs, states, episode_starts)[0]

    def step_distribution(self, obs: Any, states: RNNStates | None = None,
                          episode_starts: torch.Tensor | None = None) -> tuple[Distribution, RNNStates]:
        """The action distribution of one step for ``N`` envs (zero state if None), and the next states."""
        n_envs = self._batch_size(obs)
        if states is None:
            states = self.initial_state(n_envs)
        starts = (torch.zeros(1, n_envs, device=self.device) if episode_starts is None
                  else episode_starts.reshape(1, -1).to(self.device))
        features = self._features(obs, 1, n_envs)
        out, state_pi = lstm_sequence(self.lstm_actor, self.ln_in_pi(features), states.pi, starts)
        dist = self.action_head(self.policy_net(self.ln_out_pi(out).reshape(n_envs, -1)))
        return dist, RNNStates(state_pi, states.vf)

    def _batch_size(self, obs: Any) -> int:
        first = next(iter(obs.values())) if isinstance(obs, dict) else obs
        return int(first.shape[0])

    # ------------------------------------------------------------------ numpy acting
    def predict(self, observation: Any, state: Any | None = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Actions for one observation or a batch, and the next actor state ``(h, c)`` as numpy arrays
        ``[n_lstm_layers, n_envs, lstm_hidden_size]``. ``state=None`` starts from zeros; the state of
        env ``i`` is reset where ``episode_start[i]`` is true (None: no reset)."""
        obs, vectorized = self.obs_to_tensor(observation)
        n_envs = self._batch_size(obs)
        shape = (self.n_lstm_layers, n_envs, self.lstm_hidden_size)
        if state is None:
            h = c = torch.zeros(shape, device=self.device)
        else:
            h, c = (torch.as_tensor(np.asarray(state[i], dtype=np.float32), device=self.device) for i in (0, 1))
            if tuple(h.shape) != shape or tuple(c.shape) != shape:
                raise ValueError(f"state must be (h, c) of shape {shape}, got {tuple(h.shape)} and {tuple(c.shape)}")
        starts = (torch.zeros(n_envs, device=self.device) if episode_start is None
                  else torch.as_tensor(np.asarray(episode_start, dtype=np.float32).reshape(-1), device=self.device))
        if starts.shape[0] != n_envs:
            raise ValueError(f"episode_start must have one entry per env ({n_envs}), got {starts.shape[0]}")
        with torch.inference_mode():
            dist, states = self.step_distribution(obs, RNNStates((h, c), (h, c)), starts)
            actions = dist.get_actions(deterministic).cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            actions = np.clip(actions.reshape((-1, *self.action_space.shape)), self.action_space.low,
                              self.action_space.high)
        else:
            actions = actions.reshape((-1, *space_shape(self.action_space))).astype(self.action_space.dtype)
        if not vectorized:
            actions = actions[0]
        return actions, (states.pi[0].cpu().numpy(), states.pi[1].cpu().numpy())


def is_recurrent(policy: Any) -> bool:
    """Whether ``policy`` (an instance or class) is an LSTM policy."""
    return bool(getattr(policy, "recurrent", False))


RecurrentActorCriticCnnPolicy = policy_variant(
    RecurrentActorCriticPolicy, "RecurrentActorCriticCnnPolicy", NatureCNN,
    "LSTM actor-critic with the Nature CNN features extractor (Atari).", __name__)
RecurrentMultiInputActorCriticPolicy = policy_variant(
    RecurrentActorCriticPolicy, "RecurrentMultiInputActorCriticPolicy", CombinedExtractor,
    "LSTM actor-critic for Dict observations (CombinedExtractor).", __name__)

MlpLstmPolicy = RecurrentActorCriticPolicy
CnnLstmPolicy = RecurrentActorCriticCnnPolicy
MultiInputLstmPolicy = RecurrentMultiInputActorCriticPolicy
RECURRENT_POLICY_ALIASES: dict[str, type[BasePolicy]] = {
    "MlpLstmPolicy": MlpLstmPolicy, "CnnLstmPolicy": CnnLstmPolicy, "MultiInputLstmPolicy": MultiInputLstmPolicy}
