"""Flax's ``GRUCell``, ``LSTMCell`` and ``SimpleCell`` parameters, linen and NNX, alone, inside
``nn.RNN`` (``{"cell": ...}``) or ``nn.Bidirectional`` (``{"forward_rnn": ..., "backward_rnn":
...}``), and a list of those for a stack of layers; a ``Dense``/``Linear`` readout.

Flax's dense kernels are ``(in, out)``, the transpose of ours. The layouts, by cell:

- linen ``GRUCell``: ``ir, iz, in`` (kernel ``(D, H)``, bias) and ``hr, hz`` (kernel) and ``hn``
  (kernel, bias): ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, our ``GRU(reset="after")``.
- NNX ``GRUCell``: ``dense_i`` (kernel ``(D, 3H)``, gates ``r, z, n``, bias) and ``dense_h``
  (kernel ``(H, 3H)``, no bias): the same cell with ``b_hn = 0``, so a GRU whose ``bh_n`` is not
  zero has no NNX counterpart.
- ``LSTMCell``, both: ``ii, if, ig, io`` (kernel) and ``hi, hf, hg, ho`` (kernel, bias); NNX
  spells the forget gate's input ``if_``.
- ``SimpleCell``: linen ``i`` (kernel, bias) and ``h`` (kernel); NNX ``dense_i``, ``dense_h``.
  Its ``residual=True`` form is not an Elman cell and is not detected: convert
  ``residual=False`` cells, with the cell's ``activation_fn`` given as ``activation``.

NNX parameters are its pure dicts: ``nnx.to_pure_dict(nnx.state(module))`` (an ``rngs`` entry
is ignored), and back with ``nnx.replace_by_pure_dict(state, params)`` and
``nnx.update(module, state)``. Flax's reverse RNN in ``nn.Bidirectional`` starts at each
sequence's last valid step and its outputs are concatenated forward first, as ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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

APIS = ("linen", "nnx")
_LSTM = ("i", "f", "g", "o")
_GRU = ("z", "r", "n")
_NNX_GRU_ORDER = (1, 0, 2)  # dense_i/dense_h stack r, z, n; ours z, r, n


def _params(tree: object, where: str) -> dict:
    if not isinstance(tree, Mapping):
        raise InputError(f"{where} must be a mapping of Flax parameters; got {type(tree).__name__}")
    return {k: v for k, v in tree.items() if k != "rngs"}


def _dense(p: dict, name: str, where: str, *, bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(kernel (in, out), bias (out,) or None)`` of the dense layer ``name``."""
    layer = _params(p.get(name), f"{where}[{name!r}]") if name in p else None
    if layer is None or "kernel" not in layer:
        raise InputError(f"{where} lacks [{name!r}]['kernel'] (a Flax dense layer's kernel (in, out))")
    kernel = float_array(f"{where}[{name!r}]['kernel']", layer["kernel"], ndim=2)
    if bias and "bias" not in layer:
        raise InputError(f"{where} lacks [{name!r}]['bias'], which this Flax cell's {name} layer has")
    b = float_array(f"{where}[{name!r}]['bias']", layer["bias"], ndim=1) if bias else None
    if b is not None:
        check_shape(f"{where}[{name!r}]['bias']", b, kernel.shape[1:], f"for a kernel of {kernel.shape}")
    return kernel, b


def _kernels(p: dict, where: str, names: Sequence[str], shape: tuple[int, int], *, bias: bool):
    """The named dense layers, each kernel checked against ``shape``: ``(kernels, biases)``."""
    kernels, biases = [], []
    for name in names:
        kernel, b = _dense(p, name, where, bias=bias)
        check_shape(f"{where}[{name!r}]['kernel']", kernel, shape, f"for H={shape[1]}")
        kernels.append(kernel.T)
        biases.append(b)
    return np.stack(kernels), (np.stack(biases) if bias else None)


