import dataclasses

import jax
import jax.numpy as jnp
import pytest

from rnn_jax.batch import BatchOptions
from rnn_jax.errors import InputError
from rnn_jax.loss import loss, options_loss
from rnn_jax.manual import manual_grads, options_grads
from rnn_jax.model import init_model


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target": "first"}, "target must be one of last, all; got 'first'"),
        ({"truncation": 0}, "truncation must be None or an integer >= 1; got 0"),
        ({"objective": "hinge"}, "objective must be one of"),
    ],
)
def test_bad_options_are_refused_when_made_naming_the_field(fields, message):
    with pytest.raises(InputError, match=message):
        BatchOptions(**fields)


def test_options_are_immutable_and_a_replaced_copy_is_checked_again():
    options = BatchOptions(target="all", truncation=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.truncation = 4
    assert options.replace(truncation=4).truncation == 4 and options.truncation == 3
    with pytest.raises(InputError, match="truncation"):
        options.replace(truncation=-1)


def test_a_python_int_window_is_static_and_an_array_one_is_traced():
    assert BatchOptions().static_truncation
    assert BatchOptions(truncation=5).static_truncation
    assert not BatchOptions(truncation=jnp.asarray(5)).static_truncation


@pytest.mark.parametrize("backward", ["autodiff", "manual"])
def test_loss_with_keywords_equals_the_loss_of_the_same_options(key, backward):
    model = init_model("gru", key=key, input_dim=2, hidden_dim=4, output_dim=3)
    xs = jax.random.normal(jax.random.key(1), (3, 6, 2))
    ys = jax.random.normal(jax.random.key(2), (3, 6, 3))
    fields = {"target": "all", "truncation": 2, "lengths": jnp.array([6, 4, 1])}
    by_keywords = jax.value_and_grad(lambda m: loss(m, xs, ys, backward=backward, **fields))(model)
    by_options = jax.value_and_grad(
        lambda m: options_loss(m, xs, ys, BatchOptions(**fields), backward=backward)
    )(model)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, by_keywords, by_options))
    hand = options_grads(model, xs, ys, BatchOptions(**fields))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, hand, manual_grads(model, xs, ys, **fields)))


def test_an_unknown_option_is_refused_by_name(key):
    model = init_model("elman", key=key, input_dim=2, hidden_dim=4, output_dim=3)
    xs, ys = jnp.zeros((2, 5, 2)), jnp.zeros((2, 3))
    with pytest.raises(TypeError, match="trget"):
        manual_grads(model, xs, ys, trget="all")
