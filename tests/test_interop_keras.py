"""Keras weight lists in and out: converted models against Keras's own ``SimpleRNN``, ``GRU``
(``reset_after`` both ways) and ``LSTM`` layers, alone, ``Bidirectional`` and stacked, on
Keras's JAX backend; exact round trips; each bad list named."""

import os

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported; only this module imports it

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax.interop import from_keras, model_from_keras, model_to_keras, to_keras
from rnn_jax.unroll import unroll

keras = pytest.importorskip("keras")
# Keras 3.15 converts variables with a NumPy 2 deprecation warning of its own.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def keras_broadcasts():
    """Keras's layers broadcast ranks implicitly, which the suite otherwise refuses."""
    with jax.numpy_rank_promotion("allow"):
        yield


D, H, O, N, T = 3, 4, 2, 5, 7
LAYERS = {"elman": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}
KINDS = [("elman", True), ("gru", True), ("gru", False), ("lstm", True)]  # (cell, reset_after)


def inputs():
    return np.random.default_rng(1).normal(size=(N, T, D)).astype(np.float32)


def keras_layers(name, reset_after, layers, bidirectional):
    def make():
        options = {"reset_after": reset_after} if name == "gru" else {}
        return getattr(keras.layers, LAYERS[name])(H, return_sequences=True, **options)

    return [keras.layers.Bidirectional(make()) if bidirectional else make() for _ in range(layers)]


def keras_outputs(name, reset_after, layers, bidirectional):
    """``(weights per layer, Keras's outputs (N, T, dirs H))``, every weight drawn afresh."""
    below, weights, rng = inputs(), [], np.random.default_rng(0)
    for layer in keras_layers(name, reset_after, layers, bidirectional):
        layer(below)  # builds it
        drawn = [rng.normal(size=w.shape).astype(np.float32) * 0.5 for w in layer.get_weights()]
        layer.set_weights(drawn)
        below = np.asarray(layer(below))
        weights.append(drawn)
    return weights, below


@pytest.mark.parametrize(("name", "reset_after"), KINDS)
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (1, True), (2, True)])
def test_converted_layers_compute_what_keras_computes(name, reset_after, layers, bidirectional):
    weights, theirs = keras_outputs(name, reset_after, layers, bidirectional)
    given = weights if layers > 1 else weights[0]
    recurrence = from_keras(given, bidirectional=bidirectional)
    if name == "gru":
        gru = recurrence.layers[0].forward if layers > 1 else getattr(recurrence, "forward", recurrence)
        assert gru.reset == ("after" if reset_after else "before")
    mine = np.asarray(jax.vmap(lambda x: unroll(recurrence, x))(jnp.asarray(inputs())))
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)
    # Keras's two GRU bias rows add for the gates, so ours holds their sum: ours -> Keras -> ours
    # is exact, and Keras -> ours -> Keras keeps every kernel and the function.
    again = from_keras(to_keras(recurrence), bidirectional=bidirectional)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(recurrence), strict=True):
        np.testing.assert_array_equal(a, b)
    kernels = [a for a in jax.tree.leaves(to_keras(recurrence)) if a.ndim == 2 and a.shape[0] != 2]
    assert all(any(np.array_equal(k, g) for g in jax.tree.leaves(given)) for k in kernels)


def test_a_model_written_out_loads_into_keras_and_computes_the_same():
    model = rnn_jax.init_model(
        "gru", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, num_layers=2, reset="before"
    )
    model = jax.tree.map(lambda w: w + 0.1, model)
    rnn_weights, dense_weights = model_to_keras(model)
    below = inputs()
    for weights in rnn_weights:
        layer = keras.layers.GRU(H, return_sequences=True, reset_after=False)
        layer(below)
        layer.set_weights(weights)
        below = layer(below)
    dense = keras.layers.Dense(O)
    dense(below)
    dense.set_weights(dense_weights)
    theirs = np.asarray(dense(below))
    np.testing.assert_allclose(np.asarray(jax.vmap(model)(jnp.asarray(inputs()))), theirs, rtol=0, atol=1e-6)
    again = model_from_keras(rnn_weights, dense_weights)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_gru_without_biases_needs_reset_after_said():
    weights, theirs = keras_outputs("gru", True, 1, False)
    no_bias = weights[0][:2]
    with pytest.raises(ValueError, match="a GRU without biases, so the weights do not tell where its reset"):
        from_keras(no_bias)
    assert from_keras(no_bias, reset_after=False).reset == "before"
    with pytest.raises(ValueError, match=r"reset_after=False but the bias has shape \(2, 12\)"):
        from_keras(weights[0], reset_after=False)


def test_bad_weight_lists_are_named_with_the_array_and_the_shape():
    weights, _ = keras_outputs("lstm", True, 1, False)
    kernel, recurrent, bias = weights[0]
    with pytest.raises(
        ValueError, match=r"weights\[2\] \(bias\) must have shape \(16,\) for a LSTM with H=4"
    ):
        from_keras([kernel, recurrent, bias[:8]])
    with pytest.raises(ValueError, match=r"a recurrent_kernel of \(H, H\), \(H, 3H\) or \(H, 4H\)"):
        from_keras([kernel, recurrent[:, :8], bias])
    with pytest.raises(ValueError, match="must list \\[kernel, recurrent_kernel, bias\\]"):
        from_keras([kernel])
    with pytest.raises(ValueError, match=r"weights lists 3 arrays; a Bidirectional layer's"):
        from_keras([kernel, recurrent, bias], bidirectional=True)
    with pytest.raises(ValueError, match=r"weights\[1\]: a recurrent_kernel"):
        from_keras([[kernel, recurrent, bias], [kernel, recurrent[:, :8], bias]])
    with pytest.raises(ValueError, match=r"dense_weights must be a Dense layer's \[kernel"):
        model_from_keras([kernel, recurrent, bias], [np.zeros((H, O), np.float32)])
