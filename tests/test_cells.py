import jax
import jax.numpy as jnp
import pytest

from rnn_jax.cells import ACTIVATIONS, elman_step, get_activation, init_elman, readout


@pytest.mark.parametrize("init", ["default", "tutorial"])
def test_init_shapes_and_dtypes(key, init):
    p = init_elman(key=key, input_dim=3, hidden_dim=7, output_dim=2, init=init)
    assert (p.U.shape, p.W.shape, p.b.shape, p.V.shape, p.c.shape) == ((7, 3), (7, 7), (7,), (2, 7), (2,))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(p))
    assert not jnp.any(p.b) and not jnp.any(p.c)


def test_tutorial_init_is_uniform_unit_interval(key):
    p = init_elman(key=key, input_dim=4, hidden_dim=50, output_dim=1, init="tutorial")
    for w in (p.U, p.W, p.V):
        assert jnp.all((w >= 0) & (w < 1))
        assert 0.4 < float(jnp.mean(w)) < 0.6


def test_default_init_w_is_orthogonal_times_scale(key):
    p = init_elman(key=key, input_dim=2, hidden_dim=16, output_dim=1, scale=0.5)
    assert jnp.allclose(p.W @ p.W.T, 0.25 * jnp.eye(16), atol=1e-5)


def test_same_key_same_params_different_key_different(key):
    a = init_elman(key=key, input_dim=2, hidden_dim=5, output_dim=1)
    b = init_elman(key=key, input_dim=2, hidden_dim=5, output_dim=1)
    c = init_elman(key=jax.random.key(1), input_dim=2, hidden_dim=5, output_dim=1)
    assert all(jnp.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    assert not jnp.array_equal(a.W, c.W)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivative_from_output_matches_autodiff(name):
    act = get_activation(name)
    a = jnp.linspace(-3.0, 3.0, 61) + 0.01  # avoid relu's kink at exactly 0
    expected = jax.vmap(jax.grad(act.fn))(a)
    assert jnp.allclose(act.grad_from_output(act.fn(a)), expected, atol=1e-6)


def test_step_and_readout_follow_the_equations(key):
    p = init_elman(key=key, input_dim=3, hidden_dim=4, output_dim=2)
    p = jax.tree.map(lambda w: w + 0.1, p)
    h, x = jnp.arange(4.0) / 4, jnp.array([1.0, -2.0, 0.5])
    expected_h = jnp.tanh(p.U @ x + p.W @ h + p.b)
    assert jnp.allclose(elman_step(p, h, x, "tanh"), expected_h, atol=1e-6)
    assert jnp.allclose(readout(p, expected_h), p.V @ expected_h + p.c, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"init": "xavier"}, "init must be one of"),
    ],
)
def test_bad_init_is_rejected(key, kwargs, message):
    with pytest.raises(ValueError, match=message):
        init_elman(key=key, input_dim=1, hidden_dim=2, output_dim=1, **kwargs)


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation must be one of sigmoid, tanh, relu; got 'gelu'"):
        get_activation("gelu")
