"""Keras's ``SimpleRNN``, ``GRU`` and ``LSTM`` weight lists (``layer.get_weights()``), alone,
inside ``Bidirectional`` (the forward layer's list, then the backward layer's), and a list of
those for a stack; a ``Dense`` readout.

A layer's list is ``[kernel (D, G H), recurrent_kernel (H, G H), bias]``, without the bias
for ``use_bias=False``. Gates are stacked ``z, r, h`` (GRU, as ours) or ``i, f, c, o``
(LSTM, as ours). The GRU's bias is ``(2, 3H)`` with ``reset_after=True`` (Keras's default):
an input row and a recurrent row, whose candidate part the reset gate multiplies, so it is
``GRU(reset="after")``; ``reset_after=False`` has one ``(3H,)`` bias and the reset gate
before the product, ``GRU(reset="before")``. The layers' activations must be Keras's
defaults (``tanh``, and ``sigmoid`` for the gates); a ``SimpleRNN``'s may be any the Elman
cell takes, given as ``activation``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnn_jax.cells.base import Recurrence
from rnn_jax.errors import InputError
from rnn_jax.interop._layout import (
    Layer,
    assemble,
    cell_kind,
    check_shape,
    elman_cell,
    float_array,
    gru_cell,
    join_gates,
    layers_of,
    lstm_cell,
    readout,
    split_gates,
)
from rnn_jax.model import RNN

_KINDS = {1: "SimpleRNN", 3: "GRU", 4: "LSTM"}
_SAME = (0, 1, 2, 3)


def _cell(arrays: Sequence, where: str, *, reset_after: bool | None, activation):
    """One cell from one layer's ``[kernel, recurrent_kernel, (bias)]``."""
    if len(arrays) not in (2, 3):
        raise InputError(
            f"{where} must list [kernel, recurrent_kernel, bias] (or the first two for use_bias=False); "
            f"got {len(arrays)} arrays"
        )
    kernel = float_array(f"{where}[0] (kernel)", arrays[0], ndim=2)
    recurrent = float_array(f"{where}[1] (recurrent_kernel)", arrays[1], ndim=2)
    h = recurrent.shape[0]
    gates = recurrent.shape[1] // h if h else 0
    if gates not in _KINDS or recurrent.shape != (h, gates * h) or kernel.shape[1] != gates * h:
        raise InputError(
            f"{where}: a recurrent_kernel of (H, H), (H, 3H) or (H, 4H) and a kernel of (D, the same) "
            f"make a SimpleRNN, GRU or LSTM; got kernel {kernel.shape} and recurrent_kernel {recurrent.shape}"
        )
    kind = _KINDS[gates]
    bias = None
    if len(arrays) == 3:
        bias = float_array(f"{where}[2] (bias)", arrays[2], ndim=np.ndim(arrays[2]) if kind == "GRU" else 1)
    if kind == "GRU":
        if bias is not None and bias.ndim not in (1, 2):
            raise InputError(f"{where}[2] (bias) must be (3H,) or (2, 3H); got shape {bias.shape}")
        told = None if bias is None else bias.ndim == 2
        if reset_after is None and told is None:
            raise InputError(
                f"{where} is a GRU without biases, so the weights do not tell where its reset gate acts: "
                "give reset_after=True or False, as the Keras layer had it"
            )
        if reset_after is not None and told is not None and reset_after != told:
            raise InputError(
                f"{where}: reset_after={reset_after} but the bias has shape {bias.shape}, which is a "
                f"reset_after={told} layer's"
            )
        reset_after = told if reset_after is None else reset_after
        shape = (2, gates * h) if reset_after else (gates * h,)
        bias = np.zeros(shape, kernel.dtype) if bias is None else bias
        check_shape(f"{where}[2] (bias)", bias, shape, f"for a GRU with H={h}, reset_after={reset_after}")
        wx, wh = split_gates(kernel.T, _SAME[:3]), split_gates(recurrent.T, _SAME[:3])
        if not reset_after:
            return gru_cell(wx, wh, split_gates(bias, _SAME[:3]), None)
        b_in, b_rec = split_gates(bias[0], _SAME[:3]), split_gates(bias[1], _SAME[:3])
        return gru_cell(wx, wh, b_in + b_rec * np.array([1, 1, 0], b_in.dtype)[:, None], b_rec[2])
    bias = np.zeros(gates * h, kernel.dtype) if bias is None else bias
    check_shape(f"{where}[2] (bias)", bias, (gates * h,), f"for a {kind} with H={h}")
    if kind == "SimpleRNN":
        return elman_cell(kernel.T, recurrent.T, bias, activation)
    return lstm_cell(split_gates(kernel.T, _SAME), split_gates(recurrent.T, _SAME), split_gates(bias, _SAME))


