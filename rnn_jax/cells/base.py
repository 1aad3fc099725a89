"""The protocol every recurrent cell implements, and helpers for writing one.

A cell is an ``equinox.Module`` whose array fields are its parameters and whose static fields
are its options (the Elman nonlinearity, the GRU's reset placement). Its options are the
keyword parameters of its ``__init__`` besides ``key``, the sizes, ``scale`` and ``dtype``;
configs and commands read them from that signature (``rnn_jax.cells.cell_option_defaults``),
so a new option is reachable everywhere once the constructor takes it. It describes ONE step for
ONE example; ``rnn_jax.unroll`` scans any cell over time, ``rnn_jax.model.RNN`` composes a cell
with a readout, and batching is ``jax.vmap`` on top. A cell implements:

=====================================  ==========================================================
``input_dim``, ``hidden_dim``          sizes ``D`` and ``H`` (properties)
``input_drive(xs (T, D)) -> drives``   the part of every step that does not depend on the state,
                                       computed for all steps at once outside the scan
``recur(state, drive_t) -> state``     the sequential part of one step
``initial_state() -> state``           the zero state (``h (H,)``, or a tuple such as ``(h, c)``)
``hidden(state) -> h``                 the hidden vector the readout reads (default: the state)
``check()``                            raise ``ValueError`` unless the weights' shapes agree
``recur_diagonal(state, drive)``       optional: the diagonal of ``d recur / d state``, shaped
                                       like the state (``rnn_jax.cells.parallel``'s quasi-DEER)
``backward(...) -> CellGrads``         optional: the hand-derived backward pass of one sequence
``param_grads(tape) -> Cell``          with ``backward``: the weight gradients, a sum over steps
=====================================  ==========================================================

``step(state, x)``, ``states``/``final`` (the scans over time, masks and truncation
included) and ``__call__(xs, h0=None) -> (hs, final_state)`` come for free. The conventions of
``backward`` are in its docstring below and in ``docs/custom_cell.md``, which walks through a
complete cell defined outside the package.

A cell is the one-layer, one-direction ``Recurrence``; ``rnn_jax.cells.layers`` composes cells into
stacks and bidirectional layers behind the same sequence-level methods.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

State = Any  # a cell's state: an (H,) array, or a tuple of (H,) arrays


class CellGrads(NamedTuple):
    """What a cell's hand-derived backward pass returns for one sequence.

    ``tape``: per-step arrays (every leaf ``(T, ...)``) from which ``param_grads`` forms the
    weight gradients, e.g. ``(delta_t, x_t, h_{t-1})`` for the Elman cell;
    ``xs``: ``dL/dx_t``, ``(T, D)``, the error that flows into the layer below;
    ``h0``: ``dL/d(initial state)``, shaped like the state (zero if step 0 starts a window);
    ``dh``: optionally ``dL/dh_t`` for every step, ``(T, H)``, through the paths truncation
    keeps (``rnn_jax.manual.state_grads`` reads it; ``None`` if the cell does not give it).
    """

    tape: Any
    xs: Float[Array, "T D"]
    h0: State
    dh: Float[Array, "T H"] | None = None


class Recurrence(eqx.Module):
    """What a model needs from its recurrent part, one whole sequence at a time.

    A ``Cell`` is the one-layer, one-direction case; ``rnn_jax.cells.layers.Stack`` and
    ``rnn_jax.cells.layers.Bidirectional`` compose cells into the others. ``states``/``backward``
    are written for one sequence ``(T, ...)``; batching is ``jax.vmap`` on top.

    ``mask (T,)`` marks the steps that exist: a skipped step (``False``) carries the state
    through unchanged, in both passes (its Jacobian is the identity and it adds nothing to the
    weight gradients). ``starts (T,)`` marks truncation window starts (``rnn_jax.unroll``).
    """

    @property
    def causal(self) -> bool:
        """True when the output at step ``t`` depends on steps ``<= t`` only (every layer runs
        forward in time): then the steps before a truncation window can skip autodiff, and the
        last valid step's output is the final state."""
        return True

    @property
    @abc.abstractmethod
    def input_dim(self) -> int: ...

    @property
    @abc.abstractmethod
    def hidden_dim(self) -> int:
        """Features per step of the output sequence (what the readout reads)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise ``ValueError`` naming the part unless its weights agree on their sizes."""

    @abc.abstractmethod
    def initial_state(self) -> State:
        """The zero state."""

    @abc.abstractmethod
    def states(
        self,
        xs: Float[Array, "T D"],
        *,
        starts: Bool[Array, " T"] | None = None,
        h0: State | None = None,
        mask: Bool[Array, " T"] | None = None,
        unroll: int = 1,
    ) -> State:
        """Every state of one sequence (leaves ``(T, ...)``), stored for the backward pass.
        ``unroll`` steps go in each iteration of the ``lax.scan`` loop (its ``unroll``): the
        same values, a longer program that may run faster."""

    @abc.abstractmethod
    def hidden(self, state: State) -> Float[Array, "*T H"]:
        """The output vector(s) inside a state, or inside states stacked over ``T``."""

    @property
    def dtype(self) -> jnp.dtype:
        return jax.tree.leaves(self)[0].dtype

    def final(
        self,
        xs: Float[Array, "T D"],
        *,
        starts: Bool[Array, " T"] | None = None,
        h0: State | None = None,
        mask: Bool[Array, " T"] | None = None,
        unroll: int = 1,
    ) -> State:
        """The state after the last step (what a stream carries on); cells keep nothing per step."""
        states = self.states(xs, starts=starts, h0=h0, mask=mask, **unrolled(unroll))
        return jax.tree.map(lambda s: s[-1], states)

    def backward(
        self,
        xs: Float[Array, "T D"],
        h0: State,
        states: State,
        dh_out: Float[Array, "T H"] | Float[Array, " H"],
        cuts: Bool[Array, " T"] | None,
        mask: Bool[Array, " T"] | None = None,
    ) -> CellGrads:
        """The hand-derived backward pass of one sequence (optional; autodiff needs none).

        Args:
            xs: the inputs, ``(T, D)``.
            h0: the state before step 0.
            states: the states after every step, as ``rnn_jax.unroll.unroll_states`` returns
                them (leaves ``(T, H)``).
            dh_out: the loss's direct gradient at each ``h_t``, ``(T, H)``; or, when only the
                last step is scored, its gradient at ``h_T`` alone, ``(H,)`` (see
                ``output_grads``, which turns it into the ``(T, H)`` form).
            cuts: ``cuts[t]`` marks a truncation window start: the state entering step ``t``
                is a constant, so no gradient flows from step ``t`` into earlier steps
                (``None``: no cuts). See ``rnn_jax.unroll``.
            mask: the steps that exist (``None``: all); a skipped step passes the carried
                gradient through unchanged and contributes nothing (``reverse_scan`` does both).

        Returns:
            ``CellGrads``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no hand-derived backward pass; use jax.grad(rnn_jax.loss), "
            "or implement Cell.backward and Cell.param_grads (see docs/custom_cell.md)"
        )

    def param_grads(self, tape: Any) -> Recurrence:
        """The weight gradients from a ``backward`` tape: a cell of the same type (built with
        ``with_arrays``) whose arrays hold sums over the tape's leading (step) axis.

        Written as if for one sequence, it is called once for the whole batch with every
        example's steps laid end to end (``(N T, ...)``): the sum over examples is the same
        sum, so each weight gradient is one matrix product over all examples and steps, not a
        batch of per-example products added afterwards (which XLA does not fold: 2-4x slower
        at H=256)."""
        raise NotImplementedError(f"{type(self).__name__} implements backward but not param_grads")

    def __call__(self, xs: Float[Array, "T D"], h0: State | None = None) -> tuple[Float[Array, "T H"], State]:
        """Run over one sequence: every output vector ``(T, H)`` and the final state."""
        states = self.states(xs, h0=h0)
        return self.hidden(states), jax.tree.map(lambda s: s[-1], states)


def _hold(cut: Bool[Array, ""] | None, state: State) -> State:
    """The carried state, as a constant for autodiff where ``cut`` marks a window start."""
    if cut is None:
        return state
    return jax.tree.map(lambda v: jnp.where(cut, jax.lax.stop_gradient(v), v), state)


def _keep(flag: Bool[Array, ""] | None, new: State, old: State) -> State:
    """``new`` where the step exists, ``old`` (carried unchanged) where the mask skips it."""
    if flag is None:
        return new
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), new, old)


def unrolled(unroll: int) -> dict:
    """``{"unroll": unroll}``, or nothing for the default 1: a recurrence written before the
    option existed (its ``states`` without ``unroll``) still runs unchanged."""
    return {} if unroll == 1 else {"unroll": unroll}


class Cell(Recurrence):
    """Base class of recurrent cells; see the module docstring for the protocol."""

    # The PyTorch module with the same computation ("rnn", "gru", "lstm"; rnn_jax.interop).
    TORCH: ClassVar[str | None] = None
    # True when d recur / d state is diagonal (unit i recurs on itself only): exact real-time
    # recurrent learning then costs about a forward step (rnn_jax.train.online).
    ELEMENTWISE: ClassVar[bool] = False

    @abc.abstractmethod
    def input_drive(self, xs: Float[Array, "T D"]) -> Any:
        """Whatever of every step does not depend on the state, for all ``T`` steps at once."""

    @abc.abstractmethod
    def recur(self, state: State, drive: Any) -> State:
        """One step's sequential part: ``state_{t-1}, drive_t -> state_t``."""

    def initial_state(self) -> State:
        """The zero state; cells whose state is a tuple (the LSTM's ``(h, c)``) override it."""
        return jnp.zeros(self.hidden_dim, self.dtype)

    def hidden(self, state: State) -> Float[Array, "*T H"]:
        """The hidden vector(s) inside a state (works on one state or on states stacked over T)."""
        return state

    def step(self, state: State, x: Float[Array, " D"]) -> State:
        """One whole step for one example: ``state_{t-1}, x_t -> state_t``."""
        return self.recur(state, jax.tree.map(lambda d: d[0], self.input_drive(x[None])))

    def states(self, xs, *, starts=None, h0=None, mask=None, unroll=1) -> State:
        """Every state, leaves ``(T, H)``: the input drives of all steps are formed before the
        scan, which does the recurrent part only. Before step ``t`` reads the carried state it
        passes through ``stop_gradient`` where ``starts[t]``; a step ``mask`` skips keeps it."""

        def step(state, inputs):
            drive, cut, keep = inputs
            held = _hold(cut, state)
            state = _keep(keep, self.recur(held, drive), held)
            return state, state

        start = self.initial_state() if h0 is None else h0
        return jax.lax.scan(step, start, (self.input_drive(xs), starts, mask), unroll=unroll)[1]

    def final(self, xs, *, starts=None, h0=None, mask=None, unroll=1) -> State:
        """The state after the last step, keeping nothing per step: ``O(1)`` memory in ``T``
        outside autodiff. Each step forms its own input drive from ``x_t (D,)`` instead of one
        ``(T, H)`` matmul for all steps, which under ``vmap`` also spares laying out a
        ``(T, N, H)`` array time-major."""

        def step(state, inputs):
            x, cut, keep = inputs
            held = _hold(cut, state)
            return _keep(keep, self.step(held, x), held), None

        start = self.initial_state() if h0 is None else h0
        return jax.lax.scan(step, start, (xs, starts, mask), unroll=unroll)[0]


