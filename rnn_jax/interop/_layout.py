"""What every framework's layout shares: checked arrays, our three convertible cells built
from plain arrays, and a recurrence taken apart into layers (one cell, or a forward and a
reverse cell, per layer) and put back together."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.cells import GRU, LSTM, Cell, Elman
from rnn_jax.cells.base import Recurrence, with_arrays
from rnn_jax.cells.layers import Bidirectional, Stack
from rnn_jax.cells.readout import Linear
from rnn_jax.errors import InputError

# One layer: ``(cell,)`` or ``(forward cell, reverse cell)``.
Layer = tuple[Cell, ...]


def float_array(name: str, value: object, *, ndim: int) -> np.ndarray:
    """``value`` as a floating-point array of ``ndim`` dimensions, or an error naming ``name``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be an array; got {type(value).__name__} ({err})") from None
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{name} must hold floating-point weights; got dtype {array.dtype}")
    if array.ndim != ndim:
        what = "a matrix" if ndim == 2 else "a vector"
        raise InputError(f"{name} must be {what} ({ndim}-D); got shape {array.shape}")
    return array


def check_shape(name: str, array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    """An error naming ``name``, the ``shape`` expected ``what`` for, and the one given."""
    if array.shape != tuple(shape):
        raise InputError(f"{name} must have shape {tuple(shape)} {what}; got {array.shape}")


def split_gates(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """``(G H, ...) -> (G, H, ...)``, where our gate ``k`` is the source's gate ``order[k]``."""
    n = len(order)
    return a.reshape(n, a.shape[0] // n, *a.shape[1:])[list(order)]


def join_gates(a, order: tuple[int, ...]) -> np.ndarray:
    """``(G, H, ...)`` in our order -> the source's ``(G H, ...)``."""
    return np.asarray(a)[np.argsort(order)].reshape(-1, *np.shape(a)[2:])


def _sizes(hidden_dim: int, input_dim: int, dtype) -> dict:
    return {"key": jax.random.key(0), "input_dim": input_dim, "hidden_dim": hidden_dim, "dtype": dtype}


def elman_cell(U: np.ndarray, W: np.ndarray, b: np.ndarray, activation) -> Elman:
    """``U (H, D)``, ``W (H, H)``, ``b (H,)`` as an Elman cell."""
    cell = Elman(**_sizes(*U.shape, U.dtype), activation=activation)
    return with_arrays(cell, U=jnp.asarray(U), W=jnp.asarray(W), b=jnp.asarray(b))


def gru_cell(Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, bh_n: np.ndarray | None) -> GRU:
    """``Wx (3, H, D)``, ``Wh (3, H, H)``, ``b (3, H)`` in our gate order ``z, r, n``; with a
    candidate recurrent bias ``bh_n (H,)`` the reset gate acts after the product, without one
    before it."""
    reset = "before" if bh_n is None else "after"
    cell = GRU(**_sizes(*Wx.shape[1:], Wx.dtype), reset=reset)
    arrays = {"Wx": jnp.asarray(Wx), "Wh": jnp.asarray(Wh), "b": jnp.asarray(b)}
    if bh_n is not None:
        arrays["bh_n"] = jnp.asarray(bh_n)
    return with_arrays(cell, **arrays)


def lstm_cell(Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> LSTM:
    """``Wx (4, H, D)``, ``Wh (4, H, H)``, ``b (4, H)`` in the gate order ``i, f, g, o``."""
    cell = LSTM(**_sizes(*Wx.shape[1:], Wx.dtype))
    return with_arrays(cell, Wx=jnp.asarray(Wx), Wh=jnp.asarray(Wh), b=jnp.asarray(b))


def cell_kind(cell: Cell | eqx.Module, framework: str) -> str:
    """``"rnn"``, ``"gru"`` or ``"lstm"``: the kind of framework layer ``cell`` converts to."""
    kind = getattr(type(cell), "TORCH", None)
    if kind is None:
        raise InputError(
            f"no {framework} layer corresponds to the {type(cell).__name__} cell; the Elman, GRU and "
            "LSTM cells convert, alone, stacked or bidirectional"
        )
    return kind


def layers_of(recurrence: Recurrence, framework: str) -> list[Layer]:
    """A cell, a ``Bidirectional`` pair of cells, or a ``Stack`` of either, as its layers."""
    layers = recurrence.layers if isinstance(recurrence, Stack) else (recurrence,)
    out = []
    for index, layer in enumerate(layers):
        cells = (layer.forward, layer.reverse) if isinstance(layer, Bidirectional) else (layer,)
        for part in cells:
            if isinstance(part, Stack | Bidirectional):
                raise InputError(
                    f"layer {index} nests a {type(part).__name__} inside a layer; {framework} layouts "
                    "hold a stack of layers, each one cell or a bidirectional pair of cells"
                )
            cell_kind(part, framework)
        out.append(cells)
    return out


def assemble(layers: list[Layer], *, dropout: float = 0.0) -> Recurrence:
    """The recurrence of ``layers``: one cell alone, pairs as ``Bidirectional``, several layers as
    a ``Stack`` (with ``dropout`` between them while training). Sizes are checked."""
    parts = [
        cells[0] if len(cells) == 1 else Bidirectional(forward=cells[0], reverse=cells[1]) for cells in layers
    ]
    if len(parts) == 1:
        if dropout:
            raise InputError(f"dropout acts between layers; a one-layer model takes 0, got {dropout}")
        recurrence = parts[0]
    else:
        recurrence = Stack(layers=tuple(parts), dropout=dropout)
    recurrence.check()
    return recurrence


def readout(weight: np.ndarray, bias: np.ndarray, hidden_dim: int, where: str) -> Linear:
    """A readout from ``weight (O, H)`` and ``bias (O,)``, checked against the recurrence's
    output width ``hidden_dim``; ``where`` names the source in the error."""
    if weight.shape[1] != hidden_dim or bias.shape != weight.shape[:1]:
        raise InputError(
            f"{where} must hold a weight of (O, H={hidden_dim}) and a bias of (O,); got weight "
            f"{weight.shape} and bias {bias.shape}"
        )
    out = Linear(key=jax.random.key(0), hidden_dim=hidden_dim, output_dim=weight.shape[0], dtype=weight.dtype)
    return with_arrays(out, V=jnp.asarray(weight), c=jnp.asarray(bias))
