"""Parallel-in-time evaluation of any cell: the whole trajectory of states as the root of one
system, solved by Newton iterations whose linear steps are associative scans over time.

The states of one sequence satisfy ``s_t = f_t(s_{t-1})`` (``f_t`` is the cell's step with
input ``x_t``; a step the mask skips is the identity). Writing the trajectory ``S = (s_1 ..
s_T)`` as the unknown, each iteration linearises every step at the current guess,

    s_t = f_t(s'_{t-1}) + J_t (s_{t-1} - s'_{t-1}),        J_t = df_t/ds at s'_{t-1},

which is a linear recurrence ``s_t = J_t s_{t-1} + b_t``: affine maps composed by
``jax.lax.associative_scan``, depth ``O(log T)`` instead of ``T`` (DEER; Lim et al., ICLR 2024).
``method="deer"`` uses the dense ``n x n`` Jacobians (``O(T n^2)`` memory, ``n^3`` per combine);
``"quasi_deer"`` keeps their diagonals (Gonzalez et al., NeurIPS 2024): ``O(T n)`` memory and
elementwise combines, at the price of more iterations. Either way the first ``i`` states are
exact after ``i`` iterations (step 1 reads the exact ``s_0``, and so on), so ``T`` iterations
always suffice in exact arithmetic; Newton with exact Jacobians usually needs a handful.
``"elk"`` and ``"quasi_elk"`` take Levenberg-Marquardt steps instead, each the mean of a Kalman
smoother run in parallel over time (``trust_region_solve``), with the damping adapted from
step to step: bounded iterates where DEER's blow up, more iterations where DEER converges.

Each solve returns a ``Report`` (iterations, final residual ``max |s_t - f_t(s_{t-1})|``,
converged or not). Where it did not converge the sequential scan runs instead, inside the same
program (a ``while_loop`` that runs no step when every example converged, so under ``vmap`` a
batch pays for it only when one of its examples needs it).

Truncation. A window start ``starts[t]`` makes the state entering step ``t`` a constant for
the gradient. Values do not change, so the forward solve ignores it. In the gradient's
transposed system the map from ``lambda_t`` back to ``lambda_{t-1}`` at a window start is zero:
the affine element of that step has ``A = 0``, and the scan carries nothing across it.

Gradients come by implicit differentiation at the solution (a ``jax.custom_vjp``), never
through the iterations: with ``G_t`` the loss's gradient at ``s_t``, the adjoint ``lambda``
solves the transposed recurrence ``lambda_t = G_t + c_{t+1} J_{t+1}^T lambda_{t+1}`` (``c = 0``
at window starts), one reverse associative scan with the dense Jacobians for ``"deer"``; for
``"quasi_deer"`` the same fixed-point iteration with diagonal scans and the exact products
``J^T lambda`` (vector-Jacobian products, no ``n x n`` array). The weight and input gradients
are then ``sum_t lambda_t^T df_t/d(theta, x_t)``, one vector-Jacobian product over all steps.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int

from rnn_jax.cells.base import Cell, CellGrads, Recurrence, State
from rnn_jax.errors import InputError

METHODS = ("sequential", "deer", "quasi_deer", "elk", "quasi_elk")
DENSE = ("deer", "elk")  # the methods that keep the whole n x n Jacobians


class Report(NamedTuple):
    """How a parallel solve went, for one sequence (leaves ``()``; ``(N,)`` under ``vmap``)."""

    iterations: Int[Array, ""]  # Newton iterations run
    residual: Float[Array, ""]  # max |s_t - f_t(s_{t-1})| of the Newton solution (inf if not finite)
    converged: Bool[Array, ""]  # residual <= tol * (1 + max |s|); else the sequential scan was used


class Solver(NamedTuple):
    """The solve's options (static: each set is one compiled program)."""

    method: str = "deer"
    tol: float | None = None  # None: by dtype (1e-12 for float64, 1e-5 for float32)
    max_iter: int | None = None  # None: min(T, 100)
    fallback: bool = True  # run the sequential scan where the solve did not converge
    damping: float = 1.0  # ELK's first trust-region weight on staying near the last iterate


