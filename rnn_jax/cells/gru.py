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
from rnn_jax.cells.gates import (
    GatedCell,
    gate_activations,
    glorot_stack,
    orthogonal_stack,
    refuse_activation,
    stacked_product,
)
from rnn_jax.errors import InputError

RESETS = ("after", "before")
SIGMOIDS = (False, False)  # the update and reset gates, taken by gate_activations together


class GRU(GatedCell):
    """GRU weights: ``Wx (3, H, D)``, ``Wh (3, H, H)``, ``b (3, H)`` and, for
    ``reset="after"``, the candidate's recurrent bias ``bh_n (H,)`` (``None`` otherwise)."""

    TORCH = "gru"
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

    def _narrow(self) -> bool:
        # D < H: the update and reset gates take their input part inside the step's product
        # (augmented_rows); with wide inputs that would multiply the product's size.
        return self.input_dim < self.hidden_dim

    def input_drive(
        self, xs: Float[Array, "T D"]
    ) -> tuple[Float[Array, "T D"], Float[Array, "T H"]] | Float[Array, "T 3 H"]:
        """What the scan reads per step. For ``D < H`` the inputs themselves and the candidate's
        input part ``Wx[n] x_t + b[n]`` (one matmul for all steps); otherwise every gate's input
        part, ``(T, 3, H)``."""
        if self._narrow():
            return xs, xs @ self.Wx[2].T + self.b[2][None]
        return self.gate_drive(xs)

    def gate_drive(self, xs: Float[Array, "T D"]) -> Float[Array, "T 3 H"]:
        """``Wx[k] x_t + b[k]`` for every gate and step at once (the backward pass's form)."""
        return super().input_drive(xs)

    def augmented_rows(self) -> Float[Array, "R K"]:
        """The step's one product for ``D < H``, as a weight for ``[h_{t-1}, x_t, 1]``
        (``K = H + D + 1``): its rows give the update and reset gates' whole pre-activations
        and, with the reset after, the candidate's recurrent part ``Wh[n] h_{t-1} + bh_n``
        (``R = 3 H``; ``2 H`` with the reset before).

        Why the inputs go through the product: with the reset after, a scan step that read the
        two gates' input parts as slices of its per-step input, and fused their ``tanh`` into
        the candidate's, ran that loop several times slower per element on XLA's CPU backend (a
        GRU forward pass at N=100, T=50, H=100, D=1: 15-16 ms, half of it in that loop; about
        8 ms this way)."""
        wide = jnp.concatenate([self.Wh[:2], self.Wx[:2], self.b[:2, :, None]], axis=2)
        if self.reset == "after":
            candidate = jnp.concatenate([self.Wh[2], jnp.zeros_like(self.Wx[2]), self.bh_n[:, None]], axis=1)
            wide = jnp.concatenate([wide, candidate[None]])
        return wide.reshape(-1, wide.shape[2])

    def recur(self, state: Float[Array, " H"], drive) -> Float[Array, " H"]:
        """``h_t`` from ``h_{t-1} (H,)`` and this step's ``input_drive``: ``(x_t (D,), Wx[n] x_t +
        b[n] (H,))`` for ``D < H``, else the gates' input parts ``(3, H)``."""
        h, after = state, self.reset == "after"
        if self._narrow():
            x, candidate_drive = drive
            rows = jnp.concatenate([h, x, jnp.ones((1,), h.dtype)])
            a = (rows @ self.augmented_rows().T).reshape(-1, self.hidden_dim)
            gates, recurrent_n = a[:2], a[2] if after else None
        else:
            m = stacked_product(h, self.Wh if after else self.Wh[:2])
            gates, candidate_drive = drive[:2] + m[:2], drive[2]
            recurrent_n = m[2] + self.bh_n if after else None
        z, r = gate_activations(gates, SIGMOIDS)
        if after:  # recurrent_n = Wh[n] h_{t-1} + bh_n
            n = jnp.tanh(candidate_drive + r * recurrent_n)
        else:
            n = jnp.tanh(candidate_drive + (r * h) @ self.Wh[2].T)
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
        states (no scan), then a reverse scan carries ``dL/dh_t``; each gate's pre-activation
        gradient is that times a slope known before the scan (times ``Wh[n]^T`` of it for
        ``r`` with the reset before), so the scan emits ``dL/dh_t`` (and that product) and the
        gate gradients are formed for all steps at once after it."""
        hp = previous(states, h0)
        drive = self.gate_drive(xs)
        zr = gate_activations(drive[:, :2] + jnp.einsum("tk,ghk->tgh", hp, self.Wh[:2]), SIGMOIDS)
        z, r = zr[:, 0], zr[:, 1]
        Wn = self.Wh[2]
        after = self.reset == "after"
        if after:
            m = hp @ Wn.T + self.bh_n[None]  # the candidate's recurrent part, before the reset
            n = jnp.tanh(drive[:, 2] + r * m)
        else:
            m = r * hp  # what Wh[n] multiplies
            n = jnp.tanh(drive[:, 2] + m @ Wn.T)
        s_n = (1.0 - z) * (1.0 - n * n)  # dL/da_t[n] = dh_t ⊙ s_n
        s_z = (hp - n) * z * (1.0 - z)  # dL/da_t[z] = dh_t ⊙ s_z
        zeros = jnp.zeros_like(h0)

        if after:
            # dL/da_t[r] = dh_t ⊙ s_n ⊙ m_t ⊙ r(1 - r); the gradient at Wh[n] h_{t-1} + bh_n is
            # dh_t ⊙ s_n ⊙ r. The three products with Wh are one (3 H) x H product.
            s_r = s_n * m * r * (1.0 - r)
            slopes = jnp.stack([s_z, s_r, s_n * r], axis=1)
            Wh = self.Wh.reshape(-1, self.hidden_dim)

            def step(dh, inputs):
                slope, z = inputs
                return dh * z + (dh[None] * slope).reshape(-1) @ Wh, dh

            dh0, dhs = reverse_scan(step, zeros, (slopes, z), dh_out, cuts=cuts, mask=mask)
            da = jnp.stack([dhs * s_z, dhs * s_r, dhs * s_n], axis=1)
            dm = dhs * slopes[:, 2]
        else:
            s_r = hp * r * (1.0 - r)  # dL/da_t[r] = q_t ⊙ s_r, q_t the gradient at r ⊙ h_{t-1}
            Wz, Wr = self.Wh[0], self.Wh[1]

            def step(dh, inputs):
                s_z, s_n, s_r, z, r = inputs
                q = (dh * s_n) @ Wn
                return dh * z + (dh * s_z) @ Wz + (q * s_r) @ Wr + q * r, (dh, q)

            dh0, (dhs, qs) = reverse_scan(step, zeros, (s_z, s_n, s_r, z, r), dh_out, cuts=cuts, mask=mask)
            da = jnp.stack([dhs * s_z, qs * s_r, dhs * s_n], axis=1)
            dm = da[:, 2]
        # What Wh[n] multiplied (h_{t-1} after, r ⊙ h_{t-1} before) and the gradient at it.
        tape = (da, dm, xs, hp, hp if after else m)
        return CellGrads(tape=tape, xs=jnp.einsum("tgh,ghd->td", da, self.Wx), h0=dh0)

    def param_grads(self, tape: tuple[Array, Array, Array, Array, Array]) -> GRU:
        """``docs/gated.md`` (G2); ``Wh[n]`` takes the gradient at its own product."""
        da, dm, xs, hp, u_n = tape
        dWh = jnp.concatenate([sum_outer(da[:, :2], hp), sum_outer(dm, u_n)[None]])
        extra = {"bh_n": jnp.sum(dm, axis=0)} if self.reset == "after" else {}
        return with_arrays(self, Wx=sum_outer(da, xs), Wh=dWh, b=jnp.sum(da, axis=0), **extra)
