"""GRU (both reset placements) and LSTM: the step against its equations, hand-derived gradients
against autodiff and finite differences, and training on the sine task."""

import dataclasses
import functools
import subprocess
import sys
import textwrap

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from rnn_jax.cells import GRU, LSTM
from rnn_jax.cells.gates import gate_activations, orthogonal_stack
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_model
from rnn_jax.unroll import unroll, unroll_states

CELLS = {"gru": {}, "gru_before": {"reset": "before"}, "lstm": {}}
# Inputs wider than the state take the GRU's other step (the gates' input parts formed before
# the scan); the grid below covers both.
WIDE = {"gru_wide": {}, "gru_before_wide": {"reset": "before"}}

D, H, O, T = 3, 5, 2, 7


def problem(cell, target="last", n=4, dtype=jnp.float32, seed=0, input_dim=D):
    """A model pushed away from its initial values (non-zero biases), inputs, targets."""
    k_init, k_noise, k_x, k_y = jax.random.split(jax.random.key(seed), 4)
    name = cell.split("_")[0]
    if cell in WIDE:
        input_dim = 2 * H
    options = {"input_dim": input_dim, "hidden_dim": H, "output_dim": O, "dtype": dtype}
    params = init_model(name, key=k_init, **options, **{**CELLS, **WIDE}[cell])
    leaves, tree = jax.tree.flatten(params)
    noise = [
        0.3 * jax.random.normal(k, x.shape, dtype)
        for k, x in zip(jax.random.split(k_noise, len(leaves)), leaves, strict=True)
    ]
    params = jax.tree.unflatten(tree, [x + e for x, e in zip(leaves, noise, strict=True)])
    xs = jax.random.normal(k_x, (n, T, input_dim), dtype)
    ys = jax.random.normal(k_y, (n, O) if target == "last" else (n, T, O), dtype)
    return params, xs, ys


@pytest.mark.slow
@pytest.mark.parametrize("input_dim", [D, 2 * H], ids=["narrow", "wide"])
@pytest.mark.parametrize("reset", ["after", "before"])
def test_gru_step_follows_its_equations(reset, input_dim):
    """Both forms of the step: inputs narrower than the state go through the step's one product
    (``GRU.augmented_rows``), wider ones are multiplied before the scan."""
    model, xs, _ = problem("gru" if reset == "after" else "gru_before", input_dim=input_dim)
    p = model.cell
    x, h = xs[0, 0], jnp.linspace(-0.5, 0.5, H)
    sig = jax.nn.sigmoid
    z = sig(p.Wx[0] @ x + p.b[0] + p.Wh[0] @ h)
    r = sig(p.Wx[1] @ x + p.b[1] + p.Wh[1] @ h)
    if reset == "after":
        n = jnp.tanh(p.Wx[2] @ x + p.b[2] + r * (p.Wh[2] @ h + p.bh_n))
    else:
        assert p.bh_n is None
        n = jnp.tanh(p.Wx[2] @ x + p.b[2] + p.Wh[2] @ (r * h))
    assert jnp.allclose(p.step(h, x), (1 - z) * n + z * h, atol=1e-6)
    state, expected = p.initial_state(), []  # the scan reads input_drive for all steps at once
    for x_t in xs[0]:
        state = p.step(state, x_t)
        expected.append(state)
    assert jnp.allclose(unroll(p, xs[0]), jnp.stack(expected), atol=1e-5)


def test_lstm_step_follows_its_equations():
    model, xs, _ = problem("lstm")
    params = model.cell
    x, h, c = xs[0, 0], jnp.linspace(-0.5, 0.5, H), jnp.linspace(1.0, -1.0, H)
    a = [params.Wx[k] @ x + params.b[k] + params.Wh[k] @ h for k in range(4)]
    i, f, g, o = jax.nn.sigmoid(a[0]), jax.nn.sigmoid(a[1]), jnp.tanh(a[2]), jax.nn.sigmoid(a[3])
    h_new, c_new = params.step((h, c), x)
    assert jnp.allclose(c_new, f * c + i * g, atol=1e-6)
    assert jnp.allclose(h_new, o * jnp.tanh(f * c + i * g), atol=1e-6)


@pytest.mark.grid
@pytest.mark.parametrize("cell", list(CELLS))
def test_scan_equals_a_python_loop_over_steps(cell):
    model, xs, _ = problem(cell)
    params = model.cell
    state = params.initial_state()
    expected = []
    for x in xs[0]:
        state = params.step(state, x)
        expected.append(params.hidden(state))
    assert jnp.allclose(unroll(params, xs[0]), jnp.stack(expected), atol=1e-5)
    if cell == "lstm":
        assert unroll_states(params, xs[0])[1].shape == (T, H)  # the cell states too


