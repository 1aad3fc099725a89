"""What the readout's outputs are scored with: squared error, or softmax cross-entropy.

An objective gives the loss at one step and its gradient with respect to the outputs there,
``dl/dy_t`` (the error that the hand-derived backward pass starts from); the loss of a batch is
their weighted sum (``rnn_jax.batch.step_weights``).

====================  ==========================  ===================  =========================
name                  loss at a step              ``dl/dy``            targets
====================  ==========================  ===================  =========================
``"squared"``         ``0.5 ||y - target||^2``    ``y - target``       floats ``(O,)``
``"cross_entropy"``   ``-log softmax(y)[label]``  ``softmax(y) - 1_l``  integer labels ``()``
====================  ==========================  ===================  =========================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from rnn_jax.errors import InputError


class Objective(NamedTuple):
    name: str
    per_step: Callable[[Array, Array], Array]  # outputs (..., O), targets -> losses (...)
    error: Callable[[Array, Array], Array]  # outputs (..., O), targets -> dl/dy (..., O)
    labels: bool  # targets are integer class labels (no trailing O axis)


def squared_error(outputs: Float[Array, "*T O"], targets: Float[Array, "*T O"]) -> Float[Array, "*T"]:
    return 0.5 * jnp.sum((outputs - targets) ** 2, axis=-1)


def squared_error_grad(outputs: Float[Array, "*T O"], targets: Float[Array, "*T O"]) -> Float[Array, "*T O"]:
    return outputs - targets


def cross_entropy(outputs: Float[Array, "*T O"], labels: Array) -> Float[Array, "*T"]:
    """Softmax cross-entropy in nats, from logits and integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs, labels)


def cross_entropy_grad(outputs: Float[Array, "*T O"], labels: Array) -> Float[Array, "*T O"]:
    """``softmax(y) - onehot(label)``: the gradient of ``cross_entropy`` at the logits."""
    return jax.nn.softmax(outputs, axis=-1) - jax.nn.one_hot(labels, outputs.shape[-1], dtype=outputs.dtype)


OBJECTIVES = {
    "squared": Objective("squared", squared_error, squared_error_grad, labels=False),
    "cross_entropy": Objective("cross_entropy", cross_entropy, cross_entropy_grad, labels=True),
}


def get_objective(name: str) -> Objective:
    """The objective called ``name``; ``ValueError`` listing the choices otherwise."""
    if name not in OBJECTIVES:
        raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}; got {name!r}")
    return OBJECTIVES[name]
