"""Multi-step forecasts from a one-step model: closed loop (predictions fed back as inputs)
and teacher forced (the true values fed in), for the error-against-horizon curve.

Both need a model whose outputs are its inputs one step later (targets = inputs, in the same
order), so that a prediction can be read back in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rnn_jax.cells import readout, readout_all
from rnn_jax.unroll import CellParams, cell_step, dims, hidden, unroll, unroll_states


def closed_loop(
    params: CellParams, xs: Float[Array, "W D"], horizon: int, activation: str = "sigmoid"
) -> Float[Array, "K D"]:
    """Read a window, then generate ``horizon`` steps, each prediction the next input."""
    input_dim, _, output_dim = dims(params)
    if input_dim != output_dim:
        raise ValueError(f"closed-loop generation needs outputs = inputs; got D={input_dim}, O={output_dim}")
    state = jax.tree.map(lambda s: s[-1], unroll_states(params, xs, activation=activation))

    def step(carry, _):
        state, prediction = carry
        state = cell_step(params, state, prediction, activation)
        following = readout(params, hidden(params, state))
        return (state, following), prediction

    first = readout(params, hidden(params, state))
    _, predictions = jax.lax.scan(step, (state, first), length=horizon)
    return predictions


def teacher_forced(
    params: CellParams, xs: Float[Array, "L D"], horizon: int, activation: str = "sigmoid"
) -> Float[Array, "K O"]:
    """One-step predictions of the last ``horizon`` steps, each from the true history:
    ``xs`` is the window followed by the ``horizon - 1`` true values that come after it."""
    hs = unroll(params, xs, activation=activation)
    return readout_all(params, hs[-horizon:])


def batch_closed_loop(
    params, xs: Float[Array, "N W D"], horizon: int, activation: str
) -> Float[Array, "N K D"]:
    return jax.vmap(lambda x: closed_loop(params, x, horizon, activation))(xs)


def batch_teacher_forced(
    params, xs: Float[Array, "N W D"], future: Float[Array, "N K D"], activation: str
) -> Float[Array, "N K O"]:
    """``future`` holds the true next ``K`` inputs of each window; the last is never read."""
    horizon = future.shape[1]
    longer = jnp.concatenate([xs, future[:, : horizon - 1]], axis=1)
    return jax.vmap(lambda x: teacher_forced(params, x, horizon, activation))(longer)
