import chex
import jax
import jax.numpy as jnp
import pytest

from rnn_jax.cells import elman_step
from rnn_jax.loss import loss
from rnn_jax.model import init_elman, init_model, predict
from rnn_jax.unroll import unroll, window_starts


@pytest.fixture
def problem(key):
    init_key, x_key = jax.random.split(key)
    params = init_elman(key=init_key, input_dim=3, hidden_dim=6, output_dim=2)
    xs = jax.random.normal(x_key, (9, 3))
    return params, xs


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_scan_equals_python_loop(key, activation):
    cell = init_elman(key=key, input_dim=3, hidden_dim=6, output_dim=2, activation=activation).cell
    xs = jax.random.normal(jax.random.key(1), (9, 3))
    h = jnp.zeros(6)
    expected = []
    for x in xs:
        h = elman_step(cell, h, x)
        expected.append(h)
    assert jnp.allclose(unroll(cell, xs), jnp.stack(expected), atol=1e-6)


def test_initial_state_is_used(problem):
    params, xs = problem
    h0 = jnp.ones(6)
    hs = unroll(params.cell, xs, h0=h0)
    assert jnp.allclose(hs[0], elman_step(params.cell, h0, xs[0]), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["last", "all"])
@pytest.mark.parametrize("truncation", [None, 1, 2, 4, 9, 12])
def test_forward_values_do_not_depend_on_truncation(problem, target, truncation):
    params, xs = problem
    full = predict(params, xs, target=target)
    assert jnp.array_equal(predict(params, xs, target=target, truncation=truncation), full)
    want_shape = (2,) if target == "last" else (9, 2)
    assert full.shape == want_shape
    if target == "last":
        assert jnp.allclose(full, params.readout(unroll(params.cell, xs)[-1]))


def test_window_starts_last_marks_one_step():
    assert window_starts(7, "last", 3).tolist() == [False] * 4 + [True] + [False] * 2
    assert not jnp.any(window_starts(7, "last", 8))
    assert window_starts(7, "last", None) is None


def test_window_starts_all_marks_every_kth_step():
    assert jnp.nonzero(window_starts(7, "all", 3))[0].tolist() == [0, 3, 6]
    assert jnp.nonzero(window_starts(7, "all", 1))[0].tolist() == list(range(7))


def test_window_starts_accepts_a_traced_truncation():
    starts = jax.vmap(lambda k: window_starts(7, "all", k))(jnp.array([2, 3]))
    assert jnp.nonzero(starts[1])[0].tolist() == [0, 3, 6]


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_truncation_is_rejected(bad):
    with pytest.raises((ValueError, TypeError), match="truncation"):
        window_starts(7, "last", bad)


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="target must be one of last, all; got 'first'"):
        window_starts(7, "first", None)