def check_solver(solver: Solver) -> Solver:
    if solver.method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {solver.method!r}")
    if solver.tol is not None and not (isinstance(solver.tol, float | int) and solver.tol > 0):
        raise InputError(f"tol must be a positive number or None; got {solver.tol!r}")
    if not (isinstance(solver.damping, float | int) and solver.damping > 0):
        raise InputError(f"damping must be a positive number; got {solver.damping!r}")
    if solver.max_iter is not None and (
        isinstance(solver.max_iter, bool) or not isinstance(solver.max_iter, int) or solver.max_iter < 1
    ):
        raise InputError(f"max_iter must be an integer >= 1 or None; got {solver.max_iter!r}")
    return solver


def default_tol(dtype) -> float:
    return 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-5


class _Steps(NamedTuple):
    """One sequence's steps as functions of flat state vectors ``(n,)``."""

    cell: Cell
    unravel: Any  # flat (n,) -> the cell's state pytree

    def step(self, cell: Cell, s_prev: Float[Array, " n"], drive, keep) -> Float[Array, " n"]:
        """``f_t(s_{t-1})``: the cell's step, or the identity where the mask skips it."""
        new = ravel_pytree(cell.recur(self.unravel(s_prev), drive))[0]
        return new if keep is None else jnp.where(keep, new, s_prev)

    def all_steps(self, cell, s_prev: Float[Array, "T n"], drives, mask) -> Float[Array, "T n"]:
        return jax.vmap(lambda s, d, k: self.step(cell, s, d, k))(s_prev, drives, mask)

    def jacobians(self, s_prev: Float[Array, "T n"], drives, mask, dense: bool) -> Float[Array, "T ..."]:
        """``df_t/ds`` at every step: ``(T, n, n)``, or its diagonal ``(T, n)``."""
        diagonal = getattr(self.cell, "recur_diagonal", None)

        def known_diagonal(s, d, k):  # the cell's own: no n x n array is formed
            diag = ravel_pytree(diagonal(self.unravel(s), d))[0]
            return diag if k is None else jnp.where(k, diag, jnp.ones_like(diag))

        def from_jacobian(s, d, k):
            jac = jax.jacfwd(lambda v: self.step(self.cell, v, d, k))(s)
            return jac if dense else jnp.diagonal(jac)

        one = known_diagonal if not dense and diagonal is not None else from_jacobian
        return jax.vmap(one)(s_prev, drives, mask)


def _shifted(first: Float[Array, " n"], trajectory: Float[Array, "T n"]) -> Float[Array, "T n"]:
    """``s_{t-1}`` for every step: ``first`` (``s_0``), then the trajectory without its last row."""
    return jnp.concatenate([first[None], trajectory[:-1]])


def affine_solve(
    a: Float[Array, "T ..."], b: Float[Array, "T n"], s0: Float[Array, " n"]
) -> Float[Array, "T n"]:
    """``s_t = a_t s_{t-1} + b_t`` for every ``t``, from ``s0``, by one associative scan.

    ``a`` is ``(T, n, n)`` (dense maps) or ``(T, n)`` (diagonal ones). The composed element
    ``(A, B)`` of steps ``1..t`` maps ``s_0`` to ``s_t = A s_0 + B``."""
    dense = a.ndim == 3

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        if dense:
            return a2 @ a1, jnp.einsum("...ij,...j->...i", a2, b1) + b2
        return a2 * a1, a2 * b1 + b2

    total_a, total_b = jax.lax.associative_scan(combine, (a, b))
    if dense:
        return jnp.einsum("tij,j->ti", total_a, s0) + total_b
    return total_a * s0[None] + total_b


def _ops(dense: bool):
    """Products of the ``(T, n, n)`` matrices (dense) or of their diagonals ``(T, n)``."""
    if dense:
        return {
            "mm": lambda a, b: a @ b,
            "mv": lambda a, v: jnp.einsum("...ij,...j->...i", a, v),
            "t": lambda a: jnp.swapaxes(a, -1, -2),
            "solve": lambda a, b: jnp.linalg.solve(a, b),  # a^-1 b, b a matrix
            "solve_v": lambda a, v: jnp.linalg.solve(a, v[..., None])[..., 0],  # a^-1 v
            "eye": lambda n, dtype: jnp.eye(n, dtype=dtype),
        }
    return {
        "mm": lambda a, b: a * b,
        "mv": lambda a, v: a * v,
        "t": lambda a: a,
        "solve": lambda a, b: b / a,
        "solve_v": lambda a, v: v / a,
        "eye": lambda n, dtype: jnp.ones(n, dtype),
    }


