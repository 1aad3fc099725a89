"""The benchmark's floor: the products it times are the ones its docstring names."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from scripts import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
from benchmark_grads import backward_products  # noqa: E402


def test_backward_products_are_the_reverse_chain_and_one_weight_product():
    jax.config.update("jax_enable_x64", True)
    try:
        window, n, h = 4, 3, 5
        keys = jax.random.split(jax.random.key(0), 3)
        W = jax.random.normal(keys[0], (h, h), jnp.float64)
        deltas = jax.random.normal(keys[1], (window, n, h), jnp.float64)
        h_prev = jax.random.normal(keys[2], (window, n, h), jnp.float64)
        carried, dW = jax.jit(backward_products)(W, deltas, h_prev)
        g = np.zeros((n, h))
        for t in range(window - 1, 0, -1):  # reverse steps T-1 .. 1; step 0 passes nothing on
            g = (g + np.asarray(deltas[t])) @ np.asarray(W)
        np.testing.assert_allclose(carried, g, rtol=1e-12)
        expected = np.einsum("tnh,tnq->hq", np.asarray(deltas), np.asarray(h_prev))
        np.testing.assert_allclose(dW, expected, rtol=1e-12)
    finally:
        jax.config.update("jax_enable_x64", False)
