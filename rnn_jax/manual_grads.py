"""Hand-derived backpropagation through time, and the tutorial's (wrong) backward pass.

``manual_grads`` is the derivation in ``docs/bptt.md`` written out: a forward scan that stores
the states, a reverse scan that carries ``g_t = dL/dh_t`` from the future, and outer-product
sums for the weight gradients. It uses no autodiff and equals ``jax.grad(rnn_jax.loss)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from rnn_jax.cells import ElmanParams, get_activation, readout
from rnn_jax.gated_grads import gated_manual_grads
from rnn_jax.losses import check_batch, output_errors
from rnn_jax.unroll import (
    CellParams,
    Truncation,
    check_truncation,
    final_state,
    static_window,
    unroll,
    window_starts,
)


def _backward_scan(
    params: ElmanParams,
    hs: Float[Array, "T H"],
    dh_last: Float[Array, " H"],
    dh_out: Float[Array, "T H"] | None,
    cuts: Bool[Array, " T"] | None,
    activation: str,
) -> tuple[Float[Array, "T H"], Float[Array, "T H"]]:
    """Reverse scan of eqs. 5-6: ``delta_t = (V^T e_t + g_t) * f'(a_t)``, then
    ``g_{t-1} = W^T delta_t`` unless step ``t`` starts a window (its input state is a constant).

    ``dh_last`` starts the carried ``g``: zero, or ``V^T e_T`` for a last-step target, which
    then passes ``dh_out=None`` and reads no per-step array; else ``dh_out`` holds ``V^T e_t``
    for every step. ``cuts=None``: no window starts.

    Returns ``delta_t = dL/da_t`` and ``dL/dh_t = V^T e_t + g_t``, both ``(T, H)``.
    """
    f_prime = get_activation(activation).grad_from_output

    def step(g, inputs):
        h, dh_readout, cut = inputs
        dh = g if dh_readout is None else dh_readout + g
        delta = dh * f_prime(h)  # here, not as a (T, H) array written before the scan and read back
        g_prev = delta @ params.W  # W^T delta
        if cut is not None:
            g_prev = jnp.where(cut, jnp.zeros_like(g_prev), g_prev)
        return g_prev, (delta, dh)

    _, (deltas, dhs) = jax.lax.scan(step, dh_last, (hs, dh_out, cuts), reverse=True)
    return deltas, dhs


def _forward_backward(params, xs, ys, activation, target, truncation):
    """States, output errors, ``dL/da_t`` and ``dL/dh_t`` for a batch: four ``(N, T, .)`` arrays."""
    get_activation(activation)
    check_batch(params, xs, ys, target)
    cuts = window_starts(xs.shape[1], target, truncation)
    scale = _loss_scale(xs, target)

    def per_example(x, y):
        hs = unroll(params, x, activation=activation)
        es = output_errors(params, hs, y, target, scale)
        dh_out = es @ params.V  # V^T e_t, (T, H)
        if target == "last":  # only e_T is nonzero: it starts the reverse scan
            deltas, dhs = _backward_scan(params, hs, dh_out[-1], None, cuts, activation)
        else:
            deltas, dhs = _backward_scan(params, hs, jnp.zeros_like(dh_out[-1]), dh_out, cuts, activation)
        return hs, es, deltas, dhs

    return jax.vmap(per_example)(xs, ys)


def _last_window_grads(params: ElmanParams, xs, ys, activation: str, k: int) -> ElmanParams:
    """``manual_grads`` for ``target="last"`` and a static ``k < T``: the reverse scan and the
    weight sums cover the last ``k`` steps only (before them every ``delta`` is zero)."""
    get_activation(activation)
    check_batch(params, xs, ys, "last")
    scale = _loss_scale(xs, "last")

    def per_example(x, y):
        entering = final_state(params, x[:-k], activation=activation)  # nothing stored per step
        tail = unroll(params, x[-k:], activation=activation, h0=entering)
        es = output_errors(params, tail, y, "last", scale)
        deltas, _ = _backward_scan(params, tail, es[-1] @ params.V, None, None, activation)
        return jnp.concatenate([entering[None], tail[:-1]]), tail, es, deltas

    hs_prev, hs, es, deltas = jax.vmap(per_example)(xs, ys)
    return _weight_grads(deltas, xs[:, -k:], hs_prev, es, hs)


def _weight_grads(deltas, xs, hs_prev, es, hs) -> ElmanParams:
    """Eqs. 7-8: the weight gradients as sums of outer products over examples and steps; every
    argument is ``(N, T', .)`` over the steps the backward pass covered."""
    return ElmanParams(
        U=jnp.einsum("nth,ntd->hd", deltas, xs),
        W=jnp.einsum("nth,ntk->hk", deltas, hs_prev),
        b=jnp.sum(deltas, axis=(0, 1)),
        V=jnp.einsum("nto,nth->oh", es, hs),
        c=jnp.sum(es, axis=(0, 1)),
    )


def _loss_scale(xs: Array, target: str) -> Array:
    """``d(mean over N examples [and T steps]) / d(per-step loss)``: ``1/N`` or ``1/(N T)``."""
    n, seq_len, _ = xs.shape
    return jnp.asarray(1.0 / (n if target == "last" else n * seq_len), xs.dtype)


def manual_grads(
    params: CellParams,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    activation: str = "sigmoid",
    target: str = "last",
    truncation: Truncation = None,
) -> CellParams:
    """Gradient of ``rnn_jax.loss`` with the same arguments, derived by hand (no autodiff).

    Args and shapes as ``rnn_jax.loss``; any cell (Elman, GRU, LSTM; ``activation`` is the
    Elman cell's). Returns parameters of the same type holding the gradients.
    Reference: ``docs/bptt.md`` eqs. 4-8 (Elman), ``docs/gated.md`` (GRU, LSTM).
    """
    if not isinstance(params, ElmanParams):
        check_batch(params, xs, ys, target)
        check_truncation(truncation)
        seq_len = xs.shape[1]
        starts = window_starts(seq_len, target, truncation)
        cuts = jnp.zeros(seq_len, bool) if starts is None else starts
        return gated_manual_grads(params, xs, ys, target=target, cuts=cuts, scale=_loss_scale(xs, target))
    k = static_window(xs.shape[1], target, truncation)
    if k is not None:
        return _last_window_grads(params, xs, ys, activation, k)
    hs, es, deltas, _ = _forward_backward(params, xs, ys, activation, target, truncation)
    h0 = jnp.zeros_like(hs[:, :1])
    hs_prev = jnp.concatenate([h0, hs[:, :-1]], axis=1)  # h_{t-1} for every step
    return _weight_grads(deltas, xs, hs_prev, es, hs)


def state_grads(
    params: ElmanParams,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    activation: str = "sigmoid",
    target: str = "last",
    truncation: Truncation = None,
) -> Float[Array, "N T H"]:
    """``dL/dh_t`` for every example and step, through the paths truncation keeps.

    How fast its norm falls with the lag ``T - t`` shows vanishing or exploding gradients.
    """
    return _forward_backward(params, xs, ys, activation, target, truncation)[3]


def tutorial_grads(
    params: ElmanParams,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    activation: str = "sigmoid",
    target: str = "last",
    truncation: Truncation = None,
) -> ElmanParams:
    """The tutorial's backward pass as written: WRONG, kept to show how far off it is.

    What it computes per example (``../shared``-style description in ``docs/bptt.md``), with
    ``k`` the truncation (``T`` when ``None``) and ``delta = y_T - y``:

    * ``dV = delta (sum_t h_t)^T``: every step's state against the *last* step's error.
    * Its inner loop pushes an error back through ``f'`` evaluated at the last step's
      *pre-activation*, but the result never reaches ``dU`` or ``dW``.
    * Instead, at step ``t`` the inner loop runs ``min(t, k)`` times and adds the column
      ``W h_{t-1}`` (resp. ``U x_t``) to an accumulator broadcast over every column; the
      accumulator is added to ``dW`` (``dU``) at every later step too, so step ``t`` counts
      ``(T - t) * min(t, k)`` times. Neither involves the error.
    * It has no biases: ``db`` and ``dc`` are zero.

    Batched as the mean over examples, like ``rnn_jax.loss``. Only ``target="last"`` exists
    in the tutorial.
    """
    get_activation(activation)
    check_batch(params, xs, ys, target)
    if target != "last":
        raise ValueError("target must be 'last' for the tutorial's backward pass; it has no 'all' form")
    check_truncation(truncation)
    n, seq_len, input_dim = xs.shape
    hidden = params.W.shape[0]
    k = seq_len if truncation is None else jnp.asarray(truncation)
    t = jnp.arange(seq_len)
    counts = ((seq_len - t) * jnp.minimum(t, k)).astype(xs.dtype)  # (T,)

    def per_example(x, y):
        hs = unroll(params, x, activation=activation)
        hs_prev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]])
        delta = readout(params, hs[-1]) - y
        w_col = counts @ (hs_prev @ params.W.T)  # sum_t count_t * W h_{t-1}, (H,)
        u_col = counts @ (x @ params.U.T)  # sum_t count_t * U x_t, (H,)
        return ElmanParams(
            U=jnp.broadcast_to(u_col[:, None], (hidden, input_dim)),
            W=jnp.broadcast_to(w_col[:, None], (hidden, hidden)),
            b=jnp.zeros(hidden, xs.dtype),
            V=jnp.outer(delta, jnp.sum(hs, axis=0)),
            c=jnp.zeros_like(delta),
        )

    return jax.tree.map(lambda g: jnp.mean(g, axis=0), jax.vmap(per_example)(xs, ys))
