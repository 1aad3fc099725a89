"""Hand-derived backpropagation through time for any cell that writes its backward pass.

``manual_grads`` is the derivation in ``docs/bptt.md`` (Elman), ``docs/gated.md`` (GRU, LSTM)
and ``docs/layers.md`` (stacks, bidirectional layers, masks, cross-entropy) written out, with no
autodiff anywhere: a forward pass stores the states, the objective gives the output errors and
the readout their gradient at every ``h_t``, and the recurrent part's own ``backward``
(``rnn_jax.cells.base.Recurrence.backward``) runs the reverse scans. It equals
``jax.grad(rnn_jax.loss)`` for every target, truncation form, mask and objective.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rnn_jax.batch import Batch, BatchOptions, batch_loss, batch_outputs, prepare
from rnn_jax.cells.base import CellGrads
from rnn_jax.cells.online import (
    check_online_cell,
    initial_carry,
    online_grads,
    uoro_grads,
    uoro_initial_carry,
)
from rnn_jax.errors import InputError
from rnn_jax.model import RNN, keyed, last_valid, prefix_window
from rnn_jax.objectives import get_objective
from rnn_jax.unroll import Truncation, static_window, window_starts


def _example_grads(model: RNN, x, y, mask, h0, key, weight, options: BatchOptions):
    """One sequence: the states the readout scored, their output errors, the recurrent part's
    ``CellGrads``, the predictions and the final state.

    With ``target="last"`` and a static ``k < T`` (causal model, no mask, no dropout) the
    states before the last ``k`` steps are a constant: they are run through without storing
    anything, and the backward pass covers the last ``k`` steps only (before them every
    gradient is zero)."""
    cell, readout = model.cell, model.readout
    target, truncation = options.target, options.truncation
    seq_len = x.shape[0]
    h0 = cell.initial_state() if h0 is None else h0
    k = prefix_window(model, seq_len, target, truncation, mask, key)
    last = last_valid(mask, seq_len)
    if k is not None:
        h0, x, cuts = cell.final(x[:-k], h0=h0), x[-k:], None
        last = k - 1
    else:
        cuts = window_starts(seq_len, target, truncation, last=None if mask is None else last)
    states = cell.states(x, h0=h0, mask=mask, **keyed(key))
    hs = cell.hidden(states)
    read = hs[last] if target == "last" else hs
    prediction = readout(read)
    errors = get_objective(options.objective).error(prediction, y) * jnp.expand_dims(weight, -1)
    dh_out = errors @ readout.V  # V^T e_t
    if target == "last" and mask is not None:  # the scored step differs between examples
        dh_out = jnp.zeros_like(hs).at[last].set(dh_out)
    grads = cell.backward(x, h0, states, dh_out, cuts, mask, **keyed(key))
    return read, errors, grads, prediction, jax.tree.map(lambda s: s[-1], states)


def _batch_grads(model: RNN, batch: Batch, options: BatchOptions):
    """Every example's scored states and errors, ``CellGrads``, predictions and final states.

    Per-step arrays that only feed the weight products come out time-major: the tape's leaves
    are ``(T, N, ...)``, and so are the scored states and errors for ``target="all"``
    (``(T, N, H)``, ``(T, N, O)``). A scan batched by ``vmap`` runs with the batch on axis 1,
    so this is the layout its outputs already have; asking for ``(N, T, ...)`` would transpose
    each of them (at N=100, T=50, H=100 these copies were a fifth of the pass). Every other
    leaf is ``(N, ...)``."""
    scored = batch.xs.shape[:1] if options.target == "last" else batch.xs.shape[:2]
    weights = jnp.broadcast_to(batch.weights, scored)  # one weight per scored step

    def one(x, y, m, h, k, w):
        return _example_grads(model, x, y, m, h, k, w, options)

    per_step = 1 if options.target == "all" else 0
    out_axes = (per_step, per_step, CellGrads(tape=1, xs=0, h0=0, dh=0), 0, 0)
    # The inputs go in time-major too: a cell's input drive for all steps, (T, N, G H) for a gated
    # cell, is then formed in the layout the scan reads (from batch-major inputs XLA formed it
    # batch-major and copied it, 2.4 of 31 ms for an LSTM at N=100, T=50, H=100).
    xs = jnp.swapaxes(batch.xs, 0, 1)
    mask = None if batch.mask is None else batch.mask.T
    in_axes = (1, 0, 1, 0, 0, 0)
    return jax.vmap(one, in_axes=in_axes, out_axes=out_axes)(
        xs, batch.ys, mask, batch.h0, batch.keys, weights
    )


def _steps(tree):
    """Every step of every example in one leading axis: leaves ``(T, N, ...) -> (T N, ...)``."""
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), tree)


def _model_grads(model: RNN, read, errors, grads, target: str) -> RNN:
    """The batch's weight gradients, each one product over all examples and steps."""
    if target == "last":  # one scored state per example: (N, H) and (N, O)
        read, errors = read[None], errors[None]
    readout_grads, _ = model.readout.backward(_steps(read), _steps(errors))
    return RNN(cell=model.cell.param_grads(_steps(grads.tape)), readout=readout_grads)


