import jax
import jax.numpy as jnp
import pytest

from rnn_jax.loss import batch_predict, check_batch, check_model, example_loss, loss
from rnn_jax.model import init_elman, init_model, predict


@pytest.fixture
def params(key):
    return init_elman(key=key, input_dim=2, hidden_dim=5, output_dim=3)


@pytest.mark.grid
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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lengths": jnp.array([3, 9])}, r"lengths must lie in \[1, T=6\]; got lengths from 3 to 9"),
        ({"lengths": jnp.array([0, 6])}, r"lengths must lie in \[1, T=6\]; got lengths from 0 to 6"),
        ({"lengths": jnp.array([1.0, 2.0])}, r"lengths must be an integer array of shape \(N=2,\)"),
        ({"mask": jnp.ones((2, 5), bool)}, r"mask must be a boolean array of shape \(N, T\) = \(2, 6\)"),
        ({"mask": jnp.zeros((2, 6), bool)}, "example 0 has none"),
        ({"mask": jnp.ones((2, 6), bool), "lengths": jnp.array([1, 2])}, "give lengths or mask, not both"),
        ({"objective": "hinge"}, "objective must be one of squared, cross_entropy; got 'hinge'"),
    ],
)
def test_bad_lengths_masks_and_objectives_are_named(key, kwargs, message):
    model = init_model("gru", key=key, input_dim=3, hidden_dim=4, output_dim=5)
    with pytest.raises(ValueError, match=message):
        loss(model, jnp.zeros((2, 6, 3)), jnp.zeros((2, 5)), **kwargs)


def test_labels_outside_the_vocabulary_and_float_labels_are_named(key):
    model = init_model("elman", key=key, input_dim=3, hidden_dim=4, output_dim=5)
    xs = jnp.zeros((2, 6, 3))
    with pytest.raises(ValueError, match=r"ys labels must lie in \[0, 5\) .*got labels from 1 to 7"):
        loss(model, xs, jnp.array([1, 7]), objective="cross_entropy")
    with pytest.raises(ValueError, match="ys must hold integer class labels"):
        loss(model, xs, jnp.array([1.0, 2.0]), objective="cross_entropy")
    with pytest.raises(
        ValueError, match=r"ys must have shape \(2, 6\) for target=.all. \(integer labels for objective"
    ):
        loss(model, xs, jnp.array([1, 2]), objective="cross_entropy", target="all")
    # Labels on skipped steps are never read, whatever they hold.
    labels = jnp.array([[1, 2, 3, 4, 0, 99], [0, 1, 2, 3, 4, -5]])
    value = loss(model, xs, labels, objective="cross_entropy", target="all", lengths=jnp.array([5, 5]))
    assert jnp.isfinite(value)
