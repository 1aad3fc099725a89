"""PyTorch's ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM`` state dicts, any number of layers, one or
two directions, and an ``nn.Linear`` readout.

A module's weights are ``weight_ih_l{k} (G H, D_k)``, ``weight_hh_l{k} (G H, H)``,
``bias_ih_l{k}`` and ``bias_hh_l{k} (G H,)`` for layer ``k``, with ``_reverse`` after the
name for the reverse direction of a bidirectional module; layer ``k > 0`` reads ``D_k = H``
features, or ``2 H`` (forward then reverse) when bidirectional, as a ``Stack`` of
``Bidirectional`` layers does here. Gates are stacked ``i, f, g, o`` (LSTM, as ours) or
``r, z, n`` (GRU; ours is ``z, r, n``). The two bias vectors add, except the GRU candidate's
recurrent one, which the reset gate multiplies: it is ``GRU(reset="after").bh_n``. So biases
fold into one on the way in and come out as ``bias_ih`` (``bias_hh`` zero), the same
function. A module built with ``bias=False`` has no bias keys and converts with zero biases.
``batch_first`` changes the inputs' layout, not the weights: a ``(N, T, D)`` batch is what
``jax.vmap(model)`` reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from jaxtyping import ArrayLike

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

KINDS = ("rnn", "gru", "lstm")
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
# Our gate k is PyTorch's gate _ORDER[kind][k].
_ORDER = {"rnn": (0,), "gru": (1, 0, 2), "lstm": (0, 1, 2, 3)}
_KEY = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")
_SUFFIX = ("", "_reverse")


def _module(kind: str) -> str:
    return f"nn.{kind.upper()}"


def _group(state_dict: Mapping[str, ArrayLike], kind: str) -> dict[tuple[int, int], dict[str, object]]:
    """``{(layer, direction): {"weight_ih": ..., ...}}``, every key accounted for."""
    groups: dict[tuple[int, int], dict[str, object]] = {}
    for key, value in state_dict.items():
        match = _KEY.fullmatch(str(key))
        if match is None:
            raise InputError(
                f"state_dict holds {key!r}, which is no {_module(kind)} weight (weight_ih_l0, "
                "weight_hh_l0, bias_ih_l0, bias_hh_l0; _l1, ... for deeper layers, _reverse for the "
                "reverse direction)"
            )
        if match[1] == "weight_hr":
            raise InputError(
                f"state_dict holds {key}, the projection of an nn.LSTM with proj_size > 0; no rnn_jax "
                "cell projects its state inside the recurrence: convert a module with proj_size=0"
            )
        groups.setdefault((int(match[2]), int(match[3] is not None)), {})[match[1]] = value
    if not groups:
        raise InputError(f"state_dict lacks weight_ih_l0 and weight_hh_l0 (an {_module(kind)}'s weights)")
    return groups


def _direction(arrays: dict[str, object], kind: str, layer: int, direction: int, width: int, activation):
    """One cell from one layer's one direction; ``width`` is the features that layer reads."""
    sfx = f"_l{layer}{_SUFFIX[direction]}"
    biased = any(n.startswith("bias") for n in arrays)
    needed = ("weight_ih", "weight_hh", *(("bias_ih", "bias_hh") if biased else ()))
    missing = [n + sfx for n in needed if n not in arrays]
    if missing:
        raise InputError(f"state_dict lacks {', '.join(missing)} (an {_module(kind)}'s weights)")
    a = {n: float_array(n + sfx, arrays[n], ndim=2 if n.startswith("weight") else 1) for n in needed}
    hidden = a["weight_hh"].shape[-1]
    rows = _GATES[kind] * hidden
    what = f"for an {_module(kind)} with H={hidden}" + (f" reading {width} features" if layer else "")
    check_shape("weight_hh" + sfx, a["weight_hh"], (rows, hidden), what)
    check_shape("weight_ih" + sfx, a["weight_ih"], (rows, width or a["weight_ih"].shape[1]), what)
    zeros = np.zeros(rows, a["weight_ih"].dtype)
    b_ih, b_hh = (a[n] if biased else zeros for n in ("bias_ih", "bias_hh"))
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        check_shape(name + sfx, b, (rows,), what)
    if kind == "rnn":
        return elman_cell(a["weight_ih"], a["weight_hh"], b_ih + b_hh, activation)
    order = _ORDER[kind]
    wx, wh, bi, bh = (split_gates(x, order) for x in (a["weight_ih"], a["weight_hh"], b_ih, b_hh))
    if kind == "lstm":
        return lstm_cell(wx, wh, bi + bh)
    # b_hn stays inside the reset product; the other two recurrent biases add.
    return gru_cell(wx, wh, bi + bh * np.array([1, 1, 0], bi.dtype)[:, None], bh[2])