def _cell(p: dict, where: str, activation):
    """One cell from its Flax parameters, the layout told by the names it holds."""
    keys = set(p)
    if {"ir", "iz", "in", "hr", "hz", "hn"} <= keys:
        wx_in, _ = _dense(p, "iz", where, bias=True)
        d, h = wx_in.shape
        wx, b = _kernels(p, where, [f"i{g}" for g in _GRU], (d, h), bias=True)
        wh, _ = _kernels(p, where, ["hz", "hr"], (h, h), bias=False)
        hn, bh_n = _dense(p, "hn", where, bias=True)
        check_shape(f"{where}['hn']['kernel']", hn, (h, h), f"for H={h}")
        return gru_cell(wx, np.concatenate([wh, hn.T[None]]), b, bh_n)
    forget = "if_" if "if_" in keys else "if"
    if {"ii", forget, "ig", "io", "hi", "hf", "hg", "ho"} <= keys:
        d, h = _dense(p, "ii", where, bias=False)[0].shape
        wx, _ = _kernels(p, where, ["ii", forget, "ig", "io"], (d, h), bias=False)
        wh, b = _kernels(p, where, [f"h{g}" for g in _LSTM], (h, h), bias=True)
        return lstm_cell(wx, wh, b)
    names = (
        ("i", "h")
        if {"i", "h"} <= keys
        else ("dense_i", "dense_h")
        if {"dense_i", "dense_h"} <= keys
        else None
    )
    if names is None:
        raise InputError(
            f"{where} holds {sorted(keys)}: not the parameters of a Flax GRUCell, LSTMCell or "
            "SimpleCell (linen or NNX)"
        )
    kernel_i, b = _dense(p, names[0], where, bias=True)
    kernel_h, _ = _dense(p, names[1], where, bias=False)
    d, h = kernel_i.shape[0], kernel_h.shape[0]
    if kernel_h.shape == (h, 3 * h):  # NNX's GRUCell: one dense layer for the three gates
        check_shape(f"{where}['dense_i']['kernel']", kernel_i, (d, 3 * h), f"for an NNX GRUCell with H={h}")
        wx, wh, b = (split_gates(a, _NNX_GRU_ORDER) for a in (kernel_i.T, kernel_h.T, b))
        return gru_cell(wx, wh, b, np.zeros(h, b.dtype))
    check_shape(f"{where}[{names[1]!r}]['kernel']", kernel_h, (h, h), "for a SimpleCell")
    check_shape(f"{where}[{names[0]!r}]['kernel']", kernel_i, (d, h), f"for a SimpleCell with H={h}")
    return elman_cell(kernel_i.T, kernel_h.T, b, activation)


def _one_direction(tree: object, where: str, activation):
    p = _params(tree, where)
    if set(p) == {"cell"}:  # nn.RNN's parameters hold its cell's
        return _cell(_params(p["cell"], f"{where}['cell']"), f"{where}['cell']", activation)
    return _cell(p, where, activation)


def _layer(tree: object, where: str, activation) -> Layer:
    p = _params(tree, where)
    if set(p) == {"params"}:  # linen's variables
        where, p = f"{where}['params']", _params(p["params"], f"{where}['params']")
    if {"forward_rnn", "backward_rnn"} <= set(p):
        return tuple(
            _one_direction(p[n], f"{where}[{n!r}]", activation) for n in ("forward_rnn", "backward_rnn")
        )
    return (_one_direction(p, where, activation),)


def from_flax(params: Mapping | Sequence[Mapping], *, activation="tanh", dropout: float = 0.0) -> Recurrence:
    """The recurrence computing what the Flax layers with these parameters compute.

    Args:
        params: one layer's parameters, linen or NNX (a cell's, an ``nn.RNN``'s or an
            ``nn.Bidirectional``'s; linen's ``{"params": ...}`` may be kept), or a list of them,
            bottom layer first, for a stack.
        activation: a ``SimpleCell``'s ``activation_fn`` (Flax's default is ``tanh``).
        dropout: between the layers of a stack, while training.

    Returns:
        An ``Elman``, ``GRU(reset="after")`` or ``LSTM`` cell, a ``Bidirectional`` pair, or a
        ``Stack`` of them.
    """
    trees = list(params) if isinstance(params, list | tuple) else [params]  # not a choice between cells
    if not trees:
        raise InputError("params lists no layers; give one layer's parameters or a list of them")
    layers = [
        _layer(t, "params" if len(trees) == 1 else f"params[{i}]", activation) for i, t in enumerate(trees)
    ]
    return assemble(layers, dropout=dropout)


