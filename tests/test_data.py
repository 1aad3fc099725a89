import jax
import jax.numpy as jnp
import pytest

from rnn_jax.data.sine import make_sine_data, sine_series


def test_defaults_reproduce_the_tutorial_split():
    data = make_sine_data()
    assert data.x_train.shape == (100, 50, 1) and data.y_train.shape == (100, 1)
    assert data.x_val.shape == (50, 50, 1) and data.y_val.shape == (50, 1)
    series = jnp.sin(jnp.arange(200.0))
    for r in (0, 37, 99):
        assert jnp.allclose(data.x_train[r, :, 0], series[r : r + 50], atol=1e-6)
        assert jnp.allclose(data.y_train[r, 0], series[r + 50], atol=1e-6)
    for r in (100, 149):
        assert jnp.allclose(data.x_val[r - 100, :, 0], series[r : r + 50], atol=1e-6)
        assert jnp.allclose(data.y_val[r - 100, 0], series[r + 50], atol=1e-6)


def test_options_change_the_series_and_split():
    data = make_sine_data(length=100, step=0.5, frequency=2.0, window=10, train_fraction=0.5)
    assert data.x_train.shape == (45, 10, 1) and data.x_val.shape == (45, 10, 1)
    assert jnp.allclose(data.x_train[3, :, 0], jnp.sin(2.0 * 0.5 * jnp.arange(3, 13)), atol=1e-5)


def test_noise_is_reproducible_by_key():
    a = sine_series(noise=0.1, key=jax.random.key(1))
    b = sine_series(noise=0.1, key=jax.random.key(1))
    assert jnp.array_equal(a, b)
    assert 0.05 < float(jnp.std(a - sine_series())) < 0.15


def test_scaler_is_fitted_on_training_values_only_and_round_trips():
    # A series whose validation part is much larger: training-only statistics must ignore it.
    data = make_sine_data(scale=True, length=200)
    train_values = jnp.sin(jnp.arange(150.0))  # what the 100 training windows touch
    assert jnp.allclose(data.scaler.mean, jnp.mean(train_values), atol=1e-6)
    assert jnp.allclose(data.scaler.std, jnp.std(train_values), atol=1e-6)
    z = data.x_val[:, :, 0]
    assert jnp.allclose(
        data.scaler.inverse(z), data.scaler.inverse(data.scaler.transform(data.scaler.inverse(z))), atol=1e-6
    )
    assert jnp.allclose(data.scaler.inverse(data.y_val[:, 0]), jnp.sin(jnp.arange(150.0, 200.0)), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 200}, r"window \(200\) must be shorter than the series length \(200\)"),
        ({"window": 0}, "window must be >= 1"),
        ({"train_fraction": 1.0}, r"train_fraction must be in \(0, 1\)"),
        ({"step": -1.0}, "step must be a positive number"),
        ({"noise": 0.1}, "key is required when noise > 0"),
        ({"frequency": 0.0, "scale": True}, "not constant"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_sine_data(**kwargs)


def test_non_finite_or_mismatched_data_is_refused_before_training(key):
    from rnn_jax.data.sine import check_window_data
    from rnn_jax.runs.driver import fit
    from rnn_jax.train.loop import TrainConfig, make_hparams

    data = make_sine_data(length=60, window=10)
    bad = data.__class__(
        x_train=data.x_train.at[3, 2, 0].set(jnp.nan),
        y_train=data.y_train,
        x_val=data.x_val,
        y_val=data.y_val,
        scaler=data.scaler,
    )
    with pytest.raises(ValueError, match="x_train holds 1 NaN or infinite values"):
        fit(TrainConfig(hidden_dim=4, epochs=1), make_hparams(learning_rate=0.1, seq_len=10), bad, key=key)
    # Test-time shape checks refuse to build this WindowData; users get no such check, so build
    # it around them to reach check_window_data, the check every user goes through.
    short = object.__new__(type(data))
    fields = {"x_train": data.x_train, "y_train": data.y_train[:-1], "x_val": data.x_val, "y_val": data.y_val}
    for name, value in {**fields, "scaler": data.scaler}.items():
        object.__setattr__(short, name, value)
    with pytest.raises(ValueError, match="x_train must be"):
        check_window_data(short)


def test_data_of_the_wrong_type_or_dtype_is_named():
    from rnn_jax.data.sine import check_window_data

    data = make_sine_data(length=60, window=10)

    def built(**arrays):  # around the test-time annotation checks, as for a user's own data
        out = object.__new__(type(data))
        for name in ("x_train", "y_train", "x_val", "y_val", "scaler"):
            object.__setattr__(out, name, arrays.get(name, getattr(data, name)))
        return out

    with pytest.raises(TypeError, match="y_val must be a floating-point array; got int32"):
        check_window_data(built(y_val=data.y_val.astype(jnp.int32)))
    with pytest.raises(TypeError, match="x_val is float16 but x_train is float32"):
        check_window_data(built(x_val=data.x_val.astype(jnp.float16)))
