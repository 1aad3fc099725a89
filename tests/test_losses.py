import jax
import jax.numpy as jnp
import pytest

from rnn_jax.losses import batch_predict, check_batch, check_model, example_loss, loss
from rnn_jax.model import init_elman, predict


@pytest.fixture
def params(key):
    return init_elman(key=key, input_dim=2, hidden_dim=5, output_dim=3)


@pytest.mark.parametrize("target", ["last", "all"])
def test_vmap_over_batch_equals_loop_over_examples(params, target):
    xs = jax.random.normal(jax.random.key(1), (4, 6, 2))
    ys = jax.random.normal(jax.random.key(2), (4, 3) if target == "last" else (4, 6, 3))
    looped = jnp.mean(
        jnp.stack([example_loss(params, x, y, target=target) for x, y in zip(xs, ys, strict=True)])
    )
    assert jnp.allclose(loss(params, xs, ys, target=target), looped, rtol=1e-6)
    preds = batch_predict(params, xs, target=target)
    assert jnp.allclose(preds[2], predict(params, xs[2], target=target), atol=1e-6)


def test_loss_is_half_mean_squared_error_over_examples_and_steps(params):
    xs = jax.random.normal(jax.random.key(1), (4, 6, 2))
    ys = jax.random.normal(jax.random.key(2), (4, 6, 3))
    preds = batch_predict(params, xs, target="all")
    expected = 0.5 * jnp.sum((preds - ys) ** 2) / (4 * 6)
    assert jnp.allclose(loss(params, xs, ys, target="all"), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("xs_shape", "ys_shape", "target", "message"),
    [
        ((4, 6), (4, 3), "last", r"xs must have shape \(N, T, D=2\); got \(4, 6\)"),
        ((4, 6, 5), (4, 3), "last", r"xs must have shape \(N, T, D=2\); got \(4, 6, 5\)"),
        ((4, 6, 2), (4, 6, 3), "last", r"ys must have shape \(4, 3\) for target='last'"),
        ((4, 6, 2), (4, 3), "all", r"ys must have shape \(4, 6, 3\) for target='all'"),
        ((0, 6, 2), (0, 3), "last", "at least one example"),
    ],
)
def test_shape_mismatch_is_named(params, xs_shape, ys_shape, target, message):
    # check_batch is what loss and manual_grads call first (tests also type-check annotations,
    # which would otherwise intercept some of these before the check runs).
    with pytest.raises(ValueError, match=message):
        check_batch(params, jnp.zeros(xs_shape), jnp.zeros(ys_shape), target)
    with pytest.raises((ValueError, TypeError)):
        loss(params, jnp.zeros(xs_shape), jnp.zeros(ys_shape), target=target)


def test_a_model_of_the_wrong_type_is_named(params):
    with pytest.raises(TypeError, match="model must be an rnn_jax.RNN .* got Elman"):
        check_model(params.cell)


def test_loss_jits_with_no_static_arguments(params):
    """Every option of the model is in the pytree's structure: plain ``jax.jit`` takes it."""
    xs, ys = jnp.ones((2, 4, 2)), jnp.zeros((2, 3))
    assert jnp.allclose(jax.jit(loss)(params, xs, ys), loss(params, xs, ys))
