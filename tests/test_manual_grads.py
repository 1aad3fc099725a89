"""Hand-derived BPTT against autodiff: float64 to 1e-10, float32 to 1e-4, over every
activation, target and truncation form, with T not a multiple of k and D, H, O all different."""

import functools

import chex
import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

from rnn_jax.gradcheck import GradcheckConfig, run_gradcheck
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads, state_grads
from rnn_jax.model import init_elman, predict, with_weights
from rnn_jax.tutorial import tutorial_grads
from rnn_jax.unroll import unroll

D, H, O, T = 3, 5, 2, 7
TRUNCATIONS = [None, 1, 2, T - 1, T, T + 3]
STATIC = ("target",)
autodiff = jax.jit(jax.grad(loss), static_argnames=STATIC)
manual = jax.jit(manual_grads, static_argnames=STATIC)


def problem(dtype, n, target, seed=0, activation="sigmoid"):
    init_key, x_key, y_key, b_key = jax.random.split(jax.random.key(seed), 4)
    params = init_elman(
        key=init_key, input_dim=D, hidden_dim=H, output_dim=O, dtype=dtype, activation=activation
    )
    params = with_weights(params, b=0.3 * jax.random.normal(b_key, (H,), dtype), c=jnp.full((O,), 0.1, dtype))
    xs = jax.random.normal(x_key, (n, T, D), dtype)
    ys = jax.random.normal(y_key, (n, O) if target == "last" else (n, T, O), dtype)
    return params, xs, ys


def truncation_arg(k):
    # Traced, so one compilation serves every k (and the traced path is what sweeps use).
    return None if k is None else jnp.asarray(k)


