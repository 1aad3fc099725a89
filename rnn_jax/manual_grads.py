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
from jaxtyping import Array, Float

from rnn_jax.losses import check_batch, loss_scale
from rnn_jax.model import RNN
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
    errors = (readout(read) - y) * scale
    dh_out = errors @ readout.V  # V^T e_t
    return read, errors, cell.backward(x, h0, states, dh_out, cuts)


def _batch_grads(model: RNN, xs, ys, target: str, truncation: Truncation):
    """Checked arguments, then every example's scored states, errors and ``CellGrads``
    (leaves with a leading ``N`` axis)."""
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
    read, errors, grads = _batch_grads(model, xs, ys, target, truncation)
    if target == "last":  # one scored state per example: (N, H) and (N, O)
        read, errors = read[:, None], errors[:, None]
    readout_grads, _ = model.readout.backward(_steps(read), _steps(errors))
    return RNN(cell=model.cell.param_grads(_steps(grads.tape)), readout=readout_grads)


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
