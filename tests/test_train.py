import dataclasses
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.data.sine import make_sine_data
from rnn_jax.runs import driver as runner
from rnn_jax.runs.driver import ChunkPlan, fit
from rnn_jax.train.loop import TrainConfig, check_config, check_hparams, make_hparams, make_train

SMALL = {"hidden_dim": 8, "init": "default", "epochs": 6}


@pytest.fixture(scope="module")
def data():
    return make_sine_data(length=60, window=10, scale=True)


def hparams(**kw):
    return make_hparams(**{"learning_rate": 1e-2, "seq_len": 10, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_loss_decreases_on_a_tiny_problem(data, key, optimizer):
    config = TrainConfig(**{**SMALL, "epochs": 20}, optimizer=optimizer, activation="tanh", batch_size=5)
    _, m = jax.jit(make_train(config).train)(key, hparams(learning_rate=3e-2, truncation=4), data)
    assert m["train_loss"].shape == (20,)
    assert float(m["train_loss"][-1]) < 0.5 * float(m["train_loss"][0])
    assert jnp.all(jnp.isfinite(m["val_rmse"]))


def test_same_key_gives_identical_results_and_another_key_does_not(data, key):
    train = jax.jit(make_train(TrainConfig(**SMALL, shuffle=True, batch_size=4)).train)
    a, b = train(key, hparams(), data), train(key, hparams(), data)
    c = train(jax.random.key(1), hparams(), data)
    chex.assert_trees_all_equal(a, b)
    assert not jnp.array_equal(a[0].cell.W, c[0].cell.W)


@pytest.mark.slow
@pytest.mark.parametrize("selection", [{}, {"select": "best", "patience": 3}])
def test_epochs_compile_once(data, key, selection):
    chex.clear_trace_counter()  # the counter is keyed by function name, shared across the cases
    fns = make_train(TrainConfig(**SMALL, **selection))
    run = jax.jit(chex.assert_max_traces(fns.run, n=1), static_argnames="n_epochs")
    state = fns.init(key, hparams(), data)
    for lr in (1e-2, 2e-2, 3e-2):  # new hyperparameter values must not retrace either
        state, _ = run(state, hparams(learning_rate=lr), data, n_epochs=2)
    assert int(state.epoch) == 6


@pytest.mark.slow
def test_chunked_run_is_bit_identical_to_one_scan_whatever_the_chunking(data, key, monkeypatch):
    config = TrainConfig(**SMALL, shuffle=True, batch_size=3, optimizer="adam")
    params, metrics = jax.jit(make_train(config).train)(key, hparams(), data)
    expected = [float(v) for v in metrics["val_loss"]]
    result = fit(config, hparams(), data, key=key, progress=False)  # chunks sized by time
    chex.assert_trees_all_equal(result.params, params)
    assert result.metrics["val_loss"] == expected
    assert result.compile_seconds > 0 and result.wall_seconds >= result.compile_seconds

    rng = np.random.default_rng(0)
    sizes = []

    def random_count(self, done, total):
        sizes.append(int(rng.integers(1, total - done + 1)))
        return sizes[-1]

    monkeypatch.setattr(ChunkPlan, "next_count", random_count)
    for _ in range(2):  # two random chunkings, e.g. [2, 3, 1] and [6]
        sizes.clear()
        result = fit(config, hparams(), data, key=key, progress=False)
        chex.assert_trees_all_equal(result.params, params)
        assert result.metrics["val_loss"] == expected and sum(sizes) == config.epochs


@pytest.mark.slow
def test_manual_and_autodiff_training_curves_agree(data, key):
    curves = {}
    for grad in ("autodiff", "manual"):
        config = TrainConfig(**SMALL, backward=grad, batch_size=2, activation="sigmoid")
        _, m = jax.jit(make_train(config).train)(key, hparams(truncation=3), data)
        curves[grad] = m["train_loss"]
    chex.assert_trees_all_close(curves["manual"], curves["autodiff"], rtol=1e-4)


def test_value_clipping_is_applied(data, key):
    config = TrainConfig(**{**SMALL, "init": "tutorial"}, backward="tutorial")
    _, m = jax.jit(make_train(config).train)(key, hparams(clip_threshold=1.0), data)
    assert float(m["clip_fraction"][0]) > 0.1  # the tutorial's gradients are huge


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be a positive number; got 0.0"),
        ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
        ({"learning_rate": 1e-3, "truncation": 0}, "truncation must be None or an integer >= 1; got 0"),
        ({"learning_rate": 1e-3, "clip_threshold": float("nan")}, "clip_threshold must be a positive number"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_hparams(seq_len=10, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "swish"}, "activation must be one of sigmoid, tanh, relu; got 'swish'"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, adam"),
        ({"epochs": 0}, "epochs must be a positive integer; got 0"),
        ({"batch_size": 500}, r"batch_size \(500\) must not exceed the 100 training windows"),
    ],
)
def test_bad_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_config(TrainConfig(**kwargs), n_train=100)


@pytest.mark.slow
def test_norm_clip_fraction_counts_clipped_steps(data, key):
    config = TrainConfig(**SMALL, clip="norm", batch_size=5)
    _, tiny = jax.jit(make_train(config).train)(key, hparams(clip_threshold=1e-6), data)
    _, huge = jax.jit(make_train(config).train)(key, hparams(clip_threshold=1e6), data)
    assert jnp.all(tiny["clip_fraction"] == 1.0) and jnp.all(huge["clip_fraction"] == 0.0)


def test_first_non_finite():
    from rnn_jax.runs.driver import first_non_finite

    assert first_non_finite([1.0, 2.0]) is None
    assert first_non_finite([1.0, float("inf"), float("nan")]) == 2


def test_divergence_is_caught_in_the_loop_and_the_last_good_parameters_kept(data, key):
    # Plain SGD at an absurd learning rate: step 1 lands on huge (finite) weights whose loss
    # overflows, so step 2's gradient is non-finite and the run rolls back to the initial weights.
    config = TrainConfig(**SMALL, optimizer="sgd", clip="none", activation="tanh")
    fns = make_train(config)
    hp = hparams(learning_rate=1e30)
    params, metrics = jax.jit(fns.train)(key, hp, data)
    initial = fns.init(key, hp, data).params
    assert metrics["diverged_at_step"].tolist() == [2] * 6
    chex.assert_trees_all_equal(params, initial)
    assert jnp.all(jnp.isfinite(metrics["train_loss"]))


def test_fit_stops_at_the_chunk_where_training_diverged(data, key):
    config = TrainConfig(**{**SMALL, "epochs": 12}, optimizer="sgd", clip="none", activation="tanh")
    result = fit(config, hparams(learning_rate=1e30), data, key=key, progress=False)
    assert result.diverged_at_step == 2 and result.diverged_at_epoch == 1
    assert len(result.metrics["train_loss"]) == 1  # the first chunk (ChunkPlan: one epoch)
    assert all(jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(result.params))


def test_a_healthy_run_reports_no_divergence(data, key):
    result = fit(TrainConfig(**SMALL), hparams(), data, key=key, progress=False)
    assert result.diverged_at_step is None and result.diverged_at_epoch is None
    assert result.metrics["diverged_at_step"] == [0.0] * 6


def test_hand_built_hyperparameters_are_checked_before_compiling(data, key):
    good = hparams()
    with pytest.raises(ValueError, match="hparams.learning_rate must be a positive number; got -1.0"):
        fit(TrainConfig(**SMALL), good._replace(learning_rate=jnp.float32(-1.0)), data, key=key)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x, x]), good)
    stacked = stacked._replace(truncation=jnp.array([3, 0, 2]))
    with pytest.raises(ValueError, match=r"hparams.truncation \(member 1\) must be an integer >= 1; got 0"):
        check_hparams(stacked)


