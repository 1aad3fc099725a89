"""Gradients carried forward (``rnn_jax.train.online``): exact RTRL equals full BPTT over a
stream segment; SnAp-1 approximates it; the stream trainer learns with them."""

import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree

from rnn_jax.cells.online import (
    check_online_cell,
    initial_carry,
    online_grads,
    uoro_grads,
    uoro_initial_carry,
)
from rnn_jax.model import init_model
from rnn_jax.objectives import get_objective
from rnn_jax.runs.driver import fit_stream
from rnn_jax.train.stream import StreamConfig, array_source, check_stream_config

T, D, H, O = 30, 3, 5, 2
SQUARED = get_objective("squared").per_step


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def segment(objective: str):
    xs = jax.random.normal(jax.random.key(1), (T, D), jnp.float64)
    if objective == "squared":
        return xs, jax.random.normal(jax.random.key(2), (T, O), jnp.float64)
    return xs, jax.random.randint(jax.random.key(2), (T,), 0, O)


def full_bptt(model, h0, xs, ys, weights, mask, objective):
    """The same weighted loss over the segment, differentiated through every step."""
    states = model.cell.states(xs, h0=h0, mask=mask)
    per_step = get_objective(objective).per_step(model.readout(model.cell.hidden(states)), ys)
    return jnp.sum(weights * per_step)


TARGETS = {
    "every step": jnp.full(T, 1.0 / T),
    "sparse steps": jnp.where(jnp.arange(T) % 7 == 6, 0.25, 0.0),
    "the last step": jnp.zeros(T).at[-1].set(1.0),
}
MASKS = {"no mask": None, "holes": jax.random.bernoulli(jax.random.key(3), 0.75, (T,))}


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("objective", ["squared", "cross_entropy"])
def test_exact_rtrl_equals_full_bptt_over_a_segment_to_1e_10(x64, activation, objective):
    model = init_model(
        "indrnn", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, activation=activation,
        dtype=jnp.float64,
    )  # fmt: skip
    h0 = jax.random.uniform(jax.random.key(4), (H,), jnp.float64)  # a state from earlier on
    xs, ys = segment(objective)
    per_step = get_objective(objective).per_step
    run = jax.jit(
        lambda m, w, mask: online_grads(m, initial_carry(m.cell, h0), xs, ys, w, per_step, mask=mask)
    )
    largest, cases = 0.0, 0
    for weights in TARGETS.values():
        for mask in MASKS.values():
            if mask is not None:
                weights = jnp.where(mask, weights, 0.0)  # skipped steps are not scored
            value, grads, carry = run(model, weights, mask)
            want_value, want = jax.value_and_grad(full_bptt)(model, h0, xs, ys, weights, mask, objective)
            gap = jnp.max(jnp.abs(ravel_pytree(grads)[0] - ravel_pytree(want)[0]))
            largest = max(largest, float(gap), float(abs(value - want_value)))
            assert jnp.allclose(carry.h, model.cell.states(xs, h0=h0, mask=mask)[-1], atol=1e-12)
            cases += 1
    assert cases == 6 and largest < 1e-10, largest


def test_sensitivities_carried_across_windows_give_the_gradient_through_both(x64):
    """Two windows in a row with the weights held: the second window's gradient reaches into
    the first, as full BPTT over both does (the loss of the second window only)."""
    model = init_model(
        "indrnn", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, dtype=jnp.float64
    )
    xs, ys = segment("squared")
    half = T // 2
    zero, score = jnp.zeros(half), jnp.full(half, 1.0 / half)
    _, _, carry = online_grads(model, initial_carry(model.cell), xs[:half], ys[:half], zero, SQUARED)
    _, grads, _ = online_grads(model, carry, xs[half:], ys[half:], score, SQUARED)
    weights = jnp.concatenate([zero, score])
    want = jax.grad(full_bptt)(model, None, xs, ys, weights, None, "squared")
    assert jnp.max(jnp.abs(ravel_pytree(grads)[0] - ravel_pytree(want)[0])) < 1e-10


def test_snap1_is_exact_for_the_readout_and_points_the_same_way_for_a_dense_cell(x64):
    model = init_model(
        "elman", key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O, dtype=jnp.float64
    )
    xs, ys = segment("squared")
    weights = TARGETS["every step"]
    _, grads, _ = online_grads(model, initial_carry(model.cell), xs, ys, weights, SQUARED)
    want = jax.grad(full_bptt)(model, None, xs, ys, weights, None, "squared")
    assert jnp.max(jnp.abs(ravel_pytree(grads.readout)[0] - ravel_pytree(want.readout)[0])) < 1e-12
    a, b = ravel_pytree(grads.cell)[0], ravel_pytree(want.cell)[0]
    cosine = float(a @ b / jnp.linalg.norm(a) / jnp.linalg.norm(b))
    assert 0.5 < cosine < 1 - 1e-6  # an approximation, and a useful one