@pytest.mark.grid
@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("truncation", TRUNCATIONS)
@pytest.mark.parametrize("target", ["last", "all"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_manual_equals_autodiff_float64(activation, target, truncation, n):
    with jax.enable_x64(True):
        params, xs, ys = problem(jnp.float64, n, target, activation=activation)
        kw = {"target": target, "truncation": truncation_arg(truncation)}
        m, a = manual(params, xs, ys, **kw), autodiff(params, xs, ys, **kw)
        assert m.cell.W.dtype == jnp.float64
        chex.assert_trees_all_close(m, a, rtol=1e-10, atol=1e-13)


@pytest.mark.grid
@pytest.mark.parametrize("truncation", TRUNCATIONS)
@pytest.mark.parametrize("target", ["last", "all"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_manual_equals_autodiff_float32(activation, target, truncation):
    params, xs, ys = problem(jnp.float32, 3, target, activation=activation)
    kw = {"target": target, "truncation": truncation_arg(truncation)}
    chex.assert_trees_all_close(
        manual(params, xs, ys, **kw), autodiff(params, xs, ys, **kw), rtol=1e-4, atol=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("target", ["last", "all"])
def test_truncation_changes_the_gradient(target):
    """Guards the grid above against passing trivially: truncation must matter."""
    with jax.enable_x64(True):
        params, xs, ys = problem(jnp.float64, 2, target)
        full = manual(params, xs, ys, target=target, truncation=None)
        cut = manual(params, xs, ys, target=target, truncation=jnp.asarray(2))
        assert float(jnp.max(jnp.abs(full.cell.W - cut.cell.W))) > 1e-3
        chex.assert_trees_all_close(full.readout.V, cut.readout.V)  # the readout sees no recurrence


@pytest.mark.slow
def test_worked_example_by_hand():
    """T=2, D=H=O=1, relu (piecewise linear, so every number is exact arithmetic).

    U=0.5, W=2, b=0, V=3, c=0; x=(1, 2); y=4.
      h1 = relu(0.5*1)         = 0.5
      h2 = relu(0.5*2 + 2*0.5) = 2
      prediction = 3*2 = 6;  e = 6 - 4 = 2;  loss = 0.5 * 2^2 = 2
      dV = e*h2 = 4;  dc = e = 2
      delta2 = V*e = 6:        dU += delta2*x2 = 12,  dW += delta2*h1 = 3,  db += 6
      full BPTT: delta1 = W*delta2 = 12:  dU += 12*1,  dW += 12*h0 = 0,  db += 12
      -> full: dU=24, dW=3, db=18;   truncation=1 stops after step 2: dU=12, dW=3, db=6
    """
    p = with_weights(
        init_elman(key=jax.random.key(0), input_dim=1, hidden_dim=1, output_dim=1, activation="relu"),
        U=jnp.array([[0.5]]),
        W=jnp.array([[2.0]]),
        b=jnp.zeros(1),
        V=jnp.array([[3.0]]),
        c=jnp.zeros(1),
    )
    xs, ys = jnp.array([[[1.0], [2.0]]]), jnp.array([[4.0]])
    assert float(loss(p, xs, ys)) == 2.0
    for truncation, expected in ((None, (24, 3, 18)), (1, (12, 3, 6))):
        g = manual_grads(p, xs, ys, truncation=truncation)
        assert (float(g.cell.U[0, 0]), float(g.cell.W[0, 0]), float(g.cell.b[0])) == expected
        assert (float(g.readout.V[0, 0]), float(g.readout.c[0])) == (4.0, 2.0)
        chex.assert_trees_all_close(g, jax.grad(loss)(p, xs, ys, truncation=truncation))


@pytest.mark.grid
@pytest.mark.parametrize("target", ["last", "all"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_untruncated_loss_against_finite_differences(activation, target):
    with jax.enable_x64(True):
        params, xs, ys = problem(jnp.float64, 2, target, activation=activation)
        f = functools.partial(loss, xs=xs, ys=ys, target=target)
        check_grads(f, (params,), order=1, modes=["rev"])
        # and the hand-derived gradient agrees with the same central differences
        eps, direction = 1e-6, jax.tree.map(jnp.ones_like, params)
        plus = f(jax.tree.map(lambda p, d: p + eps * d, params, direction))
        minus = f(jax.tree.map(lambda p, d: p - eps * d, params, direction))
        g = manual_grads(params, xs, ys, target=target)
        directional = sum(jnp.sum(x) for x in jax.tree.leaves(g))
        assert jnp.allclose((plus - minus) / (2 * eps), directional, rtol=1e-7)


@pytest.mark.slow
def test_vmap_over_truncation_lengths_matches_one_by_one():
    params, xs, ys = problem(jnp.float32, 3, "all")
    ks = jnp.array([1, 2, 3, 7])
    batched = jax.vmap(lambda k: manual_grads(params, xs, ys, target="all", truncation=k))(ks)
    for i, k in enumerate(ks.tolist()):
        one = autodiff(params, xs, ys, target="all", truncation=k)
        chex.assert_trees_all_close(jax.tree.map(lambda g, i=i: g[i], batched), one, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_the_check_rejects_the_tutorial_backward_pass():
    report = run_gradcheck(GradcheckConfig(backward="tutorial", truncation=5))
    assert not report["ok"]
    assert report["max_rel_err"] > 1.0  # off by more than the gradient's own size
    params, xs, ys = problem(jnp.float32, 2, "last")
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(
            tutorial_grads(params, xs, ys, truncation=5),
            autodiff(params, xs, ys, target="last", truncation=5),
            rtol=1e-2,
        )


def test_tutorial_grads_follow_its_recipe():
    """dV uses every step's state against the last error; dW/dU ignore the error entirely."""
    params, xs, ys = problem(jnp.float32, 1, "last")
    g = tutorial_grads(params, xs, ys, truncation=3)
    g_other_target = tutorial_grads(params, xs, ys + 5.0, truncation=3)
    chex.assert_trees_all_close(g.cell.W, g_other_target.cell.W)
    chex.assert_trees_all_close(g.cell.U, g_other_target.cell.U)
    assert jnp.all(g.cell.W[:, :1] == g.cell.W)  # one column broadcast over all columns
    assert not jnp.any(g.cell.b) and not jnp.any(g.readout.c)
    with pytest.raises(ValueError, match="target must be 'last'"):
        tutorial_grads(params, xs, jnp.zeros((1, T, O)), target="all")


@pytest.mark.slow
def test_state_grads_equal_autodiff_through_the_suffix():
    """dL/dh_t is the gradient of the loss of the remaining steps started from h_t."""
    with jax.enable_x64(True):
        params, xs, ys = problem(jnp.float64, 1, "last", activation="tanh")
        dhs = state_grads(params, xs, ys)
        hs = unroll(params.cell, xs[0])
        for t in (0, 3, T - 2):

            def suffix_loss(h, t=t):
                return 0.5 * jnp.sum((predict(params, xs[0, t + 1 :], h0=h) - ys[0]) ** 2)

            chex.assert_trees_all_close(dhs[0, t], jax.grad(suffix_loss)(hs[t]), rtol=1e-10)
        chex.assert_trees_all_close(
            dhs[0, -1], params.readout.V.T @ (params.readout(hs[-1]) - ys[0]), rtol=1e-10
        )
        cut = state_grads(params, xs, ys, truncation=2)
        assert not jnp.any(cut[0, : T - 2]) and jnp.allclose(cut[0, T - 2 :], dhs[0, T - 2 :])