def test_initialisation():
    gru = init_model("gru", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, scale=0.5).cell
    lstm = init_model("lstm", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O).cell
    assert isinstance(gru, GRU) and gru.Wh.shape == (3, H, H) and gru.Wx.shape == (3, H, D)
    assert gru.reset == "after" and gru.bh_n.shape == (H,)
    assert isinstance(lstm, LSTM) and lstm.Wh.shape == (4, H, H)
    chex.assert_trees_all_close(gru.Wh[0] @ gru.Wh[0].T, 0.25 * jnp.eye(H), atol=1e-5)  # orthogonal x scale
    assert jnp.all(lstm.b[1] == 1.0) and jnp.all(lstm.b[jnp.array([0, 2, 3])] == 0.0)  # forget bias 1
    sizes = {"key": jax.random.key(0), "input_dim": D, "hidden_dim": H, "output_dim": O}
    with pytest.raises(ValueError, match="the gru cell takes no init"):
        init_model("gru", **sizes, init="tutorial")
    with pytest.raises(ValueError, match="cell must be one of elman, gru, lstm, indrnn; got 'rnn'"):
        init_model("rnn", **sizes)
    with pytest.raises(ValueError, match="reset must be one of after, before; got 'middle'"):
        GRU(key=jax.random.key(0), input_dim=D, hidden_dim=H, reset="middle")


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_an_activation_for_a_gated_cell_is_a_clear_error(cls):
    with pytest.raises(
        ValueError, match="takes no activation .its gates use sigmoid and tanh.; got activation='relu'"
    ):
        cls(key=jax.random.key(0), input_dim=D, hidden_dim=H, activation="relu")


def test_every_gate_gets_its_own_orthogonal_matrix():
    wh = orthogonal_stack(jax.random.key(1), 4, 6, jnp.float32)
    eye = jnp.broadcast_to(jnp.eye(6), (4, 6, 6))
    chex.assert_trees_all_close(wh @ jnp.swapaxes(wh, 1, 2), eye, atol=1e-5)
    chex.assert_trees_all_close(jnp.swapaxes(wh, 1, 2) @ wh, eye, atol=1e-5)
    assert float(jnp.abs(wh[0] - wh[1]).max()) > 0.1  # independent draws
    assert jnp.array_equal(wh, orthogonal_stack(jax.random.key(1), 4, 6, jnp.float32))


