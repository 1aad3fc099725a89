"""The Elman cell, the cell protocol and the registry."""

import chex
import jax
import jax.numpy as jnp
import pytest

import rnn_jax
from rnn_jax.cells import ACTIVATIONS, REGISTRY, Elman, cell_class, check_options, elman_step, make_cell
from rnn_jax.cells.elman import NAMED_ACTIVATIONS
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_elman


@pytest.mark.parametrize("init", ["default", "tutorial"])
def test_init_shapes_and_dtypes(key, init):
    m = init_elman(key=key, input_dim=3, hidden_dim=7, output_dim=2, init=init)
    c, r = m.cell, m.readout
    assert (c.U.shape, c.W.shape, c.b.shape, r.V.shape, r.c.shape) == ((7, 3), (7, 7), (7,), (2, 7), (2,))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(m))
    assert not jnp.any(c.b) and not jnp.any(r.c)


def test_tutorial_init_is_uniform_unit_interval(key):
    m = init_elman(key=key, input_dim=4, hidden_dim=50, output_dim=1, init="tutorial")
    for w in (m.cell.U, m.cell.W, m.readout.V):
        assert jnp.all((w >= 0) & (w < 1))
        assert 0.35 < float(jnp.mean(w)) < 0.65


def test_default_init_w_is_orthogonal_times_scale(key):
    m = init_elman(key=key, input_dim=2, hidden_dim=16, output_dim=1, scale=0.5)
    assert jnp.allclose(m.cell.W @ m.cell.W.T, 0.25 * jnp.eye(16), atol=1e-5)


def test_same_key_same_params_different_key_different(key):
    a = init_elman(key=key, input_dim=2, hidden_dim=5, output_dim=1)
    b = init_elman(key=key, input_dim=2, hidden_dim=5, output_dim=1)
    c = init_elman(key=jax.random.key(1), input_dim=2, hidden_dim=5, output_dim=1)
    assert all(jnp.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    assert not jnp.array_equal(a.cell.W, c.cell.W)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivative_from_output_matches_autodiff(name):
    fn, grad_from_output = NAMED_ACTIVATIONS[name]
    a = jnp.linspace(-3.0, 3.0, 61) + 0.01  # avoid relu's kink at exactly 0
    expected = jax.vmap(jax.grad(fn))(a)
    assert jnp.allclose(grad_from_output(fn(a)), expected, atol=1e-6)


@pytest.mark.grid
@pytest.mark.parametrize("input_dim", [3, 6])  # D < H scans the inputs; D >= H the drives
def test_step_and_readout_follow_the_equations(key, input_dim):
    m = init_elman(key=key, input_dim=input_dim, hidden_dim=4, output_dim=2)
    m = jax.tree.map(lambda w: w + 0.1, m)
    c = m.cell
    h, x = jnp.arange(4.0) / 4, jnp.linspace(-2.0, 1.0, input_dim)
    expected_h = jnp.tanh(c.U @ x + c.W @ h + c.b)
    assert jnp.allclose(elman_step(c, h, x), expected_h, atol=1e-6)
    assert jnp.allclose(m.readout(expected_h), m.readout.V @ expected_h + m.readout.c, atol=1e-6)
    hs, final = c(jnp.stack([x, x]), h0=h)
    assert hs.shape == (2, 4) and jnp.allclose(hs[0], expected_h, atol=1e-6) and jnp.allclose(final, hs[-1])


def test_bad_init_is_rejected(key):
    with pytest.raises(ValueError, match="init must be one of"):
        init_elman(key=key, input_dim=1, hidden_dim=2, output_dim=1, init="xavier")


def test_unknown_activation_is_rejected(key):
    with pytest.raises(
        ValueError, match="activation must be one of sigmoid, tanh, relu, or a callable; got 'swish'"
    ):
        Elman(key=key, input_dim=1, hidden_dim=2, activation="swish")


@pytest.mark.slow
def test_a_callable_activation_is_used_and_its_manual_gradient_matches_autodiff():
    with jax.enable_x64(True):
        m = init_elman(
            key=jax.random.key(3),
            input_dim=2,
            hidden_dim=6,
            output_dim=1,
            activation=jax.nn.gelu,
            dtype=jnp.float64,
        )
        m = jax.tree.map(lambda w: w + 0.05, m)
        xs = jax.random.normal(jax.random.key(4), (3, 9, 2), jnp.float64)
        ys = jax.random.normal(jax.random.key(5), (3, 1), jnp.float64)
        h = m.cell.step(jnp.zeros(6, jnp.float64), xs[0, 0])
        chex.assert_trees_all_close(h, jax.nn.gelu(m.cell.U @ xs[0, 0] + m.cell.b))
        for truncation in (None, 4):
            chex.assert_trees_all_close(
                manual_grads(m, xs, ys, truncation=truncation),
                jax.grad(loss)(m, xs, ys, truncation=truncation),
                rtol=1e-10,
                atol=1e-14,
            )


@pytest.mark.slow
def test_a_given_activation_derivative_is_used():
    """With ``activation_grad`` the backward pass uses it: a deliberately wrong one shows."""
    model = init_elman(key=jax.random.key(0), input_dim=1, hidden_dim=3, output_dim=1, activation=jnp.sin)
    wrong = rnn_jax.RNN(
        cell=Elman(
            key=jax.random.key(0), input_dim=1, hidden_dim=3, activation=jnp.sin, activation_grad=jnp.sin
        ),
        readout=model.readout,
    )
    right = rnn_jax.RNN(
        cell=Elman(
            key=jax.random.key(0), input_dim=1, hidden_dim=3, activation=jnp.sin, activation_grad=jnp.cos
        ),
        readout=model.readout,
    )
    xs, ys = jnp.ones((2, 5, 1)), jnp.zeros((2, 1))
    reference = jax.grad(loss)(right, xs, ys)
    chex.assert_trees_all_close(manual_grads(right, xs, ys), reference, rtol=1e-5, atol=1e-7)
    assert float(jnp.max(jnp.abs(manual_grads(wrong, xs, ys).cell.W - reference.cell.W))) > 1e-3


def test_registry_names_every_cell_and_refuses_unknown_names_and_options(key):
    assert set(REGISTRY) >= {"elman", "gru", "lstm", "indrnn"}
    with pytest.raises(ValueError, match="cell must be one of elman, gru, lstm, indrnn"):
        cell_class("rnn")
    with pytest.raises(ValueError, match="the gru cell takes no activation"):
        check_options("gru", {"activation": "relu"})
    cell = make_cell("elman", key=key, input_dim=2, hidden_dim=3, activation="relu")
    assert isinstance(cell, Elman) and cell.activation == "relu"


@pytest.mark.grid
@pytest.mark.parametrize("name", ["elman", "gru", "lstm", "indrnn"])
def test_every_registered_cell_is_an_array_only_pytree(key, name):
    """``jax.jit`` and ``jax.grad`` take a model as it is: no static arguments."""
    model = rnn_jax.init_model(name, key=key, input_dim=2, hidden_dim=4, output_dim=1)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(model))
    xs, ys = jnp.ones((3, 5, 2)), jnp.zeros((3, 1))
    g = jax.jit(jax.grad(rnn_jax.loss))(model, xs, ys)
    assert jax.tree.structure(g) == jax.tree.structure(model)
    model.check()


