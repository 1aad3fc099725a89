"""The LSTM cell (Hochreiter & Schmidhuber 1997, with a forget gate) and its hand-derived
backward pass.

Gates stacked in the order input ``i``, forget ``f``, candidate ``g``, output ``o`` (PyTorch's
order)::

    a_t[k] = Wx[k] x_t + b[k] + Wh[k] h_{t-1}
    i_t, f_t, o_t = σ(a_t[i]), σ(a_t[f]), σ(a_t[o]);   g_t = tanh(a_t[g])
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

The state is the pair ``(h, c)``; the readout reads ``h``. Backward equations: ``docs/gated.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rnn_jax.cells.base import CellGrads, previous, reverse_scan, sum_outer, with_arrays
from rnn_jax.cells.gates import (
    GatedCell,
    gate_activations,
    glorot_stack,
    orthogonal_stack,
    refuse_activation,
    stacked_product,
)

TANH_GATES = (False, False, True, False)  # i, f, g, o: only the candidate g is a tanh
OUTPUT_GATE = np.array([[False], [False], [False], [True]])  # (4, 1): the gate that reads h_t

LSTMState = tuple[Float[Array, " H"], Float[Array, " H"]]  # (h, c)
LSTMStates = tuple[Float[Array, "T H"], Float[Array, "T H"]]  # (hs, cs), every step


class LSTM(GatedCell):
    """LSTM weights: ``Wx (4, H, D)``, ``Wh (4, H, H)``, ``b (4, H)``."""

    TORCH = "lstm"
    GATES = 4

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        input_dim: int,
        hidden_dim: int,
        scale: float | Array = 1.0,
        dtype: DTypeLike = jnp.float32,
        activation: object = None,  # refused: see refuse_activation
    ):
        """Glorot-uniform input weights, an orthogonal recurrent matrix per gate (times
        ``scale``, which may be traced), zero biases except the forget gate's, which is 1 so
        that the cell state is kept at the start of training (Gers et al. 2000; Jozefowicz et
        al. 2015)."""
        refuse_activation("LSTM", activation)
        x_key, h_key = jax.random.split(key)
        self.Wx = glorot_stack(x_key, 4, hidden_dim, input_dim, dtype)
        self.Wh = orthogonal_stack(h_key, 4, hidden_dim, dtype) * jnp.asarray(scale, dtype)
        self.b = jnp.zeros((4, hidden_dim), dtype).at[1].set(1.0)

    def initial_state(self) -> LSTMState:
        h = jnp.zeros(self.hidden_dim, self.dtype)
        return h, h

    def hidden(self, state: LSTMState | LSTMStates) -> Float[Array, "*T H"]:
        return state[0]

    def recur(self, state: LSTMState, drive: Float[Array, "4 H"]) -> LSTMState:
        h_prev, c_prev = state
        i, f, g, o = gate_activations(drive + stacked_product(h_prev, self.Wh), TANH_GATES)
        c = f * c_prev + i * g
        return o * jnp.tanh(c), c

    def backward(
        self,
        xs: Float[Array, "T D"],
        h0: LSTMState,
        states: LSTMStates,
        dh_out: Float[Array, "T H"] | Float[Array, " H"],
        cuts: Bool[Array, " T"] | None,
        mask: Bool[Array, " T"] | None = None,
    ) -> CellGrads:
        """``docs/gated.md``: gates recomputed at once from the stored states; a reverse scan
        carries ``dL/dh_t`` and ``dL/dc_t`` (the constant error carousel)."""
        hs, cs = states
        h_prev, c_prev = previous(hs, h0[0]), previous(cs, h0[1])
        a = self.input_drive(xs) + jnp.einsum("tk,ghk->tgh", h_prev, self.Wh)
        gates = gate_activations(a, TANH_GATES)
        i, f, g, o = (gates[:, k] for k in range(4))
        tanh_c = jnp.tanh(cs)
        # d a_t[k] / d(c_t) for i, f, g and d a_t[o] / d(h_t), for every step at once: inside
        # the scan each step then scales one (4, H) array instead of stacking four.
        slopes = jnp.stack(
            [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), tanh_c * o * (1.0 - o)], axis=1
        )

        def step(carry, inputs):
            dh, g_c = carry  # dL/dh_t (the loss's direct part included) and dL/dc_t from the future
            slope, f, o, tc = inputs
            dc = g_c + dh * o * (1.0 - tc * tc)
            da = slope * jnp.where(OUTPUT_GATE, dh[None], dc[None])  # (4, H): dc for i, f, g; dh for o
            return (da.reshape(-1) @ self.Wh.reshape(-1, self.hidden_dim), dc * f), da

        zeros = jnp.zeros_like(h0[0])
        inputs = (slopes, f, o, tanh_c)
        dh0, da = reverse_scan(step, (zeros, zeros), inputs, dh_out, cuts=cuts, mask=mask)
        return CellGrads(tape=(da, xs, h_prev), xs=jnp.einsum("tgh,ghd->td", da, self.Wx), h0=dh0)

    def param_grads(self, tape: tuple[Array, Array, Array]) -> LSTM:
        """``docs/gated.md`` (G2): every gate's recurrent matrix multiplied ``h_{t-1}``."""
        da, xs, h_prev = tape
        return with_arrays(
            self,
            Wx=sum_outer(da, xs),
            Wh=sum_outer(da, h_prev),
            b=jnp.sum(da, axis=0),
        )
