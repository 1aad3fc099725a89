"""The GRU cell, in both placements of its reset gate, and its hand-derived backward pass.

Gates stacked in the order update ``z``, reset ``r``, candidate ``n``; ``σ`` is the logistic
sigmoid and ``⊙`` the elementwise product::

    z_t = σ(Wx[z] x_t + b[z] + Wh[z] h_{t-1})
    r_t = σ(Wx[r] x_t + b[r] + Wh[r] h_{t-1})
    n_t = tanh(Wx[n] x_t + b[n] + r_t ⊙ (Wh[n] h_{t-1} + bh_n))    reset="after"  (default)
    n_t = tanh(Wx[n] x_t + b[n] + Wh[n] (r_t ⊙ h_{t-1}))           reset="before"
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

``reset="after"`` is the form of PyTorch's ``nn.GRU``, cuDNN, Flax's ``GRUCell`` and Keras's
default (``reset_after=True``); it has a second candidate bias ``bh_n`` inside the reset
product. It is the default because a model trained here then loads there and back
(``rnn_jax.interop``), and because all three recurrent products act on ``h_{t-1}`` and run as
one. ``reset="before"`` is Cho et al. (2014), "Learning phrase representations using RNN
encoder-decoder", eq. 8. Equations of both backward passes: ``docs/gated.md``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rnn_jax.cells.base import CellGrads, previous, reverse_scan, sized_message, sum_outer, with_arrays
from rnn_jax.cells.gates import GatedCell, glorot_stack, orthogonal_stack, refuse_activation
from rnn_jax.errors import InputError

RESETS = ("after", "before")


class GRU(GatedCell):
    """GRU weights: ``Wx (3, H, D)``, ``Wh (3, H, H)``, ``b (3, H)`` and, for
    ``reset="after"``, the candidate's recurrent bias ``bh_n (H,)`` (``None`` otherwise)."""

    TORCH = "gru"
    OPTIONS = ("reset",)

    GATES = 3
    bh_n: Float[Array, " H"] | None  # candidate's recurrent bias (reset="after" only)
    reset: str = eqx.field(static=True)

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        input_dim: int,
        hidden_dim: int,
        reset: str = "after",
        scale: float | Array = 1.0,
        dtype: DTypeLike = jnp.float32,
        activation: object = None,  # refused: see refuse_activation
    ):
        """Glorot-uniform input weights, an orthogonal recurrent matrix per gate (times
        ``scale``, which may be traced), zero biases."""
        refuse_activation("GRU", activation)
        if reset not in RESETS:
            raise InputError(f"reset must be one of {', '.join(RESETS)}; got {reset!r}")
        x_key, h_key = jax.random.split(key)
        self.Wx = glorot_stack(x_key, 3, hidden_dim, input_dim, dtype)
        self.Wh = orthogonal_stack(h_key, 3, hidden_dim, dtype) * jnp.asarray(scale, dtype)
        self.b = jnp.zeros((3, hidden_dim), dtype)
        self.bh_n = jnp.zeros((hidden_dim,), dtype) if reset == "after" else None
        self.reset = reset

    def check(self) -> None:
        super().check()
        if self.reset == "after" and (self.bh_n is None or self.bh_n.shape != (self.hidden_dim,)):
            raise InputError(sized_message(self, f"bh_n {None if self.bh_n is None else self.bh_n.shape}"))

    def recur(self, state: Float[Array, " H"], drive: Float[Array, "3 H"]) -> Float[Array, " H"]:
        h = state
        if self.reset == "after":
            m = jnp.einsum("k,ghk->gh", h, self.Wh)
            z = jax.nn.sigmoid(drive[0] + m[0])
            r = jax.nn.sigmoid(drive[1] + m[1])
            n = jnp.tanh(drive[2] + r * (m[2] + self.bh_n))
        else:
            m = jnp.einsum("k,ghk->gh", h, self.Wh[:2])  # both gates' products at once
            z = jax.nn.sigmoid(drive[0] + m[0])
            r = jax.nn.sigmoid(drive[1] + m[1])
            n = jnp.tanh(drive[2] + (r * h) @ self.Wh[2].T)
        return (1.0 - z) * n + z * h

    def backward(
        self,
        xs: Float[Array, "T D"],
        h0: Float[Array, " H"],
        states: Float[Array, "T H"],
        dh_out: Float[Array, "T H"] | Float[Array, " H"],
        cuts: Bool[Array, " T"] | None,
        mask: Bool[Array, " T"] | None = None,
    ) -> CellGrads:
        """``docs/gated.md``: the gates of every step are recomputed at once from the stored
        states (no scan), then a reverse scan carries ``dL/dh_t`` and emits each gate's
        pre-activation gradient; the weight gradients are one ``einsum`` each."""
        hp = previous(states, h0)
        drive = self.input_drive(xs)
        Wz, Wr, Wn = self.Wh
        z = jax.nn.sigmoid(drive[:, 0] + hp @ Wz.T)
        r = jax.nn.sigmoid(drive[:, 1] + hp @ Wr.T)
        if self.reset == "after":
            m = hp @ Wn.T + self.bh_n[None]  # the candidate's recurrent part, before the reset
            n = jnp.tanh(drive[:, 2] + r * m)
        else:
            m = r * hp  # what Wh[n] multiplies
            n = jnp.tanh(drive[:, 2] + m @ Wn.T)
        after = self.reset == "after"

        def step(dh, inputs):
            z, r, n, m, hp = inputs
            da_n = dh * (1.0 - z) * (1.0 - n * n)
            da_z = dh * (hp - n) * z * (1.0 - z)
            if after:
                dm = da_n * r  # gradient at Wh[n] h_{t-1} + bh_n
                da_r = da_n * m * r * (1.0 - r)
                dh_prev = dh * z + jnp.einsum("gh,ghk->k", jnp.stack([da_z, da_r, dm]), self.Wh)
            else:
                dm = da_n  # Wh[n]'s own product is r ⊙ h_{t-1}
                q = da_n @ Wn  # gradient at r ⊙ h_{t-1}
                da_r = q * hp * r * (1.0 - r)
                dh_prev = dh * z + da_z @ Wz + da_r @ Wr + q * r
            return dh_prev, (jnp.stack([da_z, da_r, da_n]), dm)

        dh0, (da, dm) = reverse_scan(step, jnp.zeros_like(h0), (z, r, n, m, hp), dh_out, cuts=cuts, mask=mask)
        # What Wh[n] multiplied (h_{t-1} after, r ⊙ h_{t-1} before) and the gradient at it.
        tape = (da, dm, xs, hp, hp if after else m)
        return CellGrads(tape=tape, xs=jnp.einsum("tgh,ghd->td", da, self.Wx), h0=dh0)

    def param_grads(self, tape: tuple[Array, Array, Array, Array, Array]) -> GRU:
        """``docs/gated.md`` (G2); ``Wh[n]`` takes the gradient at its own product."""
        da, dm, xs, hp, u_n = tape
        dWh = jnp.concatenate([sum_outer(da[:, :2], hp), sum_outer(dm, u_n)[None]])
        extra = {"bh_n": jnp.sum(dm, axis=0)} if self.reset == "after" else {}
        return with_arrays(self, Wx=sum_outer(da, xs), Wh=dWh, b=jnp.sum(da, axis=0), **extra)
