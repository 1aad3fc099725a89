"""Multi-step forecasts from a one-step model: closed loop (predictions fed back as inputs)
and teacher forced (the true values fed in), for the error-against-horizon curve.

The model was trained on windows of ``W`` steps read from a zero state, so every forecast step
reads the last ``W`` values again in the same way: in closed loop those values include its own
earlier predictions, in teacher forcing they are the true ones. (Carrying the state past ``W``
steps instead asks the model for something it never learned: on the sine task that makes the
second step 300 times worse than the first.) Both need a model whose outputs are its inputs one
step later (targets = inputs, in the same order).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rnn_jax.errors import InputError
from rnn_jax.model import RNN, dims, predict


def closed_loop(params: RNN, xs: Float[Array, "W D"], horizon: int) -> Float[Array, "K D"]:
    """Predict the next step from the window, append the prediction, drop the oldest value,
    repeat ``horizon`` times."""
    input_dim, _, output_dim = dims(params)
    if input_dim != output_dim:
        raise InputError(f"closed-loop generation needs outputs = inputs; got D={input_dim}, O={output_dim}")

    def step(window, _):
        following = predict(params, window)
        return jnp.concatenate([window[1:], following[None]]), following

    return jax.lax.scan(step, xs, length=horizon)[1]


def teacher_forced(params: RNN, xs: Float[Array, "W D"], future: Float[Array, "K D"]) -> Float[Array, "K O"]:
    """One-step predictions of each of the ``K`` next steps, each from the ``W`` true values
    before it (``future`` holds the true next ``K`` inputs; its last row is never read)."""
    window, horizon = xs.shape[0], future.shape[0]
    longer = jnp.concatenate([xs, future[: horizon - 1]])
    starts = jnp.arange(horizon)
    windows = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(longer, s, window))(starts)
    return jax.vmap(lambda w: predict(params, w))(windows)


def batch_closed_loop(params, xs: Float[Array, "N W D"], horizon: int) -> Float[Array, "N K D"]:
    return jax.vmap(lambda x: closed_loop(params, x, horizon))(xs)


def batch_teacher_forced(
    params, xs: Float[Array, "N W D"], future: Float[Array, "N K D"]
) -> Float[Array, "N K O"]:
    return jax.vmap(lambda x, f: teacher_forced(params, x, f))(xs, future)
