import re

import jax
import pytest

from rnn_jax.errors import InputError, InputTypeError, check_size
from rnn_jax.model import init_model


@pytest.mark.parametrize(
    ("sizes", "error", "message"),
    [
        ({"hidden_dim": 0}, InputError, "hidden_dim must be an integer >= 1; got 0"),
        ({"input_dim": -1}, InputError, "input_dim must be an integer >= 1; got -1"),
        ({"output_dim": True}, InputTypeError, r"output_dim must be an integer >= 1; got True \(bool\)"),
    ],
)
def test_sizes_that_are_not_positive_integers_are_refused_by_name(sizes, error, message):
    with pytest.raises(error, match=message):
        init_model(
            "elman", key=jax.random.key(0), **{"input_dim": 2, "hidden_dim": 4, "output_dim": 1, **sizes}
        )


def test_a_size_per_layer_is_checked_too():
    with pytest.raises(InputError, match="hidden_dim must be an integer >= 1; got 0"):
        init_model("gru", key=jax.random.key(0), input_dim=2, hidden_dim=[4, 0], output_dim=1, num_layers=2)


@pytest.mark.parametrize(
    ("value", "shown"), [(2.5, "2.5 (float)"), ("six", "'six' (str)"), (True, "True (bool)")]
)
def test_a_size_of_another_type_is_a_type_error_naming_it(value, shown):
    # init_model's annotations catch these first where a run-time type checker is on (as here).
    with pytest.raises(InputTypeError, match=f"hidden_dim must be an integer >= 1; got {re.escape(shown)}"):
        check_size("hidden_dim", value)
