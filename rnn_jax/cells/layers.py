"""Cells composed into deeper recurrent parts: layers stacked, and bidirectional layers.

Both implement the sequence-level protocol (``rnn_jax.cells.base.Recurrence``) by calling the
cells' own ``states`` and ``backward``; nothing here asks which cell it holds, so any mix of
registered or user-defined cells composes. The equations are in ``docs/layers.md``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rnn_jax.cells.base import CellGrads, Recurrence, State, output_grads, unrolled
from rnn_jax.errors import InputError


def _flip(tree):
    """Every leaf reversed along time (its leading axis)."""
    return jax.tree.map(lambda a: a[::-1], tree)


def reversed_starts(starts: Bool[Array, " T"] | None) -> Bool[Array, " T"] | None:
    """The window starts of the time-reversed sequence. A cut at ``t`` makes the boundary
    between steps ``t - 1`` and ``t`` opaque to gradients; read backwards, that boundary is
    crossed entering reversed step ``T - t``. The initial state keeps its own flag."""
    if starts is None:
        return None
    return jnp.concatenate([starts[:1], starts[:0:-1]])


class Bidirectional(Recurrence):
    """A forward cell and a reverse cell over the same inputs; outputs ``[h_fwd_t; h_rev_t]``.

    The reverse cell runs from the last step to the first. Steps a ``mask`` skips carry its
    state unchanged, so on a right-padded sequence it starts at the last *valid* step, exactly
    as on the unpadded copy. State: ``(forward state, reverse state)``; ``states`` returns both
    in time order.
    """

    forward: Recurrence
    reverse: Recurrence

    @property
    def causal(self) -> bool:
        return False

    @property
    def input_dim(self) -> int:
        return self.forward.input_dim

    @property
    def hidden_dim(self) -> int:
        return self.forward.hidden_dim + self.reverse.hidden_dim

    def check(self) -> None:
        self.forward.check()
        self.reverse.check()
        if self.forward.input_dim != self.reverse.input_dim:
            raise InputError(
                f"a bidirectional layer's cells must read the same inputs; the forward cell takes "
                f"D={self.forward.input_dim}, the reverse cell D={self.reverse.input_dim}"
            )

    def initial_state(self) -> State:
        return (self.forward.initial_state(), self.reverse.initial_state())

    def hidden(self, state: State) -> Float[Array, "*T H"]:
        return jnp.concatenate([self.forward.hidden(state[0]), self.reverse.hidden(state[1])], axis=-1)

    def states(self, xs, *, starts=None, h0=None, mask=None, unroll=1) -> State:
        h0 = self.initial_state() if h0 is None else h0
        ahead = self.forward.states(xs, starts=starts, h0=h0[0], mask=mask, **unrolled(unroll))
        flipped = None if mask is None else mask[::-1]
        back = self.reverse.states(
            xs[::-1], starts=reversed_starts(starts), h0=h0[1], mask=flipped, **unrolled(unroll)
        )
        return ahead, _flip(back)

    def backward(self, xs, h0, states, dh_out, cuts, mask=None) -> CellGrads:
        """Two reverse scans: the forward cell's from ``T`` down, the reverse cell's (in its own
        time) from step 0 up. Each gets its half of ``dL/dh_t``; the input gradients add."""
        split = self.forward.hidden_dim
        if dh_out.ndim == 1:  # only the last step is scored: it seeds the forward scan, and is
            # the reverse cell's first step in its own time
            d_ahead, d_back = dh_out[:split], output_grads(dh_out[split:], xs.shape[0])[::-1]
        else:
            d_ahead, d_back = dh_out[:, :split], dh_out[::-1, split:]
        ahead = self.forward.backward(xs, h0[0], states[0], d_ahead, cuts, mask)
        flipped_mask = None if mask is None else mask[::-1]
        back = self.reverse.backward(
            xs[::-1], h0[1], _flip(states[1]), d_back, reversed_starts(cuts), flipped_mask
        )
        return CellGrads(tape=(ahead.tape, back.tape), xs=ahead.xs + back.xs[::-1], h0=(ahead.h0, back.h0))

    def param_grads(self, tape) -> Bidirectional:
        return Bidirectional(
            forward=self.forward.param_grads(tape[0]), reverse=self.reverse.param_grads(tape[1])
        )


class Stack(Recurrence):
    """Layers run one after another: layer ``l`` reads layer ``l - 1``'s outputs at every step.

    Each layer is unrolled over the whole sequence before the next starts, so each layer's
    input drives are one matrix product. ``dropout`` (a probability) zeroes each input of the
    layers above the first at random, scaled by ``1 / (1 - dropout)``, when a ``key`` is given
    (training); without a key (evaluation) nothing is dropped. Truncation windows and the mask
    are the same for every layer. State: a tuple with one state per layer.
    """

    layers: tuple[Recurrence, ...]
    dropout: float = eqx.field(static=True, default=0.0)

    @property
    def causal(self) -> bool:
        return all(layer.causal for layer in self.layers)

    @property
    def input_dim(self) -> int:
        return self.layers[0].input_dim

    @property
    def hidden_dim(self) -> int:
        return self.layers[-1].hidden_dim

    def check(self) -> None:
        if not self.layers:
            raise InputError("a stack needs at least one layer")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1); got {self.dropout}")
        for index, layer in enumerate(self.layers):
            layer.check()
            if index and layer.input_dim != self.layers[index - 1].hidden_dim:
                raise InputError(
                    f"layer {index} reads D={layer.input_dim} features, but layer {index - 1} "
                    f"gives {self.layers[index - 1].hidden_dim}"
                )

    def initial_state(self) -> State:
        return tuple(layer.initial_state() for layer in self.layers)

    def hidden(self, state: State) -> Float[Array, "*T H"]:
        return self.layers[-1].hidden(state[-1])

    def keep_scale(self, index: int, shape: tuple[int, ...], key: PRNGKeyArray | None) -> Array | None:
        """Dropout's multiplier on layer ``index``'s inputs: ``keep / (1 - p)``, or ``None``."""
        if key is None or self.dropout == 0.0 or index == 0:
            return None
        keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1.0 - self.dropout, shape)
        return keep.astype(self.dtype) / (1.0 - self.dropout)

    def dropped(self, index: int, below: Float[Array, "T F"], key) -> Float[Array, "T F"]:
        """Layer ``index``'s input: the outputs of the layer below after dropout."""
        scale = self.keep_scale(index, below.shape, key)
        return below if scale is None else below * scale

    def layer_inputs(self, xs: Float[Array, "T D"], states: State, key) -> list[Array]:
        """What each layer read: ``xs``, then each lower layer's outputs after dropout."""
        return [xs] + [
            self.dropped(index, self.layers[index - 1].hidden(states[index - 1]), key)
            for index in range(1, len(self.layers))
        ]

    def _run(self, xs, layers, *, starts, h0, mask, key, unroll=1) -> tuple[list[State], Array]:
        """The states of ``layers`` (the first ones), and what the next layer reads."""
        out, inputs = [], xs
        for index, layer in enumerate(layers):
            out.append(layer.states(inputs, starts=starts, h0=h0[index], mask=mask, **unrolled(unroll)))
            inputs = self.dropped(index + 1, layer.hidden(out[-1]), key)
        return out, inputs

    def states(self, xs, *, starts=None, h0=None, mask=None, key=None, unroll=1) -> State:
        h0 = self.initial_state() if h0 is None else h0
        run = {"starts": starts, "h0": h0, "mask": mask, "key": key, "unroll": unroll}
        return tuple(self._run(xs, self.layers, **run)[0])

    def final(self, xs, *, starts=None, h0=None, mask=None, key=None, unroll=1) -> State:
        """Every layer's final state; the top layer keeps nothing per step."""
        h0 = self.initial_state() if h0 is None else h0
        run = {"starts": starts, "h0": h0, "mask": mask, "key": key, "unroll": unroll}
        lower, inputs = self._run(xs, self.layers[:-1], **run)
        top = self.layers[-1].final(inputs, starts=starts, h0=h0[-1], mask=mask, **unrolled(unroll))
        return (*(jax.tree.map(lambda s: s[-1], states) for states in lower), top)

    def backward(self, xs, h0, states, dh_out, cuts, mask=None, key=None) -> CellGrads:
        """From the top layer down: each layer's input gradient (through dropout's mask) is the
        output gradient of the layer below."""
        inputs = self.layer_inputs(xs, states, key)
        grads: list[CellGrads] = [None] * len(self.layers)
        upstream = dh_out
        for index in reversed(range(len(self.layers))):
            layer = self.layers[index]
            grads[index] = layer.backward(inputs[index], h0[index], states[index], upstream, cuts, mask)
            upstream = self.dropped(index, grads[index].xs, key)
        return CellGrads(tape=tuple(g.tape for g in grads), xs=upstream, h0=tuple(g.h0 for g in grads))

    def param_grads(self, tape) -> Stack:
        return Stack(
            layers=tuple(layer.param_grads(t) for layer, t in zip(self.layers, tape, strict=True)),
            dropout=self.dropout,
        )
