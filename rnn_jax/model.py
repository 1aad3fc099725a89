"""A model: a cell composed with a linear readout, and its predictions for one sequence.

``RNN(cell, readout)`` is an array-only pytree (the cell's options are static fields), so
``jax.jit``, ``jax.grad``, optax and ``equinox.tree_serialise_leaves`` take it as it is.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from rnn_jax.cells import Cell, make_cell
from rnn_jax.cells.base import with_arrays
from rnn_jax.readout import Linear
from rnn_jax.unroll import (
    Truncation,
    final_state,
    final_state_remat,
    static_window,
    unroll,
    window_starts,
)


class RNN(eqx.Module):
    """Any cell with a linear readout ``y_t = V h_t + c``."""

    cell: Cell
    readout: Linear

    def check(self) -> None:
        """Raise ``ValueError`` unless the cell's and the readout's sizes agree."""
        self.cell.check()
        if self.readout.V.shape[1] != self.cell.hidden_dim or self.readout.c.shape != (self.output_dim,):
            raise ValueError(
                f"the readout (V {self.readout.V.shape}, c {self.readout.c.shape}) does not fit the "
                f"cell's hidden size H={self.cell.hidden_dim}"
            )

    @property
    def output_dim(self) -> int:
        return self.readout.output_dim

    def __call__(self, xs: Float[Array, "T D"], h0=None) -> Float[Array, "T O"]:
        """Outputs at every step of one sequence, ``(T, O)``."""
        return self.readout(unroll(self.cell, xs, h0=h0))


def with_weights(model: RNN, **arrays: Array) -> RNN:
    """``model`` with the named weights replaced, the cell's (``U``, ``Wh``, ...) and the
    readout's (``V``, ``c``) alike; shapes are checked by ``model.check()``."""
    readout = {n: a for n, a in arrays.items() if n in ("V", "c")}
    cell = {n: a for n, a in arrays.items() if n not in readout}
    for name in cell:
        if not hasattr(model.cell, name):
            raise ValueError(f"the {type(model.cell).__name__} cell has no weight {name!r}")
    out = RNN(cell=with_arrays(model.cell, **cell), readout=with_arrays(model.readout, **readout))
    out.check()
    return out


def dims(model: RNN) -> tuple[int, int, int]:
    """``(D, H, O)``: input, hidden and output sizes."""
    return model.cell.input_dim, model.cell.hidden_dim, model.output_dim


def init_model(
    cell: str,
    *,
    key: PRNGKeyArray,
    input_dim: int,
    hidden_dim: int,
    output_dim: int,
    init: str = "default",
    scale: float | Array = 1.0,
    dtype=jnp.float32,
    **options,
) -> RNN:
    """A model of the registered ``cell`` (``"elman"``, ``"gru"``, ...) with a fresh readout.

    ``init="tutorial"`` (uniform [0, 1) weights) is the Elman cell's option; ``options`` are the
    cell's own (``activation`` for Elman, ``reset`` for the GRU, ...)."""
    cell_key, readout_key = jax.random.split(key)
    if init != "default":
        options = {**options, "init": init}
    return RNN(
        cell=make_cell(
            cell,
            key=cell_key,
            input_dim=input_dim,
            hidden_dim=hidden_dim,
            scale=scale,
            dtype=dtype,
            **options,
        ),
        readout=Linear(key=readout_key, hidden_dim=hidden_dim, output_dim=output_dim, init=init, dtype=dtype),
    )


def init_elman(
    *,
    key: PRNGKeyArray,
    input_dim: int,
    hidden_dim: int,
    output_dim: int,
    activation="tanh",
    init: str = "default",
    scale: float | Array = 1.0,
    dtype=jnp.float32,
) -> RNN:
    """An Elman model (``rnn_jax.cells.Elman`` plus a readout); see ``init_model``."""
    return init_model(
        "elman",
        key=key,
        input_dim=input_dim,
        hidden_dim=hidden_dim,
        output_dim=output_dim,
        init=init,
        scale=scale,
        dtype=dtype,
        activation=activation,
    )


def predict(
    model: RNN,
    xs: Float[Array, "T D"],
    *,
    target: str = "last",
    truncation: Truncation = None,
    h0=None,
    remat: bool = False,
) -> Float[Array, " O"] | Float[Array, "T O"]:
    """Predictions for one sequence: ``(O,)`` from ``h_T`` for ``"last"``, ``(T, O)`` for ``"all"``.

    With ``target="last"`` and a Python ``int`` truncation ``k < T`` (static), the first
    ``T - k`` steps run as a separate scan on constants, so autodiff stores nothing for them and
    the backward pass covers ``k`` steps only; values equal the masked form used for a traced
    ``k`` up to rounding (the two scans compile apart: 1 ulp seen in float64).

    ``remat=True`` (``target="last"``, full BPTT) trades one more forward pass for memory that
    grows as ``sqrt(T)`` instead of ``T`` under autodiff (``final_state_remat``)."""
    cell = model.cell
    if remat:
        if target != "last" or truncation is not None:
            raise ValueError("remat=True needs target 'last' and full BPTT (truncation None)")
        return model.readout(cell.hidden(final_state_remat(cell, xs, h0=h0)))
    k = static_window(xs.shape[0], target, truncation)
    if k is not None:
        # The state entering the window is a constant, as the masked form makes it: no gradient
        # reaches the weights, the inputs or h0 through the steps before the window.
        entering = jax.lax.stop_gradient(final_state(cell, xs[:-k], h0=h0))
        return model.readout(cell.hidden(final_state(cell, xs[-k:], h0=entering)))
    starts = window_starts(xs.shape[0], target, truncation)
    if target == "last":  # only h_T is read: nothing per step to write
        return model.readout(cell.hidden(final_state(cell, xs, starts=starts, h0=h0)))
    return model.readout(unroll(cell, xs, starts=starts, h0=h0))
