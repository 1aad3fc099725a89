"""The independently recurrent cell (IndRNN; Li et al. 2018, "Independently recurrent neural
network (IndRNN): building a longer and deeper RNN"): each unit recurs on itself only,

    h_t = f(U x_t + w ⊙ h_{t-1} + b),        w (H,), a vector instead of a matrix,

so the gradient through ``T`` steps is ``Π_t w ⊙ f'(a_t)``, unit by unit, and bounding
``|w| <= 1`` bounds it. A whole cell with its backward pass in one file and one registry line
(``rnn_jax/cells/__init__.py``): the template for adding a cell.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rnn_jax.cells.base import Cell, CellGrads, previous, reverse_scan, sized_message, sum_outer, with_arrays
from rnn_jax.cells.elman import NAMED_ACTIVATIONS, check_activation
from rnn_jax.errors import InputError


class IndRNN(Cell):
    """``U (H, D)``, ``w (H,)``, ``b (H,)``; ``activation`` is one of the named ones."""

    U: Float[Array, "H D"]
    w: Float[Array, " H"]
    b: Float[Array, " H"]
    activation: str = eqx.field(static=True)
    ELEMENTWISE = True

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        input_dim: int,
        hidden_dim: int,
        activation: str = "relu",
        scale: float | Array = 1.0,
        dtype: DTypeLike = jnp.float32,
    ):
        """Glorot-uniform ``U``; recurrent weights uniform in [0, 1) times ``scale``."""
        check_activation(activation)
        if not isinstance(activation, str):
            raise InputError(f"IndRNN takes a named activation; got {activation!r}")
        u_key, w_key = jax.random.split(key)
        self.U = jax.nn.initializers.glorot_uniform()(u_key, (hidden_dim, input_dim), dtype)
        self.w = jax.random.uniform(w_key, (hidden_dim,), dtype) * jnp.asarray(scale, dtype)
        self.b = jnp.zeros((hidden_dim,), dtype)
        self.activation = activation

    @property
    def input_dim(self) -> int:
        return self.U.shape[1]

    @property
    def hidden_dim(self) -> int:
        return self.U.shape[0]

    def check(self) -> None:
        if self.w.shape != (self.hidden_dim,) or self.b.shape != (self.hidden_dim,):
            raise InputError(sized_message(self, f"U {self.U.shape}, w {self.w.shape}, b {self.b.shape}"))

    def input_drive(self, xs: Float[Array, "T D"]) -> Float[Array, "T H"]:
        return xs @ self.U.T + self.b[None, :]

    def recur(self, state: Float[Array, " H"], drive: Float[Array, " H"]) -> Float[Array, " H"]:
        return NAMED_ACTIVATIONS[self.activation][0](drive + self.w * state)

    def recur_diagonal(self, state: Float[Array, " H"], drive: Float[Array, " H"]) -> Float[Array, " H"]:
        """``d recur / d state``, which is diagonal: ``f'(a_t) ⊙ w``."""
        f, f_prime = NAMED_ACTIVATIONS[self.activation]  # f' in terms of the output h_t
        return f_prime(f(drive + self.w * state)) * self.w

    def backward(
        self,
        xs: Float[Array, "T D"],
        h0: Float[Array, " H"],
        states: Float[Array, "T H"],
        dh_out: Float[Array, "T H"] | Float[Array, " H"],
        cuts: Bool[Array, " T"] | None,
        mask: Bool[Array, " T"] | None = None,
    ) -> CellGrads:
        """``delta_t = dL/dh_t ⊙ f'(a_t)``; ``g_{t-1} = w ⊙ delta_t`` (elementwise: no matmul)."""
        f_prime = NAMED_ACTIVATIONS[self.activation][1]
        h_prev = previous(states, h0)

        def step(dh, h):
            delta = dh * f_prime(h)
            return delta * self.w, (delta, dh)

        dh0, (deltas, dhs) = reverse_scan(step, jnp.zeros_like(h0), states, dh_out, cuts=cuts, mask=mask)
        return CellGrads(tape=(deltas, xs, h_prev), xs=deltas @ self.U, h0=dh0, dh=dhs)

    def param_grads(self, tape: tuple[Array, Array, Array]) -> IndRNN:
        deltas, xs, h_prev = tape
        return with_arrays(
            self, U=sum_outer(deltas, xs), w=jnp.sum(deltas * h_prev, axis=0), b=jnp.sum(deltas, axis=0)
        )