def test_inconsistent_weights_are_named(key):
    m = init_elman(key=key, input_dim=2, hidden_dim=4, output_dim=1)
    broken = rnn_jax.RNN(
        cell=jax.tree.map(lambda w: w, m.cell), readout=rnn_jax.Linear(key=key, hidden_dim=5, output_dim=1)
    )
    with pytest.raises(ValueError, match="does not fit the cell's hidden size H=4"):
        loss(broken, jnp.ones((1, 3, 2)), jnp.ones((1, 1)))


def test_an_elman_cell_with_a_callable_activation_trains():
    """``Elman(activation=jax.nn.gelu)`` in a plain optax loop on its hand-derived gradient."""
    import optax

    data = rnn_jax.make_sine_data(length=80, window=10, scale=True)
    model = init_elman(
        key=jax.random.key(0), input_dim=1, hidden_dim=16, output_dim=1, activation=jax.nn.gelu
    )
    optimizer = optax.adam(1e-2)

    @jax.jit
    def epochs(model, opt_state):
        def step(carry, _):
            model, opt_state = carry
            grads = manual_grads(model, data.x_train, data.y_train)
            updates, opt_state = optimizer.update(grads, opt_state, model)
            return (optax.apply_updates(model, updates), opt_state), None

        return jax.lax.scan(step, (model, opt_state), length=150)[0]

    before = float(loss(model, data.x_val, data.y_val))
    model, _ = epochs(model, optimizer.init(model))
    assert model.cell.activation is jax.nn.gelu
    assert float(loss(model, data.x_val, data.y_val)) < 0.05 * before


def test_elman_takes_initialisers_as_callables():
    """``init`` is a name, or a pair of ``jax.nn.initializers``-style functions for U and W."""
    zeros, ones = jax.nn.initializers.zeros, jax.nn.initializers.ones
    cell = Elman(key=jax.random.key(0), input_dim=2, hidden_dim=3, init=(zeros, ones), scale=0.5)
    assert cell.U.shape == (3, 2) and not cell.U.any() and bool(jnp.all(cell.W == 0.5))
    named = Elman(key=jax.random.key(0), input_dim=2, hidden_dim=3, init="default")
    glorot_orthogonal = (jax.nn.initializers.glorot_uniform(), jax.nn.initializers.orthogonal())
    same = Elman(key=jax.random.key(0), input_dim=2, hidden_dim=3, init=glorot_orthogonal)
    chex.assert_trees_all_equal(same, named)  # "default" is that pair
    sizes = {"input_dim": 2, "hidden_dim": 3, "output_dim": 1}
    model = rnn_jax.init_model("elman", key=jax.random.key(0), **sizes, init=(zeros, ones))
    assert not model.cell.U.any() and model.readout.V.any()
    with pytest.raises(ValueError, match="init must be one of default, tutorial, or a pair of initialisers"):
        Elman(key=jax.random.key(0), input_dim=2, hidden_dim=3, init="he")