def _dense_out(kernel, bias=None) -> dict:
    out = {"kernel": np.asarray(kernel).T}
    return out if bias is None else out | {"bias": np.asarray(bias)}


def _cell_params(cell, api: str) -> dict:
    kind = cell_kind(cell, "Flax")
    if kind == "rnn":
        names = ("i", "h") if api == "linen" else ("dense_i", "dense_h")
        return {names[0]: _dense_out(cell.U, cell.b), names[1]: _dense_out(cell.W)}
    wx, wh, b = (np.asarray(a) for a in (cell.Wx, cell.Wh, cell.b))
    if kind == "lstm":
        forget = "if" if api == "linen" else "if_"
        out = {name: _dense_out(w) for name, w in zip(["ii", forget, "ig", "io"], wx, strict=True)}
        return out | {f"h{g}": _dense_out(w, bias) for g, w, bias in zip(_LSTM, wh, b, strict=True)}
    if cell.reset != "after":
        raise InputError("Flax's GRUCell applies the reset gate after its product: use reset='after'")
    bh_n = np.asarray(cell.bh_n)
    if api == "nnx":
        if np.any(bh_n):
            raise InputError(
                "NNX's GRUCell has no candidate recurrent bias and this GRU's bh_n is not zero, so no "
                "NNX GRUCell computes it; use api='linen', whose GRUCell has one (hn's bias)"
            )
        return {
            "dense_i": _dense_out(join_gates(wx, _NNX_GRU_ORDER), join_gates(b, _NNX_GRU_ORDER)),
            "dense_h": _dense_out(join_gates(wh, _NNX_GRU_ORDER)),
        }
    out = {f"i{g}": _dense_out(w, bias) for g, w, bias in zip(_GRU, wx, b, strict=True)}
    return out | {"hz": _dense_out(wh[0]), "hr": _dense_out(wh[1]), "hn": _dense_out(wh[2], bh_n)}


def to_flax(recurrence: Recurrence, *, api: str = "linen") -> dict | list[dict]:
    """The parameters of the equivalent Flax layers, in ``api``'s layout (``"linen"`` or
    ``"nnx"``): ``{"cell": ...}`` for one ``nn.RNN`` (linen applies it to ``{"params": ...}``),
    ``{"forward_rnn": ..., "backward_rnn": ...}`` for ``nn.Bidirectional``, a list of these for
    a stack. An Elman cell maps to ``SimpleCell``, whose ``activation_fn`` must be the cell's."""
    if api not in APIS:
        raise InputError(f"api must be one of {', '.join(APIS)}; got {api!r}")
    out = []
    for cells in layers_of(recurrence, "Flax"):
        rnns = [{"cell": _cell_params(cell, api)} for cell in cells]
        out.append(rnns[0] if len(rnns) == 1 else {"forward_rnn": rnns[0], "backward_rnn": rnns[1]})
    return out[0] if len(out) == 1 else out


def model_from_flax(
    rnn_params: Mapping | Sequence[Mapping], dense_params: Mapping, *, activation="tanh", dropout: float = 0.0
) -> RNN:
    """A model from the recurrent layers' parameters (``from_flax``) and a ``Dense`` readout's
    (``kernel (H, O)``, ``bias (O,)``)."""
    recurrence = from_flax(rnn_params, activation=activation, dropout=dropout)
    p = _params(dense_params, "dense_params")
    p = _params(p["params"], "dense_params['params']") if set(p) == {"params"} else p
    missing = [n for n in ("kernel", "bias") if n not in p]
    if missing:
        raise InputError(
            f"dense_params lacks {', '.join(missing)} (a Dense layer's kernel (H, O) and bias (O,))"
        )
    kernel = float_array("dense_params['kernel']", p["kernel"], ndim=2)
    bias = float_array("dense_params['bias']", p["bias"], ndim=1)
    model = RNN(cell=recurrence, readout=readout(kernel.T, bias, recurrence.hidden_dim, "dense_params"))
    model.check()
    return model


def model_to_flax(model: RNN, *, api: str = "linen") -> tuple[dict | list[dict], dict]:
    """``(the recurrent layers' parameters, the Dense readout's)``; see ``to_flax``."""
    return to_flax(model.cell, api=api), _dense_out(model.readout.V, model.readout.c)