def test_fit_checks_the_config_against_the_data(data, key):
    with pytest.raises(ValueError, match=r"batch_size \(500\) must not exceed"):
        fit(TrainConfig(**SMALL, batch_size=500), hparams(), data, key=key)


def per_step_data(key, classes=0):
    """Sequences with a target at every step, holes in a mask, and either real targets (the
    running mean of the inputs) or labels (whether it is positive)."""
    from rnn_jax.data.sine import WindowData, identity_scaler

    x_key, m_key = jax.random.split(key)
    xs = jax.random.normal(x_key, (60, 9, 1))
    running = jnp.cumsum(xs, axis=1) / jnp.arange(1, 10)[None, :, None]
    ys = (running[..., 0] > 0).astype(jnp.int32) if classes else running
    mask = jax.random.bernoulli(m_key, 0.8, (60, 9)).at[:, 0].set(True)
    return WindowData(
        xs[:40], ys[:40], xs[40:], ys[40:], identity_scaler(), mask[:40], mask[40:], classes=classes
    )


@pytest.mark.slow
@pytest.mark.parametrize("classes", [0, 2])
def test_training_with_per_step_targets_masks_stacks_and_labels(key, classes):
    data = per_step_data(key, classes)
    config = TrainConfig(
        cell="gru",
        hidden_dim=8,
        optimizer="adam",
        clip="norm",
        epochs=25,
        batch_size=10,
        shuffle=True,
        init="default",
        num_layers=2,
        dropout=0.1,
        target="all",
        objective="cross_entropy" if classes else "squared",
        backward="manual",
    )
    result = fit(config, hparams(learning_rate=2e-2, truncation=4, seq_len=9), data, key=key, progress=False)
    m = result.metrics
    assert m["train_loss"][-1] < 0.6 * m["train_loss"][0]
    if classes:
        assert m["val_accuracy"][-1] > 0.85 and "val_rmse" not in m
        assert m["val_bits"][-1] == pytest.approx(m["val_loss"][-1] / float(jnp.log(2.0)), rel=1e-5)
    else:
        assert m["val_rmse"][-1] < 0.6 * m["val_rmse"][0]


