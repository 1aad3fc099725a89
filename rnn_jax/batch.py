"""What every batch entry point checks first (shapes, labels, lengths and masks), and how the
loss weighs each scored step."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from rnn_jax.errors import InputError, InputTypeError
from rnn_jax.model import RNN, dims, predict
from rnn_jax.objectives import get_objective
from rnn_jax.unroll import Truncation, check_target, check_truncation


def check_model(model: object) -> None:
    """``TypeError`` unless ``model`` is an ``RNN``; ``ValueError`` unless its sizes agree."""
    if not isinstance(model, RNN):
        raise InputTypeError(
            f"model must be an rnn_jax.RNN (a cell and a readout; see rnn_jax.init_model); "
            f"got {type(model).__name__}"
        )
    model.check()


def _concrete(x) -> bool:
    """Whether ``x``'s values can be read now (not a tracer inside ``jit``/``vmap``/``grad``)."""
    return not isinstance(x, jax.core.Tracer)


def check_inputs(model: RNN, xs: Array, target: str) -> None:
    """The target's name, the model, and ``xs (N, T, D)`` against the model."""
    check_target(target)
    check_model(model)
    input_dim = dims(model)[0]
    if xs.ndim != 3 or xs.shape[2] != input_dim:
        raise InputError(f"xs must have shape (N, T, D={input_dim}); got {tuple(xs.shape)}")
    n, seq_len, _ = xs.shape
    if n < 1 or seq_len < 1:
        raise InputError(f"xs must hold at least one example of at least one step; got {tuple(xs.shape)}")


def check_batch(
    model: RNN,
    xs: Array,
    ys: Array,
    target: str,
    *,
    objective: str = "squared",
    mask: Array | None = None,
) -> None:
    """Check that a batch agrees with the model; errors name the argument and shapes.

    Shapes are static, so this costs nothing inside ``jit``; label ranges are checked when the
    labels are concrete (outside ``jit``).
    """
    check_inputs(model, xs, target)
    kind = get_objective(objective)
    _, _, output_dim = dims(model)
    n, seq_len, _ = xs.shape
    want = (n,) if target == "last" else (n, seq_len)
    if not kind.labels:
        want = (*want, output_dim)
    if tuple(ys.shape) != want:
        what = f" (integer labels for objective {objective!r})" if kind.labels else ""
        raise InputError(
            f"ys must have shape {want} for target={target!r}{what} with xs {tuple(xs.shape)}; "
            f"got {tuple(ys.shape)}"
        )
    if kind.labels:
        if not jnp.issubdtype(ys.dtype, jnp.integer):
            raise InputError(f"ys must hold integer class labels for {objective}; got dtype {ys.dtype}")
        if _concrete(ys):  # read on the host: inside a trace, jnp would make tracers of them
            valid = np.asarray(ys)
            if mask is not None and target == "all" and _concrete(mask):
                valid = valid[np.asarray(mask)]
            if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= output_dim):
                raise InputError(
                    f"ys labels must lie in [0, {output_dim}) (the model's output size, the vocabulary); "
                    f"got labels from {int(valid.min())} to {int(valid.max())}"
                )


