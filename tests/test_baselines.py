"""Splits, windows and the scaler of ``make_splits``, and the baselines scored on them."""

import numpy as np
import pytest

from rnn_jax.data.baselines import fit_linear_ar, persistence, predict_linear_ar, rmse_by_column_and_step
from rnn_jax.data.windows import cut, make_splits, split_rows


def cut_windows(part, inputs, targets, window, horizon):
    """Every window of ``part`` whose inputs and targets both lie in it."""
    rows = np.arange(window, part.shape[0] - horizon + 1)
    return cut(part, rows, inputs=inputs, targets=targets, window=window, horizon=horizon)


def two_columns(n=300):
    t = np.arange(n, dtype=np.float64)
    return np.stack([np.sin(0.3 * t), 2.0 + np.cos(0.11 * t)], axis=1)


def test_splits_are_in_time_order_and_cover_every_row():
    assert split_rows(100, (0.7, 0.15, 0.15)) == [(0, 70), (70, 85), (85, 100)]
    with pytest.raises(ValueError, match="three positive numbers that sum to 1"):
        split_rows(100, (0.5, 0.5, 0.5))


def test_windows_never_straddle_a_split_and_the_scaler_sees_training_rows_only():
    series = two_columns()
    windows, scaler = make_splits(series, inputs=[0, 1], targets=[1], window=8, horizon=3)
    np.testing.assert_allclose(scaler.mean, series[:210].mean(axis=0))
    test = scaler.inverse(windows["test"].x[0])  # first test window starts at the test part's first row
    np.testing.assert_allclose(test, series[255:263], atol=1e-12)
    assert len(windows["test"].x) == 45 - 8 - 3 + 1 and windows["test"].y.shape[1:] == (3, 1)
    changed = series.copy()
    changed[250:] += 100.0  # later parts do not reach the scaler
    np.testing.assert_allclose(
        make_splits(changed, inputs=[0, 1], targets=[1], window=8, horizon=3)[1].mean, scaler.mean
    )


def test_cut_windows_reads_the_next_horizon_steps():
    part = np.arange(20, dtype=float)[:, None]
    w = cut_windows(part, [0], [0], window=4, horizon=2)
    assert w.x.shape == (15, 4, 1) and w.y.shape == (15, 2, 1)
    assert w.x[3, :, 0].tolist() == [3, 4, 5, 6] and w.y[3, :, 0].tolist() == [7, 8]


def test_persistence_repeats_the_last_value_of_each_target():
    w = cut_windows(two_columns(40), [0, 1], [1, 0], window=5, horizon=3)
    pred = persistence(w, [0, 1], [1, 0])
    np.testing.assert_array_equal(pred[:, 2, 0], w.x[:, -1, 1])
    np.testing.assert_array_equal(pred[:, 0, 1], w.x[:, -1, 0])
    with pytest.raises(ValueError, match="every target column among the inputs"):
        persistence(w, [0], [1])


def test_linear_autoregression_is_exact_on_a_sampled_sine():
    # sin(t+1) = 2 cos(1) sin(t) - sin(t-1): a two-term linear recurrence
    series = np.sin(np.arange(400, dtype=np.float64))[:, None]
    windows, scaler = make_splits(series, inputs=[0], targets=[0], window=6, horizon=4)
    pred = predict_linear_ar(fit_linear_ar(windows["train"]), windows["test"])
    assert np.max(rmse_by_column_and_step(pred, windows["test"].y, scaler.std)) < 1e-9


def test_rmse_is_per_step_and_column_in_original_units():
    truth = np.zeros((4, 2, 3))
    pred = np.ones((4, 2, 3)) * np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        rmse_by_column_and_step(pred, truth, np.array([1.0, 1.0, 10.0])), [[1, 2, 30]] * 2
    )


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (two_columns(30), r"its val split holds 0 window\(s\) of window 8 \+ horizon 3"),
        (np.ones((300, 2)), "column 0 is constant over the training rows"),
    ],
)
def test_unusable_series_are_named(series, message):
    with pytest.raises(ValueError, match=message):
        make_splits(series, inputs=[0, 1], targets=[1], window=8, horizon=3)