def trust_region_solve(
    a: Float[Array, "T ..."],
    b: Float[Array, "T n"],
    s0: Float[Array, " n"],
    previous: Float[Array, "T n"],
    damping,
) -> Float[Array, "T n"]:
    """ELK's step (Gonzalez et al., NeurIPS 2024): the trajectory minimising
    ``sum_t |s_t - a_t s_{t-1} - b_t|^2 + damping sum_t |s_t - previous_t|^2`` from ``s0``.

    It is the mean of a Kalman smoother: dynamics ``s_t = a_t s_{t-1} + b_t`` with unit noise,
    observations ``previous_t`` with noise ``1 / damping``, solved in parallel over time by the
    associative filtering and smoothing elements of Särkkä and García-Fernández (IEEE TAC 2021).
    ``a`` is ``(T, n, n)`` or its diagonal ``(T, n)`` (then every unit is a scalar system).
    Damping 0 would be DEER's step; more damping, a shorter and safer one."""
    ops = _ops(a.ndim == 3)
    mm, mv, t, solve = ops["mm"], ops["mv"], ops["t"], ops["solve"]
    seq_len, n = b.shape
    eye = ops["eye"](n, b.dtype)[None]  # broadcast against the (T, ...) elements
    gain = damping / (1.0 + damping)  # the Kalman gain with unit process noise and a^-1 = damping
    # Filtering elements (A, c, C, eta, J); the first holds the known s_0.
    first_mean = mv(a[0], s0) + b[0]
    rest = 1.0 / (1.0 + damping)  # 1 - gain, without the cancellation
    A = (rest * a).at[0].set(jnp.zeros_like(a[0]))
    c = (b + gain * (previous - b)).at[0].set(first_mean + gain * (previous[0] - first_mean))
    C = jnp.broadcast_to(rest * eye, a.shape)
    eta = (gain * mv(t(a), previous - b)).at[0].set(jnp.zeros_like(b[0]))
    J = (gain * mm(t(a), a)).at[0].set(jnp.zeros_like(a[0]))

    def combine(i, j):
        A_i, c_i, C_i, eta_i, J_i = i
        A_j, c_j, C_j, eta_j, J_j = j
        # A_j (I + C_i J_j)^-1, and (I + J_j C_i)^-1 applied to eta and J.
        weighed = t(solve(t(eye + mm(C_i, J_j)), t(A_j)))
        inner = eye + mm(J_j, C_i)
        return (
            mm(weighed, A_i),
            mv(weighed, c_i + mv(C_i, eta_j)) + c_j,
            mm(mm(weighed, C_i), t(A_j)) + C_j,
            mv(t(A_i), ops["solve_v"](inner, eta_j - mv(J_j, c_i))) + eta_i,
            mm(mm(t(A_i), solve(inner, J_j)), A_i) + J_i,
        )

    _, means, covariances, _, _ = jax.lax.associative_scan(combine, (A, c, C, eta, J))
    # Smoothing elements (E, g): s_t = g_t + E_t s_{t+1}, the last one the filtered mean.
    following = jnp.concatenate([a[1:], jnp.zeros_like(a[:1])])  # a_{t+1}, the map out of s_t
    pushed = mm(mm(following, covariances), t(following)) + eye  # a P a^T + Q
    E = t(solve(pushed, mm(following, covariances)))  # P a^T (a P a^T + Q)^-1 (P symmetric)
    b_next = jnp.concatenate([b[1:], jnp.zeros_like(b[:1])])
    g = means - mv(E, mv(following, means) + b_next)
    E, g = E.at[-1].set(jnp.zeros_like(E[-1])), g.at[-1].set(means[-1])

    def backwards(later, current):
        E_l, g_l = later
        E_c, g_c = current
        return mm(E_c, E_l), mv(E_c, g_l) + g_c

    return jax.lax.associative_scan(backwards, (E, g), reverse=True)[1]


def _residual(trajectory: Float[Array, "T n"], stepped: Float[Array, "T n"]) -> Float[Array, ""]:
    """``max |s_t - f_t(s_{t-1})|``, infinite where anything is not finite (so never converged)."""
    gap = jnp.max(jnp.abs(trajectory - stepped))
    return jnp.where(jnp.isfinite(gap) & jnp.all(jnp.isfinite(trajectory)), gap, jnp.inf)


