"""Forecasting windows: splits by target rows, per-window normalisation, seasonal naive."""

import numpy as np
import pytest

from rnn_jax.data.baselines import seasonal_naive
from rnn_jax.data.windows import (
    check_magnitudes,
    check_window_counts,
    cut,
    fit_scales,
    normalise,
    out_of_range,
    window_rows,
)


def trend(n=200):
    t = np.arange(n, dtype=np.float64)
    return np.stack([10.0 + 0.5 * t + np.sin(t), 3.0 * np.cos(0.3 * t)], axis=1)


def test_each_split_owns_its_targets_and_reads_history_from_before():
    rows = window_rows(100, (0.7, 0.15, 0.15), window=24, horizon=3)
    assert rows["train"].tolist() == list(range(24, 68))  # targets 24..69 inside rows 0..69
    assert rows["val"].tolist() == list(range(70, 83))  # 15 rows, 3 steps: 13 windows
    assert rows["test"].tolist() == list(range(85, 98))
    series = trend(100)
    w = cut(series, rows["val"], inputs=[0, 1], targets=[1], window=24, horizon=3)
    np.testing.assert_array_equal(w.x[0], series[46:70])  # history from the training rows
    np.testing.assert_array_equal(w.y[-1, :, 0], series[82:85, 1])  # the split's last rows
    with pytest.raises(ValueError, match="its val split holds 0 window"):
        check_window_counts(
            window_rows(40, (0.9, 0.05, 0.05), window=4, horizon=3), n_rows=40, window=4, horizon=3, what="s"
        )


@pytest.mark.parametrize("mode", ["none", "last", "last_scale"])
def test_normalisation_round_trips_and_last_value_modes_ignore_the_level(mode):
    series = trend()
    scales = fit_scales(series[:140], ["a", "b"])
    w = cut(series, np.arange(150, 190), inputs=[0, 1], targets=[0, 1], window=12, horizon=2)
    norm = normalise(w.x, mode=mode, scales=scales, inputs=[0, 1], targets=[0, 1])
    np.testing.assert_allclose(norm.levels(norm.targets(w.y)), w.y, rtol=1e-12)
    shifted = normalise(w.x + 1000.0, mode=mode, scales=scales, inputs=[0, 1], targets=[0, 1])
    if mode == "none":
        assert not np.allclose(shifted.x, norm.x)
    else:  # a level the model never saw changes nothing it sees
        np.testing.assert_allclose(shifted.x, norm.x, atol=1e-9)
        np.testing.assert_allclose(norm.x[:, -1], 0.0)
        np.testing.assert_allclose(norm.levels(np.zeros_like(w.y)), np.repeat(w.x[:, -1:, :], 2, axis=1))


def test_window_scale_makes_a_scaled_copy_look_the_same():
    series = trend()
    scales = fit_scales(series[:140], ["a", "b"])
    w = cut(series, np.arange(150, 160), inputs=[0, 1], targets=[0, 1], window=12, horizon=1)
    one = normalise(w.x, mode="last_scale", scales=scales, inputs=[0, 1], targets=[0, 1])
    three = normalise(3.0 * w.x, mode="last_scale", scales=scales, inputs=[0, 1], targets=[0, 1])
    np.testing.assert_allclose(one.x, three.x, atol=1e-9)
    np.testing.assert_allclose(three.scale, 3.0 * one.scale)


def test_targets_that_are_not_inputs_are_z_scored():
    series = trend()
    scales = fit_scales(series[:140], ["a", "b"])
    w = cut(series, np.arange(150, 160), inputs=[0], targets=[1], window=12, horizon=1)
    norm = normalise(w.x, mode="last", scales=scales, inputs=[0], targets=[1])
    np.testing.assert_allclose(norm.anchor[:, 0], scales.mean[1])
    np.testing.assert_allclose(norm.scale[:, 0], scales.std[1])


def test_seasonal_naive_repeats_the_last_season():
    series = np.arange(100, dtype=np.float64)[:, None]
    pred = seasonal_naive(series, np.array([50, 60]), season=4, horizon=6, targets=[0])
    assert pred[0, :, 0].tolist() == [46, 47, 48, 49, 46, 47]
    with pytest.raises(ValueError, match="reaches before the first row"):
        seasonal_naive(series, np.array([2]), season=4, horizon=1, targets=[0])


def test_extreme_and_constant_columns_are_named_and_extrapolation_is_warned():
    with pytest.raises(ValueError, match="column 'big' holds values up to 1e\\+300"):
        check_magnitudes(np.array([[1.0, 1e300]]), ["small", "big"])
    with pytest.raises(ValueError, match="column 'flat' is constant over the training rows"):
        fit_scales(np.stack([np.arange(10.0), np.ones(10)], axis=1), ["t", "flat"])
    train = np.zeros((5, 4, 2))
    train[0, 0] = [1.0, 1.0]
    test = np.zeros((3, 4, 2))
    test[1, 2] = [0.5, 4.0]
    warnings = out_of_range(train, test, ["a", "b"])
    assert len(warnings) == 1 and "column 'b' reach 3.0x" in warnings[0]
    assert warnings[0].endswith("(try --normalise last)")  # the next normalisation after the run's
    assert out_of_range(train, test, ["a", "b"], normalise="last")[0].endswith("(try --normalise last_scale)")
    assert out_of_range(train, test, ["a", "b"], normalise="last_scale")[0].endswith("extrapolates there")
