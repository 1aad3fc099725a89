"""Stacks, bidirectional layers, lengths, masks and cross-entropy: padding changes nothing, and
the hand-derived gradients equal autodiff for every composition, target and truncation form."""

import functools

import chex
import jax
import jax.numpy as jnp
import pytest

from rnn_jax.cells.layers import Bidirectional, Stack, reversed_starts
from rnn_jax.gradcheck import check_gradients, perturbed, random_batch, random_mask
from rnn_jax.loss import batch_predict, loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_model

D, O, T, N = 3, 4, 11, 5  # odd sizes: T is no multiple of the windows, D != H != O

# Each composition the hand-derived pass must get right, crossed below with both targets and
# truncation None, 1, 3 and T.
CASES = {  # the first (cheapest) case of each grid over them is in the quick test tier
    "cross-entropy": ({"cell": "elman", "hidden_dim": 6}, "cross_entropy", "full"),
    "stack of three mixed cells": (
        {"cell": ("elman", "gru", "lstm"), "num_layers": 3, "hidden_dim": (5, 3, 6)},
        "squared",
        "full",
    ),
    "bidirectional": ({"cell": "gru", "hidden_dim": 5, "bidirectional": True}, "squared", "full"),
    "random lengths": ({"cell": "lstm", "hidden_dim": 5}, "squared", "random"),
    "mask with holes": (
        {"cell": ("gru", "elman"), "num_layers": 2, "hidden_dim": 5, "bidirectional": True},
        "squared",
        "holes",
    ),
    "all of it": (
        {"cell": ("lstm", "gru"), "num_layers": 2, "hidden_dim": 5, "bidirectional": True},
        "cross_entropy",
        "random",
    ),
}


def layout_reverse_cells(case):
    layout = CASES[case][0]
    return layout.get("num_layers", 1) if layout.get("bidirectional") else 0


# A lighter causal stack for the tests that are not the cross above.
LIGHT_STACK = {"cell": ("elman", "gru"), "num_layers": 2, "hidden_dim": 4}


def problem(case, target, seed=0, dtype=jnp.float64, layout=None, **extra):
    """A perturbed model of the case (or of ``layout`` with the case's objective and lengths),
    a batch, and the batch's lengths or mask."""
    case_layout, objective, lengths = CASES[case]
    layout = case_layout if layout is None else layout
    k_init, k_noise, k_data, k_mask = jax.random.split(jax.random.key(seed), 4)
    model = init_model(key=k_init, input_dim=D, output_dim=O, dtype=dtype, **layout, **extra)
    model = perturbed(model, k_noise, 0.3)
    xs, ys = random_batch(model, k_data, batch=N, seq_len=T, target=target, objective=objective)
    return model, xs, ys, objective, random_mask(k_mask, batch=N, seq_len=T, kind=lengths)


@functools.partial(jax.jit, static_argnames=("target", "objective", "traced"))
def both_grads(model, xs, ys, k, options, *, target, objective, traced):
    """Autodiff's and the hand-derived gradients, truncation ``k`` (traced) or None."""
    kwargs = {"target": target, "objective": objective, "truncation": k if traced else None, **options}
    return jax.grad(loss)(model, xs, ys, **kwargs), manual_grads(model, xs, ys, **kwargs)


@pytest.mark.grid
@pytest.mark.parametrize("target", ["last", "all"])
@pytest.mark.parametrize("case", list(CASES))
def test_hand_derived_gradients_equal_autodiff(case, target):
    with jax.enable_x64(True):
        model, xs, ys, objective, options = problem(case, target)
        for k in (None, 1, 3, T):  # one compiled program serves every traced k
            auto, manual = both_grads(
                model, xs, ys, k or 0, options, target=target, objective=objective, traced=k is not None
            )
            chex.assert_trees_all_close(manual, auto, rtol=1e-10, atol=1e-12)
            # The check compares something: every array gets a gradient, but for "last" the
            # reverse cells' recurrent weights, which act on no earlier state at the last step.
            zero = [float(jnp.max(jnp.abs(g))) == 0 for g in jax.tree.leaves(auto)]
            assert sum(zero) <= (layout_reverse_cells(case) if target == "last" else 0)