def _is_list_of_layers(weights: Sequence) -> bool:
    return len(weights) > 0 and isinstance(weights[0], list | tuple)


def from_keras(
    weights: Sequence,
    *,
    bidirectional: bool = False,
    reset_after: bool | None = None,
    activation="tanh",
    dropout: float = 0.0,
) -> Recurrence:
    """The recurrence computing what the Keras layers with these weights compute.

    Args:
        weights: one layer's ``get_weights()`` list, or a list of them, bottom layer first,
            for a stack. The kind of layer is read off the shapes.
        bidirectional: the lists are ``Bidirectional`` wrappers' (forward, then backward).
        reset_after: a GRU's; read off its bias when it has one.
        activation: a ``SimpleRNN``'s (Keras's default is ``tanh``).
        dropout: between the layers of a stack, while training.

    Returns:
        An ``Elman``, ``GRU`` or ``LSTM`` cell, a ``Bidirectional`` pair, or a ``Stack``.
    """
    if not isinstance(weights, list | tuple) or not weights:
        raise InputError("weights must be a layer's get_weights() list, or a list of such lists")
    trees = list(weights) if _is_list_of_layers(weights) else [weights]
    layers: list[Layer] = []
    for index, arrays in enumerate(trees):
        where = "weights" if len(trees) == 1 else f"weights[{index}]"
        options = {"reset_after": reset_after, "activation": activation}
        if not bidirectional:
            layers.append((_cell(list(arrays), where, **options),))
            continue
        if len(arrays) % 2:
            raise InputError(
                f"{where} lists {len(arrays)} arrays; a Bidirectional layer's are its forward layer's "
                "then its backward layer's, an even number"
            )
        half = len(arrays) // 2
        forward = _cell(list(arrays[:half]), f"{where} (forward layer)", **options)
        layers.append((forward, _cell(list(arrays[half:]), f"{where} (backward layer)", **options)))
    return assemble(layers, dropout=dropout)


def _keras_arrays(cell) -> list[np.ndarray]:
    kind = cell_kind(cell, "Keras")
    if kind == "rnn":
        return [np.asarray(cell.U).T, np.asarray(cell.W).T, np.asarray(cell.b)]
    wx, wh, b = (join_gates(a, _SAME[: cell.GATES]) for a in (cell.Wx, cell.Wh, cell.b))
    if kind == "gru" and cell.reset == "after":
        b_rec = np.zeros_like(np.asarray(cell.b))
        b_rec[2] = np.asarray(cell.bh_n)
        b = np.stack([b, join_gates(b_rec, _SAME[:3])])
    return [wx.T, wh.T, b]


def to_keras(recurrence: Recurrence) -> list:
    """The equivalent Keras layers' ``set_weights`` lists: one list for one layer (forward then
    backward for ``Bidirectional``), a list of them for a stack. A ``GRU(reset="after")`` is a
    ``reset_after=True`` layer, ``reset="before"`` a ``reset_after=False`` one; a ``SimpleRNN``
    takes the Elman cell's activation."""
    out = [[a for cell in cells for a in _keras_arrays(cell)] for cells in layers_of(recurrence, "Keras")]
    return out[0] if len(out) == 1 else out


def model_from_keras(
    rnn_weights: Sequence,
    dense_weights: Sequence,
    *,
    bidirectional: bool = False,
    reset_after: bool | None = None,
    activation="tanh",
    dropout: float = 0.0,
) -> RNN:
    """A model from the recurrent layers' weights (``from_keras``) and a ``Dense`` readout's
    ``[kernel (H, O), bias (O,)]``."""
    recurrence = from_keras(
        rnn_weights,
        bidirectional=bidirectional,
        reset_after=reset_after,
        activation=activation,
        dropout=dropout,
    )
    if not isinstance(dense_weights, list | tuple) or len(dense_weights) != 2:
        raise InputError("dense_weights must be a Dense layer's [kernel (H, O), bias (O,)]")
    kernel = float_array("dense_weights[0] (kernel)", dense_weights[0], ndim=2)
    bias = float_array("dense_weights[1] (bias)", dense_weights[1], ndim=1)
    model = RNN(cell=recurrence, readout=readout(kernel.T, bias, recurrence.hidden_dim, "dense_weights"))
    model.check()
    return model


def model_to_keras(model: RNN) -> tuple[list, list[np.ndarray]]:
    """``(the recurrent layers' weights, the Dense readout's [kernel, bias])``."""
    return to_keras(model.cell), [np.asarray(model.readout.V).T, np.asarray(model.readout.c)]
