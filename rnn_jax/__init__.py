"""rnn_jax: recurrent networks as pure JAX functions, trained by (truncated) backpropagation
through time, with hand-derived gradients verified against autodiff."""

from importlib import metadata as _metadata

from rnn_jax.cells import GRU, LSTM, Cell, CellGrads, Elman, IndRNN, elman_step, register
from rnn_jax.data import WindowData, make_sine_data
from rnn_jax.logs import EpochLog
from rnn_jax.losses import batch_predict, loss
from rnn_jax.manual_grads import manual_grads, state_grads
from rnn_jax.model import RNN, init_elman, init_model, predict
from rnn_jax.readout import Linear
from rnn_jax.runner import fit
from rnn_jax.train import Hyperparams, TrainConfig, make_hparams, make_train
from rnn_jax.tutorial import tutorial_grads
from rnn_jax.unroll import cell_step, final_state, unroll, unroll_states, window_starts

try:
    __version__ = _metadata.version("rnn-jax")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Cell",
    "CellGrads",
    "Elman",
    "EpochLog",
    "Hyperparams",
    "IndRNN",
    "Linear",
    "TrainConfig",
    "WindowData",
    "batch_predict",
    "cell_step",
    "elman_step",
    "final_state",
    "fit",
    "init_elman",
    "init_model",
    "loss",
    "make_hparams",
    "make_sine_data",
    "make_train",
    "manual_grads",
    "predict",
    "register",
    "state_grads",
    "tutorial_grads",
    "unroll",
    "unroll_states",
    "window_starts",
]
