"""Multivariate series as forecasting windows: time splits, a per-column scaler fitted on the
training part only, the two honest baselines, and errors per column and per horizon step.

A series is ``(L, C)``: ``L`` time steps of ``C`` columns. A window reads ``W`` steps of the
input columns and predicts the next ``K`` steps (the horizon) of the target columns. The series
is split by time into train / validation / test parts before any window is cut, so no window
straddles a boundary and nothing from a later part reaches an earlier one.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rnn_jax.errors import InputError

SPLITS = ("train", "val", "test")


class ColumnScaler(NamedTuple):
    """Per-column ``z = (v - mean) / std``, fitted on the training part of the series."""

    mean: np.ndarray  # (C,)
    std: np.ndarray  # (C,)

    def transform(self, values):
        return (values - self.mean) / self.std

    def inverse(self, values):
        return values * self.std + self.mean


class Windows(NamedTuple):
    """One split's windows, in scaled units: ``x (N, W, D_in)``, ``y (N, K, D_out)``."""

    x: np.ndarray
    y: np.ndarray


def split_rows(n_rows: int, fractions: tuple[float, float, float]) -> list[tuple[int, int]]:
    """``[(start, stop)]`` row ranges of train, validation and test, in time order."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise InputError(f"split fractions must be three positive numbers that sum to 1; got {fractions}")
    cuts = [0, round(n_rows * fractions[0]), round(n_rows * (fractions[0] + fractions[1])), n_rows]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def check_split_sizes(n_rows: int, fractions, *, window: int, horizon: int, what: str = "the series") -> None:
    """Every part must hold at least one window of ``window + horizon`` rows."""
    for name, (start, stop) in zip(SPLITS, split_rows(n_rows, fractions), strict=True):
        if stop - start < window + horizon:
            raise InputError(
                f"{what} has {n_rows} rows; its {name} part ({stop - start} rows) is shorter than "
                f"window {window} + horizon {horizon}; use a longer series or a shorter window"
            )


def fit_scaler(train_part: np.ndarray) -> ColumnScaler:
    """Mean and std of each column of the training rows; a constant column is refused."""
    std = train_part.std(axis=0)
    if np.any(std == 0):
        raise InputError(
            f"column {int(np.argmax(std == 0))} is constant over the training part; it cannot be scaled"
        )
    return ColumnScaler(train_part.mean(axis=0), std)


def cut_windows(
    part: np.ndarray, inputs: list[int], targets: list[int], window: int, horizon: int
) -> Windows:
    """Every window of one part: inputs ``part[r : r+W, inputs]``, targets
    ``part[r+W : r+W+K, targets]``, for ``r = 0 .. rows - W - K``."""
    n = part.shape[0] - window - horizon + 1
    rows = np.arange(n)[:, None]
    x = part[rows + np.arange(window)[None, :]][:, :, inputs]
    y = part[rows + window + np.arange(horizon)[None, :]][:, :, targets]
    return Windows(x, y)


def make_splits(
    series: np.ndarray,
    *,
    inputs: list[int],
    targets: list[int],
    window: int,
    horizon: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> tuple[dict[str, Windows], ColumnScaler]:
    """Scaled windows of each split and the scaler (fitted on the training rows only)."""
    check_split_sizes(series.shape[0], fractions, window=window, horizon=horizon)
    parts = [series[a:b] for a, b in split_rows(series.shape[0], fractions)]
    scaler = fit_scaler(parts[0])
    windows = {
        name: cut_windows(scaler.transform(part), inputs, targets, window, horizon)
        for name, part in zip(SPLITS, parts, strict=True)
    }
    return windows, scaler


def persistence(windows: Windows, inputs: list[int], targets: list[int]) -> np.ndarray:
    """Repeat the last observed value of each target column over the horizon, ``(N, K, D_out)``.

    Needs every target among the inputs (what else would be "the last value"?)."""
    missing = [t for t in targets if t not in inputs]
    if missing:
        raise InputError(f"persistence needs every target column among the inputs; columns {missing} are not")
    last = windows.x[:, -1, [inputs.index(t) for t in targets]]
    return np.repeat(last[:, None, :], windows.y.shape[1], axis=1)


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


def as_jnp(windows: Windows, dtype=jnp.float32) -> tuple[Array, Array]:
    """Windows for the RNN: ``x (N, W, D_in)`` and the horizon flattened into ``y (N, K*D_out)``."""
    return jnp.asarray(windows.x, dtype), jnp.asarray(windows.y.reshape(len(windows.y), -1), dtype)
