"""The tutorial's backward pass, as written: a labelled specimen of what goes wrong.

Kept so that ``rnn-jax gradcheck --backward tutorial`` can measure how far off it is, and so
that the ``seed`` preset with ``--backward tutorial`` shows that it learns nothing. The correct
pass is ``rnn_jax.manual_grads``; ``../docs/bptt.md`` has the derivation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rnn_jax.cells import Elman
from rnn_jax.cells.base import with_arrays
from rnn_jax.errors import InputError
from rnn_jax.loss import check_batch
from rnn_jax.model import RNN
from rnn_jax.unroll import Truncation, check_truncation, unroll


def tutorial_grads(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Float[Array, "N O"] | Float[Array, "N T O"],
    *,
    target: str = "last",
    truncation: Truncation = None,
) -> RNN:
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

    Batched as the mean over examples, like ``rnn_jax.loss``. Only ``target="last"`` and the
    Elman cell exist in the tutorial.
    """
    check_batch(model, xs, ys, target)
    cell = model.cell
    if not isinstance(cell, Elman):  # a check of the argument, not a choice between cells
        raise InputError(
            f"the tutorial's backward pass exists for the Elman cell only; got {type(cell).__name__}"
        )
    if target != "last":
        raise InputError("target must be 'last' for the tutorial's backward pass; it has no 'all' form")
    check_truncation(truncation)
    n, seq_len, input_dim = xs.shape
    hidden = cell.hidden_dim
    k = seq_len if truncation is None else jnp.asarray(truncation)
    t = jnp.arange(seq_len)
    counts = ((seq_len - t) * jnp.minimum(t, k)).astype(xs.dtype)  # (T,)

    def per_example(x, y):
        hs = unroll(cell, x)
        hs_prev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]])
        delta = model.readout(hs[-1]) - y
        w_col = counts @ (hs_prev @ cell.W.T)  # sum_t count_t * W h_{t-1}, (H,)
        u_col = counts @ (x @ cell.U.T)  # sum_t count_t * U x_t, (H,)
        grads = with_arrays(
            cell,
            U=jnp.broadcast_to(u_col[:, None], (hidden, input_dim)),
            W=jnp.broadcast_to(w_col[:, None], (hidden, hidden)),
            b=jnp.zeros(hidden, xs.dtype),
        )
        readout = with_arrays(model.readout, V=jnp.outer(delta, jnp.sum(hs, axis=0)), c=jnp.zeros_like(delta))
        return RNN(cell=grads, readout=readout)

    return jax.tree.map(lambda g: jnp.mean(g, axis=0), jax.vmap(per_example)(xs, ys))
