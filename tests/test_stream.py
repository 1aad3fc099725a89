import chex
import jax
import jax.numpy as jnp
import pytest

from rnn_jax.runs.driver import fit_stream
from rnn_jax.train.stream import StreamConfig, array_source, check_stream_config, make_stream_train, n_updates
from rnn_jax.unroll import unroll_states

L = 400


@pytest.fixture(scope="module")
def stream():
    t = jnp.arange(L + 1, dtype=jnp.float32)
    x = (jnp.sin(0.3 * t) + 0.5 * jnp.sin(0.07 * t))[:, None]
    return x[:-1], x[1:]


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_the_carried_state_is_the_stream_unrolled_from_the_start(stream, cell):
    """With the parameters held still, the state handed from window to window equals one plain
    unroll over the stream: the windows overlap by k2 - k1 steps and hand over after k1."""
    config = StreamConfig(cell=cell, hidden_dim=6, k1=4, k2=7, learning_rate=1e-30)
    init, chunk = make_stream_train(config, array_source(*stream, config.k2), input_dim=1, output_dim=1)
    state = init(jax.random.key(0))
    after, _ = jax.jit(chunk, static_argnames="length")(state, length=5)
    states = unroll_states(state.params.cell, stream[0][: 5 * config.k1])
    chex.assert_trees_all_close(after.carry, jax.tree.map(lambda s: s[-1], states), atol=1e-5)
    assert int(after.start) == 5 * config.k1


@pytest.mark.slow
def test_each_update_uses_the_gradient_of_its_window_only(stream):
    """One update's gradient: the loss of the window's newest k1 steps, back k2 steps, from a
    constant starting state, as written out by hand with the generic unroll."""
    config = StreamConfig(hidden_dim=5, k1=3, k2=8, learning_rate=1e-2, clip_threshold=1e9)
    init, _ = make_stream_train(config, array_source(*stream, config.k2), input_dim=1, output_dim=1)
    state = init(jax.random.key(1))
    xs, ys = stream[0][: config.k2], stream[1][: config.k2]

    def by_hand(params):
        hs = unroll_states(params.cell, xs)
        pred = params.readout(hs[-config.k1 :])
        return 0.5 * jnp.mean(jnp.sum((pred - ys[-config.k1 :]) ** 2, axis=-1))

    grads = jax.grad(by_hand)(state.params)
    # Adam's first step moves each weight by lr * sign(g) (up to eps): compare directions.
    _, chunk = make_stream_train(config, array_source(*stream, config.k2), input_dim=1, output_dim=1)
    moved, _ = chunk(state, length=1)
    step = jax.tree.map(lambda a, b: a - b, moved.params, state.params)
    signs_agree = jax.tree.map(
        lambda s, g: jnp.all((jnp.sign(s) == -jnp.sign(g)) | (jnp.abs(g) < 1e-7)), step, grads
    )
    assert all(bool(v) for v in jax.tree.leaves(signs_agree))


@pytest.mark.slow
def test_chunking_does_not_change_the_result(stream):
    config = StreamConfig(hidden_dim=8, k1=5, k2=9, updates_per_chunk=7)
    source = array_source(*stream, config.k2)
    chunked = fit_stream(
        config, source, n_steps=L, input_dim=1, output_dim=1, key=jax.random.key(0), progress=False
    )
    whole = fit_stream(
        StreamConfig(hidden_dim=8, k1=5, k2=9, updates_per_chunk=n_updates(L, config)),
        source,
        n_steps=L,
        input_dim=1,
        output_dim=1,
        key=jax.random.key(0),
        progress=False,
    )
    chex.assert_trees_all_close(chunked.params, whole.params, rtol=1e-6, atol=1e-7)
    assert chunked.steps == whole.steps == L - (L - config.k2) % config.k1
    assert len(chunked.chunk_losses) == -(-n_updates(L, config) // 7)


def test_training_on_the_stream_lowers_the_loss(stream):
    config = StreamConfig(hidden_dim=16, k1=5, k2=15, learning_rate=1e-2, updates_per_chunk=10)
    result = fit_stream(
        config,
        array_source(*stream, config.k2),
        n_steps=L,
        input_dim=1,
        output_dim=1,
        key=jax.random.key(0),
        progress=False,
    )
    assert result.chunk_losses[-1] < 0.2 * result.chunk_losses[0]


@pytest.mark.parametrize(
    ("kwargs", "n_steps", "message"),
    [
        ({"k1": 10, "k2": 5}, 100, r"k2 \(5\) must be >= k1 \(10\)"),
        ({"k1": 0}, 100, "k1 must be a positive integer; got 0"),
        ({"cell": "rnn"}, 100, "cell must be one of elman, gru, lstm"),
        ({"learning_rate": 0.0}, 100, "learning_rate must be a positive number"),
        ({}, 10, r"the stream \(10 steps\) must be at least k2 = 20 steps long"),
    ],
)
def test_bad_stream_settings_are_named(kwargs, n_steps, message):
    with pytest.raises(ValueError, match=message):
        check_stream_config(StreamConfig(**kwargs), n_steps)


@pytest.mark.slow
def test_parallel_streams_with_the_hand_derived_pass_match_autodiff():
    """Four streams of labels: the hand-derived rule (k1 = k2) gives autodiff's updates and
    hands over the same states."""
    ids = jax.random.randint(jax.random.key(3), (4, 90), 0, 5)

    def source(start):
        window = jax.lax.dynamic_slice_in_dim(ids, start, 11, axis=1)
        return jax.nn.one_hot(window[:, :-1], 5), window[:, 1:]

    results = {}
    for backward in ("autodiff", "manual"):
        config = StreamConfig(
            cell="lstm", hidden_dim=6, objective="cross_entropy", streams=4, k1=10, k2=10, backward=backward
        )
        init, chunk = make_stream_train(config, source, input_dim=5, output_dim=5)
        results[backward] = jax.jit(chunk, static_argnames="length")(init(jax.random.key(0)), length=6)
    (auto, auto_loss), (hand, hand_loss) = results["autodiff"], results["manual"]
    assert auto.carry[0].shape == (4, 6)
    chex.assert_trees_all_close(hand.params, auto.params, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(hand.carry, auto.carry, rtol=1e-4, atol=1e-6)
    assert float(hand_loss) == pytest.approx(float(auto_loss), rel=1e-5)
    with pytest.raises(ValueError, match="backward 'manual' scores whole windows: it needs k1 = k2"):
        check_stream_config(StreamConfig(k1=5, k2=10, backward="manual"), 100)