def resolve_mask(xs: Array, target: str, *, lengths: Array | None, mask: Array | None) -> Array | None:
    """The ``(N, T)`` boolean mask of steps that exist, from ``lengths (N,)`` (right padding) or
    a ``mask (N, T)`` (holes anywhere), or ``None`` when neither is given."""
    n, seq_len, _ = xs.shape
    if lengths is not None and mask is not None:
        raise InputError("give lengths or mask, not both")
    if lengths is not None:
        if jnp.shape(lengths) != (n,) or not jnp.issubdtype(jnp.asarray(lengths).dtype, jnp.integer):
            raise InputError(
                f"lengths must be an integer array of shape (N={n},); got shape {jnp.shape(lengths)} "
                f"of {jnp.asarray(lengths).dtype}"
            )
        if _concrete(lengths):
            values = np.asarray(lengths)  # on the host: np.min(jax_array) would call its .min()
            low, high = int(values.min()), int(values.max())
            if low < 1 or high > seq_len:
                raise InputError(f"lengths must lie in [1, T={seq_len}]; got lengths from {low} to {high}")
        return jnp.arange(seq_len)[None, :] < jnp.asarray(lengths)[:, None]
    if mask is None:
        return None
    if jnp.shape(mask) != (n, seq_len) or jnp.asarray(mask).dtype != jnp.bool_:
        raise InputError(
            f"mask must be a boolean array of shape (N, T) = {(n, seq_len)}; got shape "
            f"{jnp.shape(mask)} of {jnp.asarray(mask).dtype}"
        )
    if _concrete(mask):
        empty = ~np.any(np.asarray(mask), axis=1)
        if target == "last" and empty.any():
            raise InputError(
                f"mask must keep at least one step of every example for target 'last'; example "
                f"{int(np.argmax(empty))} has none"
            )
        if not np.any(np.asarray(mask)):
            raise InputError("mask keeps no step at all")
    return mask


def check_finite(name: str, values: Array) -> None:
    """Refuse NaN or infinite entries in a concrete floating-point array (read on the host);
    traced values are checked inside the program (``checked_in_program``)."""
    if _concrete(values) and jnp.issubdtype(jnp.asarray(values).dtype, jnp.floating):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(np.asarray(values))))
        if bad:
            raise InputError(f"{name} holds {bad} NaN or infinite values; clean the data first")


def checked_in_program(xs: Array, ys: Array, options: BatchOptions, mask: Array | None) -> Array:
    """``xs``, tied to the checks of the values that are traced, so that the compiled program
    raises (``equinox.branched_error_if``: an ``EqxRuntimeError`` naming the argument) where
    ``prepare`` would have refused the same concrete values. Concrete values were checked on
    the host already and add nothing here."""
    n, seq_len, _ = xs.shape
    failures, messages = [], []

    def check(failed, message):
        failures.append(jnp.any(failed))
        messages.append(message)

    for name, values in (("xs", xs), ("ys", ys)):
        if not _concrete(values) and jnp.issubdtype(values.dtype, jnp.floating):
            check(~jnp.isfinite(values), f"{name} holds NaN or infinite values; clean the data first")
    lengths = options.lengths
    if lengths is not None and not _concrete(lengths):
        check((lengths < 1) | (lengths > seq_len), f"lengths must lie in [1, T={seq_len}]")
    elif options.mask is not None and not _concrete(options.mask) and options.target == "last":
        check(~jnp.any(mask, axis=1), "mask must keep at least one step of every example for target 'last'")
    if not options.static_truncation and not _concrete(options.truncation):
        check(jnp.asarray(options.truncation) < 1, "truncation must be None or an integer >= 1")
    if not failures:
        return xs
    failed = jnp.stack(failures)
    return eqx.branched_error_if(xs, jnp.any(failed), jnp.argmax(failed), messages)


