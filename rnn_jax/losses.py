"""Squared-error loss for one sequence, and its mean over a batch (``vmap`` on top)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rnn_jax.cells import get_activation, readout, readout_all
from rnn_jax.unroll import CellParams, Truncation, cell_name, check_params, check_target, dims, predict


def check_batch(params: CellParams, xs: Array, ys: Array, target: str) -> None:
    """Check that a batch agrees with the parameters; errors name the argument and shapes.

    Shapes are static, so this costs nothing inside ``jit``.
    """
    check_target(target)
    cell_name(params)
    input_dim, _, output_dim = dims(params)
    if xs.ndim != 3 or xs.shape[2] != input_dim:
        raise ValueError(f"xs must have shape (N, T, D={input_dim}); got {tuple(xs.shape)}")
    n, seq_len, _ = xs.shape
    if n < 1 or seq_len < 1:
        raise ValueError(f"xs must hold at least one example of at least one step; got {tuple(xs.shape)}")
    want = (n, output_dim) if target == "last" else (n, seq_len, output_dim)
    if tuple(ys.shape) != want:
        raise ValueError(
            f"ys must have shape {want} for target={target!r} with xs {tuple(xs.shape)}; "
            f"got {tuple(ys.shape)}"
        )
    check_params(params)


def output_errors(
    params: CellParams, hs: Float[Array, "T H"], ys: Array, target: str, scale: Array
) -> Float[Array, "T O"]:
    """``e_t = dL/dy_t`` for one sequence (``docs/bptt.md`` eq. 4), any cell: zero except the
    last step for ``"last"``. ``scale`` is the loss's averaging factor (``1/N``, or ``1/(N T)``)."""
    if target == "last":
        err = (readout(params, hs[-1]) - ys) * scale
        return jnp.zeros((hs.shape[0], err.shape[0]), hs.dtype).at[-1].set(err)
    return (readout_all(params, hs) - ys) * scale


def example_loss(
    params: CellParams,
    xs: Float[Array, "T D"],
    ys: Float[Array, " O"] | Float[Array, "T O"],
    *,
    activation: str = "sigmoid",
    target: str = "last",
    truncation: Truncation = None,
    remat: bool = False,
) -> Float[Array, ""]:
    """``0.5 * ||prediction - y||^2`` for one sequence (averaged over steps for ``"all"``)."""
    pred = predict(params, xs, activation=activation, target=target, truncation=truncation, remat=remat)
    return 0.5 * jnp.mean(jnp.sum((pred - ys) ** 2, axis=-1))


def loss(
    params: CellParams,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    activation: str = "sigmoid",
    target: str = "last",
    truncation: Truncation = None,
    remat: bool = False,
) -> Float[Array, ""]:
    """Mean over examples (and over steps for ``"all"``) of ``0.5 * ||prediction - y||^2``.

    Args:
        params: the network.
        xs: inputs, ``(N, T, D)``.
        ys: targets, ``(N, O)`` for ``target="last"`` or ``(N, T, O)`` for ``"all"``.
        activation: ``"sigmoid"``, ``"tanh"`` or ``"relu"``.
        target: ``"last"`` (many-to-one) or ``"all"`` (many-to-many).
        truncation: ``None`` for full BPTT, or the window length ``k >= 1`` (may be traced);
            see ``rnn_jax.unroll`` for the exact semantics.
        remat: recompute instead of store (memory ``O(sqrt(T))``); ``"last"`` with full BPTT.

    Returns:
        A scalar.
    """
    get_activation(activation)
    check_batch(params, xs, ys, target)
    per_example = jax.vmap(
        lambda x, y: example_loss(
            params, x, y, activation=activation, target=target, truncation=truncation, remat=remat
        )
    )
    return jnp.mean(per_example(xs, ys))


def batch_predict(
    params: CellParams, xs: Float[Array, "N T D"], *, activation: str = "sigmoid", target: str = "last"
) -> Float[Array, "N O"] | Float[Array, "N T O"]:
    """Predictions for a batch; the forward pass does not depend on truncation."""
    return jax.vmap(lambda x: predict(params, x, activation=activation, target=target))(xs)
