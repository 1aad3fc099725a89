"""``loss(..., backward="manual")``: the hand-derived pass as ``jax.grad``'s rule gives the same
gradients as autodiff (model, inputs and targets), for every cell, target and truncation form."""

import functools

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import rnn_jax
from rnn_jax.gradcheck import perturbed, random_batch

T = 7
CELLS = [
    ("elman", {"activation": "sigmoid"}),
    ("gru", {}),
    ("gru", {"reset": "before"}),
    ("lstm", {}),
    ("indrnn", {}),
]


def problem(name, options, target, dtype=jnp.float64):
    model = rnn_jax.init_model(
        name, key=jax.random.key(0), input_dim=3, hidden_dim=5, output_dim=2, dtype=dtype, **options
    )
    model = perturbed(model, jax.random.key(1))
    xs, ys = random_batch(model, jax.random.key(2), batch=3, seq_len=T, target=target)
    return model, xs, ys


@functools.partial(jax.jit, static_argnames=("target", "truncation", "backward"))
def value_and_grads(model, xs, ys, k, *, target, truncation, backward):
    """``k`` (traced) is used when ``truncation`` (static) is "traced"."""
    truncation = k if truncation == "traced" else truncation
    fn = functools.partial(rnn_jax.loss, target=target, truncation=truncation, backward=backward)
    return jax.value_and_grad(fn, argnums=(0, 1, 2))(model, xs, ys)


# Every cell with the three code paths (full, static window, traced window); the Elman cell
# also with the edge cases. The backward passes themselves are checked for every truncation
# form in test_manual_grads.py and test_gated.py; here it is the rule's plumbing.
FORMS = [(*cell, k) for cell in CELLS for k in (None, 3, "traced")]
FORMS += [("elman", {"activation": "tanh"}, k) for k in (1, T, T + 2)]


@pytest.mark.grid
@pytest.mark.parametrize(("name", "options", "truncation"), FORMS)
@pytest.mark.parametrize("target", ["last", "all"])
def test_the_hand_rule_equals_autodiff_in_float64(name, options, target, truncation):
    with jax.enable_x64(True):
        model, xs, ys = problem(name, options, target)
        kw = {"target": target, "truncation": truncation}
        value, grads = value_and_grads(model, xs, ys, jnp.int32(3), backward="manual", **kw)
        ref_value, reference = value_and_grads(model, xs, ys, jnp.int32(3), backward="autodiff", **kw)
        assert abs(float(value) - float(ref_value)) <= 1e-14 * abs(float(ref_value))  # compiled apart
        chex.assert_trees_all_close(grads, reference, rtol=1e-10, atol=1e-14)


@pytest.mark.slow
def test_the_inputs_before_a_static_window_get_no_gradient():
    """The state entering the window is a constant in every form, so are the inputs before it."""
    with jax.enable_x64(True):
        model, xs, ys = problem("elman", {}, "last")
        for backward in ("autodiff", "manual"):
            static = jax.grad(rnn_jax.loss, argnums=1)(model, xs, ys, truncation=3, backward=backward)
            traced = jax.grad(rnn_jax.loss, argnums=1)(
                model, xs, ys, truncation=jnp.int32(3), backward=backward
            )
            assert not jnp.any(static[:, : T - 3]) and jnp.any(static[:, T - 3 :])
            chex.assert_trees_all_close(static, traced, rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_second_order_reverse_mode_works_and_forward_mode_is_refused():
    with jax.enable_x64(True):
        model, xs, ys = problem("elman", {"activation": "tanh"}, "all")

        def grad_norm(m, backward):
            g = jax.grad(rnn_jax.loss)(m, xs, ys, target="all", backward=backward)
            return sum(jnp.sum(x**2) for x in jax.tree.leaves(g))

        chex.assert_trees_all_close(
            jax.grad(grad_norm)(model, "manual"),
            jax.grad(grad_norm)(model, "autodiff"),
            rtol=1e-9,
            atol=1e-14,
        )
        with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
            jax.jacfwd(rnn_jax.loss)(model, xs, ys, target="all", backward="manual")


def test_bad_backward_arguments_are_named():
    model, xs, ys = problem("elman", {}, "last", jnp.float32)
    with pytest.raises(ValueError, match="backward must be one of autodiff, manual; got 'numeric'"):
        rnn_jax.loss(model, xs, ys, backward="numeric")
    with pytest.raises(ValueError, match="remat=True needs backward 'autodiff'"):
        rnn_jax.loss(model, xs, ys, backward="manual", remat=True)


@pytest.mark.slow
def test_training_curves_match_autodiff_in_float32():
    data = rnn_jax.make_sine_data(length=90, window=12, scale=True)
    model = rnn_jax.init_model("gru", key=jax.random.key(0), input_dim=1, hidden_dim=8, output_dim=1)
    optimizer = optax.adam(1e-2)

    def curve(backward):
        def step(carry, _):
            m, state = carry
            value, grads = jax.value_and_grad(rnn_jax.loss)(
                m, data.x_train, data.y_train, truncation=5, backward=backward
            )
            updates, state = optimizer.update(grads, state, m)
            return (optax.apply_updates(m, updates), state), value

        return jax.jit(lambda m: jax.lax.scan(step, (m, optimizer.init(m)), length=40)[1])(model)

    manual, autodiff = curve("manual"), curve("autodiff")
    assert float(manual[-1]) < 0.5 * float(manual[0])
    chex.assert_trees_all_close(manual, autodiff, rtol=1e-4, atol=1e-6)
