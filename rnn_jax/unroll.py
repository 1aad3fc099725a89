"""Unrolling the cell over time with ``lax.scan``, and truncation as ``stop_gradient`` windows.

Truncation semantics (see ``docs/bptt.md`` for the equations and a picture):

* ``truncation=None``: full backpropagation through time.
* ``target="last"``, ``truncation=k``: only the last ``k`` steps carry gradient; the state
  entering step ``T-k`` (0-based) is a constant. ``k >= T`` is full BPTT.
* ``target="all"``, ``truncation=k``: time is cut into windows ``[0, k), [k, 2k), ...`` and the
  state entering each window is a constant, so the loss at a step reaches back to the start of
  its own window only.

Forward values never depend on truncation: ``stop_gradient`` is the identity on values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from rnn_jax.cells.base import Cell, Recurrence, State, unrolled
from rnn_jax.errors import InputError

TARGETS = ("last", "all")

Truncation = int | Int[Array, ""] | None


def check_target(target: str) -> None:
    """Raise ``ValueError`` unless ``target`` is ``"last"`` or ``"all"``."""
    if target not in TARGETS:
        raise InputError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")


def check_truncation(truncation: Truncation) -> None:
    """Reject a concrete truncation below 1; traced values are checked by their caller."""
    if truncation is None or isinstance(truncation, jax.core.Tracer):
        return
    if jnp.ndim(truncation) != 0 or not jnp.issubdtype(jnp.asarray(truncation).dtype, jnp.integer):
        raise InputError(f"truncation must be None or an integer >= 1; got {truncation!r}")
    if int(truncation) < 1:
        raise InputError(f"truncation must be None or an integer >= 1; got {int(truncation)}")


def static_window(seq_len: int, target: str, truncation: Truncation) -> int | None:
    """``k`` when the truncation is a concrete Python ``int`` that cuts a ``"last"`` target
    (``k < T``), else ``None``: the case where the steps before the window can skip autodiff."""
    if target != "last" or isinstance(truncation, bool) or not isinstance(truncation, int):
        return None
    return truncation if 1 <= truncation < seq_len else None


def window_starts(
    seq_len: int, target: str, truncation: Truncation, *, last: Int[Array, ""] | None = None
) -> Bool[Array, " T"] | None:
    """Mask of the steps whose incoming state is treated as a constant (``None``: no cuts).

    ``truncation`` may be a traced integer, so one compiled program serves every ``k``. For
    ``"last"`` the window is the ``k`` steps ending at the scored step ``last`` (default
    ``T - 1``; the last valid step of a shorter sequence). Windows count positions, skipped
    steps included.

    >>> window_starts(7, "all", 3).tolist()  # windows [0, 3), [3, 6), [6, 7)
    [True, False, False, True, False, False, True]
    >>> window_starts(7, "last", 3).tolist()  # the last 3 steps: the state entering step 4 is cut
    [False, False, False, False, True, False, False]
    """
    check_target(target)
    check_truncation(truncation)
    if truncation is None:
        return None
    t = jnp.arange(seq_len)
    k = jnp.asarray(truncation)
    if target == "last":
        return t == (seq_len - 1 if last is None else last) + 1 - k
    return t % k == 0


def unroll_states(
    cell: Recurrence,
    xs: Float[Array, "T D"],
    *,
    starts: Bool[Array, " T"] | None = None,
    h0: State | None = None,
    mask: Bool[Array, " T"] | None = None,
    unroll: int = 1,
) -> State:
    """Run any cell (or stack of them) over one sequence and return every state, leaves
    ``(T, ...)`` (the LSTM's ``(hs, cs)`` included). ``starts[t]`` marks a window start: the
    carried state is passed through ``stop_gradient`` before step ``t`` reads it. Where
    ``mask[t]`` is ``False`` the step is skipped: the state passes through unchanged.
    ``unroll`` is ``lax.scan``'s: steps per loop iteration, the same values."""
    return cell.states(xs, starts=starts, h0=h0, mask=mask, **unrolled(unroll))


def cell_step(cell: Cell, state: State, x: Float[Array, " D"]) -> State:
    """One step of any cell for one example: ``state_{t-1}, x_t -> state_t``."""
    return cell.step(state, x)


def final_state(
    cell: Recurrence,
    xs: Float[Array, "T D"],
    *,
    starts: Bool[Array, " T"] | None = None,
    h0: State | None = None,
    mask: Bool[Array, " T"] | None = None,
    unroll: int = 1,
) -> State:
    """The state after the last step; a cell keeps nothing per step (``O(1)`` memory in ``T``
    outside autodiff). Arguments as ``unroll_states``."""
    return cell.final(xs, starts=starts, h0=h0, mask=mask, **unrolled(unroll))


def remat_segment(seq_len: int) -> int:
    """The divisor of ``seq_len`` closest to its square root: the segment length that balances
    stored segment boundaries (``T / S``) against one recomputed segment (``S``)."""
    return min((d for d in range(1, seq_len + 1) if seq_len % d == 0), key=lambda d: abs(d - seq_len**0.5))


def final_state_remat(cell: Cell, xs: Float[Array, "T D"], *, h0: State | None = None) -> State:
    """``final_state`` whose gradient stores one state per segment of ``remat_segment(T)`` steps
    and recomputes each segment's steps during the backward pass: memory ``O(sqrt(T))`` states,
    for one more forward pass (Chen et al. 2016, "Training deep nets with sublinear memory")."""
    seq_len = xs.shape[0]
    size = remat_segment(seq_len)

    @jax.checkpoint
    def segment(cell, state, chunk):
        return final_state(cell, chunk, h0=state)

    start = cell.initial_state() if h0 is None else h0
    chunks = xs.reshape(seq_len // size, size, xs.shape[1])
    return jax.lax.scan(lambda state, chunk: (segment(cell, state, chunk), None), start, chunks)[0]


def unroll(
    cell: Recurrence,
    xs: Float[Array, "T D"],
    *,
    starts: Bool[Array, " T"] | None = None,
    h0: State | None = None,
    mask: Bool[Array, " T"] | None = None,
) -> Float[Array, "T H"]:
    """Every hidden vector ``h_1 .. h_T`` of one sequence, ``(T, H)``; arguments as
    ``unroll_states``."""
    return cell.hidden(unroll_states(cell, xs, starts=starts, h0=h0, mask=mask))
