"""``rnn_jax.testing.check_cell``: the conformance checks pass for every registered cell, and
catch a scan that is not the step and a backward pass that is not the gradient."""

import jax.numpy as jnp
import pytest
from test_custom_cell import MGU, ForgetfulMGU

from rnn_jax.cells import REGISTRY, Cell, Elman
from rnn_jax.testing import check_cell, has_backward

# Every registered cell with its default options, and the GRU's other placement of the reset.
CASES = [(name, {}) for name in REGISTRY] + [("gru", {"reset": "before"})]


class ForwardOnly(MGU):
    """The MGU without its backward pass: only the scan can be checked."""

    backward = Cell.backward
    param_grads = Cell.param_grads


class OffByAStep(Elman):
    """A cell whose ``step`` is not what its scan computes."""

    def step(self, state, x):
        return super().step(state, x) + 1e-3


def test_a_forward_only_cell_has_its_scan_checked_and_no_gradient_report():
    assert not has_backward(ForwardOnly) and has_backward(MGU)
    report = check_cell(ForwardOnly)
    assert report["gradients"] is None and report["states"] <= 1e-12


def test_a_scan_that_is_not_the_step_fails():
    with pytest.raises(AssertionError, match="OffByAStep: the scanned states differ from a loop of step"):
        check_cell(OffByAStep)


@pytest.mark.slow
def test_a_backward_pass_that_is_not_the_gradient_fails_naming_the_case():
    wrong = r"ForgetfulMGU: the hand-derived gradient differs .* target=last"
    with pytest.raises(AssertionError, match=wrong):
        check_cell(ForgetfulMGU)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}{o}" for n, o in CASES])
def test_every_registered_cell_conforms(name, options):
    report = check_cell(REGISTRY[name], options=options)
    assert report["states"] <= 1e-12
    # Both targets, three mask kinds, seven truncation forms: 42 cases, each within 1e-10.
    assert len(report["gradients"]) == 42 and max(report["gradients"].values()) <= 1e-10


def test_check_cell_refuses_what_is_not_a_cell_class():
    # Our own message, or the runtime shape checks' (on in the tests), naming the same argument.
    with pytest.raises(TypeError, match="cls must be a subclass of rnn_jax.cells.Cell|parameter 'cls'"):
        check_cell(jnp.tanh)
