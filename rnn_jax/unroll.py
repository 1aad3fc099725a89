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

from rnn_jax.cells import ElmanParams, input_drive, readout, readout_all, recur

TARGETS = ("last", "all")

Truncation = int | Int[Array, ""] | None


def check_target(target: str) -> None:
    """Raise ``ValueError`` unless ``target`` is ``"last"`` or ``"all"``."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")


def check_truncation(truncation: Truncation) -> None:
    """Reject a concrete truncation below 1; traced values are checked by their caller."""
    if truncation is None or isinstance(truncation, jax.core.Tracer):
        return
    if jnp.ndim(truncation) != 0 or not jnp.issubdtype(jnp.asarray(truncation).dtype, jnp.integer):
        raise ValueError(f"truncation must be None or an integer >= 1; got {truncation!r}")
    if int(truncation) < 1:
        raise ValueError(f"truncation must be None or an integer >= 1; got {int(truncation)}")


def window_starts(seq_len: int, target: str, truncation: Truncation) -> Bool[Array, " T"] | None:
    """Mask of the steps whose incoming state is treated as a constant (``None``: no cuts).

    ``truncation`` may be a traced integer, so one compiled program serves every ``k``.
    """
    check_target(target)
    check_truncation(truncation)
    if truncation is None:
        return None
    t = jnp.arange(seq_len)
    k = jnp.asarray(truncation)
    if target == "last":
        return t == seq_len - k
    return t % k == 0


def unroll(
    params: ElmanParams,
    xs: Float[Array, "T D"],
    *,
    activation: str = "sigmoid",
    starts: Bool[Array, " T"] | None = None,
    h0: Float[Array, " H"] | None = None,
) -> Float[Array, "T H"]:
    """Run the cell over one sequence and return every hidden state ``h_1 .. h_T``.

    ``starts[t]`` marks a window start: the carried state is passed through
    ``stop_gradient`` before step ``t`` reads it.
    """
    if h0 is None:
        h0 = jnp.zeros(params.W.shape[0], params.W.dtype)
    drives = input_drive(params, xs)

    def step(h_prev, inputs):
        drive, cut = inputs
        if cut is not None:
            h_prev = jnp.where(cut, jax.lax.stop_gradient(h_prev), h_prev)
        h = recur(params, h_prev, drive, activation)
        return h, h

    _, hs = jax.lax.scan(step, h0, (drives, starts))
    return hs


def predict(
    params: ElmanParams,
    xs: Float[Array, "T D"],
    *,
    activation: str = "sigmoid",
    target: str = "last",
    truncation: Truncation = None,
    h0: Float[Array, " H"] | None = None,
) -> Float[Array, " O"] | Float[Array, "T O"]:
    """Predictions for one sequence: ``(O,)`` from ``h_T`` for ``"last"``, ``(T, O)`` for ``"all"``."""
    starts = window_starts(xs.shape[0], target, truncation)
    hs = unroll(params, xs, activation=activation, starts=starts, h0=h0)
    return readout(params, hs[-1]) if target == "last" else readout_all(params, hs)
