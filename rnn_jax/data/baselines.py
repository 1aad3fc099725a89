"""The honest baselines a forecast is scored against, on the same windows, and the error
measure: persistence, the seasonal naive forecast, a least-squares linear autoregression on the
same window, and RMSE per column and step ahead in the series' own units."""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, Float

from rnn_jax.data.windows import Windows
from rnn_jax.errors import InputError


def persistence(windows: Windows, inputs: list[int], targets: list[int]) -> np.ndarray:
    """Repeat the last observed value of each target column over the horizon, ``(N, K, D_out)``.

    Needs every target among the inputs (what else would be "the last value"?)."""
    missing = [t for t in targets if t not in inputs]
    if missing:
        raise InputError(f"persistence needs every target column among the inputs; columns {missing} are not")
    last = windows.x[:, -1, [inputs.index(t) for t in targets]]
    return np.repeat(last[:, None, :], windows.y.shape[1], axis=1)


def seasonal_naive(series: np.ndarray, rows: np.ndarray, *, season: int, horizon: int, targets) -> np.ndarray:
    """Each step ahead repeats the last value seen one season earlier, ``(N, K, D_out)``: the
    window predicting rows ``r .. r+K-1`` forecasts row ``r + k`` by row ``r + k - M * ceil((k+1)/M)``
    (always before ``r``), read from the raw ``series (L, C)``. Needs that row to exist."""
    if season < 1:
        raise InputError(f"season must be a positive integer; got {season}")
    k = np.arange(horizon)
    back = np.asarray(rows)[:, None] + k - season * ((k + season) // season)
    if back.min() < 0:
        raise InputError(f"season ({season}) reaches before the first row for the window at row {rows[0]}")
    return series[back][:, :, list(targets)]


def fit_linear_ar(train: Windows) -> np.ndarray:
    """Least-squares linear autoregression on the same window: weights ``(W*D_in + 1, K*D_out)``
    mapping the flattened window and a bias to every horizon step of every target."""
    features = _features(train.x)
    weights, *_ = np.linalg.lstsq(features, train.y.reshape(len(train.y), -1), rcond=None)
    return weights


def predict_linear_ar(weights: np.ndarray, windows: Windows) -> np.ndarray:
    return (_features(windows.x) @ weights).reshape(windows.y.shape)


def _features(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1).astype(np.float64)
    return np.concatenate([flat, np.ones((len(x), 1))], axis=1)


def rmse_by_column_and_step(
    prediction: Float[Array, "N K O"] | np.ndarray, truth: np.ndarray, scaler_std: np.ndarray
) -> np.ndarray:
    """RMSE in the series' original units, ``(K, D_out)``: one per horizon step and target."""
    err = (np.asarray(prediction, np.float64) - truth) * scaler_std
    return np.sqrt(np.mean(err**2, axis=0))
