"""PyTorch weights in and out: ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM`` state dicts to rnn_jax
cells and back, with NumPy arrays on both sides (no torch import needed).

PyTorch names a single-layer module's weights ``weight_ih_l0 (G H, D)``, ``weight_hh_l0
(G H, H)``, ``bias_ih_l0 (G H,)`` and ``bias_hh_l0 (G H,)``, gates stacked in the order
``i, f, g, o`` (LSTM, the same as ours) or ``r, z, n`` (GRU; ours is ``z, r, n``). Its two
bias vectors always add, except the GRU candidate's recurrent bias ``b_hn``, which the reset
gate multiplies: it is our ``GRU(reset="after").bh_n``. So ``nn.RNN`` and ``nn.LSTM`` biases
fold into one on the way in and come out as ``bias_ih`` (with ``bias_hh`` zero), which is the
same function. A readout ``nn.Linear`` maps to ``rnn_jax.Linear`` (``weight``, ``bias``).
Convert a module with ``{k: v.detach().numpy() for k, v in module.state_dict().items()}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from rnn_jax.cells import GRU, LSTM, Cell, Elman
from rnn_jax.cells.base import with_arrays
from rnn_jax.cells.readout import Linear
from rnn_jax.errors import InputError
from rnn_jax.model import RNN

KINDS = ("rnn", "gru", "lstm")
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
# Our gate k is PyTorch's gate _ORDER[kind][k].
_ORDER = {"rnn": [0], "gru": [1, 0, 2], "lstm": [0, 1, 2, 3]}


def _arrays(state_dict: Mapping[str, ArrayLike], kind: str) -> dict[str, np.ndarray]:
    """The four layer-0 arrays, checked: names, shapes against each other, the gate count."""
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    missing = [n for n in _NAMES if n not in state_dict]
    if missing:
        raise InputError(
            f"state_dict lacks {', '.join(missing)} (a single-layer nn.{kind.upper()}'s weights)"
        )
    extra = sorted(set(state_dict) - set(_NAMES))
    if extra:
        raise InputError(
            f"state_dict holds {', '.join(extra)}: only a single-layer, one-directional module converts"
        )
    arrays = {n: _float_array(n, state_dict[n], ndim=2 if n.startswith("weight") else 1) for n in _NAMES}
    w_ih, w_hh = arrays["weight_ih_l0"], arrays["weight_hh_l0"]
    hidden = w_hh.shape[-1]
    rows = _GATES[kind] * hidden
    expected = {"weight_ih_l0": (rows, w_ih.shape[-1]), "weight_hh_l0": (rows, hidden)}
    expected |= {"bias_ih_l0": (rows,), "bias_hh_l0": (rows,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise InputError(
                f"{name} must have shape {shape} for an nn.{kind.upper()} with H={hidden}; "
                f"got {arrays[name].shape}"
            )
    return arrays


def _float_array(name: str, value: object, *, ndim: int) -> np.ndarray:
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


def _gates(a: np.ndarray, kind: str) -> np.ndarray:
    """``(G H, ...) -> (G, H, ...)`` in our gate order."""
    n = _GATES[kind]
    return a.reshape(n, a.shape[0] // n, *a.shape[1:])[_ORDER[kind]]


def _rows(a: ArrayLike, kind: str) -> np.ndarray:
    """``(G, H, ...)`` in our order -> PyTorch's ``(G H, ...)``."""
    back = np.argsort(_ORDER[kind])
    return np.asarray(a)[back].reshape(-1, *np.shape(a)[2:])


def cell_from_torch(state_dict: Mapping[str, ArrayLike], kind: str, *, nonlinearity: str = "tanh") -> Cell:
    """An rnn_jax cell computing what the PyTorch module with this state dict computes.

    ``kind``: ``"rnn"`` (-> ``Elman`` with ``nonlinearity``, PyTorch's ``tanh`` or ``relu``),
    ``"gru"`` (-> ``GRU(reset="after")``) or ``"lstm"`` (-> ``LSTM``). Arrays keep their dtype
    (float64 needs ``jax_enable_x64``)."""
    a = _arrays(state_dict, kind)
    w_ih, w_hh, b_ih, b_hh = (a[n] for n in _NAMES)
    hidden, input_dim = w_hh.shape[1], w_ih.shape[1]
    sizes = {"key": jax.random.key(0), "input_dim": input_dim, "hidden_dim": hidden, "dtype": w_ih.dtype}
    if kind == "rnn":
        if nonlinearity not in ("tanh", "relu"):
            raise InputError(f"nonlinearity must be tanh or relu (nn.RNN's); got {nonlinearity!r}")
        cell = Elman(**sizes, activation=nonlinearity)
        return with_arrays(cell, U=jnp.asarray(w_ih), W=jnp.asarray(w_hh), b=jnp.asarray(b_ih + b_hh))
    wx, wh, bi, bh = (_gates(x, kind) for x in (w_ih, w_hh, b_ih, b_hh))
    if kind == "lstm":
        return with_arrays(LSTM(**sizes), Wx=jnp.asarray(wx), Wh=jnp.asarray(wh), b=jnp.asarray(bi + bh))
    b = bi + bh * np.array([1, 1, 0], bi.dtype)[:, None]  # b_hn stays inside the reset product
    return with_arrays(
        GRU(**sizes, reset="after"),
        Wx=jnp.asarray(wx),
        Wh=jnp.asarray(wh),
        b=jnp.asarray(b),
        bh_n=jnp.asarray(bh[2]),
    )


