"""Strict settings for every test: shape annotations checked at run time, no silent rank
promotion, and explicit keys."""

import importlib.util

import jax
import pytest
from jaxtyping import install_import_hook

# Must run before rnn_jax is imported anywhere: checks every jaxtyping annotation at call time.
# (An accelerator image without the dev group's beartype runs the tests unchecked.)
if importlib.util.find_spec("beartype") is not None:
    with install_import_hook("rnn_jax", "beartype.beartype"):
        import rnn_jax  # noqa: F401

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
