"""Hand-derived backpropagation through time for any cell that writes its backward pass.

``manual_grads`` is the derivation in ``docs/bptt.md`` (Elman) and ``docs/gated.md`` (GRU,
LSTM) written out, with no autodiff anywhere: a forward scan stores the states, the readout
gives the output errors and their gradient at every ``h_t``, and the cell's own ``backward``
(``rnn_jax.cells.base.Cell.backward``) runs the reverse scan. It equals
``jax.grad(rnn_jax.loss)`` for every target and truncation form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rnn_jax.batch import check_batch, loss_scale
from rnn_jax.model import RNN, predict
from rnn_jax.unroll import (
    Truncation,
    check_truncation,
    final_state,
    static_window,
    unroll_states,
    window_starts,
)


def _example_grads(model: RNN, x, y, *, target: str, truncation: Truncation, scale):
    """One sequence: the states the readout scored, their output errors, and the cell's
    ``CellGrads``.

    With ``target="last"`` and a static ``k < T`` the states before the last ``k`` steps are a
    constant: they are run through without storing anything, and the backward pass covers the
    last ``k`` steps only (before them every gradient is zero)."""
    cell, readout = model.cell, model.readout
    k = static_window(x.shape[0], target, truncation)
    if k is not None:
        h0, x, cuts = final_state(cell, x[:-k]), x[-k:], None
    else:
        h0, cuts = cell.initial_state(), window_starts(x.shape[0], target, truncation)
    states = unroll_states(cell, x, h0=h0)
    hs = cell.hidden(states)
    read = hs[-1] if target == "last" else hs  # (H,): only h_T is scored, which seeds the scan
    prediction = readout(read)
    errors = (prediction - y) * scale
    dh_out = errors @ readout.V  # V^T e_t
    return read, errors, cell.backward(x, h0, states, dh_out, cuts), prediction


def _batch_grads(model: RNN, xs, ys, target: str, truncation: Truncation):
    """Checked arguments, then every example's scored states, errors, ``CellGrads`` and
    predictions (leaves with a leading ``N`` axis)."""
    check_batch(model, xs, ys, target)
    check_truncation(truncation)
    scale = loss_scale(xs, target)
    return jax.vmap(
        lambda x, y: _example_grads(model, x, y, target=target, truncation=truncation, scale=scale)
    )(xs, ys)


def _steps(tree):
    """Every example's steps laid end to end: leaves ``(N, T, ...) -> (N T, ...)``."""
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), tree)


def manual_grads(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    target: str = "last",
    truncation: Truncation = None,
) -> RNN:
    """Gradient of ``rnn_jax.loss`` with the same arguments, derived by hand (no autodiff).

    Args and shapes as ``rnn_jax.loss``; any cell that implements ``backward`` and
    ``param_grads``. Returns a model of the same structure holding the gradients. The weight
    gradients are sums over examples and steps; each is formed as one product over all of them
    (``Cell.param_grads``, ``Linear.backward``).
    """
    read, errors, grads, _ = _batch_grads(model, xs, ys, target, truncation)
    return _model_grads(model, read, errors, grads, target)


def _model_grads(model: RNN, read, errors, grads, target: str) -> RNN:
    """The batch's weight gradients, each one product over all examples and steps."""
    if target == "last":  # one scored state per example: (N, H) and (N, O)
        read, errors = read[:, None], errors[:, None]
    readout_grads, _ = model.readout.backward(_steps(read), _steps(errors))
    return RNN(cell=model.cell.param_grads(_steps(grads.tape)), readout=readout_grads)


def _mean_loss(predictions: Array, ys: Array) -> Array:
    """``rnn_jax.loss``'s value from its predictions: ``(N, O)`` or ``(N, T, O)``."""
    per_step = 0.5 * jnp.sum((predictions - ys) ** 2, axis=-1)
    return jnp.mean(jnp.mean(per_step.reshape(per_step.shape[0], -1), axis=1))


def _value_and_grads(model: RNN, xs, ys, target: str, truncation: Truncation):
    """The loss and its gradients with respect to the model, the inputs and the targets."""
    read, errors, grads, predictions = _batch_grads(model, xs, ys, target, truncation)
    covered = grads.xs.shape[1]  # a static window: the steps before it get no gradient
    dxs = jnp.zeros_like(xs).at[:, xs.shape[1] - covered :].set(grads.xs)
    return _mean_loss(predictions, ys), (_model_grads(model, read, errors, grads, target), dxs, -errors)


def _hand_rule(target: str, static_truncation: int | None):
    """``loss(model, xs, ys, k)`` whose reverse-mode rule is the hand-derived pass. ``k`` is a
    traced truncation, or ``None`` when ``static_truncation`` (``None`` or a Python int) holds."""

    def truncation(k):
        return static_truncation if k is None else k

    @jax.custom_vjp
    def value(model, xs, ys, k):
        predictions = jax.vmap(lambda x: predict(model, x, target=target))(xs)
        return _mean_loss(predictions, ys)

    def forward(model, xs, ys, k):
        loss_value, grads = _value_and_grads(model, xs, ys, target, truncation(k))
        return loss_value, (grads, k)

    def backward(residuals, g):
        grads, k = residuals
        k_cotangent = None if k is None else np.zeros(jnp.shape(k), jax.dtypes.float0)
        return (*jax.tree.map(lambda a: g * a, grads), k_cotangent)

    value.defvjp(forward, backward)
    return value


def manual_rule_loss(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    target: str = "last",
    truncation: Truncation = None,
) -> Float[Array, ""]:
    """``rnn_jax.loss`` whose gradient under ``jax.grad`` (and ``jax.vjp``) is computed by the
    hand-derived pass: with respect to the model, the inputs and the targets.

    A ``jax.custom_vjp``: reverse mode over it works to any order (the hand-derived pass is
    itself differentiable JAX), forward mode (``jax.jvp``, ``jax.jacfwd``) is refused by JAX
    with "can't apply forward-mode autodiff (jvp) to a custom_vjp function". The loss value is
    computed as ``rnn_jax.loss`` computes it."""
    check_batch(model, xs, ys, target)
    check_truncation(truncation)
    static = truncation is None or (isinstance(truncation, int) and not isinstance(truncation, bool))
    rule = _hand_rule(target, truncation if static else None)
    return rule(model, xs, ys, None if static else jnp.asarray(truncation))


def state_grads(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    target: str = "last",
    truncation: Truncation = None,
) -> Float[Array, "N T H"]:
    """``dL/dh_t`` for every example and step, through the paths truncation keeps.

    How fast its norm falls with the lag ``T - t`` shows vanishing or exploding gradients.
    Needs a cell whose ``backward`` returns ``CellGrads.dh`` (Elman, IndRNN) and a traced or
    ``None`` truncation (a static ``k`` skips the early steps)."""
    if static_window(xs.shape[1], target, truncation) is not None:
        truncation = jnp.asarray(truncation)  # keep every step in the output
    dh = _batch_grads(model, xs, ys, target, truncation)[2].dh
    if dh is None:
        raise ValueError(f"the {type(model.cell).__name__} cell's backward does not report dL/dh_t")
    return dh