def output_grads(dh_out: Float[Array, "T H"] | Float[Array, " H"], seq_len: int) -> Float[Array, "T H"]:
    """``dh_out`` in its ``(T, H)`` form: a last-step-only ``(H,)`` gradient becomes zeros
    everywhere but the last row. Cells that do not exploit the sparse form start with this."""
    if dh_out.ndim == 2:
        return dh_out
    return jnp.zeros((seq_len, dh_out.shape[0]), dh_out.dtype).at[-1].set(dh_out)


def previous(states: Float[Array, "T H"], first: Float[Array, " H"]) -> Float[Array, "T H"]:
    """``s_{t-1}`` for every step ``t``: the states shifted by one, ``first`` in front."""
    return jnp.concatenate([first[None], states[:-1]])


def sum_outer(a: Float[Array, "S ..."], b: Float[Array, "S Q"]) -> Float[Array, "... Q"]:
    """``sum_s a_s b_s^T`` over the leading (step) axis: a weight gradient as one matrix
    product, e.g. ``dW = sum_outer(deltas (S, H), h_prev (S, H))``, or every gate's at once from
    ``da (S, G, H)``, giving ``(G, H, Q)``.

    It is formed as ``(b^T a)^T``: contracting the long step axis with ``a`` on the left made
    XLA's CPU dot copy ``a`` transposed first (at ``S = 5000``, ``H = 100``, ``Q = 1`` this
    form took 0.07 ms against 0.33 ms); the transpose of the small result is cheap."""
    flat = a.reshape(a.shape[0], -1)
    return (b.T @ flat).T.reshape(*a.shape[1:], b.shape[1])


