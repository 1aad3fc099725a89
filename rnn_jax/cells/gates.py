"""What the gated cells share: their gates are stacked on a leading axis, so sizes, checks and
the input drive are written once here, with the initialisers."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from rnn_jax.cells.base import Cell, sized_message
from rnn_jax.errors import InputError


class GatedCell(Cell):
    """A cell with ``GATES`` gates: ``Wx (G, H, D)``, ``Wh (G, H, H)``, ``b (G, H)``."""

    GATES: ClassVar[int]

    Wx: Float[Array, "G H D"]  # input -> gate
    Wh: Float[Array, "G H H"]  # hidden -> gate
    b: Float[Array, "G H"]  # gate biases

    @property
    def input_dim(self) -> int:
        return self.Wx.shape[2]

    @property
    def hidden_dim(self) -> int:
        return self.Wx.shape[1]

    def check(self) -> None:
        g, h = self.GATES, self.hidden_dim
        if self.Wx.shape[0] != g or self.Wh.shape != (g, h, h) or self.b.shape != (g, h):
            raise InputError(sized_message(self, f"Wx {self.Wx.shape}, Wh {self.Wh.shape}, b {self.b.shape}"))

    def input_drive(self, xs: Float[Array, "T D"]) -> Float[Array, "T G H"]:
        """``Wx[k] x_t + b[k]`` for every gate and step at once."""
        return jnp.einsum("td,ghd->tgh", xs, self.Wx) + self.b[None]


def stacked_product(h: Float[Array, " K"], W: Float[Array, "G H K"]) -> Float[Array, "G H"]:
    """``W[k] @ h`` for every gate ``k``, as one product with a two-dimensional weight: a
    three-dimensional one made XLA's CPU backend copy ``W`` transposed at every step of a scan
    (it does not hoist the copy out of the loop)."""
    g, rows, cols = W.shape
    return (h @ W.reshape(g * rows, cols).T).reshape(g, rows)


def gate_activations(a: Float[Array, "*T G H"], tanh_gates: tuple[bool, ...]) -> Float[Array, "*T G H"]:
    """Every gate's nonlinearity at once: ``tanh`` where ``tanh_gates[k]``, else the logistic
    sigmoid, written ``σ(x) = (1 + tanh(x / 2)) / 2`` so that one ``tanh`` covers the whole
    stacked array.

    Why: XLA's CPU backend runs one transcendental over a whole array in vector code, but a
    fused loop that applies a different one to each gate's slice ran several times slower per
    element (an LSTM forward pass at N=100, H=100, T=50: 8.3 ms this way, 14.9 ms per slice)."""
    half = jnp.asarray([1.0 if t else 0.5 for t in tanh_gates], a.dtype)
    half = half.reshape((1,) * (a.ndim - 2) + (len(tanh_gates), 1))  # (..., G, 1)
    return jnp.tanh(a * half) * half + (1.0 - half)


def orthogonal_stack(key: PRNGKeyArray, n: int, size: int, dtype: DTypeLike) -> Float[Array, "n H H"]:
    """``n`` independent Haar-random orthogonal ``(size, size)`` matrices from one batched QR.

    The QR of a Gaussian matrix, with the signs of ``R``'s diagonal moved into ``Q`` (Mezzadri
    2007). One call for all gates, not one per gate: XLA on CPU runs independent LAPACK calls at
    the same time, and each one, when batched (e.g. under ``vmap`` over seeds), splits its batch
    over the shared thread pool and waits for it, so two of them at once deadlocked a 2-core
    machine (LSTM, H=512, 4 members)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, size, size), dtype))
    return q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def glorot_stack(key: PRNGKeyArray, n: int, rows: int, cols: int, dtype: DTypeLike) -> Float[Array, "n R C"]:
    """``n`` Glorot-uniform ``(rows, cols)`` matrices (variance ``2 / (rows + cols)`` each)."""
    limit = jnp.sqrt(6.0 / (rows + cols)).astype(dtype)
    return jax.random.uniform(key, (n, rows, cols), dtype, -limit, limit)


def refuse_activation(cell: str, activation: object) -> None:
    """Gated cells have fixed nonlinearities; an ``activation`` passed to one is a mistake."""
    if activation is not None:
        raise InputError(
            f"the {cell} cell takes no activation (its gates use sigmoid and tanh); "
            f"got activation={activation!r}. Activations belong to the Elman cell"
        )
