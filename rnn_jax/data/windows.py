"""Forecasting windows of a series ``(L, C)``: splits in time order, one window cutter, one
scaler fitted on the training rows only, and a per-window normalisation that lets a model
trained on one level forecast at another. The baselines are in ``rnn_jax.data.baselines``.

A window predicts the ``K`` rows ``r .. r+K-1`` (its targets) from the ``W`` rows before them
(its inputs). It belongs to the split (train / validation / test, in time order) that holds all
of its targets; its inputs may reach back into an earlier split, because at forecast time the
past is known. So every split of ``n`` rows gives ``n - K + 1`` windows, even when ``n < W``,
and no split's targets are ever another split's targets. ``make_splits`` cuts the stricter
form, where a window's inputs too lie inside its split (``window_rows(..., inputs_inside=True)``):
nothing of a later split reaches an earlier one, at the price of ``W`` fewer windows per split.

Normalisation maps a window's raw values to the model's units and its predictions back:

- ``"none"``: ``z = (v - mean) / std`` with the training rows' statistics. A series with a
  trend leaves the range the model was trained on (a level it never saw).
- ``"last"``: ``(v - v_last) / s``: changes from the window's last input value, in units of
  the training rows' one-step changes ``s`` (their RMS). The model predicts the change and the level is
  added back, so a trend or a shifted level costs nothing, and a model that outputs zero is
  persistence.
- ``"last_scale"``: as ``"last"``, also divided by the window's own size of change (the RMS of
  its one-step changes, relative to ``s``; floored at ``MIN_WINDOW_SCALE``), for series whose
  swings grow with their level.

Target columns that are not inputs have no "last value"; they are always z-scored.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from rnn_jax.errors import InputError

SPLITS = ("train", "val", "test")

NORMALISATIONS = ("none", "last", "last_scale")
MIN_WINDOW_SCALE = 0.1  # x the training rows' step size: a flat window is not blown up
# float32 holds about 3.4e38; squares of the values are summed when the scaler is fitted.
LARGEST_VALUE = 1e18


class Scales(NamedTuple):
    """Per-column statistics of the training rows, ``(C,)`` each: the one scaler of a series."""

    mean: np.ndarray
    std: np.ndarray
    step: np.ndarray  # RMS of the one-step changes

    def transform(self, values):
        """``z = (v - mean) / std``, per column (the last axis)."""
        return (values - self.mean) / self.std

    def inverse(self, values):
        return values * self.std + self.mean

    def describe(self) -> dict:
        return {name: value.tolist() for name, value in self._asdict().items()}

    @classmethod
    def from_description(cls, saved: dict) -> Scales:
        return cls(*(np.asarray(saved[name], np.float64) for name in cls._fields))


class Windows(NamedTuple):
    """Windows: ``x (N, W, D_in)``, ``y (N, K, D_out)``, ``rows (N,)`` each one's first target
    row; raw, or in model units where a function says so."""

    x: np.ndarray
    y: np.ndarray
    rows: np.ndarray


class Normalised(NamedTuple):
    """A batch of windows in model units, and how to map its targets back:
    ``v = anchor + scale * v_model`` per target column."""

    x: np.ndarray  # (N, W, D_in)
    anchor: np.ndarray  # (N, D_out)
    scale: np.ndarray  # (N, D_out)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Raw targets ``(N, K, D_out)`` in model units."""
        return (y - self.anchor[:, None]) / self.scale[:, None]

    def levels(self, prediction: np.ndarray | Array) -> np.ndarray | Array:
        """Model-unit predictions ``(N, K, D_out)`` in the series' own units (float64)."""
        xp = self.anchor.__array_namespace__()
        return self.anchor[:, None] + self.scale[:, None] * xp.asarray(prediction, dtype=xp.float64)


