"""What every batch entry point checks first, and the loss's averaging factor."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array

from rnn_jax.model import RNN, dims
from rnn_jax.unroll import check_target


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
