"""Gradients carried forward in time (real-time recurrent learning): a stream learns with no
truncation and no stored history.

RTRL keeps the sensitivity ``P_t = dh_t/dtheta`` of the state to the weights and updates it
with each step, ``P_t = J_t P_{t-1} + I_t`` (``J_t = dh_t/dh_{t-1}``, ``I_t`` the step's own
``dh_t/dtheta``); the gradient of a loss at step ``t`` is then ``dL_t/dh_t P_t``, with nothing
stored per step. For a dense cell ``P`` has ``H x |theta|`` entries (``O(H^4)`` work per step
for an Elman cell). Two structures make it cheap:

- an **element-wise recurrence** (``Cell.ELEMENTWISE``: IndRNN) whose weights all have the unit
  axis first: unit ``i``'s state depends on row ``i`` of each weight only, so ``P`` has the
  weights' own shape (one sensitivity per weight), ``J_t`` is the diagonal
  ``Cell.recur_diagonal`` and the update is elementwise. This is **exact** RTRL, about twice a
  forward step (Zucchet et al., NeurIPS 2023).
- **SnAp-1** (Menick et al., ICLR 2021) for any cell of that layout with a dense recurrence
  (Elman): the same update with the diagonal of ``J_t`` only, keeping the sensitivities of the
  weights that act on a unit directly. An approximation; its gradient's cosine with the exact
  one is measured in ``tests/test_online.py`` and reported by ``rnn-jax gradcheck --online snap1``.

``I_t`` comes from one vector-Jacobian product of the step with a cotangent of ones: unit
``i``'s state is the only one that row ``i`` touches within a step, so the sum over units that
the product forms holds exactly the per-unit entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float

from rnn_jax.cells.base import Cell
from rnn_jax.errors import InputError

ONLINE = ("rtrl", "snap1")  # sensitivities in the weights' own shape
CARRIED = (*ONLINE, "uoro")  # and UORO's rank-one estimate (random: it needs a key per step)


class OnlineCarry(NamedTuple):
    """What a stream hands to its next window: the state and its sensitivity."""

    h: Float[Array, " H"]
    sensitivity: Cell  # the cell's weights' shapes: d h_i / d (row i of each weight)


def check_online_cell(cell, method: str) -> None:
    """Refuse a recurrence the method cannot carry forward, naming what it needs."""
    if method not in CARRIED:
        raise InputError(f"online must be one of {', '.join(CARRIED)}; got {method!r}")
    if not isinstance(cell, Cell):
        raise InputError(f"{method} carries one layer's sensitivities; got a {type(cell).__name__}")
    if method == "uoro":  # any cell: a JVP and a VJP of its step
        return
    if method == "rtrl" and not cell.ELEMENTWISE:
        raise InputError(
            f"exact rtrl needs a cell whose recurrence is element-wise (IndRNN); the {type(cell).__name__} "
            "cell's is dense: use snap1, its diagonal approximation"
        )
    if getattr(cell, "recur_diagonal", None) is None:
        raise InputError(f"{method} needs the cell's recur_diagonal; {type(cell).__name__} has none")
    if not isinstance(cell.initial_state(), jax.Array):
        raise InputError(
            f"{method} takes a cell whose state is one vector; {type(cell).__name__}'s is a tuple"
        )
    hidden = cell.hidden_dim
    odd = [
        str(leaf.shape)
        for leaf in jax.tree.leaves(eqx.filter(cell, eqx.is_array))
        if leaf.shape[:1] != (hidden,)
    ]
    if odd:
        raise InputError(
            f"{method} needs every weight of the cell with the unit axis first (H={hidden}); "
            f"{type(cell).__name__} has weights shaped {', '.join(odd)}"
        )


def initial_carry(cell: Cell, h0: Float[Array, " H"] | None = None) -> OnlineCarry:
    """The state ``h0`` (zeros by default), of which nothing yet depends on the weights."""
    weights = eqx.filter(cell, eqx.is_array)
    return OnlineCarry(cell.initial_state() if h0 is None else h0, jax.tree.map(jnp.zeros_like, weights))


def _unit_axis(v: Float[Array, " H"], leaf: Array) -> Array:
    """``v`` shaped to scale ``leaf (H, ...)`` row by row."""
    return v.reshape(v.shape + (1,) * (leaf.ndim - 1))


def online_step(cell: Cell, carry: OnlineCarry, x: Float[Array, " D"], keep=None) -> OnlineCarry:
    """One step of the state and of its sensitivity; a step ``keep`` skips changes neither."""
    h, sensitivity = carry
    weights, rest = eqx.partition(cell, eqx.is_array)
    new, pullback = jax.vjp(lambda w: eqx.combine(w, rest).step(h, x), weights)
    own = pullback(jnp.ones_like(new))[0]  # I_t: row i of each weight's effect on unit i
    drive = jax.tree.map(lambda d: d[0], cell.input_drive(x[None]))
    diagonal = cell.recur_diagonal(h, drive)
    moved = jax.tree.map(lambda p, i: _unit_axis(diagonal, p) * p + i, sensitivity, own)
    if keep is None:
        return OnlineCarry(new, moved)
    return OnlineCarry(
        jnp.where(keep, new, h), jax.tree.map(lambda a, b: jnp.where(keep, a, b), moved, sensitivity)
    )


def online_grads(
    model: eqx.Module,
    carry: OnlineCarry,
    xs: Float[Array, "T D"],
    ys: Array,
    weights: Float[Array, " T"],
    per_step: Callable[[Array, Array], Array],
    *,
    mask: Bool[Array, " T"] | None = None,
) -> tuple[Float[Array, ""], eqx.Module, OnlineCarry]:
    """``(loss, gradient, carry after the window)`` of ``sum_t weights[t] * per_step(y_t,
    target_t)`` over one window of steps of a model (an ``rnn_jax.model.RNN``: its ``cell``
    and ``readout``), the sensitivities carried in ``carry`` and out again; ``per_step`` is an
    objective's (``rnn_jax.objectives``).

    ``weights (T,)`` scores the state after each step (zeros leave it out: sparse targets);
    ``mask (T,)`` skips steps, as in ``rnn_jax.loss``: the state is carried through unchanged
    (so scoring the last step with a mask scores the last valid one's state). The gradient is
    the model's arrays (the readout's part by autodiff at each step); the sensitivities are not
    reset, so over a stream the gradient of each window reaches back to the stream's start
    (under the weights it had)."""
    cell, readout = model.cell, model.readout
    zero = jax.tree.map(jnp.zeros_like, eqx.filter(model, eqx.is_array))

    def step(state, inputs):
        carry, grads, total = state
        x, y, w, keep = inputs
        carry = online_step(cell, carry, x, keep)
        value, (d_readout, d_h) = jax.value_and_grad(
            lambda r, h: w * per_step(r(cell.hidden(h)), y), argnums=(0, 1)
        )(readout, carry.h)
        d_cell = jax.tree.map(lambda p: _unit_axis(d_h, p) * p, carry.sensitivity)
        this_step = eqx.tree_at(lambda g: (g.cell, g.readout), zero, (d_cell, d_readout))
        return (carry, jax.tree.map(jnp.add, grads, this_step), total + value), None

    (carry, grads, total), _ = jax.lax.scan(
        step, (carry, zero, jnp.zeros((), xs.dtype)), (xs, ys, weights, mask)
    )
    return total, grads, carry


class UoroCarry(NamedTuple):
    """UORO's rank-one sensitivity ``dh/dtheta ~ state_factor weight_factor^T`` and the state."""

    h: Any  # the cell's state
    state_factor: Float[Array, " n"]  # s~, the state's side (flattened)
    weight_factor: eqx.Module  # theta~, the weights' side (the cell's arrays)