@functools.partial(jax.jit, static_argnames=("truncation", "target"))
def grads_with(model, xs, ys, key, *, truncation, target):
    """Both gradients with a static truncation (a Python int, or None) and a dropout key."""
    kwargs = {"target": target, "truncation": truncation, "key": key}
    return jax.grad(loss)(model, xs, ys, **kwargs), manual_grads(model, xs, ys, **kwargs)


@pytest.mark.slow
def test_a_static_window_on_a_stack_matches_the_traced_one():
    # A Python int k on a causal stack runs the steps before the window outside autodiff.
    with jax.enable_x64(True):
        model, xs, ys, _, _ = problem("stack of three mixed cells", "last", layout=LIGHT_STACK)
        auto, static = grads_with(model, xs, ys, None, truncation=3, target="last")
        chex.assert_trees_all_close(static, auto, rtol=1e-10)
        _, traced = both_grads(model, xs, ys, 3, {}, target="last", objective="squared", traced=True)
        chex.assert_trees_all_close(static, traced, rtol=1e-10)


@pytest.mark.slow
def test_dropout_between_layers_is_keyed_and_its_gradient_hand_derived(key):
    with jax.enable_x64(True):
        model, xs, ys, _, _ = problem("stack of three mixed cells", "all", layout=LIGHT_STACK, dropout=0.4)
        plain = loss(model, xs, ys, target="all")
        dropped = loss(model, xs, ys, target="all", key=key)
        assert abs(float(dropped - plain)) > 1e-6  # the key turns dropout on
        assert float(loss(model, xs, ys, target="all", key=key)) == float(dropped)  # same key, same draw
        assert model.cell.dropout == 0.4
        for k in (None, 3):
            auto, manual = grads_with(model, xs, ys, key, truncation=k, target="all")
            chex.assert_trees_all_close(manual, auto, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["all of it"])
def test_the_manual_rule_gives_autodiffs_gradients_for_inputs_and_initial_states(case):
    with jax.enable_x64(True):
        model, xs, ys, objective, options = problem(case, "all")
        h0 = jax.tree.map(
            lambda s: 0.5 * jax.random.normal(jax.random.key(7), (N, *s.shape), s.dtype),
            model.cell.initial_state(),
        )

        def gradients(backward):
            def value(m, x, h):
                kwargs = {"target": "all", "truncation": jnp.asarray(4), "objective": objective, "h0": h}
                return loss(m, x, ys, backward=backward, **kwargs, **options)

            return jax.jit(jax.grad(value, argnums=(0, 1, 2)))(model, xs, h0)

        grads, reference = gradients("manual"), gradients("autodiff")
        chex.assert_trees_all_close(grads, reference, rtol=1e-10, atol=1e-13)


def pad(xs, extra, key):
    """``xs (L, D)`` followed by ``extra`` steps of noise."""
    return jnp.concatenate([xs, 3.0 * jax.random.normal(key, (extra, xs.shape[1]), xs.dtype)])


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout",
    [
        {"cell": "lstm", "hidden_dim": 5},
        {"cell": "gru", "hidden_dim": 5, "bidirectional": True},
        {"cell": ("elman", "lstm"), "num_layers": 2, "hidden_dim": 4, "bidirectional": True},
    ],
    ids=["unidirectional", "bidirectional", "stacked bidirectional"],
)
def test_padded_and_unpadded_copies_give_identical_valid_outputs(layout, key):
    with jax.enable_x64(True):
        k_model, k_x, k_pad = jax.random.split(key, 3)
        model = init_model(key=k_model, input_dim=D, output_dim=O, dtype=jnp.float64, **layout)
        valid = jax.random.normal(k_x, (6, D), jnp.float64)
        padded = pad(valid, 5, k_pad)
        mask = jnp.arange(11) < 6
        chex.assert_trees_all_close(model(padded, mask=mask)[:6], model(valid), rtol=1e-13, atol=1e-14)
        # Last-step predictions read the last valid step, from lengths or from the mask.
        out = batch_predict(model, padded[None], mask=mask[None])
        chex.assert_trees_all_close(out[0], model(valid)[-1], rtol=1e-13, atol=1e-14)
        lengths = loss(model, padded[None], jnp.zeros((1, O)), lengths=jnp.array([6]))
        chex.assert_trees_all_close(lengths, 0.5 * jnp.sum(model(valid)[-1] ** 2), rtol=1e-13)