def step_weights(xs: Array, target: str, mask: Array | None) -> Array:
    """Each scored step's share of the batch loss, ``d loss / d(loss at a step)``: ``1/N`` for
    ``"last"``; for ``"all"``, ``1/(N T)``, or with a mask one over the number of steps it
    keeps (the mean over valid steps), zero on skipped ones. Broadcasts against ``(N,)`` or
    ``(N, T)``."""
    n, seq_len, _ = xs.shape
    if target == "last":
        return jnp.asarray(1.0 / n, xs.dtype)
    if mask is None:
        return jnp.asarray(1.0 / (n * seq_len), xs.dtype)
    return mask.astype(xs.dtype) / jnp.sum(mask).astype(xs.dtype)


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How a batch is scored and which paths its gradient keeps: ``rnn_jax.loss``'s keywords
    besides the model and the arrays, checked once, when the options are made.

    The arrays (``lengths`` or ``mask``, ``h0``) are checked against the batch by ``prepare``.

    >>> BatchOptions(target="all", truncation=5).static_truncation
    True
    >>> BatchOptions(target="first")
    Traceback (most recent call last):
    ...
    rnn_jax.errors.InputError: target must be one of last, all; got 'first'
    """

    target: str = "last"  # "last" (many-to-one) or "all" (many-to-many)
    truncation: Truncation = None  # None: full BPTT; k >= 1, a Python int or a traced integer
    objective: str = "squared"  # "squared" or "cross_entropy" (rnn_jax.objectives)
    lengths: Array | None = None  # (N,) valid steps per example (right padding)
    mask: Array | None = None  # (N, T) booleans: the steps that exist (holes anywhere)
    h0: object = None  # initial states, leaves (N, ...); None: the cell's zeros
    key: PRNGKeyArray | None = None  # dropout between stacked layers; None: off
    # Check the traced values inside the compiled program (checked_in_program); False drops
    # those checks, for a hot loop that calls a bare gradient on data known to be clean.
    traced_checks: bool = True

    def __post_init__(self):
        check_target(self.target)
        check_truncation(self.truncation)
        get_objective(self.objective)

    @property
    def static_truncation(self) -> bool:
        """Whether the window length is known when tracing (``None`` or a Python ``int``), so
        it is compiled into the program; otherwise it is a traced integer and one program
        serves every length."""
        return self.truncation is None or (
            isinstance(self.truncation, int) and not isinstance(self.truncation, bool)
        )

    def replace(self, **changes) -> BatchOptions:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


class Batch(NamedTuple):
    """A checked batch: what every example of it needs besides the model."""

    xs: Array  # (N, T, D)
    ys: Array  # (N, O) / (N, T, O) targets, or (N,) / (N, T) labels
    mask: Array | None  # (N, T) steps that exist
    h0: object | None  # initial states, leaves (N, ...)
    keys: Array | None  # (N,) dropout keys
    weights: Array  # each scored step's share of the loss (step_weights)


def prepare(model: RNN, xs, ys, options: BatchOptions) -> Batch:
    """Check the arrays against the model and the options (errors name the argument) and put
    the batch in the form the passes read."""
    target, objective = options.target, options.objective
    check_inputs(model, xs, target)
    mask = resolve_mask(xs, target, lengths=options.lengths, mask=options.mask)
    check_batch(model, xs, ys, target, objective=objective, mask=mask)
    check_finite("xs", xs)
    check_finite("ys", ys)
    if options.traced_checks:
        xs = checked_in_program(xs, ys, options, mask)
    n = xs.shape[0]
    h0 = options.h0
    if h0 is not None:
        want = jax.tree.map(lambda s: (n, *jnp.shape(s)), model.cell.initial_state())
        got = jax.tree.map(jnp.shape, h0)
        if jax.tree.structure(got) != jax.tree.structure(want) or got != want:
            raise InputError(f"h0 must hold one initial state per example, shapes {want}; got {got}")
    if get_objective(objective).labels and mask is not None and target == "all":
        ys = jnp.where(mask, ys, 0)  # labels on skipped steps are never read; keep them in range
    keys = None if options.key is None else jax.random.split(options.key, n)
    return Batch(xs, ys, mask, h0, keys, step_weights(xs, target, mask))


def batch_outputs(model: RNN, batch: Batch, options: BatchOptions, *, unroll: int = 1) -> Array:
    """Every example's predictions: ``(N, O)`` for ``"last"``, ``(N, T, O)`` for ``"all"``."""
    target, truncation = options.target, options.truncation

    def one(x, m, h, k):
        return predict(model, x, target=target, truncation=truncation, mask=m, h0=h, key=k, unroll=unroll)

    return jax.vmap(one)(batch.xs, batch.mask, batch.h0, batch.keys)


def batch_loss(objective: str, predictions: Array, batch: Batch) -> Array:
    """The weighted sum of the per-step losses (the mean over examples, or over valid steps)."""
    per_step = get_objective(objective).per_step(predictions, batch.ys)
    if batch.mask is None:  # the mean of the examples' means, summed in the order it always was
        return jnp.mean(jnp.mean(per_step.reshape(per_step.shape[0], -1), axis=1))
    return jnp.sum(per_step * batch.weights)