def uoro_initial_carry(cell: Cell, h0=None) -> UoroCarry:
    h = cell.initial_state() if h0 is None else h0
    flat = ravel_pytree(h)[0]
    weights = jax.tree.map(jnp.zeros_like, eqx.filter(cell, eqx.is_array))
    return UoroCarry(h, jnp.zeros_like(flat), weights)


def _norm(tree) -> Float[Array, ""]:
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(tree)))


def uoro_step(cell: Cell, carry: UoroCarry, x, key, keep=None) -> UoroCarry:
    """One step of UORO (Tallec & Ollivier, ICLR 2018): with random signs ``nu``,
    ``s~ <- rho0 J s~ + rho1 nu`` and ``theta~ <- theta~ / rho0 + nu^T (df/dtheta) / rho1``, so
    that ``E[s~ theta~^T]`` is the exact sensitivity; ``rho0, rho1`` balance the factors' norms
    (the variance-reducing choice of the paper). Any cell: a JVP and a VJP of its step."""
    h, factor, weight_factor = carry
    weights, rest = eqx.partition(cell, eqx.is_array)
    flat_h, unravel = ravel_pytree(h)

    def step(w, state):
        return ravel_pytree(eqx.combine(w, rest).step(unravel(state), x))[0]

    new, pushed = jax.jvp(lambda s: step(weights, s), (flat_h,), (factor,))  # J s~
    signs = jax.random.rademacher(key, flat_h.shape, flat_h.dtype)
    _, pullback = jax.vjp(lambda w: step(w, flat_h), weights)
    drawn = pullback(signs)[0]  # nu^T df/dtheta
    tiny = jnp.finfo(flat_h.dtype).tiny ** 0.5
    rho0 = jnp.sqrt((_norm(weight_factor) + tiny) / (jnp.linalg.norm(pushed) + tiny))
    rho1 = jnp.sqrt((_norm(drawn) + tiny) / (jnp.linalg.norm(signs) + tiny))
    moved = UoroCarry(
        unravel(new),
        rho0 * pushed + rho1 * signs,
        jax.tree.map(lambda a, b: a / rho0 + b / rho1, weight_factor, drawn),
    )
    if keep is None:
        return moved
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), moved, carry)