@pytest.mark.slow
def test_a_static_truncation_stores_nothing_for_the_steps_before_its_window(key):
    """Python-int k with target "last": the steps before the window run on constants, so the
    compiled gradient's scratch memory does not grow by a state per step (only the inputs
    grow); a traced k masks the gradient and stores every step."""
    from rnn_jax.loss import loss

    params = init_elman(key=key, input_dim=1, hidden_dim=32, output_dim=1)
    scratch = {}
    for seq_len in (100, 1000):
        xs, ys = jnp.ones((4, seq_len, 1)), jnp.zeros((4, 1))
        for kind, k in (("static", 5), ("traced", jnp.int32(5))):
            grad = jax.jit(
                jax.grad(lambda p, xs, ys, k: loss(p, xs, ys, truncation=k)),
                static_argnums=3 if kind == "static" else (),
            )
            scratch[kind, seq_len] = (
                grad.lower(params, xs, ys, k).compile().memory_analysis().temp_size_in_bytes
            )
            if kind == "static":
                static_grad = grad(params, xs, ys, k)
            else:
                chex.assert_trees_all_close(static_grad, grad(params, xs, ys, k), rtol=1e-5, atol=1e-8)
    states_per_step = 4 * 32 * 4  # bytes of the (N, H) float32 states one step would store
    assert scratch["static", 1000] - scratch["static", 100] < 0.1 * 900 * states_per_step
    assert scratch["traced", 1000] - scratch["traced", 100] > 900 * states_per_step


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_remat_gives_the_same_gradient_in_sqrt_t_memory(cell):
    from rnn_jax.loss import loss
    from rnn_jax.unroll import remat_segment

    assert remat_segment(50) == 5 and remat_segment(50_000) == 200 and remat_segment(7) in (1, 7)
    with jax.enable_x64(True):
        params = init_model(
            cell, key=jax.random.key(0), input_dim=2, hidden_dim=6, output_dim=1, dtype=jnp.float64
        )
        xs = jax.random.normal(jax.random.key(1), (3, 36, 2), jnp.float64)
        ys = jax.random.normal(jax.random.key(2), (3, 1), jnp.float64)
        plain = jax.grad(loss)(params, xs, ys)
        remat = jax.grad(lambda p: loss(p, xs, ys, remat=True))(params)
        chex.assert_trees_all_close(remat, plain, rtol=1e-12, atol=1e-14)
    # Memory at a hidden size where states, not the (T, N, D) inputs both variants keep, dominate.
    params = init_model(cell, key=jax.random.key(0), input_dim=2, hidden_dim=32, output_dim=1)
    scratch = {}
    for remat in (False, True):
        for seq_len in (400, 1600):
            xs, ys = jnp.ones((4, seq_len, 2)), jnp.zeros((4, 1))
            grad = jax.jit(jax.grad(lambda p, xs, ys, r=remat: loss(p, xs, ys, remat=r)))
            compiled = grad.lower(params, xs, ys).compile()
            scratch[remat, seq_len] = compiled.memory_analysis().temp_size_in_bytes
    assert scratch[True, 1600] < 0.2 * scratch[False, 1600]
    assert scratch[False, 1600] > 3 * scratch[False, 400]


def test_remat_is_refused_where_it_does_not_apply(problem):
    params, xs = problem
    with pytest.raises(ValueError, match="remat=True needs target 'last', full BPTT"):
        predict(params, xs, target="all", remat=True)
    with pytest.raises(ValueError, match="remat=True needs target 'last', full BPTT"):
        predict(params, xs, truncation=3, remat=True)


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_unroll_reaches_lax_scan_and_changes_no_value(cell):
    """``unroll=`` on the loss is the time scans' ``lax.scan`` unroll: a different program,
    the same loss and gradient (float64), through a stack of bidirectional layers too."""
    with jax.enable_x64(True):
        model = init_model(
            cell,
            key=jax.random.key(0),
            input_dim=2,
            hidden_dim=3,
            output_dim=1,
            num_layers=2,
            bidirectional=True,
            dtype=jnp.float64,
        )
        xs = jax.random.normal(jax.random.key(1), (2, 7, 2), jnp.float64)
        ys = jax.random.normal(jax.random.key(2), (2, 7, 1), jnp.float64)
        options = {"target": "all", "truncation": jnp.asarray(3)}
        one = jax.value_and_grad(loss)(model, xs, ys, **options)
        four = jax.value_and_grad(lambda m: loss(m, xs, ys, unroll=4, **options))(model)
        chex.assert_trees_all_close(four, one, rtol=1e-12, atol=1e-14)
        program = str(jax.make_jaxpr(lambda m: loss(m, xs, ys, unroll=4, **options))(model))
        assert "unroll=4" in program and "unroll=4" not in str(
            jax.make_jaxpr(lambda m: loss(m, xs, ys, **options))(model)
        )
        with pytest.raises(ValueError, match="unroll applies to the autodiff pass"):
            loss(model, xs, ys, unroll=2, backward="manual", target="all")
