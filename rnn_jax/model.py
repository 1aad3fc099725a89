"""A model: a recurrent part composed with a linear readout, and its predictions for one sequence.

``RNN(cell, readout)`` is an array-only pytree (the cell's options are static fields), so
``jax.jit``, ``jax.grad``, optax and ``equinox.tree_serialise_leaves`` take it as it is. Its
``cell`` is one cell, or cells composed by ``rnn_jax.cells.layers`` (``Stack``, ``Bidirectional``).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rnn_jax.cells import make_cell
from rnn_jax.cells.base import Recurrence, unrolled, with_arrays
from rnn_jax.cells.layers import Bidirectional, Stack
from rnn_jax.cells.readout import Linear
from rnn_jax.errors import InputError, check_size
from rnn_jax.unroll import Truncation, final_state_remat, static_window, unroll, window_starts


class RNN(eqx.Module):
    """Any cell (or stack of layers) with a linear readout ``y_t = V h_t + c``."""

    cell: Recurrence
    readout: Linear

    def check(self) -> None:
        """Raise ``ValueError`` unless the cell's and the readout's sizes agree."""
        self.cell.check()
        if self.readout.V.shape[1] != self.cell.hidden_dim or self.readout.c.shape != (self.output_dim,):
            raise InputError(
                f"the readout (V {self.readout.V.shape}, c {self.readout.c.shape}) does not fit the "
                f"cell's hidden size H={self.cell.hidden_dim}"
            )

    @property
    def output_dim(self) -> int:
        return self.readout.output_dim

    def __call__(self, xs: Float[Array, "T D"], h0=None, mask=None) -> Float[Array, "T O"]:
        """Outputs at every step of one sequence, ``(T, O)``."""
        return self.readout(unroll(self.cell, xs, h0=h0, mask=mask))


def with_weights(model: RNN, **arrays: Array) -> RNN:
    """``model`` with the named weights replaced, the cell's (``U``, ``Wh``, ...) and the
    readout's (``V``, ``c``) alike; shapes are checked by ``model.check()``."""
    readout = {n: a for n, a in arrays.items() if n in ("V", "c")}
    cell = {n: a for n, a in arrays.items() if n not in readout}
    for name in cell:
        if not hasattr(model.cell, name):
            raise InputError(f"the {type(model.cell).__name__} cell has no weight {name!r}")
    out = RNN(cell=with_arrays(model.cell, **cell), readout=with_arrays(model.readout, **readout))
    out.check()
    return out


def dims(model: RNN) -> tuple[int, int, int]:
    """``(D, H, O)``: input, hidden and output sizes."""
    return model.cell.input_dim, model.cell.hidden_dim, model.output_dim


def _per_layer(name: str, value, num_layers: int) -> tuple:
    """One value per layer: a single value repeated, or a list of exactly ``num_layers``."""
    if isinstance(value, str | int | float) or value is None:
        return (value,) * num_layers
    value = tuple(value)
    if len(value) != num_layers:
        raise InputError(
            f"{name} lists {len(value)} values for {num_layers} layers; give one or {num_layers}"
        )
    return value