def _newton(steps: _Steps, drives, s0, mask, solver: Solver, seq_len: int):
    """The Newton (or quasi-Newton) iterations: ``(trajectory (T, n), Report)``."""
    dense = solver.method in DENSE
    tol = default_tol(s0.dtype) if solver.tol is None else solver.tol
    cap = min(seq_len, 100) if solver.max_iter is None else solver.max_iter

    trust = solver.method in ("elk", "quasi_elk")

    def update(trajectory, stepped, damping):
        """The next iterate from this one and its steps ``f_t(s_{t-1})``."""
        s_prev = _shifted(s0, trajectory)
        jac = steps.jacobians(s_prev, drives, mask, dense)
        moved = jnp.einsum("tij,tj->ti", jac, s_prev) if dense else jac * s_prev
        if trust:
            return trust_region_solve(jac, stepped - moved, s0, trajectory, damping)
        return affine_solve(jac, stepped - moved, s0)

    def measured(trajectory):
        """Its steps, residual and scale (the steps are the next update's, reused)."""
        stepped = steps.all_steps(steps.cell, _shifted(s0, trajectory), drives, mask)
        return stepped, _residual(trajectory, stepped), jnp.max(jnp.abs(stepped))

    def unfinished(carry):
        i, _, _, residual, scale, _ = carry
        return (i < cap) & ~(residual <= tol * (1 + scale))

    def iterate(carry):
        i, trajectory, stepped, residual, scale, damping = carry
        candidate = update(trajectory, stepped, damping)
        new = measured(candidate)
        if not trust:
            return i + 1, candidate, *new, damping
        # Levenberg-Marquardt: keep a step that lowers the residual and trust the model more
        # (less damping, towards DEER's step); refuse one that does not and damp more.
        better = new[1] < residual
        kept = jax.tree.map(
            lambda a, b: jnp.where(better, a, b), (candidate, *new), (trajectory, stepped, residual, scale)
        )
        # Bounded so that the smoother's products stay clear of float32's subnormal range,
        # where CPUs slow down a hundredfold (a stalled solve once took minutes per step).
        return i + 1, *kept, jnp.clip(jnp.where(better, damping / 10, damping * 10), 1e-6, 1e6)

    guess = jnp.broadcast_to(s0, (seq_len, s0.shape[0]))
    damping = jnp.asarray(solver.damping, s0.dtype)
    start = (jnp.asarray(0), guess, *measured(guess), damping)
    iterations, trajectory, _, residual, scale, _ = jax.lax.while_loop(unfinished, iterate, start)
    return trajectory, Report(iterations, residual, residual <= tol * (1 + scale))


def _sequential_unless(converged, steps: _Steps, drives, s0, mask, trajectory):
    """The sequential scan's trajectory where ``converged`` is false, else ``trajectory``: a
    ``while_loop`` over steps that runs none when the solve converged."""
    seq_len = trajectory.shape[0]

    def step(carry):
        t, state, out = carry
        drive = jax.tree.map(lambda d: d[t], drives)
        keep = None if mask is None else mask[t]
        state = steps.step(steps.cell, state, drive, keep)
        return t + 1, state, out.at[t].set(state)

    start = jnp.where(converged, seq_len, 0)
    return jax.lax.while_loop(lambda c: c[0] < seq_len, step, (start, s0, trajectory))[2]


