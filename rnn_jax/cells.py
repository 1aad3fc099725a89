"""The Elman cell: parameters, initialisation, activations and one step for one example.

Notation (used throughout the package and in ``docs/bptt.md``):

    a_t = U x_t + W h_{t-1} + b        pre-activation, (H,)
    h_t = f(a_t)                        hidden state,   (H,)
    y_t = V h_t + c                     readout,        (O,)

with ``D`` the input size, ``H`` the hidden size and ``O`` the output size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITS = ("default", "tutorial")


class ElmanParams(eqx.Module):
    """Weights of an Elman RNN; an array-only pytree, so it passes through ``jit``/``vmap``."""

    U: Float[Array, "H D"]  # input -> hidden
    W: Float[Array, "H H"]  # hidden -> hidden
    b: Float[Array, " H"]  # hidden bias
    V: Float[Array, "O H"]  # hidden -> output
    c: Float[Array, " O"]  # output bias


class Activation(NamedTuple):
    """A hidden nonlinearity and its derivative written as a function of its *output*.

    Expressing ``f'(a_t)`` through ``h_t = f(a_t)`` lets the hand-derived backward pass use
    only the stored states: sigmoid' = h(1-h), tanh' = 1-h^2, relu' = [h > 0].
    """

    fn: Callable[[Array], Array]
    grad_from_output: Callable[[Array], Array]


_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(jax.nn.sigmoid, lambda h: h * (1.0 - h)),
    "tanh": Activation(jnp.tanh, lambda h: 1.0 - h * h),
    "relu": Activation(jax.nn.relu, lambda h: (h > 0).astype(h.dtype)),
}


def get_activation(name: str) -> Activation:
    """Look up an activation by name; raises ``ValueError`` naming the valid choices."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {name!r}")
    return _ACTIVATIONS[name]


def init_elman(
    *,
    key: PRNGKeyArray,
    input_dim: int,
    hidden_dim: int,
    output_dim: int,
    init: str = "default",
    scale: float | Array = 1.0,
    dtype: DTypeLike = jnp.float32,
) -> ElmanParams:
    """Draw Elman parameters.

    ``init="default"``: Glorot-uniform ``U`` and ``V`` (variance 2 / (fan_in + fan_out),
    Glorot & Bengio 2010), an orthogonal ``W`` (Saxe et al. 2014) so that the recurrent map
    neither shrinks nor grows the state at the start, and zero biases. ``scale`` multiplies
    ``W`` (its spectral radius); it may be a traced value, so sweeps can vmap over it.

    ``init="tutorial"``: every weight uniform in [0, 1) and zero biases, as the tutorial.
    Such a ``W`` has spectral radius near ``H / 2``, which saturates a sigmoid at once.

    Returns:
        ``ElmanParams`` with ``U (H, D)``, ``W (H, H)``, ``b (H,)``, ``V (O, H)``, ``c (O,)``.
    """
    u_key, w_key, v_key = jax.random.split(key, 3)
    shapes = {"U": (hidden_dim, input_dim), "W": (hidden_dim, hidden_dim), "V": (output_dim, hidden_dim)}
    if init == "tutorial":
        # One draw split three ways: each random-number call costs compile time on CPU.
        sizes = [math.prod(shapes[n]) for n in "UWV"]
        flat = jax.random.uniform(u_key, (sum(sizes),), dtype)
        U, W, V = (
            part.reshape(shapes[n])
            for part, n in zip(jnp.split(flat, [sizes[0], sizes[0] + sizes[1]]), "UWV", strict=True)
        )
    elif init == "default":
        glorot = jax.nn.initializers.glorot_uniform()
        U = glorot(u_key, shapes["U"], dtype)
        W = jax.nn.initializers.orthogonal()(w_key, shapes["W"], dtype)
        V = glorot(v_key, shapes["V"], dtype)
    else:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    return ElmanParams(
        U=U,
        W=W * jnp.asarray(scale, dtype),
        b=jnp.zeros((hidden_dim,), dtype),
        V=V,
        c=jnp.zeros((output_dim,), dtype),
    )


def input_drive(params: ElmanParams, xs: Float[Array, "T D"]) -> Float[Array, "T H"]:
    """``U x_t + b`` for every step at once: one matmul instead of T small ones in the scan."""
    return xs @ params.U.T + params.b[None, :]


def recur(
    params: ElmanParams, h_prev: Float[Array, " H"], drive: Float[Array, " H"], activation: str
) -> Float[Array, " H"]:
    """The sequential part of a step: ``h_t = f(drive_t + W h_{t-1})``."""
    return get_activation(activation).fn(drive + params.W @ h_prev)


def elman_step(
    params: ElmanParams, h_prev: Float[Array, " H"], x: Float[Array, " D"], activation: str = "sigmoid"
) -> Float[Array, " H"]:
    """One Elman step for one example: ``h_t = f(U x_t + W h_{t-1} + b)``."""
    return recur(params, h_prev, params.U @ x + params.b, activation)


def readout(params: eqx.Module, h: Float[Array, " H"]) -> Float[Array, " O"]:
    """Linear output ``y = V h + c`` for one state (any cell: all share ``V`` and ``c``)."""
    return params.V @ h + params.c


def readout_all(params: eqx.Module, hs: Float[Array, "T H"]) -> Float[Array, "T O"]:
    """``readout`` at every step: ``hs (T, H) -> (T, O)``."""
    return hs @ params.V.T + params.c[None, :]