def cell_to_torch(cell: Cell | eqx.Module) -> dict[str, np.ndarray]:
    """The state dict of the equivalent single-layer PyTorch module (``nn.RNN`` with the
    Elman cell's nonlinearity, ``nn.GRU`` or ``nn.LSTM``). The GRU must be ``reset="after"``:
    PyTorch has no other; an Elman activation must be ``tanh`` or ``relu``."""
    kind = torch_kind(cell)
    if kind == "rnn":
        w_ih, w_hh, b = np.asarray(cell.U), np.asarray(cell.W), np.asarray(cell.b)
        return {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b, "bias_hh_l0": np.zeros_like(b)}
    b_hh = np.zeros_like(np.asarray(cell.b))
    if kind == "gru":
        b_hh[2] = np.asarray(cell.bh_n)
    return {
        "weight_ih_l0": _rows(cell.Wx, kind),
        "weight_hh_l0": _rows(cell.Wh, kind),
        "bias_ih_l0": _rows(cell.b, kind),
        "bias_hh_l0": _rows(b_hh, kind),
    }


def torch_kind(cell: Cell | eqx.Module) -> str:
    """``"rnn"``, ``"gru"`` or ``"lstm"``: the PyTorch module a cell converts to (its class's
    ``TORCH`` name), checked for the options PyTorch has."""
    kind = getattr(type(cell), "TORCH", None)  # stacks and bidirectional layers have none here
    if kind is None:
        raise InputError(
            f"no PyTorch module corresponds to the {type(cell).__name__} cell (interop converts single "
            "one-direction cells; stacked and bidirectional state dicts are not mapped yet)"
        )
    if kind == "rnn" and cell.activation not in ("tanh", "relu"):
        raise InputError(f"nn.RNN has tanh and relu only; this Elman cell uses {cell.activation!r}")
    if kind == "gru" and cell.reset != "after":
        raise InputError("PyTorch's nn.GRU applies the reset gate after its product: use reset='after'")
    return kind


def model_from_torch(
    rnn_state: Mapping[str, ArrayLike],
    linear_state: Mapping[str, ArrayLike],
    kind: str,
    *,
    nonlinearity: str = "tanh",
) -> RNN:
    """A model from a recurrent module's state dict and an ``nn.Linear`` readout's
    (``weight (O, H)``, ``bias (O,)``)."""
    cell = cell_from_torch(rnn_state, kind, nonlinearity=nonlinearity)
    missing = [n for n in ("weight", "bias") if n not in linear_state]
    if missing:
        raise InputError(
            f"linear_state lacks {', '.join(missing)} (an nn.Linear's weight (O, H) and bias (O,))"
        )
    weight = _float_array("weight", linear_state["weight"], ndim=2)
    bias = _float_array("bias", linear_state["bias"], ndim=1)
    if weight.shape[1] != cell.hidden_dim or bias.shape != weight.shape[:1]:
        raise InputError(
            f"linear_state must hold weight (O, H={cell.hidden_dim}) and bias (O,); got weight "
            f"{weight.shape} and bias {bias.shape}"
        )
    readout = Linear(
        key=jax.random.key(0), hidden_dim=cell.hidden_dim, output_dim=weight.shape[0], dtype=weight.dtype
    )
    model = RNN(cell=cell, readout=with_arrays(readout, V=jnp.asarray(weight), c=jnp.asarray(bias)))
    model.check()
    return model


def model_to_torch(model: RNN) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(recurrent module's state dict, nn.Linear's state dict)``."""
    linear = {"weight": np.asarray(model.readout.V), "bias": np.asarray(model.readout.c)}
    return cell_to_torch(model.cell), linear