def _adjoint(steps: _Steps, drives, s0, mask, starts, trajectory, grads, solver: Solver):
    """``lambda (T, n)``: the solution of ``lambda_t = G_t + c_{t+1} J_{t+1}^T lambda_{t+1}``."""
    seq_len = trajectory.shape[0]
    s_prev = _shifted(s0, trajectory)
    # c_{t+1}: whether the gradient at s_t flows back through step t+1 (no cut there).
    flows = jnp.ones(seq_len, grads.dtype) if starts is None else 1.0 - starts.astype(grads.dtype)
    flows_next = jnp.concatenate([flows[1:], jnp.zeros(1, grads.dtype)])  # nothing after step T

    def back_through_next(lam):
        """``c_{t+1} J_{t+1}^T lambda_{t+1}`` for every ``t``, by vector-Jacobian products."""
        _, pullback = jax.vjp(lambda s: steps.all_steps(steps.cell, s, drives, mask), s_prev)
        pulled = pullback(lam)[0]  # row t: J_t^T lambda_t
        return flows_next[:, None] * jnp.concatenate([pulled[1:], jnp.zeros_like(pulled[:1])])

    def reverse_solve(a, b):
        """``lambda_t = a_t lambda_{t+1} + b_t`` backwards from ``lambda_T = b_T``."""
        flipped = affine_solve(a[::-1], b[::-1], jnp.zeros_like(b[0]))
        return flipped[::-1]

    dense = solver.method in DENSE
    jac = steps.jacobians(s_prev, drives, mask, dense)
    if dense:
        transposed = jnp.swapaxes(jac, 1, 2)
        a = flows_next[:, None, None] * jnp.concatenate([transposed[1:], jnp.zeros_like(transposed[:1])])
        return reverse_solve(a, grads)
    # Quasi-Newton on the linear system: the diagonal part in the scan, the rest from the last
    # iterate; exact after at most T sweeps, usually far fewer.
    diag = flows_next[:, None] * jnp.concatenate([jac[1:], jnp.zeros_like(jac[:1])])
    tol = default_tol(grads.dtype) if solver.tol is None else solver.tol

    def sweep(carry):
        i, lam, _ = carry
        following = jnp.concatenate([lam[1:], jnp.zeros_like(lam[:1])])  # lambda_{t+1}
        new = reverse_solve(diag, grads + back_through_next(lam) - diag * following)
        return i + 1, new, jnp.max(jnp.abs(new - lam))

    def unfinished(carry):
        i, lam, change = carry
        return (i < seq_len) & ~(change <= tol * (1 + jnp.max(jnp.abs(lam))))

    return jax.lax.while_loop(
        unfinished, sweep, (0, reverse_solve(diag, grads), jnp.asarray(jnp.inf, grads.dtype))
    )[1]


def _solve(cell: Cell, drives, s0, mask, solver: Solver):
    steps = _Steps(cell, ravel_pytree(cell.initial_state())[1])
    seq_len = jax.tree.leaves(drives)[0].shape[0]
    trajectory, report = _newton(steps, drives, s0, mask, solver, seq_len)
    if solver.fallback:
        trajectory = _sequential_unless(report.converged, steps, drives, s0, mask, trajectory)
    return trajectory, report


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _trajectory(cell: Cell, drives, s0, mask, starts, solver: Solver):
    """``(trajectory (T, n), Report)``; differentiated implicitly, at the solution."""
    return _solve(cell, drives, s0, mask, solver)


def _trajectory_forward(cell, drives, s0, mask, starts, solver):
    out = _solve(cell, drives, s0, mask, solver)
    return out, (cell, drives, s0, mask, starts, out[0])


def _trajectory_backward(solver, saved, cotangents):
    cell, drives, s0, mask, starts, trajectory = saved
    steps = _Steps(cell, ravel_pytree(cell.initial_state())[1])
    lam = _adjoint(steps, drives, s0, mask, starts, trajectory, cotangents[0], solver)
    s_prev = _shifted(s0, trajectory)
    # sum_t lambda_t^T f_t(s_{t-1}; theta, x_t), differentiated with the states held: the
    # weights' and inputs' gradients, and through step 1 the initial state's.
    _, pullback = jax.vjp(lambda c, d, sp: steps.all_steps(c, sp, d, mask), cell, drives, s_prev)
    d_cell, d_drives, d_prev = pullback(lam)
    d_s0 = d_prev[0] if starts is None else jnp.where(starts[0], 0.0, d_prev[0])
    return d_cell, d_drives, d_s0, None, None


_trajectory.defvjp(_trajectory_forward, _trajectory_backward)


def solve_states(
    cell: Cell,
    xs: Float[Array, "T D"],
    *,
    starts: Bool[Array, " T"] | None = None,
    h0: State | None = None,
    mask: Bool[Array, " T"] | None = None,
    solver: Solver | None = None,
) -> tuple[State, Report]:
    """Every state of one sequence (leaves ``(T, ...)``, as ``cell.states`` returns them) and
    the solve's ``Report``; ``starts``/``mask`` as in ``Cell.states``."""
    solver = check_solver(Solver() if solver is None else solver)
    if solver.method == "sequential":
        states = cell.states(xs, starts=starts, h0=h0, mask=mask)
        return states, Report(jnp.asarray(0), jnp.asarray(0.0, cell.dtype), jnp.asarray(True))
    s0, unravel = ravel_pytree(cell.initial_state() if h0 is None else h0)
    trajectory, report = _trajectory(cell, cell.input_drive(xs), s0, mask, starts, solver)
    return jax.vmap(unravel)(trajectory), report