def uoro_grads(
    model: eqx.Module,
    carry: UoroCarry,
    xs: Float[Array, "T D"],
    ys: Array,
    weights: Float[Array, " T"],
    per_step: Callable[[Array, Array], Array],
    key,
    *,
    mask: Bool[Array, " T"] | None = None,
) -> tuple[Float[Array, ""], eqx.Module, UoroCarry]:
    """``online_grads`` with UORO's unbiased rank-one estimate for any cell (dense ones
    included): the cell's part of the gradient is ``(dL/dh_t . s~_t) theta~_t`` per step, the
    readout's exact. One draw is noisy; the mean of many is the exact gradient."""
    cell, readout = model.cell, model.readout
    zero = jax.tree.map(jnp.zeros_like, eqx.filter(model, eqx.is_array))

    def step(state, inputs):
        carry, grads, total = state
        x, y, w, keep, step_key = inputs
        carry = uoro_step(cell, carry, x, step_key, keep)
        value, (d_readout, d_h) = jax.value_and_grad(
            lambda r, h: w * per_step(r(cell.hidden(h)), y), argnums=(0, 1)
        )(readout, carry.h)
        along = ravel_pytree(d_h)[0] @ carry.state_factor
        d_cell = jax.tree.map(lambda f: along * f, carry.weight_factor)
        this_step = eqx.tree_at(lambda g: (g.cell, g.readout), zero, (d_cell, d_readout))
        return (carry, jax.tree.map(jnp.add, grads, this_step), total + value), None

    keys = jax.random.split(key, xs.shape[0])
    (carry, grads, total), _ = jax.lax.scan(
        step, (carry, zero, jnp.zeros((), xs.dtype)), (xs, ys, weights, mask, keys)
    )
    return total, grads, carry
