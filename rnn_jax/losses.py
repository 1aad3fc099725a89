"""Squared-error loss for one sequence, and its mean over a batch (``vmap`` on top)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rnn_jax.batch import check_batch, check_model, loss_scale
from rnn_jax.manual_grads import manual_rule_loss
from rnn_jax.model import RNN, predict
from rnn_jax.unroll import Truncation, check_truncation

BACKWARDS = ("autodiff", "manual")

__all__ = ["batch_predict", "check_batch", "check_model", "example_loss", "loss", "loss_scale"]


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
    backward: str = "autodiff",
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
        backward: how ``jax.grad`` differentiates it: ``"autodiff"`` (JAX's own rules) or
            ``"manual"``, the cell's hand-derived pass as a ``jax.custom_vjp``
            (``rnn_jax.manual_grads.manual_rule_loss``); the value is the same.

    Returns:
        A scalar.
    """
    check_batch(model, xs, ys, target)
    check_truncation(truncation)
    if backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {', '.join(BACKWARDS)}; got {backward!r}")
    if backward == "manual":
        if remat:
            raise ValueError("remat=True needs backward 'autodiff' (the hand-derived pass stores states)")
        return manual_rule_loss(model, xs, ys, target=target, truncation=truncation)
    per_example = jax.vmap(
        lambda x, y: example_loss(model, x, y, target=target, truncation=truncation, remat=remat)
    )
    return jnp.mean(per_example(xs, ys))


def batch_predict(
    model: RNN, xs: Float[Array, "N T D"], *, target: str = "last"
) -> Float[Array, "N O"] | Float[Array, "N T O"]:
    """Predictions for a batch; the forward pass does not depend on truncation."""
    return jax.vmap(lambda x: predict(model, x, target=target))(xs)
