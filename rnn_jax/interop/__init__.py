"""Weights in and out of PyTorch, Flax (linen and NNX) and Keras, for whole models: one cell,
stacked layers and bidirectional layers of the Elman, GRU and LSTM cells, and the readout.

Every converter reads and writes NumPy arrays, so no framework is imported here. For each
framework ``X``: ``from_X`` builds the recurrence (a cell, a ``Bidirectional`` pair or a
``Stack``), ``to_X`` writes it in that framework's layout, and ``model_from_X`` /
``model_to_X`` add the readout. Round trips are exact; a missing name or a wrong shape is one
error naming the key and the shape expected. The layouts: ``docs/interop.md``.
"""

from rnn_jax.interop._flax import from_flax as from_flax
from rnn_jax.interop._flax import model_from_flax as model_from_flax
from rnn_jax.interop._flax import model_to_flax as model_to_flax
from rnn_jax.interop._flax import to_flax as to_flax
from rnn_jax.interop._keras import from_keras as from_keras
from rnn_jax.interop._keras import model_from_keras as model_from_keras
from rnn_jax.interop._keras import model_to_keras as model_to_keras
from rnn_jax.interop._keras import to_keras as to_keras
from rnn_jax.interop._torch import from_torch as from_torch
from rnn_jax.interop._torch import model_from_torch as model_from_torch
from rnn_jax.interop._torch import model_to_torch as model_to_torch
from rnn_jax.interop._torch import to_torch as to_torch

__all__ = [
    "from_flax",
    "from_keras",
    "from_torch",
    "model_from_flax",
    "model_from_keras",
    "model_from_torch",
    "model_to_flax",
    "model_to_keras",
    "model_to_torch",
    "to_flax",
    "to_keras",
    "to_torch",
]
