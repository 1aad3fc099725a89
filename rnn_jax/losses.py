"""Squared-error loss for one sequence, and its mean over a batch (``vmap`` on top)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rnn_jax.model import RNN, dims, predict
from rnn_jax.unroll import Truncation, check_target, check_truncation


def check_model(model: object) -> None:
    """``TypeError`` unless ``model`` is an ``RNN``; ``ValueError`` unless its sizes agree."""
    if not isinstance(model, RNN):
        raise TypeError(
            f"model must be an rnn_jax.RNN (a cell and a readout; see rnn_jax.init_model); "
            f"got {type(model).__name__}"
        )
    model.check()


def check_batch(model: RNN, xs: Array, ys: Array, target: str) -> None:
    """Check that a batch agrees with the model; errors name the argument and shapes.

    Shapes are static, so this costs nothing inside ``jit``.
    """
    check_target(target)
    check_model(model)
    input_dim, _, output_dim = dims(model)
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


def loss_scale(xs: Array, target: str) -> Array:
    """``d(mean over N examples [and T steps]) / d(per-step loss)``: ``1/N`` or ``1/(N T)``."""
    n, seq_len, _ = xs.shape
    return jnp.asarray(1.0 / (n if target == "last" else n * seq_len), xs.dtype)


def example_loss(
    model: RNN,
    xs: Float[Array, "T D"],
    ys: Float[Array, " O"] | Float[Array, "T O"],
    *,
    target: str = "last",
    truncation: Truncation = None,
    remat: bool = False,
) -> Float[Array, ""]:
    """``0.5 * ||prediction - y||^2`` for one sequence (averaged over steps for ``"all"``)."""
    pred = predict(model, xs, target=target, truncation=truncation, remat=remat)
    return 0.5 * jnp.mean(jnp.sum((pred - ys) ** 2, axis=-1))


def loss(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    target: str = "last",
    truncation: Truncation = None,
    remat: bool = False,
) -> Float[Array, ""]:
    """Mean over examples (and over steps for ``"all"``) of ``0.5 * ||prediction - y||^2``.

    Args:
        model: an ``RNN`` (any cell with a linear readout).
        xs: inputs, ``(N, T, D)``.
        ys: targets, ``(N, O)`` for ``target="last"`` or ``(N, T, O)`` for ``"all"``.
        target: ``"last"`` (many-to-one) or ``"all"`` (many-to-many).
        truncation: ``None`` for full BPTT, or the window length ``k >= 1`` (may be traced);
            see ``rnn_jax.unroll`` for the exact semantics.
        remat: recompute instead of store (memory ``O(sqrt(T))``); ``"last"`` with full BPTT.

    Returns:
        A scalar.
    """
    check_batch(model, xs, ys, target)
    check_truncation(truncation)
    per_example = jax.vmap(
        lambda x, y: example_loss(model, x, y, target=target, truncation=truncation, remat=remat)
    )
    return jnp.mean(per_example(xs, ys))


def batch_predict(
    model: RNN, xs: Float[Array, "N T D"], *, target: str = "last"
) -> Float[Array, "N O"] | Float[Array, "N T O"]:
    """Predictions for a batch; the forward pass does not depend on truncation."""
    return jax.vmap(lambda x: predict(model, x, target=target))(xs)
