"""The linear readout ``y = V h + c``, composed with a cell into a model (``rnn_jax.model``)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from rnn_jax.cells.base import sum_outer


class Linear(eqx.Module):
    """``V (O, H)``, ``c (O,)``; ``readout(h)`` maps a state ``(H,)`` or states ``(T, H)``."""

    V: Float[Array, "O H"]  # hidden -> output
    c: Float[Array, " O"]  # output bias

    def __init__(
        self,
        *,
        key: PRNGKeyArray,
        hidden_dim: int,
        output_dim: int,
        init: str = "default",
        dtype: DTypeLike = jnp.float32,
    ):
        """Glorot-uniform ``V`` (``init="default"``) or uniform [0, 1) (``"tutorial"``); ``c = 0``."""
        shape = (output_dim, hidden_dim)
        if init == "tutorial":
            self.V = jax.random.uniform(key, shape, dtype)
        else:
            self.V = jax.nn.initializers.glorot_uniform()(key, shape, dtype)
        self.c = jnp.zeros((output_dim,), dtype)

    @property
    def output_dim(self) -> int:
        return self.V.shape[0]

    def __call__(self, h: Float[Array, "*T H"]) -> Float[Array, "*T O"]:
        return h @ self.V.T + self.c.reshape((1,) * (h.ndim - 1) + self.c.shape)

    def backward(
        self, hs: Float[Array, "*T H"], errors: Float[Array, "*T O"]
    ) -> tuple[Linear, Float[Array, "*T H"]]:
        """Given ``e = dL/dy`` at the states ``hs``: the readout's gradients and ``dL/dh = V^T e``."""
        flat_h, flat_e = hs.reshape(-1, hs.shape[-1]), errors.reshape(-1, errors.shape[-1])
        grads = eqx.tree_at(lambda r: (r.V, r.c), self, (sum_outer(flat_e, flat_h), jnp.sum(flat_e, axis=0)))
        return grads, errors @ self.V
