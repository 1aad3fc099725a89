"""Property-based tests: random sizes, truncation lengths and batch sizes."""

import functools

import chex
import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_jax.data.sine import make_sine_data
from rnn_jax.loss import batch_predict, loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_elman
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train

SETTINGS = settings(max_examples=8, deadline=None)  # each example compiles its own sizes


@st.composite
def problems(draw):
    """Random sizes for one batch, with a truncation length that may exceed T, and a seed."""
    d, h, o = (draw(st.integers(1, 4)) for _ in range(3))
    n, t = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    target = draw(st.sampled_from(["last", "all"]))
    truncation = draw(st.one_of(st.none(), st.integers(1, t + 2)))
    return (d, h, o, n, t), target, truncation, draw(st.integers(0, 2**16))


def arrays(sizes, target, seed, activation):
    """float64 parameters, inputs and targets (call with x64 enabled)."""
    d, h, o, n, t = sizes
    k_params, k_x, k_y = jax.random.split(jax.random.key(seed), 3)
    params = init_elman(
        key=k_params, input_dim=d, hidden_dim=h, output_dim=o, dtype=jnp.float64, activation=activation
    )
    xs = jax.random.normal(k_x, (n, t, d), jnp.float64)
    ys = jax.random.normal(k_y, (n, o) if target == "last" else (n, t, o), jnp.float64)
    return params, xs, ys


@functools.partial(jax.jit, static_argnames=("target", "k"))
def truncated_and_full(params, xs, ys, *, target, k):
    """Losses with and without truncation, manual and autodiff gradients, predictions: one
    compiled program per example keeps the test fast."""
    kw = {"target": target}
    return (
        loss(params, xs, ys, truncation=k, **kw),
        loss(params, xs, ys, **kw),
        manual_grads(params, xs, ys, truncation=k, **kw),
        jax.grad(loss)(params, xs, ys, truncation=k, **kw),
        batch_predict(params, xs, **kw),
    )


@pytest.mark.slow
@SETTINGS
@given(problem=problems(), activation=st.sampled_from(["sigmoid", "tanh", "relu"]))
def test_truncation_changes_gradients_never_forward_values(problem, activation):
    sizes, target, k, seed = problem
    with jax.enable_x64(True):
        params, xs, ys = arrays(sizes, target, seed, activation)
        truncated, full, grads, reference, predictions = truncated_and_full(
            params, xs, ys, target=target, k=k
        )
        # A static k < T (target "last") runs the steps before the window as their own scan;
        # XLA compiles that program apart, so the value may differ in the last bit.
        assert abs(float(truncated) - float(full)) <= 1e-14 * abs(float(full))
        chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
        chex.assert_trees_all_close(grads, reference, rtol=1e-9, atol=1e-12)
        assert predictions.shape == ys.shape


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(
    batch_size=st.integers(1, 9),
    truncation=st.one_of(st.none(), st.integers(1, 12)),
    hidden_dim=st.integers(1, 6),
    epochs=st.integers(1, 3),
)
def test_training_metrics_have_one_finite_value_per_epoch(batch_size, truncation, hidden_dim, epochs):
    data = make_sine_data(length=30, window=6, scale=True)
    config = TrainConfig(hidden_dim=hidden_dim, init="default", epochs=epochs, batch_size=batch_size)
    hparams = make_hparams(learning_rate=1e-2, truncation=truncation, seq_len=6)
    params, metrics = jax.jit(make_train(config).train)(jax.random.key(0), hparams, data)
    assert params.cell.W.shape == (hidden_dim, hidden_dim)
    for name, values in metrics.items():
        assert values.shape == (epochs,), name
        assert jnp.all(jnp.isfinite(values)), name