def test_targets_that_do_not_fit_the_config_are_named(key):
    data = per_step_data(key, classes=2)
    with pytest.raises(ValueError, match="objective 'squared' needs real-valued targets"):
        fit(TrainConfig(**SMALL, target="all"), hparams(seq_len=9), data, key=key, progress=False)
    with pytest.raises(ValueError, match="target 'last' needs one target per sequence"):
        fit(
            TrainConfig(**SMALL, objective="cross_entropy"), hparams(seq_len=9), data, key=key, progress=False
        )
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\), and 0 with one layer"):
        check_config(TrainConfig(dropout=0.5), 10)


@pytest.mark.slow
def test_select_best_keeps_the_lowest_validation_epoch_and_patience_stops_the_run(data, key):
    # A learning rate high enough that validation loss wanders: the best epoch is not the last.
    config = TrainConfig(**{**SMALL, "epochs": 40}, optimizer="adam", batch_size=4, select="best", patience=5)
    params, metrics = jax.jit(make_train(config).train)(key, hparams(learning_rate=0.3), data)
    val = [float(v) for v in metrics["val_loss"]]
    stopped = [int(v) for v in metrics["stopped_at"] if v > 0]
    assert stopped, "the run was meant to stop early"
    best = min(range(stopped[0]), key=lambda i: val[i]) + 1
    assert stopped[0] == best + 5 and val[stopped[0] :] == [val[stopped[0] - 1]] * (40 - stopped[0])
    from rnn_jax.train.loop import evaluate

    assert float(evaluate(params, data)["val_loss"]) == pytest.approx(val[best - 1], rel=1e-6)
    result = fit(config, hparams(learning_rate=0.3), data, key=key, progress=False)
    assert (result.best_epoch, result.stopped_at_epoch) == (best, stopped[0])
    assert len(result.metrics["val_loss"]) == stopped[0]
    chex.assert_trees_all_equal(result.params, params)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"select": "first"}, "select must be one of last, best"),
        ({"patience": -1}, "patience must be a non-negative integer"),
    ],
)
def test_bad_selection_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_config(TrainConfig(**kwargs), 10)


