"""Parallel-in-time evaluation (``rnn_jax.cells.parallel``): the same states and gradients as
the sequential scan, for every registered cell, target, truncation form and mask kind."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from rnn_jax.cells import cell_names, make_cell
from rnn_jax.cells.parallel import METHODS, Parallel, Report, Solver, in_parallel, in_sequence, solve_states
from rnn_jax.errors import InputError
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_model

N, T, D, H, O = 3, 12, 2, 4, 2


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def largest_gap(a, b) -> float:
    return max(
        float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def masks() -> dict:
    """The three mask kinds, as data (one compiled program serves them all)."""
    lengths = jnp.array([T, 7, 1])
    holes = jax.random.bernoulli(jax.random.key(5), 0.7, (N, T)).at[:, -1].set(True).at[:, 0].set(True)
    return {
        "no mask": jnp.ones((N, T), bool),
        "lengths": jnp.arange(T)[None, :] < lengths[:, None],
        "holes": holes,
    }


# A traced window: one program for full BPTT (k >= T), k = 1 and a window between.
WINDOWS = (T + 3, 1, 5)


@pytest.mark.parametrize("method", ["deer", "quasi_deer", "elk", "quasi_elk"])
@pytest.mark.parametrize(
    "cell", [c if c == "elman" else pytest.param(c, marks=pytest.mark.slow) for c in cell_names()]
)
def test_states_and_gradients_equal_the_sequential_scan_to_1e_10(x64, cell, method):
    model = init_model(
        cell, key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, dtype=jnp.float64
    )
    parallel = in_parallel(model, method, max_iter=T)
    xs = jax.random.normal(jax.random.key(1), (N, T, D), jnp.float64)
    largest, cases = 0.0, 0
    for target in ("last", "all"):
        ys = jax.random.normal(jax.random.key(2), (N, T, O) if target == "all" else (N, O), jnp.float64)

        @jax.jit
        def value_and_grad(m, k, mask, target=target, ys=ys):
            return jax.value_and_grad(loss, argnums=(0, 1))(m, xs, ys, target=target, truncation=k, mask=mask)

        for mask in masks().values():
            for k in WINDOWS:
                want = value_and_grad(model, jnp.asarray(k), mask)
                got = value_and_grad(parallel, jnp.asarray(k), mask)
                largest = max(largest, largest_gap(want, in_sequence(got)))
                cases += 1
    states = jax.vmap(lambda x: parallel.cell.states(x))(xs)
    largest = max(largest, largest_gap(jax.vmap(lambda x: model.cell.states(x))(xs), states))
    assert cases == 18 and largest < 1e-10, largest  # x 4 cells x 4 methods: 288 configurations


@pytest.mark.slow
def test_static_windows_stacks_bidirectional_layers_and_the_hand_derived_pass_compose(x64):
    model = init_model(
        ["gru", "lstm"], key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O,
        num_layers=2, bidirectional=True, dtype=jnp.float64,
    )  # fmt: skip
    parallel = in_parallel(model, "deer", max_iter=T)
    xs = jax.random.normal(jax.random.key(1), (N, T, D), jnp.float64)
    ys = jax.random.normal(jax.random.key(2), (N, T, O), jnp.float64)
    options = {"target": "all", "truncation": 4, "lengths": jnp.array([T, 7, 1])}
    want = jax.value_and_grad(loss)(model, xs, ys, **options)
    got = jax.value_and_grad(loss)(parallel, xs, ys, **options)
    wrapped = jax.tree.leaves(parallel, is_leaf=lambda n: isinstance(n, Parallel))
    assert sum(isinstance(n, Parallel) for n in wrapped) == 4  # two layers, two directions
    assert largest_gap(want, in_sequence(got)) < 1e-10
    elman = init_model(
        "elman", key=jax.random.key(3), input_dim=D, hidden_dim=H, output_dim=O, dtype=jnp.float64
    )
    hand = manual_grads(in_parallel(elman, "quasi_deer", max_iter=T), xs, ys, target="all", truncation=3)
    assert largest_gap(manual_grads(elman, xs, ys, target="all", truncation=3), in_sequence(hand)) < 1e-10


def test_the_report_catches_a_solve_that_did_not_converge_and_the_fallback_gives_the_sequential_states(x64):
    cell = make_cell("elman", key=jax.random.key(0), input_dim=D, hidden_dim=H, scale=3.0, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(1), (200, D), jnp.float64)
    sequential = cell.states(xs)
    capped = Solver("quasi_deer", max_iter=3)
    states, report = jax.jit(lambda x: solve_states(cell, x, solver=capped))(xs)
    assert not report.converged and int(report.iterations) == 3 and float(report.residual) > 1e-3
    assert largest_gap(states, sequential) == 0.0  # the fallback ran the sequential scan
    unsafe, _ = solve_states(cell, xs, solver=capped._replace(fallback=False))
    assert largest_gap(unsafe, sequential) > 1e-3  # what the fallback replaced
    states, report = solve_states(cell, xs, solver=Solver("deer", max_iter=200))
    assert report.converged and int(report.iterations) < 200 and largest_gap(states, sequential) < 1e-10


def test_under_vmap_each_example_gets_its_report_and_the_states_are_the_sequential_ones(x64):
    cell = make_cell("gru", key=jax.random.key(0), input_dim=D, hidden_dim=H, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(1), (N, T, D), jnp.float64)
    spoiled = xs.at[1].multiply(1e3)  # saturating inputs: a harder solve for one example
    states, report = jax.vmap(lambda x: solve_states(cell, x, solver=Solver("quasi_deer", max_iter=2)))(
        spoiled
    )
    assert isinstance(report, Report) and report.converged.shape == (N,) and not report.converged.all()
    assert largest_gap(states, jax.vmap(cell.states)(spoiled)) < 1e-10


def test_quasi_deer_with_a_known_diagonal_never_forms_an_h_by_h_array_per_step(x64):
    cell = make_cell("elman", key=jax.random.key(0), input_dim=D, hidden_dim=H, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(1), (T, D), jnp.float64)
    quasi = str(jax.make_jaxpr(lambda x: solve_states(cell, x, solver=Solver("quasi_deer")))(xs))
    dense = str(jax.make_jaxpr(lambda x: solve_states(cell, x, solver=Solver("deer")))(xs))
    assert f"f64[{T},{H},{H}]" in dense and f"f64[{T},{H},{H}]" not in quasi


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "newton"}, f"method must be one of {', '.join(METHODS)}; got 'newton'"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1 or None; got 0"),
        ({"tol": -1.0}, "tol must be a positive number or None; got -1.0"),
    ],
)
def test_bad_solver_options_are_refused_naming_the_option(options, message):
    cell = make_cell("elman", key=jax.random.key(0), input_dim=D, hidden_dim=H)
    with pytest.raises(InputError, match=message):
        Parallel(cell, **options)


def test_a_stack_is_not_a_cell_to_wrap():
    model = init_model("elman", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, num_layers=2)
    with pytest.raises(InputError, match="Parallel takes a cell"):
        Parallel(model.cell)


def test_the_loss_takes_the_method_by_name(x64):
    model = init_model(
        "lstm", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, dtype=jnp.float64
    )
    xs = jax.random.normal(jax.random.key(1), (N, T, D), jnp.float64)
    ys = jax.random.normal(jax.random.key(2), (N, O), jnp.float64)
    want = jax.value_and_grad(loss)(model, xs, ys, truncation=5)
    got = jax.value_and_grad(loss)(model, xs, ys, truncation=5, method="quasi_deer")
    assert jax.tree.structure(want) == jax.tree.structure(got) and largest_gap(want, got) < 1e-9
    with pytest.raises(
        InputError, match="method must be one of sequential, deer, quasi_deer, elk, quasi_elk; got 'newton'"
    ):
        loss(model, xs, ys, method="newton")


def test_the_lyapunov_exponent_of_a_scaled_linear_recurrence_is_the_log_of_its_scale(x64):
    """A linear cell ``h_t = a Q h_{t-1}`` (``Q`` orthogonal) stretches every vector by ``a``:
    its exponent is ``log a`` exactly; a contracting tanh cell's is below zero."""
    from rnn_jax.cells.parallel import largest_lyapunov_exponent

    cell = make_cell(
        "elman", key=jax.random.key(0), input_dim=D, hidden_dim=H, dtype=jnp.float64, activation=lambda z: z
    )
    xs = jax.random.normal(jax.random.key(1), (50, D), jnp.float64)
    for a in (0.5, 2.0):
        scaled = eqx.tree_at(lambda c: c.W, cell, a * cell.W)  # the default W is orthogonal
        assert abs(float(largest_lyapunov_exponent(scaled, xs)) - jnp.log(a)) < 1e-10
    tanh = make_cell("elman", key=jax.random.key(0), input_dim=D, hidden_dim=H, scale=0.5, dtype=jnp.float64)
    assert float(largest_lyapunov_exponent(tanh, xs)) < -0.5