@pytest.mark.slow
def test_vmapped_lstm_initialisation_finishes():
    # One QR call per gate used to run as four concurrent LAPACK calls, each splitting its batch
    # of members over the shared CPU thread pool and waiting: a deadlock on a 2-core machine.
    script = textwrap.dedent("""
        import jax
        from rnn_jax.model import init_model
        keys = jax.random.split(jax.random.key(0), 4)
        init = jax.vmap(lambda k: init_model("lstm", key=k, input_dim=1, hidden_dim=512, output_dim=1))
        print("Wh", jax.block_until_ready(jax.jit(init)(keys)).cell.Wh.shape)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Wh (4, 4, 512, 512)" in out.stdout, out.stderr[-2000:]


@functools.partial(jax.jit, static_argnames=("target", "truncation", "backward"))
def gradients(params, xs, ys, *, target, truncation, backward):
    fn = manual_grads if backward == "manual" else jax.grad(loss)
    return fn(params, xs, ys, target=target, truncation=truncation)


# Cho et al.'s GRU shares all but the candidate with the default one: fewer forms suffice.
GRID = [(None, 1), (None, 4), (1, 4), (2, 4), (T - 1, 4), (T, 4), (T + 3, 1)]
FORMS = [(c, k, n) for c in ("gru", "lstm") for k, n in GRID]
FORMS += [("gru_before", k, n) for k, n in [(None, 4), (1, 4), (2, 4), (T + 3, 1)]]
FORMS += [(c, k, 4) for c in WIDE for k in (None, 2)]


@pytest.mark.grid
@pytest.mark.parametrize(("cell", "truncation", "n"), FORMS)
@pytest.mark.parametrize("target", ["last", "all"])
def test_manual_grads_equal_autodiff_in_float64(cell, target, truncation, n):
    with jax.enable_x64(True):
        params, xs, ys = problem(cell, target, n, jnp.float64, seed=n)
        kw = {"target": target, "truncation": truncation}
        manual = gradients(params, xs, ys, backward="manual", **kw)
        reference = gradients(params, xs, ys, backward="autodiff", **kw)
        assert type(manual) is type(params)
        chex.assert_trees_all_close(manual, reference, rtol=1e-10, atol=1e-13)


@pytest.mark.grid
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("truncation", [None, 2])
def test_manual_grads_equal_autodiff_in_float32(cell, truncation):
    params, xs, ys = problem(cell, "all")
    kw = {"target": "all", "truncation": truncation}
    manual = gradients(params, xs, ys, backward="manual", **kw)
    reference = gradients(params, xs, ys, backward="autodiff", **kw)
    chex.assert_trees_all_close(manual, reference, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("cell", list(CELLS))
def test_manual_grads_match_finite_differences(cell):
    """Independent of autodiff: central differences of the untruncated loss, float64."""
    with jax.enable_x64(True):
        model, xs, ys = problem(cell, "last", 2, jnp.float64)
        grads = manual_grads(model, xs, ys, target="last")
        eps = 1e-6
        names = (
            ("Wx", "Wh", "b") + (("bh_n",) if model.cell.bh_n is not None else ())
            if cell != "lstm"
            else ("Wx", "Wh", "b")
        )
        for name in names:
            weight = getattr(model.cell, name)
            flat = weight.ravel()
            for idx in (0, flat.size // 2, flat.size - 1):
                bump = jnp.zeros_like(flat).at[idx].set(eps).reshape(weight.shape)

                def at(delta, name=name, weight=weight):
                    moved = eqx.tree_at(lambda m, name=name: getattr(m.cell, name), model, weight + delta)
                    return loss(moved, xs, ys, target="last")

                numeric = (at(bump) - at(-bump)) / (2 * eps)
                assert abs(float(numeric) - float(getattr(grads.cell, name).ravel()[idx])) < 1e-7


def test_tutorial_init_and_grad_are_refused_for_gated_cells():
    from rnn_jax.train.loop import TrainConfig, check_config

    with pytest.raises(ValueError, match="exist for the elman cell only; got cell 'lstm'"):
        check_config(TrainConfig(cell="lstm", init="tutorial"), n_train=100)
    with pytest.raises(ValueError, match="cell must be one of elman, gru, lstm"):
        check_config(TrainConfig(cell="transformer", init="default"), n_train=100)
    with pytest.raises(ValueError, match="the gru cell takes no activation"):
        check_config(TrainConfig(cell="gru", init="default", activation="relu"), n_train=100)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_training_with_either_cell_reaches_the_sine_target(cell):
    """The default preset's settings with a gated cell: validation RMSE <= 0.002."""
    from rnn_jax.data.sine import make_sine_data
    from rnn_jax.runs.driver import fit
    from rnn_jax.train.loop import TrainConfig, make_hparams

    config = dataclasses.replace(TrainConfig(), cell=cell, backward="manual")
    hparams = make_hparams(learning_rate=3e-3, clip_threshold=1.0, seq_len=50)
    result = fit(config, hparams, make_sine_data(scale=True), key=jax.random.key(1), progress=False)
    assert result.metrics["val_rmse"][-1] <= 0.002


def test_one_tanh_for_every_gate_is_the_sigmoid_and_tanh_it_stands_for():
    """``gate_activations`` writes the sigmoid as a scaled tanh; the cells' forward passes and
    their agreement with PyTorch rest on it (and PyTorch is not installed everywhere)."""
    jax.config.update("jax_enable_x64", True)
    try:
        a = jax.random.normal(jax.random.key(0), (7, 4, 5), jnp.float64) * 6.0
        got = gate_activations(a, (False, False, True, False))
        want = jnp.stack(
            [jax.nn.sigmoid(a[:, 0]), jax.nn.sigmoid(a[:, 1]), jnp.tanh(a[:, 2]), jax.nn.sigmoid(a[:, 3])], 1
        )
        chex.assert_trees_all_close(got, want, atol=1e-15, rtol=0)
    finally:
        jax.config.update("jax_enable_x64", False)
    a32 = a.astype(jnp.float32)
    got32 = gate_activations(a32[:, :2], (True, False))  # any order, after leading axes
    want32 = jnp.stack([jnp.tanh(a32[:, 0]), jax.nn.sigmoid(a32[:, 1])], 1)
    chex.assert_trees_all_close(got32, want32, atol=2e-7, rtol=0)