@pytest.mark.parametrize(
    ("cell", "method", "message"),
    [
        ("elman", "rtrl", "exact rtrl needs a cell whose recurrence is element-wise"),
        ("lstm", "snap1", "needs the cell's recur_diagonal; LSTM has none"),
        ("indrnn", "bptt", "online must be one of rtrl, snap1, uoro; got 'bptt'"),
    ],
)
def test_a_cell_the_method_cannot_carry_is_refused_by_name(cell, method, message):
    model = init_model(cell, key=jax.random.key(0), input_dim=D, hidden_dim=H, output_dim=O)
    with pytest.raises(ValueError, match=message):
        check_online_cell(model.cell, method)


def test_the_stream_trainer_refuses_a_window_reaching_back_with_an_online_gradient():
    with pytest.raises(ValueError, match="online 'rtrl' carries the gradient forward: it needs k1 = k2"):
        check_stream_config(StreamConfig(cell="indrnn", online="rtrl", k1=5, k2=10), 100)


def sine_stream(length: int, streams: int, window: int):
    """A source of windows of two summed sines (next value as target); ``streams`` copies of
    it, windows ``(S, window, 1)``, or one stream (``0``)."""
    t = jnp.arange(length + 1, dtype=jnp.float32)
    x = (jnp.sin(0.3 * t) + 0.5 * jnp.sin(0.07 * t))[:, None]
    xs, ys = x[:-1], x[1:]
    if not streams:
        return array_source(xs, ys, window)
    xs, ys = jnp.stack([xs] * streams, axis=1), jnp.stack([ys] * streams, axis=1)

    def source(start):
        return tuple(jnp.swapaxes(jax.lax.dynamic_slice_in_dim(a, start, window), 0, 1) for a in (xs, ys))

    return source


@pytest.mark.parametrize("streams", [0, 3])
def test_a_stream_learns_with_rtrl_in_memory_that_does_not_grow(streams):
    length = 600
    source = sine_stream(length, streams, 5)
    config = StreamConfig(
        cell="indrnn", activation="tanh", hidden_dim=16, online="rtrl", k1=5, k2=5, streams=streams,
        learning_rate=1e-2, updates_per_chunk=20,
    )  # fmt: skip
    result = fit_stream(
        config, source, n_steps=length, input_dim=1, output_dim=1, key=jax.random.key(0), progress=False
    )
    assert result.chunk_losses[-1] < 0.2 * result.chunk_losses[0]


def test_a_run_trained_with_rtrl_takes_the_steps_full_bptt_takes():
    """Whole runs (``TrainConfig(online="rtrl")``): exact RTRL's gradient is full BPTT's, so
    the two runs agree to float32 rounding; a truncation window is refused, not ignored."""
    import dataclasses

    from rnn_jax.data.memory_tasks import task_data
    from rnn_jax.runs.driver import fit
    from rnn_jax.train.loop import TrainConfig, make_hparams

    data = task_data("recall", jax.random.key(0), n_train=64, n_val=32, seq_len=10, symbols=3)
    config = TrainConfig(cell="indrnn", hidden_dim=6, epochs=3, batch_size=16, objective="cross_entropy")
    hparams = make_hparams(learning_rate=1e-2, seq_len=10)
    bptt = fit(config, hparams, data, key=jax.random.key(1), progress=False)
    rtrl = fit(
        dataclasses.replace(config, online="rtrl"), hparams, data, key=jax.random.key(1), progress=False
    )
    a, b = ravel_pytree(bptt.params)[0], ravel_pytree(rtrl.params)[0]
    assert jnp.max(jnp.abs(a - b)) < 1e-4
    losses = [jnp.asarray(r.metrics["train_loss"]) for r in (bptt, rtrl)]
    assert jnp.allclose(*losses, rtol=1e-4) and losses[1][-1] < losses[1][0]
    with pytest.raises(
        ValueError, match="online 'rtrl' reaches back to every step: truncation must be none; got 4"
    ):
        fit(
            dataclasses.replace(config, online="rtrl"), make_hparams(seq_len=10, truncation=4), data,
            key=jax.random.key(1), progress=False,
        )  # fmt: skip


# UORO's estimate is unbiased: over M independent draws, each coordinate's mean is within a few
# standard errors of the exact gradient. By the central limit theorem the mean of M = 20 000
# draws is close to normal; |z| > 5 has probability 5.7e-7 per coordinate, so over the <= 72
# coordinates of a cell a correct estimator fails this test with probability < 5e-5. The same
# test refuses a 20 % error in the target (the second assertion), so it has the power to fail.
DRAWS = 20_000


