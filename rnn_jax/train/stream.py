"""Training on one endless stream with TBPTT(k1, k2), in memory that does not grow with it.

Every ``k1`` steps the parameters are updated from the loss of those ``k1`` newest steps, with
the gradient flowing back ``k2 >= k1`` steps (Williams & Peng 1990). Update ``u`` unrolls the
window of stream steps ``[u k1, u k1 + k2)`` from the carried state (a constant: gradient stops
there), scores the window's last ``k1`` outputs, and hands the state after the window's first
``k1`` steps (computed with the parameters before the update, as an online learner would) to
update ``u + 1``, whose window starts ``k1`` steps later. The loss windows tile the stream from
step ``k2 - k1`` on.

Nothing is kept per step or per update: a chunk of ``updates_per_chunk`` updates is one compiled
``lax.scan`` that returns the chunk's mean loss, and the stream itself is read through
``source(start) -> (xs (k2, D), ys (k2, O))``, a pure function (a slice of an array on the
device, or a signal computed from the step index), so memory is the same for 10^4 or 10^6 steps.
A source that holds its arrays as pytree leaves (``array_source``) hands them to the compiled
chunk as arguments, which lets ``rnn_jax.runs.driver.fit_stream`` split them over devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rnn_jax.cells import cell_class, config_cell_options
from rnn_jax.cells.online import (
    CARRIED,
    OnlineCarry,
    UoroCarry,
    check_online_cell,
    initial_carry,
    online_grads,
    uoro_grads,
    uoro_initial_carry,
)
from rnn_jax.errors import InputError
from rnn_jax.manual import manual_rule_loss
from rnn_jax.model import RNN, init_model
from rnn_jax.objectives import get_objective
from rnn_jax.resources import TRAINING_ADVICE, check_fits, tree_bytes
from rnn_jax.unroll import unroll_states

Source = Callable[[Int[Array, ""]], tuple[Float[Array, "K2 D"], Float[Array, "K2 O"]]]


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """Static settings of a streaming run."""

    cell: str = "elman"
    hidden_dim: int = 32
    num_layers: int = 1
    objective: str = "squared"  # or "cross_entropy": ys are integer labels, output_dim classes
    # 0: one stream, windows (k2, ...); S >= 1: the source gives S parallel streams' windows
    # (S, k2, ...), each carrying its own state; the loss is their mean.
    streams: int = 0
    backward: str = "autodiff"  # or "manual": the hand-derived pass (needs k1 = k2)
    # "none": TBPTT, each update's gradient reaches k2 steps back; "rtrl" (element-wise cells),
    # "snap1" (its diagonal approximation for dense ones) or "uoro" (an unbiased rank-one
    # estimate, any cell) carry the sensitivities forward from the stream's start instead
    # (rnn_jax.cells.online; needs k1 = k2, one layer).
    online: str = "none"
    decay_updates: int = 0  # > 0: the learning rate decays (cosine) to 0 over that many updates
    activation: str | None = None  # the cell's option (Elman, IndRNN); None: the cell's default
    cell_options: str = ""  # any other option of the cell's constructor: "reset=before"
    k1: int = 10  # steps between updates (and scored per update)
    k2: int = 20  # steps the gradient flows back, >= k1
    learning_rate: float = 1e-3
    clip_threshold: float = 1.0  # global norm
    updates_per_chunk: int = 1000


def check_stream_config(config: StreamConfig, n_steps: int) -> None:
    """Errors name the setting and what it accepts."""
    cell_class(config.cell)
    cell_options(config)  # refuses an option the cell does not take
    get_objective(config.objective)
    if config.backward not in ("autodiff", "manual"):
        raise InputError(f"backward must be autodiff or manual; got {config.backward!r}")
    if config.backward == "manual" and config.k1 != config.k2:
        raise InputError(
            f"backward 'manual' scores whole windows: it needs k1 = k2; got k1={config.k1}, k2={config.k2}"
        )
    if config.online not in ("none", *CARRIED):
        raise InputError(f"online must be one of none, {', '.join(CARRIED)}; got {config.online!r}")
    if config.online != "none" and (
        config.k1 != config.k2 or config.num_layers != 1 or config.backward != "autodiff"
    ):
        raise InputError(
            f"online {config.online!r} carries the gradient forward: it needs k1 = k2, one layer and "
            f"backward 'autodiff'; got k1={config.k1}, k2={config.k2}, num_layers={config.num_layers}, "
            f"backward {config.backward!r}"
        )
    if config.streams < 0:
        raise InputError(f"streams must be 0 (one stream, no stream axis) or a count; got {config.streams}")
    if config.decay_updates < 0:
        raise InputError(f"decay_updates must be 0 (no decay) or a count; got {config.decay_updates}")
    for name in ("hidden_dim", "num_layers", "k1", "k2", "updates_per_chunk"):
        if getattr(config, name) < 1:
            raise InputError(f"{name} must be a positive integer; got {getattr(config, name)}")
    if config.k2 < config.k1:
        raise InputError(
            f"k2 ({config.k2}) must be >= k1 ({config.k1}): the gradient covers the scored steps"
        )
    for name in ("learning_rate", "clip_threshold"):
        if not getattr(config, name) > 0:
            raise InputError(f"{name} must be a positive number; got {getattr(config, name)}")
    if n_steps < config.k2:
        raise InputError(f"the stream ({n_steps} steps) must be at least k2 = {config.k2} steps long")


def cell_options(config: StreamConfig) -> dict[str, object]:
    """The options ``config`` sets on its cell (``rnn_jax.cells.config_cell_options``)."""
    return config_cell_options(config.cell, activation=config.activation, text=config.cell_options)


def n_updates(n_steps: int, config: StreamConfig) -> int:
    """Updates that fit in ``n_steps``: windows ``[u k1, u k1 + k2)`` inside the stream."""
    return (n_steps - config.k2) // config.k1 + 1


class StreamState(eqx.Module):
    params: RNN
    opt_state: optax.OptState
    # The cell state entering the next window (with its sensitivities, for an online gradient).
    carry: Array | tuple[Array, Array] | OnlineCarry | tuple[UoroCarry, Array]
    start: Int[Array, ""]  # first stream step of the next window


def array_source(xs: Float[Array, "L D"], ys: Float[Array, "L O"], k2: int) -> Source:
    """Windows of a stream held in two arrays (inputs and the targets aligned with them); the
    arrays are the source's leaves (a ``jax.tree_util.Partial``), so a compiled chunk takes them
    as arguments."""
    return jax.tree_util.Partial(_array_window, xs, ys, k2)


def _array_window(xs, ys, k2: int, start):
    return jax.lax.dynamic_slice_in_dim(xs, start, k2), jax.lax.dynamic_slice_in_dim(ys, start, k2)


def make_stream_train(
    config: StreamConfig, source: Source, *, input_dim: int, output_dim: int
) -> tuple[Callable[[PRNGKeyArray], StreamState], Callable[..., tuple[StreamState, Array]]]:
    """``init(key) -> state`` and ``chunk(state, length) -> (state, mean loss of the chunk's
    `length` updates)``; ``length`` is static (jit it with ``static_argnames="length"``)."""
    rate = config.learning_rate
    if config.decay_updates:  # cosine decay to 0 over that many updates, then 0
        rate = optax.cosine_decay_schedule(config.learning_rate, decay_steps=config.decay_updates)
    optimizer = optax.chain(optax.clip_by_global_norm(config.clip_threshold), optax.adam(rate))
    k1, k2 = config.k1, config.k2

    def init(key):
        params = init_model(
            config.cell,
            key=key,
            input_dim=input_dim,
            hidden_dim=config.hidden_dim,
            output_dim=output_dim,
            num_layers=config.num_layers,
            **cell_options(config),
        )
        carry = params.cell.initial_state()
        if config.online != "none":
            check_online_cell(params.cell, config.online)
            carry = uoro_initial_carry(params.cell) if config.online == "uoro" else initial_carry(params.cell)
        if config.streams:
            carry = jax.tree.map(lambda c: jnp.broadcast_to(c, (config.streams, *c.shape)), carry)
        if config.online == "uoro":  # the draws' keys, one per stream
            draws = jax.random.fold_in(key, 1)
            carry = (carry, jax.random.split(draws, config.streams) if config.streams else draws)
        return StreamState(params, optimizer.init(params), carry, jnp.zeros((), jnp.int32))

    # Refused from shapes alone, before anything is allocated (rnn_jax.resources).
    state = jax.eval_shape(init, jax.random.key(0))
    width = config.hidden_dim * config.num_layers * max(config.streams, 1)
    parts = {
        "parameters and optimiser state": tree_bytes(state) + 2 * tree_bytes(state.params),
        "hidden states": config.k2 * width * jnp.dtype(jnp.float32).itemsize,
    }  # the sensitivities an online gradient carries are in the state
    check_fits(parts, what="training on the stream", advice=TRAINING_ADVICE)

    per_step = get_objective(config.objective).per_step

    def stream_loss(params, carry, xs, ys):
        states = unroll_states(params.cell, xs, h0=jax.lax.stop_gradient(carry))
        pred = params.readout(params.cell.hidden(states)[k2 - k1 :])  # the window's newest k1 steps
        handover = jax.tree.map(lambda s: s[k1 - 1], states)  # state entering the next window
        return jnp.mean(per_step(pred, ys[k2 - k1 :])), handover

    def window_loss(params, carry, xs, ys):
        if not config.streams:
            return stream_loss(params, carry, xs, ys)
        losses, handover = jax.vmap(stream_loss, in_axes=(None, 0, 0, 0))(params, carry, xs, ys)
        return jnp.mean(losses), handover

    def hand_derived(params, carry, xs, ys):
        """The window's loss and gradient from ``rnn_jax.loss``'s hand-derived rule (k1 = k2:
        every step is scored), and the final states the rule's forward pass stored."""
        batched = (xs, ys, carry) if config.streams else jax.tree.map(lambda a: a[None], (xs, ys, carry))
        bx, by, bc = batched

        def window(p):
            return manual_rule_loss(
                p, bx, by, target="all", objective=config.objective, h0=bc, with_final_state=True
            )

        (value, handover), grads = jax.value_and_grad(window, has_aux=True)(params)
        return value, grads, handover if config.streams else jax.tree.map(lambda a: a[0], handover)

    def carried_forward(params, carry, xs, ys):
        """The window's mean loss and gradient from the sensitivities carried in ``carry``."""
        weights = jnp.full(k1, 1.0 / k1, xs.dtype)

        def one(c, x, y):
            if config.online != "uoro":
                return online_grads(params, c, x, y, weights, per_step)
            inner, key = c
            key, draw = jax.random.split(key)
            value, grads, inner = uoro_grads(params, inner, x, y, weights, per_step, draw)
            return value, grads, (inner, key)

        if not config.streams:
            return one(carry, xs, ys)
        values, grads, carry = jax.vmap(one)(carry, xs, ys)
        return jnp.mean(values), jax.tree.map(lambda g: jnp.mean(g, axis=0), grads), carry

    def update(state: StreamState, _):
        xs, ys = source(state.start)
        if config.online != "none":
            value, grads, handover = carried_forward(state.params, state.carry, xs, ys)
        elif config.backward == "manual":
            value, grads, handover = hand_derived(state.params, state.carry, xs, ys)
        else:
            (value, handover), grads = jax.value_and_grad(window_loss, has_aux=True)(
                state.params, state.carry, xs, ys
            )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return StreamState(params, opt_state, handover, state.start + k1), value

    def chunk(state, length: int):
        state, losses = jax.lax.scan(update, state, length=length)
        return state, jnp.mean(losses)

    return init, chunk


class StreamResult(NamedTuple):
    params: RNN
    chunk_losses: list[float]  # mean loss of each chunk of updates, in order (last may be shorter)
    steps: int  # stream steps consumed
    compile_seconds: float
    run_seconds: float  # after compilation