def split_rows(n_rows: int, fractions: tuple[float, float, float]) -> list[tuple[int, int]]:
    """``[(start, stop)]`` row ranges of train, validation and test, in time order."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise InputError(f"split fractions must be three positive numbers that sum to 1; got {fractions}")
    cuts = [0, round(n_rows * fractions[0]), round(n_rows * (fractions[0] + fractions[1])), n_rows]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def check_magnitudes(values: np.ndarray, names) -> None:
    """Refuse values whose scaling would overflow float32, naming the column."""
    big = np.abs(values) > LARGEST_VALUE
    if big.any():
        j = int(np.argmax(big.any(axis=0)))
        raise InputError(
            f"column {names[j]!r} holds values up to {np.max(np.abs(values[:, j])):.3g}; values beyond "
            f"{LARGEST_VALUE:.0e} would overflow float32 once scaled: rescale the column first"
        )


def fit_scales(train_rows: np.ndarray, names) -> Scales:
    """Mean, std and RMS one-step change of each column over the training rows ``(L_train, C)``.
    A column that is constant there is refused, naming it."""
    check_magnitudes(train_rows, names)
    std = train_rows.std(axis=0)
    # RMS, not std: a straight line's changes are constant, yet not zero
    step = np.sqrt(np.mean(np.diff(train_rows, axis=0) ** 2, axis=0)) if len(train_rows) > 1 else std
    flat = (std == 0) | (step == 0)
    if flat.any():
        raise InputError(f"column {names[int(np.argmax(flat))]!r} is constant over the training rows")
    return Scales(train_rows.mean(axis=0), std, step)


def window_rows(
    n_rows: int, fractions, *, window: int, horizon: int, inputs_inside: bool = False
) -> dict[str, np.ndarray]:
    """The first target row of every window of each split, ``(N_split,)`` each: all ``K``
    targets inside the split, ``W`` rows of history before the first (inside the split too
    with ``inputs_inside``)."""
    out = {}
    for name, (start, stop) in zip(SPLITS, split_rows(n_rows, fractions), strict=True):
        out[name] = np.arange(start + window if inputs_inside else max(start, window), stop - horizon + 1)
    return out


def check_window_counts(rows: dict[str, np.ndarray], *, n_rows: int, window: int, horizon: int, what) -> None:
    """Every split needs at least one window (the training split two)."""
    for name, r in rows.items():
        need = 2 if name == "train" else 1
        if len(r) < need:
            raise InputError(
                f"{what} has {n_rows} rows: its {name} split holds {len(r)} window(s) of window {window} + "
                f"horizon {horizon}; use a longer series, a shorter window or horizon, or another --split"
            )


def cut(series: np.ndarray, rows: np.ndarray, *, inputs, targets, window: int, horizon: int) -> Windows:
    """Windows predicting rows ``r .. r+K-1`` from rows ``r-W .. r-1``, for each ``r`` in ``rows``."""
    r = np.asarray(rows)[:, None]
    x = series[r + np.arange(-window, 0)[None, :]][:, :, inputs]
    y = series[r + np.arange(horizon)[None, :]][:, :, targets]
    return Windows(x, y, np.asarray(rows))


def make_splits(
    series: np.ndarray,
    *,
    inputs: list[int],
    targets: list[int],
    window: int,
    horizon: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> tuple[dict[str, Windows], Scales]:
    """Windows of each split in z-scores, inputs and targets inside the split, and the scaler
    (fitted on the training rows only). Columns are named by their index in errors."""
    rows = window_rows(series.shape[0], fractions, window=window, horizon=horizon, inputs_inside=True)
    check_window_counts(rows, n_rows=series.shape[0], window=window, horizon=horizon, what="the series")
    scales = fit_scales(series[: split_rows(series.shape[0], fractions)[0][1]], list(range(series.shape[1])))
    scaled = scales.transform(series)
    cuts = {"inputs": inputs, "targets": targets, "window": window, "horizon": horizon}
    return {name: cut(scaled, r, **cuts) for name, r in rows.items()}, scales


def as_jnp(windows: Windows, dtype=jnp.float32) -> tuple[Array, Array]:
    """Windows for the RNN: ``x (N, W, D_in)`` and the horizon flattened into ``y (N, K*D_out)``."""
    return jnp.asarray(windows.x, dtype), jnp.asarray(windows.y.reshape(len(windows.y), -1), dtype)


def normalise(x: np.ndarray | Array, *, mode: str, scales: Scales, inputs, targets) -> Normalised:
    """Raw input windows ``x (N, W, D_in)`` in model units (see the module docstring).

    ``x`` may be a NumPy array or a JAX one (traced too, in float64 where ``jax.enable_x64``
    holds): the arithmetic is written once, in the array's own namespace."""
    if mode not in NORMALISATIONS:
        raise InputError(f"normalise must be one of {', '.join(NORMALISATIONS)}; got {mode!r}")
    xp = x.__array_namespace__()
    inputs, targets = list(inputs), list(targets)
    n = x.shape[0]
    if mode == "none":
        anchor_in = xp.broadcast_to(xp.asarray(scales.mean[inputs]), (n, len(inputs)))
        scale_in = xp.broadcast_to(xp.asarray(scales.std[inputs]), (n, len(inputs)))
    else:
        anchor_in = x[:, -1, :]
        scale_in = xp.broadcast_to(xp.asarray(scales.step[inputs]), (n, len(inputs)))
        if mode == "last_scale" and x.shape[1] > 1:
            rms = xp.sqrt(xp.mean(xp.diff(x, axis=1) ** 2, axis=1))
            scale_in = xp.maximum(rms, MIN_WINDOW_SCALE * scale_in)

    def per_target(of_inputs, saved):
        """``(N, D_out)``: a target's column of ``of_inputs`` where it is an input (and the
        window has a last value), else the training rows' statistic."""
        columns = [
            of_inputs[:, inputs.index(t)] if mode != "none" and t in inputs else xp.full((n,), saved[t])
            for t in targets
        ]
        return xp.stack(columns, axis=1)

    anchor, scale = per_target(anchor_in, scales.mean), per_target(scale_in, scales.std)
    return Normalised((x - anchor_in[:, None]) / scale_in[:, None], anchor, scale)


def out_of_range(
    train_x: np.ndarray, test_x: np.ndarray, names, *, factor: float = 0.25, normalise: str = "none"
) -> list[str]:
    """Warnings for input columns whose test values (model units) leave the training range by
    more than ``factor`` times its width; each suggests the next normalisation in
    ``NORMALISATIONS`` after ``normalise``, the one the run used (none after the last)."""
    later = NORMALISATIONS[NORMALISATIONS.index(normalise) + 1 :]
    hint = f" (try --normalise {later[0]})" if later else ""
    low, high = train_x.min(axis=(0, 1)), train_x.max(axis=(0, 1))
    width = np.maximum(high - low, 1e-12)
    beyond = np.maximum(test_x.max(axis=(0, 1)) - high, low - test_x.min(axis=(0, 1))) / width
    return [
        f"test inputs of column {name!r} reach {b:.1f}x the training range's width beyond it; the "
        f"model extrapolates there{hint}"
        for name, b in zip(names, beyond, strict=True)
        if b > factor
    ]