def test_a_mask_with_holes_carries_the_state_across_skipped_steps(key):
    with jax.enable_x64(True):
        k_model, k_x = jax.random.split(key)
        model = init_model("gru", key=k_model, input_dim=D, hidden_dim=5, output_dim=O, dtype=jnp.float64)
        xs = jax.random.normal(k_x, (9, D), jnp.float64)
        mask = jnp.array([True, False, True, True, False, False, True, True, False])
        holes = model(xs, mask=mask)
        chex.assert_trees_all_close(holes[mask], model(xs[mask]), rtol=1e-13, atol=1e-14)
        chex.assert_trees_all_close(holes[1], holes[0])  # a skipped step repeats the state
        # Bidirectional: the reverse direction skips the same steps.
        both = init_model(
            "gru", key=k_model, input_dim=D, hidden_dim=5, output_dim=O, dtype=jnp.float64, bidirectional=True
        )
        chex.assert_trees_all_close(both(xs, mask=mask)[mask], both(xs[mask]), rtol=1e-13, atol=1e-14)


class PaddingBlindReverse(Bidirectional):
    """A planted bug: the reverse direction's backward pass forgets the mask."""

    def backward(self, xs, h0, states, dh_out, cuts, mask=None):
        return super().backward(xs, h0, states, dh_out, cuts, None)


class UnflippedCuts(Bidirectional):
    """A planted bug: the reverse direction reads the forward direction's window starts."""

    def states(self, xs, *, starts=None, h0=None, mask=None):
        return super().states(
            xs, starts=None if starts is None else reversed_starts(starts), h0=h0, mask=mask
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bug", "truncation", "lengths"), [(PaddingBlindReverse, None, "random"), (UnflippedCuts, 3, "full")]
)
def test_a_planted_bug_fails_the_gradient_check(bug, truncation, lengths, key):
    with jax.enable_x64(True):
        model, xs, ys, _, _ = problem("bidirectional", "all")
        options = random_mask(key, batch=N, seq_len=T, kind=lengths)
        good = check_gradients(model, xs, ys, target="all", truncation=truncation, **options)
        assert good["ok"], good["max_rel_err"]
        broken = bug(forward=model.cell.forward, reverse=model.cell.reverse)
        planted = check_gradients(
            type(model)(cell=broken, readout=model.readout),
            xs,
            ys,
            target="all",
            truncation=truncation,
            **options,
        )
        assert not planted["ok"] and planted["max_rel_err"] > 1e-3


def test_reversed_starts_cut_the_same_boundaries():
    starts = jnp.array([True, False, False, True, False, True, False])
    flipped = reversed_starts(starts)
    # A cut before step t (boundary t-1 | t) is crossed entering reversed step T - t.
    for t in range(1, 7):
        assert bool(flipped[7 - t]) == bool(starts[t])
    assert bool(flipped[0]) == bool(starts[0])


def test_stack_and_bidirectional_refuse_sizes_that_do_not_fit(key):
    a, b = jax.random.split(key)
    lower = init_model("elman", key=a, input_dim=D, hidden_dim=5, output_dim=O).cell
    upper = init_model("gru", key=b, input_dim=4, hidden_dim=5, output_dim=O).cell
    with pytest.raises(ValueError, match="layer 1 reads D=4 features, but layer 0 gives 5"):
        Stack(layers=(lower, upper)).check()
    with pytest.raises(ValueError, match="must read the same inputs"):
        Bidirectional(forward=lower, reverse=upper).check()
    with pytest.raises(ValueError, match="dropout must be in"):
        Stack(layers=(lower, lower), dropout=1.0).check()
    with pytest.raises(ValueError, match="with num_layers=1 it must be 0"):
        init_model("elman", key=a, input_dim=D, hidden_dim=5, output_dim=O, dropout=0.5)
    with pytest.raises(ValueError, match="hidden_dim lists 2 values for 3 layers"):
        init_model("elman", key=a, input_dim=D, hidden_dim=(5, 4), output_dim=O, num_layers=3)
