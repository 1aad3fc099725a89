"""Gated cells, GRU and LSTM: parameters, initialisation and one step for one example.

Both keep the Elman cell's linear readout ``y_t = V h_t + c`` and stack their gates on a
leading axis, so the input part of every gate at every step is one ``einsum`` outside the
scan (``gate_drive``) and the scan does only the recurrent part. ``σ`` is the logistic
sigmoid, ``⊙`` the elementwise product, and every gate is ``(H,)``.

GRU (Cho et al. 2014), gates ``k = z, r, n`` with ``a_k = Wx[k] x_t + b[k] + Wh[k] (·)``::

    z_t = σ(Wx[0] x_t + b[0] + Wh[0] h_{t-1})              update gate
    r_t = σ(Wx[1] x_t + b[1] + Wh[1] h_{t-1})              reset gate
    n_t = tanh(Wx[2] x_t + b[2] + Wh[2] (r_t ⊙ h_{t-1}))   candidate
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

LSTM (Hochreiter & Schmidhuber 1997, with a forget gate), gates ``k = i, f, g, o``::

    i_t, f_t, o_t = σ(Wx[k] x_t + b[k] + Wh[k] h_{t-1})    input, forget, output gates
    g_t = tanh(Wx[2] x_t + b[2] + Wh[2] h_{t-1})           candidate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                        cell state
    h_t = o_t ⊙ tanh(c_t)

The hand-derived backward passes are in ``rnn_jax.gated_grads`` and ``docs/gated.md``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray


class GRUParams(eqx.Module):
    """GRU weights, gates stacked in the order update ``z``, reset ``r``, candidate ``n``."""

    Wx: Float[Array, "3 H D"]  # input -> gate
    Wh: Float[Array, "3 H H"]  # hidden -> gate (the candidate's acts on r ⊙ h)
    b: Float[Array, "3 H"]  # gate biases
    V: Float[Array, "O H"]  # hidden -> output
    c: Float[Array, " O"]  # output bias


class LSTMParams(eqx.Module):
    """LSTM weights, gates stacked in the order input ``i``, forget ``f``, candidate ``g``,
    output ``o``."""

    Wx: Float[Array, "4 H D"]
    Wh: Float[Array, "4 H H"]
    b: Float[Array, "4 H"]
    V: Float[Array, "O H"]
    c: Float[Array, " O"]


GatedParams = GRUParams | LSTMParams
LSTMState = tuple[Float[Array, " H"], Float[Array, " H"]]  # (h, c)


def orthogonal_stack(key: PRNGKeyArray, n: int, size: int, dtype: DTypeLike) -> Float[Array, "n H H"]:
    """``n`` independent Haar-random orthogonal ``(size, size)`` matrices from one batched QR.

    The QR of a Gaussian matrix, with the signs of ``R``'s diagonal moved into ``Q`` (Mezzadri
    2007). One call for all gates, not one per gate: XLA on CPU runs independent LAPACK calls at
    the same time, and each one, when batched (e.g. under ``vmap`` over seeds), splits its batch
    over the shared thread pool and waits for it, so two of them at once deadlocked a 2-core
    machine (LSTM, H=512, 4 members)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, size, size), dtype))
    return q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def init_gated(
    kind: type[GRUParams] | type[LSTMParams],
    *,
    key: PRNGKeyArray,
    input_dim: int,
    hidden_dim: int,
    output_dim: int,
    scale: float | Array = 1.0,
    dtype: DTypeLike = jnp.float32,
) -> GatedParams:
    """Glorot-uniform input and output weights, an orthogonal recurrent matrix per gate (times
    ``scale``, which may be traced), zero biases; the LSTM's forget-gate bias is 1 so that the
    cell state is kept at the start of training (Gers et al. 2000; Jozefowicz et al. 2015)."""
    n_gates = 3 if kind is GRUParams else 4
    kx, kh, kv = jax.random.split(key, 3)
    glorot = jax.nn.initializers.glorot_uniform()
    Wx = jnp.stack([glorot(k, (hidden_dim, input_dim), dtype) for k in jax.random.split(kx, n_gates)])
    Wh = orthogonal_stack(kh, n_gates, hidden_dim, dtype)
    b = jnp.zeros((n_gates, hidden_dim), dtype)
    if kind is LSTMParams:
        b = b.at[1].set(1.0)
    return kind(
        Wx=Wx,
        Wh=Wh * jnp.asarray(scale, dtype),
        b=b,
        V=glorot(kv, (output_dim, hidden_dim), dtype),
        c=jnp.zeros((output_dim,), dtype),
    )


def gate_drive(params: GatedParams, xs: Float[Array, "T D"]) -> Float[Array, "T G H"]:
    """``Wx[k] x_t + b[k]`` for every gate and step at once."""
    return jnp.einsum("ghd,td->tgh", params.Wx, xs) + params.b[None]


def gru_recur(
    params: GRUParams, h_prev: Float[Array, " H"], drive: Float[Array, "3 H"]
) -> Float[Array, " H"]:
    """The sequential part of a GRU step (see the module docstring)."""
    z = jax.nn.sigmoid(drive[0] + params.Wh[0] @ h_prev)
    r = jax.nn.sigmoid(drive[1] + params.Wh[1] @ h_prev)
    n = jnp.tanh(drive[2] + params.Wh[2] @ (r * h_prev))
    return (1.0 - z) * n + z * h_prev


def lstm_recur(params: LSTMParams, state: LSTMState, drive: Float[Array, "4 H"]) -> LSTMState:
    """The sequential part of an LSTM step: ``(h_{t-1}, c_{t-1}) -> (h_t, c_t)``."""
    h_prev, c_prev = state
    a = drive + jnp.einsum("ghk,k->gh", params.Wh, h_prev)
    i, f, o = jax.nn.sigmoid(a[0]), jax.nn.sigmoid(a[1]), jax.nn.sigmoid(a[3])
    c = f * c_prev + i * jnp.tanh(a[2])
    return o * jnp.tanh(c), c
