"""rnn_jax: recurrent networks as pure JAX functions, trained by (truncated) backpropagation
through time, with hand-derived gradients verified against autodiff."""

from rnn_jax.cells import ElmanParams, elman_step, init_elman
from rnn_jax.data import WindowData, make_sine_data
from rnn_jax.gated import GRUParams, LSTMParams
from rnn_jax.losses import batch_predict, loss
from rnn_jax.manual_grads import manual_grads, state_grads, tutorial_grads
from rnn_jax.train import Hyperparams, TrainConfig, make_hparams, make_train
from rnn_jax.unroll import init_params, predict, unroll, window_starts

__all__ = [
    "ElmanParams",
    "GRUParams",
    "LSTMParams",
    "Hyperparams",
    "TrainConfig",
    "WindowData",
    "batch_predict",
    "elman_step",
    "init_elman",
    "init_params",
    "loss",
    "make_hparams",
    "make_sine_data",
    "make_train",
    "manual_grads",
    "predict",
    "state_grads",
    "tutorial_grads",
    "unroll",
    "window_starts",
]