@pytest.mark.parametrize("dense", [True, False])
def test_elks_step_is_the_least_squares_trajectory_and_deers_without_damping(x64, dense):
    """``trust_region_solve`` (a parallel Kalman smoother) against the same least-squares
    problem solved as one dense system: ``sum_t |s_t - a_t s_{t-1} - b_t|^2 + d |s_t - p_t|^2``."""
    from rnn_jax.cells.parallel import affine_solve, trust_region_solve

    steps, n = 7, 3
    keys = jax.random.split(jax.random.key(0), 4)
    a = 0.7 * jax.random.normal(keys[0], (steps, n, n) if dense else (steps, n), jnp.float64)
    b, previous = jax.random.normal(keys[1], (2, steps, n), jnp.float64)
    s0 = jax.random.normal(keys[2], (n,), jnp.float64)
    maps = a if dense else jax.vmap(jnp.diag)(a)
    for damping in (0.3, 2.0):
        rows = jnp.eye(steps * n) - jnp.block(
            [[maps[t] if s == t - 1 else jnp.zeros((n, n)) for s in range(steps)] for t in range(steps)]
        )
        rhs = b.at[0].add(maps[0] @ s0).ravel()
        system = jnp.concatenate([rows, jnp.sqrt(damping) * jnp.eye(steps * n)])
        want = jnp.linalg.lstsq(system, jnp.concatenate([rhs, jnp.sqrt(damping) * previous.ravel()]))[0]
        got = trust_region_solve(a, b, s0, previous, damping)
        assert float(jnp.max(jnp.abs(got.ravel() - want))) < 1e-12
    undamped = trust_region_solve(a, b, s0, previous, 1e-12)
    assert float(jnp.max(jnp.abs(undamped - affine_solve(a, b, s0)))) < 1e-9