def from_torch(
    state_dict: Mapping[str, ArrayLike], kind: str, *, nonlinearity: str = "tanh", dropout: float = 0.0
) -> Recurrence:
    """The recurrence computing what the PyTorch module with this state dict computes.

    Args:
        state_dict: the module's arrays by name, as NumPy arrays
            (``{k: v.detach().numpy() for k, v in module.state_dict().items()}``); the number of
            layers and the directions are read off the names.
        kind: ``"rnn"`` (``nn.RNN``, to ``Elman`` cells), ``"gru"`` (to ``GRU(reset="after")``)
            or ``"lstm"``.
        nonlinearity: ``nn.RNN``'s, ``"tanh"`` or ``"relu"``.
        dropout: the module's ``dropout`` between layers (not in the state dict).

    Returns:
        One cell; a ``Bidirectional`` pair; or a ``Stack`` of either for ``num_layers > 1``.
        Arrays keep their dtype (float64 needs ``jax_enable_x64``).

    >>> import numpy as np
    >>> sd = {n: np.zeros(s, np.float32) for n, s in [("weight_ih_l0", (12, 3)),
    ...       ("weight_hh_l0", (12, 4)), ("bias_ih_l0", (12,)), ("bias_hh_l0", (12,))]}
    >>> cell = from_torch(sd | {k + "_reverse": v for k, v in sd.items()}, "gru")
    >>> type(cell).__name__, cell.hidden_dim
    ('Bidirectional', 8)
    """
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if kind == "rnn" and nonlinearity not in ("tanh", "relu"):
        raise InputError(f"nonlinearity must be tanh or relu (nn.RNN's); got {nonlinearity!r}")
    groups = _group(state_dict, kind)
    num_layers = max(layer for layer, _ in groups) + 1
    directions = 2 if any(direction for _, direction in groups) else 1
    layers: list[Layer] = []
    width = 0  # layer 0 reads whatever D its weights have
    for layer in range(num_layers):
        cells = []
        for direction in range(directions):
            if (layer, direction) not in groups:
                missing = f"weight_ih_l{layer}{_SUFFIX[direction]}"
                raise InputError(
                    f"state_dict lacks {missing}: a {directions}-direction module of {num_layers} "
                    f"layers names every layer and direction"
                )
            cells.append(_direction(groups[layer, direction], kind, layer, direction, width, nonlinearity))
        layers.append(tuple(cells))
        width = sum(c.hidden_dim for c in cells)
    return assemble(layers, dropout=dropout)


def _torch_arrays(cell) -> dict[str, np.ndarray]:
    """One cell's ``weight_ih, weight_hh, bias_ih, bias_hh``, checked for PyTorch's options."""
    kind = cell_kind(cell, "PyTorch")
    if kind == "rnn":
        if cell.activation not in ("tanh", "relu"):
            raise InputError(f"nn.RNN has tanh and relu only; this Elman cell uses {cell.activation!r}")
        b = np.asarray(cell.b)
        return {
            "weight_ih": np.asarray(cell.U),
            "weight_hh": np.asarray(cell.W),
            "bias_ih": b,
            "bias_hh": 0 * b,
        }
    if kind == "gru" and cell.reset != "after":
        raise InputError("PyTorch's nn.GRU applies the reset gate after its product: use reset='after'")
    b_hh = np.zeros_like(np.asarray(cell.b))
    if kind == "gru":
        b_hh[2] = np.asarray(cell.bh_n)
    order = _ORDER[kind]
    return {
        "weight_ih": join_gates(cell.Wx, order),
        "weight_hh": join_gates(cell.Wh, order),
        "bias_ih": join_gates(cell.b, order),
        "bias_hh": join_gates(b_hh, order),
    }


def to_torch(recurrence: Recurrence) -> dict[str, np.ndarray]:
    """The state dict of the equivalent PyTorch module: ``nn.RNN`` (with the Elman cells'
    nonlinearity, ``tanh`` or ``relu``), ``nn.GRU`` (``reset="after"`` cells: PyTorch has no
    other) or ``nn.LSTM``, with ``num_layers`` and ``bidirectional`` as the recurrence's. Every
    layer must be the same kind of cell of one hidden size, as in one PyTorch module."""
    layers = layers_of(recurrence, "PyTorch")
    first = layers[0][0]
    out = {}
    for index, cells in enumerate(layers):
        for direction, cell in enumerate(cells):
            same = type(cell) is type(first) and cell.hidden_dim == first.hidden_dim
            if not same or len(cells) != len(layers[0]):
                raise InputError(
                    f"layer {index} differs from layer 0 in its cell, size or directions; one PyTorch "
                    "module has one kind of cell, one hidden size and one number of directions"
                )
            if getattr(cell, "activation", None) != getattr(first, "activation", None):
                raise InputError(f"layer {index}'s activation differs from layer 0's; nn.RNN has one")
            sfx = f"_l{index}{_SUFFIX[direction]}"
            out |= {name + sfx: array for name, array in _torch_arrays(cell).items()}
    return out


def model_from_torch(
    rnn_state: Mapping[str, ArrayLike],
    linear_state: Mapping[str, ArrayLike],
    kind: str,
    *,
    nonlinearity: str = "tanh",
    dropout: float = 0.0,
) -> RNN:
    """A model from a recurrent module's state dict (``from_torch``) and an ``nn.Linear``
    readout's (``weight (O, H)``, ``bias (O,)``, ``H`` the module's output features)."""
    recurrence = from_torch(rnn_state, kind, nonlinearity=nonlinearity, dropout=dropout)
    missing = [n for n in ("weight", "bias") if n not in linear_state]
    if missing:
        raise InputError(
            f"linear_state lacks {', '.join(missing)} (an nn.Linear's weight (O, H) and bias (O,))"
        )
    weight = float_array("weight", linear_state["weight"], ndim=2)
    bias = float_array("bias", linear_state["bias"], ndim=1)
    model = RNN(cell=recurrence, readout=readout(weight, bias, recurrence.hidden_dim, "linear_state"))
    model.check()
    return model


def model_to_torch(model: RNN) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(the recurrent module's state dict, the nn.Linear's state dict)``."""
    linear = {"weight": np.asarray(model.readout.V), "bias": np.asarray(model.readout.c)}
    return to_torch(model.cell), linear
