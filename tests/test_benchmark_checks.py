"""The checks benchmark times what it says: its counterfactual programs hold no checks, and its
checked ones still refuse what the checks refuse."""

import sys

import jax
import jax.numpy as jnp
import pytest
from scripts import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
from benchmark_checks import gradient_function, without_checks  # noqa: E402

from rnn_jax.model import init_model  # noqa: E402


@pytest.mark.parametrize("gradient", ["autodiff", "manual"])
def test_the_unchecked_gradient_has_no_checks_and_the_checked_one_refuses_a_nan(gradient):
    model = init_model("elman", key=jax.random.key(0), input_dim=1, hidden_dim=4, output_dim=1)
    xs, ys = jnp.ones((3, 6, 1)), jnp.ones((3, 1))
    checked, plain = gradient_function(gradient, 2, True), gradient_function(gradient, 2, False)
    assert "is_finite" in str(jax.make_jaxpr(checked)(model, xs, ys))
    assert "is_finite" not in str(jax.make_jaxpr(plain)(model, xs, ys))
    with pytest.raises((ValueError, RuntimeError), match="xs holds NaN or infinite values"):
        jax.block_until_ready(checked(model, xs.at[0, 0, 0].set(jnp.nan), ys))


def test_the_training_run_without_checks_is_traced_without_them():
    from rnn_jax.data.sine import make_sine_data
    from rnn_jax.train.loop import TrainConfig, make_hparams, make_train

    data = make_sine_data(length=40, window=8, scale=True)
    hparams = make_hparams(learning_rate=1e-2, seq_len=8, truncation=3)

    def program():  # a new make_train each time: its jitted parts cache what they traced
        train = make_train(TrainConfig(hidden_dim=4, epochs=1, batch_size=4)).train
        return str(jax.make_jaxpr(train)(jax.random.key(0), hparams, data))

    with without_checks():
        unchecked = program()
    # Training checks its own losses for divergence; the batch's checks add to those.
    assert program().count("is_finite") > unchecked.count("is_finite") > 0
