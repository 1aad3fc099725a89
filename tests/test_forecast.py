import jax
import jax.numpy as jnp
import pytest

from rnn_jax.forecast.closed_loop import batch_closed_loop, batch_teacher_forced, closed_loop, teacher_forced
from rnn_jax.model import init_model, predict


@pytest.fixture
def model():
    return init_model("gru", key=jax.random.key(0), input_dim=2, hidden_dim=6, output_dim=2)


def test_closed_loop_feeds_each_prediction_back(model):
    xs = jax.random.normal(jax.random.key(1), (5, 2))
    window, expected = xs, []
    for _ in range(4):
        following = predict(model, window)
        expected.append(following)
        window = jnp.concatenate([window[1:], following[None]])
    assert jnp.allclose(closed_loop(model, xs, 4), jnp.stack(expected), atol=1e-6)


@pytest.mark.slow
def test_teacher_forcing_reads_the_true_values(model):
    xs, future = jax.random.normal(jax.random.key(1), (5, 2)), jax.random.normal(jax.random.key(2), (3, 2))
    longer = jnp.concatenate([xs, future])
    expected = jnp.stack([predict(model, longer[h : h + 5]) for h in range(3)])
    assert jnp.allclose(teacher_forced(model, xs, future), expected, atol=1e-6)
    # The first step of both is the same one-step prediction.
    assert jnp.allclose(closed_loop(model, xs, 3)[0], expected[0], atol=1e-6)
    batch = batch_teacher_forced(model, xs[None], future[None])
    assert batch.shape == (1, 3, 2) and batch_closed_loop(model, xs[None], 3).shape == (1, 3, 2)


def test_closed_loop_needs_outputs_that_are_inputs():
    params = init_model("elman", key=jax.random.key(0), input_dim=2, hidden_dim=4, output_dim=1)
    with pytest.raises(ValueError, match="needs outputs = inputs; got D=2, O=1"):
        closed_loop(params, jnp.zeros((5, 2)), 3)
