"""Hand-derived backpropagation through time for the GRU and the LSTM (no autodiff).

Same structure as the Elman pass in ``rnn_jax.manual_grads``: a forward scan stores the
states; the gates of every step are recomputed at once from the stored states (no scan); a
reverse scan carries ``g_t = dL/dh_t`` (and ``dL/dc_t`` for the LSTM) from the future and
emits the gradient of every gate's pre-activation, ``da_t (G, H)``; the weight gradients are
then one ``einsum`` each over examples and steps. Truncation resets the carried gradient at
window starts, where the forward pass treats the incoming state as a constant. The equations
are written out in ``docs/gated.md``; the code names follow them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from rnn_jax.gated import GatedParams, GRUParams, gate_drive
from rnn_jax.losses import output_errors
from rnn_jax.unroll import unroll_states


def _shifted(states: Float[Array, "T H"]) -> Float[Array, "T H"]:
    """``s_{t-1}`` for every step ``t``, with a zero initial state."""
    return jnp.concatenate([jnp.zeros_like(states[:1]), states[:-1]])


def gru_gate_grads(
    params: GRUParams,
    xs: Float[Array, "T D"],
    hs: Float[Array, "T H"],
    dh_out: Float[Array, "T H"],
    cuts: Bool[Array, " T"],
) -> tuple[Float[Array, "T 3 H"], Float[Array, "T 3 H"]]:
    """GRU, one sequence: ``da_t`` for the gates ``z, r, n`` and the vectors each gate's
    recurrent matrix multiplied (``h_{t-1}``, ``h_{t-1}``, ``r_t ⊙ h_{t-1}``), both ``(T, 3, H)``.

    ``dh_out[t]`` is the loss's direct gradient at ``h_t`` (``V^T e_t``)."""
    Wz, Wr, Wn = params.Wh
    h_prev = _shifted(hs)
    drive = gate_drive(params, xs)
    z = jax.nn.sigmoid(drive[:, 0] + h_prev @ Wz.T)
    r = jax.nn.sigmoid(drive[:, 1] + h_prev @ Wr.T)
    rh = r * h_prev
    n = jnp.tanh(drive[:, 2] + rh @ Wn.T)

    def step(g, inputs):
        z, r, n, hp, dh_direct, cut = inputs
        dh = dh_direct + g  # dL/dh_t
        da_n = dh * (1.0 - z) * (1.0 - n * n)
        q = da_n @ Wn  # dL/d(r ⊙ h_{t-1})
        da_r = q * hp * r * (1.0 - r)
        da_z = dh * (hp - n) * z * (1.0 - z)
        dh_prev = dh * z + da_z @ Wz + da_r @ Wr + q * r
        return jnp.where(cut, jnp.zeros_like(g), dh_prev), jnp.stack([da_z, da_r, da_n])

    g_last = jnp.zeros(hs.shape[1], hs.dtype)
    _, da = jax.lax.scan(step, g_last, (z, r, n, h_prev, dh_out, cuts), reverse=True)
    return da, jnp.stack([h_prev, h_prev, rh], axis=1)


def lstm_gate_grads(
    params: GatedParams,
    xs: Float[Array, "T D"],
    hs: Float[Array, "T H"],
    cs: Float[Array, "T H"],
    dh_out: Float[Array, "T H"],
    cuts: Bool[Array, " T"],
) -> tuple[Float[Array, "T 4 H"], Float[Array, "T 4 H"]]:
    """LSTM, one sequence: ``da_t`` for the gates ``i, f, g, o`` and the vector their recurrent
    matrices multiplied (``h_{t-1}`` for all four), both ``(T, 4, H)``."""
    h_prev, c_prev = _shifted(hs), _shifted(cs)
    a = gate_drive(params, xs) + jnp.einsum("ghk,tk->tgh", params.Wh, h_prev)
    i, f, g, o = jax.nn.sigmoid(a[:, 0]), jax.nn.sigmoid(a[:, 1]), jnp.tanh(a[:, 2]), jax.nn.sigmoid(a[:, 3])
    tanh_c = jnp.tanh(cs)

    def step(carry, inputs):
        g_h, g_c = carry  # dL/dh_t and dL/dc_t from the future
        i, f, g, o, tc, cp, dh_direct, cut = inputs
        dh = dh_direct + g_h
        dc = g_c + dh * o * (1.0 - tc * tc)
        da = jnp.stack(
            [
                dc * g * i * (1.0 - i),
                dc * cp * f * (1.0 - f),
                dc * i * (1.0 - g * g),
                dh * tc * o * (1.0 - o),
            ]
        )
        dh_prev = jnp.einsum("gh,ghk->k", da, params.Wh)
        zero = jnp.zeros_like(g_h)
        return (jnp.where(cut, zero, dh_prev), jnp.where(cut, zero, dc * f)), da

    zeros = jnp.zeros(hs.shape[1], hs.dtype)
    _, da = jax.lax.scan(step, (zeros, zeros), (i, f, g, o, tanh_c, c_prev, dh_out, cuts), reverse=True)
    return da, jnp.broadcast_to(h_prev[:, None], da.shape)


def gated_manual_grads(
    params: GatedParams,
    xs: Float[Array, "N T D"],
    ys: Array,
    *,
    target: str,
    cuts: Bool[Array, " T"],
    scale: Array,
) -> GatedParams:
    """Gradients of the mean loss for a batch (``N`` examples); ``cuts`` marks window starts,
    ``scale`` is the loss's averaging factor. Called by ``rnn_jax.manual_grads``, which checks
    the arguments."""
    is_gru = isinstance(params, GRUParams)

    def per_example(x, y):
        states = unroll_states(params, x)
        hs = states if is_gru else states[0]
        es = output_errors(params, hs, y, target, scale)
        dh_out = es @ params.V
        if is_gru:
            da, h_in = gru_gate_grads(params, x, hs, dh_out, cuts)
        else:
            da, h_in = lstm_gate_grads(params, x, hs, states[1], dh_out, cuts)
        return hs, es, da, h_in

    hs, es, da, h_in = jax.vmap(per_example)(xs, ys)
    return type(params)(
        Wx=jnp.einsum("ntgh,ntd->ghd", da, xs),
        Wh=jnp.einsum("ntgh,ntgk->ghk", da, h_in),
        b=jnp.sum(da, axis=(0, 1)),
        V=jnp.einsum("nto,nth->oh", es, hs),
        c=jnp.sum(es, axis=(0, 1)),
    )
