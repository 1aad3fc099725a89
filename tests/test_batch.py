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


@pytest.fixture
def small(key):
    model = init_model("elman", key=key, input_dim=2, hidden_dim=4, output_dim=1)
    xs = jax.random.normal(jax.random.key(1), (3, 6, 2))
    return model, xs, jnp.zeros((3, 1))


@pytest.mark.parametrize("where", ["xs", "ys"])
def test_nan_in_concrete_data_is_refused_naming_the_argument(small, where):
    model, xs, ys = small
    arrays = {"xs": xs, "ys": ys}
    arrays[where] = arrays[where].at[(0,) * arrays[where].ndim].set(jnp.nan)
    with pytest.raises(InputError, match=f"{where} holds 1 NaN or infinite values"):
        loss(model, arrays["xs"], arrays["ys"])


TRACED_CASES = {
    "NaN in xs": (lambda xs, k, lengths: (xs.at[1, 2, 0].set(jnp.inf), k, lengths), "xs holds NaN"),
    "a length of 0": (
        lambda xs, k, lengths: (xs, k, lengths.at[0].set(0)),
        r"lengths must lie in \[1, T=6\]",
    ),
    "a length past T": (
        lambda xs, k, lengths: (xs, k, lengths.at[2].set(7)),
        r"lengths must lie in \[1, T=6\]",
    ),
    "a window of 0": (
        lambda xs, k, lengths: (xs, k * 0, lengths),
        "truncation must be None or an integer >= 1",
    ),
}


@pytest.mark.parametrize("case", list(TRACED_CASES))
@pytest.mark.parametrize("backward", ["autodiff", "manual"])
def test_traced_bad_values_raise_inside_the_compiled_program(small, case, backward):
    model, xs, ys = small
    spoil, message = TRACED_CASES[case]

    @jax.jit
    def value_and_grad(model, xs, k, lengths):
        return jax.value_and_grad(loss)(model, xs, ys, truncation=k, lengths=lengths, backward=backward)

    good = (xs, jnp.asarray(3), jnp.array([6, 4, 1]))
    value, _ = value_and_grad(model, *good)  # the same program passes good values
    assert jnp.isfinite(value)
    # Under jax.jit the error arrives as JAX's runtime error carrying the message (a
    # ValueError once the program has run; a JaxRuntimeError, a RuntimeError, when the very
    # first call fails); under equinox.filter_jit, as an EquinoxRuntimeError.
    with pytest.raises(ValueError, match=message):
        jax.block_until_ready(value_and_grad(model, *spoil(*good)))


@pytest.mark.parametrize("backward", ["autodiff", "manual"])
def test_without_traced_checks_the_program_holds_none_and_the_eager_checks_stay(small, backward):
    model, xs, ys = small

    def value_and_grad(xs, checks):
        return jax.value_and_grad(loss)(model, xs, ys, truncation=2, backward=backward, traced_checks=checks)

    spoiled = xs.at[0, 0, 0].set(jnp.nan)
    for checks in (True, False):
        program = str(jax.make_jaxpr(value_and_grad, static_argnums=1)(xs, checks))
        assert ("is_finite" in program) == checks
    value, _ = jax.jit(value_and_grad, static_argnums=1)(spoiled, False)
    assert jnp.isnan(value)  # what the option gives up: nothing stops the NaN
    with pytest.raises((ValueError, RuntimeError), match="xs holds NaN or infinite values"):
        jax.block_until_ready(jax.jit(value_and_grad, static_argnums=1)(spoiled, True))
    with pytest.raises(InputError, match="xs holds 1 NaN or infinite values"):
        value_and_grad(spoiled, False)  # concrete values are checked on the host all the same