@pytest.mark.parametrize(
    "cell",
    ["elman", pytest.param("gru", marks=pytest.mark.slow), pytest.param("lstm", marks=pytest.mark.slow)],
)
def test_uoro_is_an_unbiased_estimate_of_the_exact_gradient_for_dense_cells(x64, cell):
    steps, hidden = 12, 3
    model = init_model(
        cell, key=jax.random.key(0), input_dim=2, hidden_dim=hidden, output_dim=O, dtype=jnp.float64
    )
    xs = jax.random.normal(jax.random.key(1), (steps, 2), jnp.float64)
    ys = jax.random.normal(jax.random.key(2), (steps, O), jnp.float64)
    weights = jnp.full(steps, 1.0 / steps)
    exact = ravel_pytree(jax.grad(full_bptt)(model, None, xs, ys, weights, None, "squared").cell)[0]

    def draw(key):
        grads = uoro_grads(model, uoro_initial_carry(model.cell), xs, ys, weights, SQUARED, key)[1]
        return ravel_pytree(grads.cell)[0]

    draws = jax.jit(jax.vmap(draw))(jax.random.split(jax.random.key(3), DRAWS))
    mean, error = draws.mean(axis=0), draws.std(axis=0) / DRAWS**0.5
    assert float(jnp.max(jnp.abs(mean - exact) / error)) < 5
    assert float(jnp.max(jnp.abs(mean - 1.2 * exact) / error)) > 5
    one = draws[0] @ exact / (jnp.linalg.norm(draws[0]) * jnp.linalg.norm(exact))
    assert -1 < float(one) < 1 - 1e-3  # a single draw is noisy: it is not the gradient


@pytest.mark.parametrize("streams", [0, 3])
def test_a_stream_of_a_dense_cell_learns_with_uoro(streams):
    """UORO's estimate is noisy but unbiased: a GRU learns the stream with it (more slowly than
    with TBPTT), each stream drawing its own signs."""
    length, k = 3000, 5
    source = sine_stream(length, streams, k)
    config = StreamConfig(
        cell="gru", hidden_dim=16, online="uoro", k1=k, k2=k, streams=streams, learning_rate=1e-2,
        updates_per_chunk=60,
    )  # fmt: skip
    result = fit_stream(
        config, source, n_steps=length, input_dim=1, output_dim=1, key=jax.random.key(0), progress=False
    )
    assert result.chunk_losses[-1] < 0.5 * result.chunk_losses[0]


def test_carried_uoro_over_a_batch_is_an_unbiased_estimate_of_its_gradient(x64):
    """``carried_grads(online="uoro")``, one key per example: the mean over many keys is the
    batch's full-BPTT gradient (the z-score test above, 4000 draws of a 3-example batch), and
    without a key it is refused."""
    from rnn_jax.loss import loss
    from rnn_jax.manual import carried_grads

    model = init_model(
        "gru", key=jax.random.key(0), input_dim=2, hidden_dim=3, output_dim=O, dtype=jnp.float64
    )
    xs = jax.random.normal(jax.random.key(1), (3, 8, 2), jnp.float64)
    ys = jax.random.normal(jax.random.key(2), (3, O), jnp.float64)
    exact = ravel_pytree(jax.grad(loss)(model, xs, ys).cell)[0]
    def draw(key):
        return ravel_pytree(carried_grads(model, xs, ys, online="uoro", key=key).cell)[0]

    draws = jax.jit(jax.vmap(draw))(jax.random.split(jax.random.key(3), 4000))
    mean, error = draws.mean(axis=0), draws.std(axis=0) / 4000**0.5
    assert float(jnp.max(jnp.abs(mean - exact) / error)) < 5
    assert float(jnp.max(jnp.abs(mean - 1.2 * exact) / error)) > 5
    with pytest.raises(ValueError, match="online 'uoro' draws random signs at every step: give it a key"):
        carried_grads(model, xs, ys, online="uoro")


def test_a_run_trained_with_uoro_learns_and_repeats_itself_from_the_same_key():
    """``TrainConfig(online="uoro")`` on a dense cell: fresh signs at every step (from the run's
    key), the training loss falls, and the same key gives the same run."""
    from rnn_jax.data.memory_tasks import task_data
    from rnn_jax.runs.driver import fit
    from rnn_jax.train.loop import TrainConfig, make_hparams

    data = task_data("recall", jax.random.key(0), n_train=64, n_val=32, seq_len=6, symbols=3)
    config = TrainConfig(
        cell="gru", hidden_dim=8, epochs=6, batch_size=16, objective="cross_entropy", online="uoro"
    )
    hparams = make_hparams(learning_rate=1e-2, seq_len=6)
    runs = [fit(config, hparams, data, key=jax.random.key(k), progress=False) for k in (1, 1, 2)]
    losses = [jnp.asarray(r.metrics["train_loss"]) for r in runs]
    assert losses[0][-1] < losses[0][0]
    assert jnp.array_equal(losses[0], losses[1]) and not jnp.array_equal(losses[0], losses[2])