def init_model(
    cell: str | Sequence[str],
    *,
    key: PRNGKeyArray,
    input_dim: int,
    hidden_dim: int | Sequence[int],
    output_dim: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    init: str | tuple = "default",
    scale: float | Array = 1.0,
    dtype=jnp.float32,
    **options,
) -> RNN:
    """A model of the registered ``cell`` (``"elman"``, ``"gru"``, ...) with a fresh readout.

    ``cell`` and ``hidden_dim`` may list one entry per layer (any mix of cells); a single value
    serves every layer. ``num_layers > 1`` stacks layers (``rnn_jax.cells.layers.Stack``, with
    ``dropout`` between them while training); ``bidirectional`` makes every layer a
    ``Bidirectional`` pair, whose outputs (``2 H`` features) the next layer or the readout reads.
    One layer, one direction is the cell itself. ``init="tutorial"`` (uniform [0, 1) weights), or
    a pair of initialisers for ``U`` and ``W``, is the Elman cell's option; ``options`` are the
    cells' own (``activation``, ``reset``, ...).

    >>> import jax
    >>> sizes = {"input_dim": 3, "hidden_dim": 8, "output_dim": 2}
    >>> model = init_model("gru", key=jax.random.key(0), **sizes, reset="before")
    >>> model.cell.Wh.shape, model.readout.V.shape  # three gates of (H, H); V is (O, H)
    ((3, 8, 8), (2, 8))
    """
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise InputError(f"num_layers must be an integer >= 1; got {num_layers!r}")
    if num_layers == 1 and dropout:
        raise InputError(f"dropout acts between layers; with num_layers=1 it must be 0, got {dropout}")
    names = _per_layer("cell", cell, num_layers)
    sizes = [check_size("hidden_dim", size) for size in _per_layer("hidden_dim", hidden_dim, num_layers)]
    input_dim, output_dim = check_size("input_dim", input_dim), check_size("output_dim", output_dim)
    if init != "default":
        options = {**options, "init": init}
    cell_key, readout_key = jax.random.split(key)
    layer_keys = jax.random.split(cell_key, num_layers)
    layers, width = [], input_dim
    for name, size, layer_key in zip(names, sizes, layer_keys, strict=True):

        def build(make_key, name=name, size=size, width=width):
            return make_cell(
                name, key=make_key, input_dim=width, hidden_dim=size, scale=scale, dtype=dtype, **options
            )

        if bidirectional:
            ahead_key, back_key = jax.random.split(layer_key)
            layers.append(Bidirectional(forward=build(ahead_key), reverse=build(back_key)))
        else:
            # One layer keeps the key it always had, so a one-layer model draws the weights of old.
            layers.append(build(cell_key if num_layers == 1 else layer_key))
        width = layers[-1].hidden_dim
    body = layers[0] if num_layers == 1 else Stack(layers=tuple(layers), dropout=dropout)
    return RNN(
        cell=body,
        # A pair of initialisers is the Elman cell's (its U and W); the readout keeps its default.
        readout=Linear(
            key=readout_key,
            hidden_dim=width,
            output_dim=output_dim,
            init=init if isinstance(init, str) else "default",
            dtype=dtype,
        ),
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


def last_valid(mask: Bool[Array, " T"] | None, seq_len: int) -> Int[Array, ""] | int:
    """Index of the last step the mask keeps (``T - 1`` without a mask)."""
    if mask is None:
        return seq_len - 1
    return seq_len - 1 - jnp.argmax(mask[::-1])


def keyed(key: PRNGKeyArray | None) -> dict:
    """``{"key": key}`` when there is one: only a ``Stack`` with dropout takes a key."""
    return {} if key is None else {"key": key}


def prefix_window(model: RNN, seq_len: int, target: str, truncation: Truncation, mask, key) -> int | None:
    """``k`` when the steps before the last ``k`` can run as constants, outside autodiff: a
    static ``k < T`` on a ``"last"`` target, a causal model, no mask and no dropout key."""
    if mask is not None or key is not None or not model.cell.causal:
        return None
    return static_window(seq_len, target, truncation)


def predict(
    model: RNN,
    xs: Float[Array, "T D"],
    *,
    target: str = "last",
    truncation: Truncation = None,
    h0=None,
    remat: bool = False,
    mask: Bool[Array, " T"] | None = None,
    key: PRNGKeyArray | None = None,
    unroll: int = 1,
) -> Float[Array, " O"] | Float[Array, "T O"]:
    """Predictions for one sequence: ``(O,)`` for ``"last"``, ``(T, O)`` for ``"all"``.
    ``unroll`` is the time scans' ``lax.scan`` unroll (the same values).

    ``"last"`` reads the last step ``mask`` keeps (``h_T`` without a mask); skipped steps carry
    the state through unchanged. ``key`` turns on a stack's dropout (training).

    With ``target="last"`` and a Python ``int`` truncation ``k < T`` (static), the first
    ``T - k`` steps run as a separate scan on constants, so autodiff stores nothing for them and
    the backward pass covers ``k`` steps only; values equal the masked form used for a traced
    ``k`` up to rounding (the two scans compile apart: 1 ulp seen in float64).

    ``remat=True`` (``target="last"``, full BPTT) trades one more forward pass for memory that
    grows as ``sqrt(T)`` instead of ``T`` under autodiff (``final_state_remat``)."""
    cell, seq_len = model.cell, xs.shape[0]
    if remat:
        if target != "last" or truncation is not None or mask is not None or key is not None:
            raise InputError("remat=True needs target 'last', full BPTT, no mask and no dropout key")
        return model.readout(cell.hidden(final_state_remat(cell, xs, h0=h0)))
    k = prefix_window(model, seq_len, target, truncation, mask, key)
    if k is not None:
        # The state entering the window is a constant, as the masked form makes it: no gradient
        # reaches the weights, the inputs or h0 through the steps before the window.
        entering = jax.lax.stop_gradient(cell.final(xs[:-k], h0=h0, **unrolled(unroll)))
        return model.readout(cell.hidden(cell.final(xs[-k:], h0=entering, **unrolled(unroll))))
    last = last_valid(mask, seq_len)
    starts = window_starts(seq_len, target, truncation, last=None if mask is None else last)
    run = {"starts": starts, "h0": h0, "mask": mask, **unrolled(unroll), **keyed(key)}
    if target == "last" and cell.causal:  # the final state holds the last valid step's: nothing per step
        return model.readout(cell.hidden(cell.final(xs, **run)))
    hs = cell.hidden(cell.states(xs, **run))
    return model.readout(hs[last] if target == "last" else hs)