@pytest.mark.slow
def test_the_library_defaults_learn_the_sine_task(key):
    """``TrainConfig()`` and ``make_hparams``'s defaults, on the sine data as generated: val RMSE
    <= 0.002 (the tutorial's settings stay at ~0.2, README "Results")."""
    result = fit(TrainConfig(), make_hparams(seq_len=50), make_sine_data(), key=key, progress=False)
    assert result.metrics["val_rmse"][-1] <= 0.002


def test_the_tutorial_settings_are_kept_by_name():
    tutorial = TrainConfig.tutorial(epochs=3)
    assert (tutorial.hidden_dim, tutorial.activation, tutorial.optimizer, tutorial.init) == (
        100,
        "sigmoid",
        "sgd",
        "tutorial",
    )
    assert (tutorial.batch_size, tutorial.shuffle, tutorial.clip, tutorial.epochs) == (1, False, "value", 3)


@pytest.mark.slow
def test_training_runs_with_64_bit_mode_on(data, key):
    """``JAX_ENABLE_X64=1`` once broke the epoch loop: its step counter became int64 while the
    carry held int32."""
    jax.config.update("jax_enable_x64", True)
    try:
        config = TrainConfig(**SMALL, batch_size=5)
        result = fit(config, make_hparams(seq_len=10), data, key=key, progress=False)
    finally:
        jax.config.update("jax_enable_x64", False)
    assert len(result.metrics["train_loss"]) == 6 and result.diverged_at_step is None


def test_chunks_are_sized_by_measured_time_for_any_epoch_count_and_epochs_are_bounded():
    def chunks(total, per_epoch, every=None, seconds=1.0):
        plan = ChunkPlan(runner.chunk_capacity(total), every, seconds)
        done, sizes = 0, []
        while done < total:
            sizes.append(plan.next_count(done, total))
            plan.measured(sizes[-1], sizes[-1] * per_epoch)
            done += sizes[-1]
        return sizes

    # A prime epoch count: a first one-epoch chunk, growth capped at 8x, then chunks of about a
    # second (0.01 s epochs: 100 epochs), the last shorter.
    sizes = chunks(9973, per_epoch=0.01)
    assert sizes[:4] == [1, 8, 64, 100] and set(sizes[3:-1]) == {100} and sum(sizes) == 9973
    assert chunks(10, per_epoch=30.0) == [1] * 10  # slow epochs: one per chunk, never zero
    fast = chunks(10_000, per_epoch=1e-7)
    assert max(fast) == runner.MAX_CHUNK_EPOCHS and sum(fast) == 10_000
    every = chunks(100, per_epoch=0.001, every=30)  # checkpoint boundaries are chunk boundaries
    assert sum(every) == 100 and {30, 60, 90} <= set(itertools.accumulate(every))
    with pytest.raises(ValueError, match=r"epochs must be at most 2,147,483,647 \(epoch counters"):
        check_config(TrainConfig(epochs=2**63), n_train=100)
    with pytest.raises(ValueError, match=r"patience must be at most 2,147,483,647 \(epoch counters"):
        check_config(TrainConfig(patience=2**40), n_train=100)


def test_train_config_trains_the_reset_before_gru(data, key):
    """Every option of a cell's constructor is reachable from the config: here the GRU of Cho et
    al., whose candidate has no recurrent bias of its own."""
    config = TrainConfig(cell="gru", cell_options="reset=before", hidden_dim=4, epochs=3, batch_size=10)
    check_config(config, n_train=data.x_train.shape[0])
    params, metrics = jax.jit(make_train(config).train)(key, hparams(truncation=4), data)
    assert params.cell.reset == "before" and params.cell.bh_n is None
    assert float(metrics["train_loss"][-1]) < float(metrics["train_loss"][0])