class Parallel(Recurrence):
    """A cell evaluated in parallel over time (``solve_states``), behind the same protocol:
    stacks, bidirectional layers, masks, truncation and both backward passes work as with the
    cell itself (the hand-derived pass reads the states, whichever way they were found)."""

    cell: Cell
    solver: Solver = eqx.field(static=True)

    def __init__(
        self, cell: Recurrence, method: str = "deer", *, tol=None, max_iter=None, fallback: bool = True
    ):
        if not isinstance(cell, Cell):
            raise InputError(f"Parallel takes a cell (one layer, one direction); got {type(cell).__name__}")
        self.cell = cell
        self.solver = check_solver(Solver(method, tol, max_iter, fallback))

    @property
    def input_dim(self) -> int:
        return self.cell.input_dim

    @property
    def hidden_dim(self) -> int:
        return self.cell.hidden_dim

    def check(self) -> None:
        self.cell.check()

    def initial_state(self) -> State:
        return self.cell.initial_state()

    def hidden(self, state: State) -> Float[Array, "*T H"]:
        return self.cell.hidden(state)

    def states(self, xs, *, starts=None, h0=None, mask=None, unroll=1) -> State:
        return solve_states(self.cell, xs, starts=starts, h0=h0, mask=mask, solver=self.solver)[0]

    def report(self, xs, *, h0=None, mask=None) -> Report:
        """How the solve of one sequence went."""
        return solve_states(self.cell, xs, h0=h0, mask=mask, solver=self.solver)[1]

    def backward(self, xs, h0, states, dh_out, cuts, mask=None) -> CellGrads:
        return self.cell.backward(xs, h0, states, dh_out, cuts, mask)

    def param_grads(self, tape) -> Parallel:
        return eqx.tree_at(lambda p: p.cell, self, self.cell.param_grads(tape))


def in_parallel(tree, method: str = "deer", **options):
    """Every cell inside ``tree`` (a model, a cell, stacks and bidirectional layers of them)
    wrapped in ``Parallel(cell, method, **options)``; ``"sequential"`` returns it unchanged."""
    check_solver(Solver(method, **options))
    if method == "sequential":
        return tree
    return jax.tree.map(
        lambda node: Parallel(node, method, **options) if isinstance(node, Cell) else node,
        tree,
        is_leaf=lambda node: isinstance(node, Cell),
    )


def in_sequence(tree):
    """``tree`` with every ``Parallel`` replaced by the cell it wraps (a gradient back in the
    model's own shape)."""
    return jax.tree.map(
        lambda node: node.cell if isinstance(node, Parallel) else node,
        tree,
        is_leaf=lambda node: isinstance(node, Parallel),
    )


def largest_lyapunov_exponent(
    cell: Cell, xs: Float[Array, "T D"], *, h0: State | None = None, burn_in: int = 0
) -> Float[Array, ""]:
    """The largest Lyapunov exponent of the cell driven by ``xs``: the mean growth rate
    ``(1/T) sum_t log ||J_t v_{t-1}||`` of a tangent vector carried along the trajectory and
    renormalised every step (its first ``burn_in`` steps align it and are not counted). Above
    zero, nearby trajectories separate exponentially: the chaotic regime, where a Newton solve
    over the whole trajectory is ill conditioned."""
    start = cell.initial_state() if h0 is None else h0
    flat, unravel = ravel_pytree(start)
    tangent = jnp.ones_like(flat) / jnp.sqrt(flat.shape[0])

    def step(carry, inputs):
        state, v = carry
        x, t = inputs
        new, pushed = jax.jvp(lambda s: ravel_pytree(cell.step(unravel(s), x))[0], (state,), (v,))
        size = jnp.linalg.norm(pushed)
        grow = jnp.where(t >= burn_in, jnp.log(size), 0.0)
        return (new, pushed / size), grow

    _, growth = jax.lax.scan(step, (flat, tangent), (xs, jnp.arange(xs.shape[0])))
    return jnp.sum(growth) / (xs.shape[0] - burn_in)