def manual_grads(model: RNN, xs: Float[Array, "N T D"], ys: Array, **options) -> RNN:
    """Gradient of ``rnn_jax.loss`` with the same arguments, derived by hand (no autodiff).

    Args:
        model: any cell (or stack of layers) that implements ``backward`` and ``param_grads``,
            with its readout.
        xs, ys: the batch, as ``rnn_jax.loss`` takes it.
        **options: the fields of ``rnn_jax.batch.BatchOptions`` (``target``, ``truncation``,
            ``objective``, ``lengths`` or ``mask``, ``h0``, ``key``, ``traced_checks``), as
            ``rnn_jax.loss`` takes them.

    Returns:
        A model of the same structure holding the gradients. The weight gradients are sums over
        examples and steps; each is formed as one product over all of them
        (``Recurrence.param_grads``, ``Linear.backward``).
    """
    return options_grads(model, xs, ys, BatchOptions(**options))


def options_grads(model: RNN, xs, ys, options: BatchOptions) -> RNN:
    """``manual_grads`` for options already made."""
    batch = prepare(model, xs, ys, options)
    read, errors, grads, _, _ = _batch_grads(model, batch, options)
    return _model_grads(model, read, errors, grads, options.target)


def _no_gradient(x):
    """The cotangent of an argument that has none (integers, booleans, keys): float0 zeros."""
    return None if x is None else jax.tree.map(lambda a: np.zeros(jnp.shape(a), jax.dtypes.float0), x)


def _value_and_grads(model: RNN, batch: Batch, options: BatchOptions):
    """The loss and the final states, and the loss's gradients with respect to the model, the
    inputs, the targets and h0."""
    target, objective = options.target, options.objective
    read, errors, grads, predictions, finals = _batch_grads(model, batch, options)
    xs = batch.xs
    covered = grads.xs.shape[1]  # a static window: the steps before it get no gradient
    dxs = jnp.zeros_like(xs).at[:, xs.shape[1] - covered :].set(grads.xs)
    if batch.h0 is None:
        dh0 = None
    elif covered < xs.shape[1]:  # h0 entered the constant steps before the window
        dh0 = jax.tree.map(jnp.zeros_like, batch.h0)
    else:
        dh0 = grads.h0
    if get_objective(objective).labels:
        dys = _no_gradient(batch.ys)
    else:  # dL/dy = -error, laid out as ys: (N, O), or (N, T, O) from the time-major errors
        dys = -(errors if target == "last" else jnp.swapaxes(errors, 0, 1))
    model_grads = _model_grads(model, read, errors, grads, target)
    return (batch_loss(objective, predictions, batch), finals), (model_grads, dxs, dys, dh0)


def _hand_rule(options: BatchOptions):
    """``(loss, final states)(model, batch, k)`` whose reverse-mode rule is the hand-derived
    pass (the final states get no gradient). ``options`` holds no arrays: its truncation is the
    static one, and ``k`` is a traced truncation, or ``None`` when the static one holds."""
    objective = options.objective

    def with_window(k) -> BatchOptions:
        return options if k is None else options.replace(truncation=k)

    @jax.custom_vjp
    def value(model, xs, ys, mask, h0, keys, weights, k):
        batch = Batch(xs, ys, mask, h0, keys, weights)
        outputs = batch_outputs(model, batch, options.replace(truncation=None))  # the value: no cuts
        loss_value = batch_loss(objective, outputs, batch)
        finals = jax.vmap(lambda x, m, h, key: model.cell.final(x, h0=h, mask=m, **keyed(key)))(
            xs, mask, h0, keys
        )
        return loss_value, finals

    def forward(model, xs, ys, mask, h0, keys, weights, k):
        batch = Batch(xs, ys, mask, h0, keys, weights)
        outputs, grads = _value_and_grads(model, batch, with_window(k))
        return outputs, (grads, mask, keys, weights, k)

    def backward(residuals, cotangents):
        g, _ = cotangents  # the final states are an output without a gradient
        (model_grads, dxs, dys, dh0), mask, keys, weights, k = residuals
        scaled = jax.tree.map(lambda a: g * a, (model_grads, dxs))
        dys = dys if get_objective(objective).labels else g * dys
        dh0 = None if dh0 is None else jax.tree.map(lambda a: g * a, dh0)
        no_grad = (_no_gradient(mask), dh0, _no_gradient(keys), jnp.zeros_like(weights), _no_gradient(k))
        return (*scaled, dys, *no_grad)

    value.defvjp(forward, backward)
    return value