def test_unroll_in_the_config_reaches_the_gradients_scan_and_changes_no_value(data, key):
    config = TrainConfig(cell="gru", hidden_dim=4, epochs=3, batch_size=10)
    plain = jax.jit(make_train(config).train)(key, hparams(truncation=4), data)
    unrolled = jax.jit(make_train(dataclasses.replace(config, unroll=3)).train)(
        key, hparams(truncation=4), data
    )
    chex.assert_trees_all_close(plain, unrolled, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unroll 3 needs backward 'autodiff'"):
        check_config(dataclasses.replace(config, unroll=3, backward="manual"), n_train=100)
    with pytest.raises(ValueError, match="unroll must be a positive integer; got 0"):
        check_config(dataclasses.replace(config, unroll=0), n_train=100)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cell": "gru", "cell_options": "reset=sideways"}, "reset must be one of after, before"),
        (
            {"cell": "lstm", "cell_options": "reset=before"},
            "the lstm cell takes no reset .it takes no options.",
        ),
        ({"cell": "gru", "cell_options": "reset"}, "cell_options must be name=value pairs"),
        ({"activation": "relu", "cell_options": "activation=tanh"}, "give the activation once"),
    ],
)
def test_cell_options_that_the_cell_does_not_take_are_refused_by_name(data, changes, message):
    with pytest.raises(ValueError, match=message):
        config = TrainConfig(**SMALL, **changes)
        check_config(config, n_train=data.x_train.shape[0])
        make_train(config).init(jax.random.key(0), hparams(), data)


def test_make_train_takes_an_optax_transformation_or_a_factory_of_one(data, key):
    """A transformation of the user's own replaces the config's strings; a factory of the
    hyperparameters keeps the learning rate traced, so vmap sweeps it."""
    import optax

    config = TrainConfig(**{**SMALL, "epochs": 2}, batch_size=10)
    fns = make_train(config, optimizer=optax.sgd(0.0))
    start = fns.init(key, hparams(), data).params
    frozen, _ = jax.jit(fns.train)(key, hparams(), data)
    chex.assert_trees_all_equal(frozen, start)  # a zero step leaves the initial weights

    train = make_train(config, optimizer=lambda hp: optax.sgd(hp.learning_rate)).train
    one = hparams(learning_rate=1e-2)
    rates = jax.vmap(lambda lr: one._replace(learning_rate=lr))(jnp.array([0.0, 0.05]))
    params, metrics = jax.jit(jax.vmap(train, in_axes=(None, 0, None)))(key, rates, data)
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[0], params), start)
    assert float(metrics["train_loss"][1, -1]) < float(metrics["train_loss"][0, -1])
    refused = "optimizer must be an optax.GradientTransformation|parameter .optimizer."
    with pytest.raises(TypeError, match=refused):
        make_train(config, optimizer="adam")


@pytest.mark.parametrize("backward", ["autodiff", "manual"])
def test_a_run_whose_states_are_solved_in_parallel_trains_as_the_sequential_one(data, key, backward):
    config = TrainConfig(hidden_dim=4, epochs=3, batch_size=10, backward=backward)
    plain = jax.jit(make_train(config).train)(key, hparams(truncation=4), data)
    solved = jax.jit(make_train(dataclasses.replace(config, method="deer")).train)(
        key, hparams(truncation=4), data
    )
    assert jax.tree.structure(plain[0]) == jax.tree.structure(solved[0])  # the cells unwrapped again
    chex.assert_trees_all_close(plain, solved, rtol=1e-4, atol=1e-5)  # float32: the solve's tolerance
    with pytest.raises(
        ValueError, match="method must be one of sequential, deer, quasi_deer, elk, quasi_elk; got 'newton'"
    ):
        check_config(dataclasses.replace(config, method="newton"), n_train=100)
    with pytest.raises(
        ValueError, match="method 'deer' needs backward 'autodiff' or 'manual'; got 'tutorial'"
    ):
        check_config(TrainConfig(backward="tutorial", method="deer"), n_train=100)
