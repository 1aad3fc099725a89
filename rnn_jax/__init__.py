"""rnn_jax: recurrent networks as pure JAX functions, trained by (truncated) backpropagation
through time, with hand-derived gradients verified against autodiff.

The names below load on first use, so that ``import rnn_jax.runs.signals`` (what every command does
first, to answer Ctrl-C while JAX imports) stays fast."""

import importlib as _importlib
import sys as _sys
import types as _types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnn_jax.batch import BatchOptions
    from rnn_jax.cells import GRU, LSTM, Cell, CellGrads, Elman, IndRNN, elman_step, register
    from rnn_jax.cells.readout import Linear
    from rnn_jax.data.sine import WindowData, make_sine_data
    from rnn_jax.loss import batch_predict, loss
    from rnn_jax.manual import manual_grads, state_grads
    from rnn_jax.model import RNN, init_elman, init_model, predict
    from rnn_jax.runs.driver import fit
    from rnn_jax.runs.logs import EpochLog
    from rnn_jax.train.loop import Hyperparams, TrainConfig, make_hparams, make_train
    from rnn_jax.tutorial import tutorial_grads
    from rnn_jax.unroll import cell_step, final_state, unroll, unroll_states, window_starts

_WHERE = {
    "BatchOptions": "rnn_jax.batch",
    "Cell": "rnn_jax.cells",
    "CellGrads": "rnn_jax.cells",
    "Elman": "rnn_jax.cells",
    "EpochLog": "rnn_jax.runs.logs",
    "GRU": "rnn_jax.cells",
    "Hyperparams": "rnn_jax.train.loop",
    "IndRNN": "rnn_jax.cells",
    "LSTM": "rnn_jax.cells",
    "Linear": "rnn_jax.cells.readout",
    "RNN": "rnn_jax.model",
    "TrainConfig": "rnn_jax.train.loop",
    "WindowData": "rnn_jax.data.sine",
    "batch_predict": "rnn_jax.loss",
    "cell_step": "rnn_jax.unroll",
    "elman_step": "rnn_jax.cells",
    "final_state": "rnn_jax.unroll",
    "fit": "rnn_jax.runs.driver",
    "init_elman": "rnn_jax.model",
    "init_model": "rnn_jax.model",
    "loss": "rnn_jax.loss",
    "make_hparams": "rnn_jax.train.loop",
    "make_sine_data": "rnn_jax.data.sine",
    "make_train": "rnn_jax.train.loop",
    "manual_grads": "rnn_jax.manual",
    "predict": "rnn_jax.model",
    "register": "rnn_jax.cells",
    "state_grads": "rnn_jax.manual",
    "tutorial_grads": "rnn_jax.tutorial",
    "unroll": "rnn_jax.unroll",
    "unroll_states": "rnn_jax.unroll",
    "window_starts": "rnn_jax.unroll",
}


def __getattr__(name: str):
    if name == "__version__":
        from rnn_jax.io import package_version

        globals()[name] = package_version()
        return globals()[name]
    if name not in _WHERE:
        raise AttributeError(f"module 'rnn_jax' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


class _Package(_types.ModuleType):
    """The import system binds each submodule to an attribute of its package; where a public
    function shares its module's name (``unroll``, ``manual_grads``), the function keeps it."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, _types.ModuleType) and _WHERE.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


__all__ = [
    "BatchOptions",
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