def manual_rule_loss(
    model: RNN, xs: Float[Array, "N T D"], ys: Array, *, with_final_state: bool = False, **options
) -> Float[Array, ""] | tuple[Float[Array, ""], object]:
    """``rnn_jax.loss`` whose gradient under ``jax.grad`` (and ``jax.vjp``) is computed by the
    hand-derived pass: with respect to the model, the inputs, the targets and ``h0``.

    ``options`` are the fields of ``rnn_jax.batch.BatchOptions``, as ``rnn_jax.loss`` takes
    them. ``with_final_state=True`` returns ``(loss, final states)`` (leaves ``(N, ...)``, no
    gradient through them; use ``jax.value_and_grad(..., has_aux=True)``): what a stream hands
    to its next window, from the states the pass stores anyway.

    A ``jax.custom_vjp``: reverse mode over it works to any order (the hand-derived pass is
    itself differentiable JAX), forward mode (``jax.jvp``, ``jax.jacfwd``) is refused by JAX
    with "can't apply forward-mode autodiff (jvp) to a custom_vjp function". The loss value is
    computed as ``rnn_jax.loss`` computes it."""
    options = BatchOptions(**options)
    return hand_rule_loss(model, prepare(model, xs, ys, options), options, with_final_state=with_final_state)


def hand_rule_loss(model: RNN, batch: Batch, options: BatchOptions, *, with_final_state: bool = False):
    """``manual_rule_loss`` of a prepared batch."""
    static = options.static_truncation
    rule = _hand_rule(BatchOptions(options.target, options.truncation if static else None, options.objective))
    k = None if static else jnp.asarray(options.truncation)
    h0 = batch.h0
    if with_final_state and h0 is None:  # the final states come from a concrete start
        n = batch.xs.shape[0]
        h0 = jax.tree.map(lambda s: jnp.broadcast_to(s, (n, *s.shape)), model.cell.initial_state())
    loss_value, finals = rule(model, batch.xs, batch.ys, batch.mask, h0, batch.keys, batch.weights, k)
    return (loss_value, finals) if with_final_state else loss_value


def state_grads(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Array,
    *,
    target: str = "last",
    truncation: Truncation = None,
    objective: str = "squared",
) -> Float[Array, "N T H"]:
    """``dL/dh_t`` for every example and step, through the paths truncation keeps.

    How fast its norm falls with the lag ``T - t`` shows vanishing or exploding gradients.
    Needs a cell whose ``backward`` returns ``CellGrads.dh`` (Elman, IndRNN) and a traced or
    ``None`` truncation (a static ``k`` skips the early steps)."""
    if static_window(xs.shape[1], target, truncation) is not None:
        truncation = jnp.asarray(truncation)  # keep every step in the output
    options = BatchOptions(target=target, truncation=truncation, objective=objective)
    dh = _batch_grads(model, prepare(model, xs, ys, options), options)[2].dh
    if dh is None:
        raise InputError(f"the {type(model.cell).__name__} cell's backward does not report dL/dh_t")
    return dh


def carried_grads(
    model: RNN, xs: Float[Array, "N T D"], ys: Array, *, online: str = "rtrl", **options
) -> RNN:
    """The gradient of ``rnn_jax.loss`` (full BPTT: ``truncation`` is not taken) carried
    forward over each sequence instead of back (``rnn_jax.cells.online``): exact ``"rtrl"``
    for an element-wise cell, the ``"snap1"`` approximation for a dense one, or ``"uoro"``'s
    unbiased rank-one estimate for any cell (random: ``key`` draws its signs, one key per
    example). One layer, one direction; ``options`` as ``loss`` takes them (``target``,
    ``objective``, ``lengths`` or ``mask``, ``key``). Each example's loss is scored at its steps'
    weights, or for ``"last"`` at the final step (with a mask, the state carried from the last
    valid step)."""
    if options.get("truncation") is not None:
        raise InputError(f"online {online!r} reaches back to every step: truncation must be None")
    options = BatchOptions(**options)
    check_online_cell(model.cell, online)
    if online == "uoro" and options.key is None:
        raise InputError("online 'uoro' draws random signs at every step: give it a key")
    batch = prepare(model, xs, ys, options)
    n, seq_len = xs.shape[:2]
    if options.target == "all":
        weights, targets = jnp.broadcast_to(batch.weights, (n, seq_len)), batch.ys
    else:
        weights = jnp.zeros((n, seq_len), xs.dtype).at[:, -1].set(1.0 / n)
        targets = jnp.broadcast_to(batch.ys[:, None], (n, seq_len, *batch.ys.shape[1:]))
    per_step = get_objective(options.objective).per_step

    def one(x, y, w, m, key):
        if online == "uoro":
            return uoro_grads(model, uoro_initial_carry(model.cell), x, y, w, per_step, key, mask=m)[1]
        return online_grads(model, initial_carry(model.cell), x, y, w, per_step, mask=m)[1]

    keys = jax.random.split(options.key, n) if online == "uoro" else jnp.zeros(n)
    grads = jax.vmap(one)(batch.xs, targets, weights, batch.mask, keys)
    return eqx.combine(jax.tree.map(lambda g: jnp.sum(g, axis=0), grads), model)