def cut(flag: Bool[Array, ""] | None, grad: State) -> State:
    """The carried gradient leaving a step: zero where the step starts a window."""
    if flag is None:
        return grad
    return jax.tree.map(lambda g: jnp.where(flag, jnp.zeros_like(g), g), grad)


def with_arrays(module: eqx.Module, **arrays: Array) -> eqx.Module:
    """A copy of a cell (or any module) with the named array fields replaced, e.g. by their
    gradients; the constructor, which draws fresh weights, is not called."""
    names = tuple(arrays)
    return eqx.tree_at(lambda m: tuple(getattr(m, n) for n in names), module, tuple(arrays.values()))


def _seed(carry: State, dh: Array) -> State:
    """The carried gradient plus the loss's direct gradient at ``h_t`` (the first leaf)."""
    return (carry[0] + dh, *carry[1:]) if isinstance(carry, tuple) else carry + dh


def reverse_scan(step, carry, inputs, dh_out, *, cuts=None, mask=None):
    """Run a backward ``step(carry, inputs_t) -> (carry_before, out_t)`` from the last step to
    the first, and return ``(gradient at the initial state, outs stacked over T)``.

    The ``carry`` that ``step`` receives is the whole gradient at the state after step ``t``:
    the loss's direct gradient ``dh_out[t]`` is already added. Around ``step`` this applies
    the two things every cell does alike: where ``mask`` skips step ``t`` the carry passes
    through unchanged and ``out_t`` is zero; where ``cuts[t]`` starts a window the carry leaving
    the step is zero. A last-step-only ``dh_out (H,)`` seeds the carry instead of being read per
    step, which spares a ``(T, H)`` array of zeros."""

    def body(carry, xs):
        dh_direct, flag, keep, inputs_t = xs
        if dh_direct is not None:
            carry = _seed(carry, dh_direct)
        before, out = step(carry, inputs_t)
        if keep is not None:
            before = jax.tree.map(lambda a, b: jnp.where(keep, a, b), before, carry)
            out = jax.tree.map(lambda o: jnp.where(keep, o, jnp.zeros_like(o)), out)
        return cut(flag, before), out

    if dh_out.ndim == 1:
        return jax.lax.scan(body, _seed(carry, dh_out), (None, cuts, mask, inputs), reverse=True)
    return jax.lax.scan(body, carry, (dh_out, cuts, mask, inputs), reverse=True)


def sized_message(cell: Cell, detail: str) -> str:
    """``"<Name> cell has inconsistent sizes: ..."``, for ``check``."""
    return f"{type(cell).__name__} cell has inconsistent sizes: {detail}"
