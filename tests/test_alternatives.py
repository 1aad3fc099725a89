"""The benchmark's other implementations compute what the rnn_jax rows compute.

PyTorch and Flax are not dependencies: their tests run where they are installed (the
``bench`` group adds Flax) and are skipped elsewhere."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts import ROOT

from rnn_jax.manual import manual_grads
from rnn_jax.model import init_elman, with_weights
from rnn_jax.tutorial import tutorial_grads

sys.path.insert(0, str(ROOT / "experiments"))
from helpers import alternatives  # noqa: E402


def small_problem(key, hidden=6, n=4, seq_len=9, activation="sigmoid"):
    params = init_elman(key=key, input_dim=1, hidden_dim=hidden, output_dim=1, activation=activation)
    params = with_weights(params, b=params.cell.b + 0.1, c=params.readout.c - 0.2)  # nonzero biases
    xs = np.asarray(jax.random.normal(jax.random.key(1), (n, seq_len, 1)), np.float32)
    ys = np.asarray(jax.random.normal(jax.random.key(2), (n, 1)), np.float32)
    return params, flat_weights(params), xs, ys


def flat_weights(model) -> dict[str, np.ndarray]:
    """``U, W, b, V, c`` as NumPy arrays, the form the other implementations take."""
    cell, readout = model.cell, model.readout
    return {
        n: np.asarray(a) for n, a in zip("UWbVc", (cell.U, cell.W, cell.b, readout.V, readout.c), strict=True)
    }


@pytest.mark.slow
@pytest.mark.parametrize("truncation", [None, 3])
def test_pytorch_sigmoid_cell_gradient_equals_ours(key, truncation):
    pytest.importorskip("torch")
    params, p, xs, ys = small_problem(key)
    ours = flat_weights(manual_grads(params, jnp.asarray(xs), jnp.asarray(ys), truncation=truncation))
    theirs = alternatives.torch_gradient_step(p, xs, ys, truncation)()
    for name in "UWbVc":
        np.testing.assert_allclose(theirs[name].numpy(), ours[name], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("truncation", [None, 3])
def test_pytorch_nn_rnn_gradient_equals_ours_with_tanh(key, truncation):
    pytest.importorskip("torch")
    params, p, xs, ys = small_problem(key, activation="tanh")
    ours = manual_grads(params, jnp.asarray(xs), jnp.asarray(ys), truncation=truncation)
    dW = alternatives.torch_nn_rnn_step(p, xs, ys, truncation)()  # returns the W gradient
    np.testing.assert_allclose(dW.numpy(), ours.cell.W, rtol=1e-4, atol=1e-6)


def test_flax_gradient_step_runs_and_is_finite():
    pytest.importorskip("flax")
    _, p, xs, ys = small_problem(jax.random.key(0))
    grads = alternatives.flax_gradient_step(p, xs, ys, 3)()
    leaves = jax.tree.leaves(grads)
    assert leaves and all(np.all(np.isfinite(leaf)) for leaf in leaves)
    assert any(float(np.max(np.abs(leaf))) > 0 for leaf in leaves)


@pytest.mark.slow
def test_published_tutorial_epoch_moves_weights_as_its_wrong_pass_says(key):
    """One update of the published loop, with no clipping at work, equals one step along
    ``tutorial_grads`` (its wrong gradient) for U, W and V."""
    params, p, xs, ys = small_problem(key, hidden=5, n=1, seq_len=7)
    p = {**p, "b": np.zeros_like(p["b"]), "c": np.zeros_like(p["c"])}  # the tutorial has no biases
    params = with_weights(params, b=jnp.zeros(5), c=jnp.zeros(1))
    lr = 1e-3
    seen = {}
    total = alternatives.tutorial_epoch_as_published(p, xs, ys, lr, k=3, updated=seen)
    g = flat_weights(tutorial_grads(params, jnp.asarray(xs), jnp.asarray(ys), truncation=3))
    assert np.isfinite(total)
    np.testing.assert_allclose(seen["W"], p["W"] - lr * np.clip(g["W"], -10, 10), rtol=1e-5)
    np.testing.assert_allclose(seen["V"], p["V"] - lr * np.clip(g["V"], -10, 10), rtol=1e-5)
