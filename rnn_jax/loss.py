"""The loss of one batch (``vmap`` over examples), for either objective, any mask and target."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rnn_jax.batch import BatchOptions, batch_loss, batch_outputs, check_batch, check_model, prepare
from rnn_jax.cells.parallel import in_parallel
from rnn_jax.errors import InputError, InputTypeError
from rnn_jax.manual import hand_rule_loss
from rnn_jax.model import RNN, predict
from rnn_jax.objectives import get_objective
from rnn_jax.unroll import Truncation

# The gradient algorithms, by one name everywhere (configs, commands, ``loss``): JAX's own
# rules, the hand-derived pass, and the tutorial's wrong pass (a labelled specimen). Each place
# takes those that apply to it: ``loss`` differentiates by the first two.
BACKWARDS = ("autodiff", "manual", "tutorial")

__all__ = [
    "BatchOptions",
    "batch_predict",
    "check_batch",
    "check_model",
    "example_loss",
    "loss",
    "options_loss",
]


def example_loss(
    model: RNN,
    xs: Float[Array, "T D"],
    ys: Array,
    *,
    target: str = "last",
    truncation: Truncation = None,
    remat: bool = False,
    objective: str = "squared",
) -> Float[Array, ""]:
    """The loss of one sequence: at its last step, or averaged over its steps."""
    pred = predict(model, xs, target=target, truncation=truncation, remat=remat)
    return jnp.mean(get_objective(objective).per_step(pred, ys))


def loss(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Array,
    *,
    target: str = "last",
    truncation: Truncation = None,
    remat: bool = False,
    backward: str = "autodiff",
    objective: str = "squared",
    lengths: Array | None = None,
    mask: Array | None = None,  # (N, T) booleans; checked by resolve_mask
    h0=None,
    key: PRNGKeyArray | None = None,
    unroll: int = 1,
    traced_checks: bool = True,
    method: str = "sequential",
) -> Float[Array, ""]:
    """The mean loss of a batch: over examples for ``"last"``, over valid steps for ``"all"``.

    Args:
        model: an ``RNN`` (a cell, or a stack of layers, with a linear readout).
        xs: inputs, ``(N, T, D)``.
        ys: for ``objective="squared"`` targets ``(N, O)`` (``"last"``) or ``(N, T, O)``
            (``"all"``); for ``"cross_entropy"`` integer labels ``(N,)`` or ``(N, T)`` in
            ``[0, O)``.
        target: ``"last"`` (many-to-one: the last valid step) or ``"all"`` (many-to-many).
        truncation: ``None`` for full BPTT, or the window length ``k >= 1`` (may be traced);
            see ``rnn_jax.unroll`` for the exact semantics.
        remat: recompute instead of store (memory ``O(sqrt(T))``); ``"last"`` with full BPTT.
        backward: how ``jax.grad`` differentiates it: ``"autodiff"`` (JAX's own rules) or
            ``"manual"``, the hand-derived pass as a ``jax.custom_vjp``
            (``rnn_jax.manual.manual_rule_loss``); the value is the same.
        objective: ``"squared"`` (``0.5 ||y - target||^2``) or ``"cross_entropy"`` (softmax
            over the outputs, in nats); see ``rnn_jax.objectives``.
        lengths: ``(N,)`` valid steps per example (right padding); or
        mask: ``(N, T)`` booleans, the steps that exist (holes anywhere); skipped steps carry
            the state through unchanged and are not scored.
        h0: initial states, one per example (leaves ``(N, ...)``); ``None``: zeros.
        key: turns on dropout between stacked layers (training); ``None``: off.
        unroll: steps per iteration of the time scans' ``lax.scan`` loop (its ``unroll``); the
            same values in a longer program. The autodiff pass only.
        traced_checks: check the values that are traced (NaN inputs, lengths, a traced window)
            inside the compiled program, as the eager call checks concrete ones; ``False``
            drops those checks (see ``docs/errors.md`` for what they cost).
        method: how every cell's states are found: ``"sequential"`` (the scan), or in
            parallel over time, ``"deer"``, ``"quasi_deer"``, ``"elk"`` or ``"quasi_elk"``
            (``rnn_jax.cells.parallel``, default solver options; wrap the cells in
            ``Parallel`` yourself for others). The
            same values and gradients once converged; it falls back to the scan where not.

    Returns:
        A scalar.
    """
    options = BatchOptions(target, truncation, objective, lengths, mask, h0, key, traced_checks)
    if method != "sequential":
        if remat:
            raise InputError(f"remat=True needs method 'sequential'; got {method!r}")
        model = in_parallel(model, method)  # refuses an unknown method by name
    return options_loss(model, xs, ys, options, remat=remat, backward=backward, unroll=unroll)


def options_loss(
    model: RNN,
    xs: Float[Array, "N T D"],
    ys: Array,
    options: BatchOptions,
    *,
    remat: bool = False,
    backward: str = "autodiff",
    unroll: int = 1,
) -> Float[Array, ""]:
    """``loss`` with its batch options already made (``rnn_jax.batch.BatchOptions``)."""
    batch = prepare(model, xs, ys, options)
    if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
        raise InputTypeError(f"unroll must be an integer >= 1; got {unroll!r}")
    if backward not in BACKWARDS[:2]:
        raise InputError(f"backward must be one of {', '.join(BACKWARDS[:2])}; got {backward!r}")
    if backward == "manual":
        if unroll != 1:
            raise InputError(
                "unroll applies to the autodiff pass; the hand-derived pass scans one step at a time"
            )
        if remat:
            raise InputError("remat=True needs backward 'autodiff' (the hand-derived pass stores states)")
        return hand_rule_loss(model, batch, options)
    if remat:
        if batch.mask is not None or batch.keys is not None or batch.h0 is not None or unroll != 1:
            raise InputError("remat=True takes no lengths, mask, h0, dropout key or unroll")
        per_example = jax.vmap(lambda x: predict(model, x, target=options.target, remat=True))
        return batch_loss(options.objective, per_example(batch.xs), batch)
    return batch_loss(options.objective, batch_outputs(model, batch, options, unroll=unroll), batch)


def batch_predict(
    model: RNN, xs: Float[Array, "N T D"], *, target: str = "last", mask: Bool[Array, "N T"] | None = None
) -> Array:
    """Predictions for a batch, ``(N, O)`` or ``(N, T, O)``; the forward pass does not depend on
    truncation."""
    return jax.vmap(lambda x, m: predict(model, x, target=target, mask=m))(xs, mask)
