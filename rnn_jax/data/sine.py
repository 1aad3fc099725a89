"""Sine-wave windows with the tutorial's split, and a scaler fitted on training data only."""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rnn_jax.errors import InputError, InputTypeError
from rnn_jax.resources import check_fits


class Scaler(eqx.Module):
    """Affine map ``z = (v - mean) / std`` fitted on the training part of a series."""

    mean: Float[Array, ""]
    std: Float[Array, ""]

    def transform(self, values: Array) -> Array:
        return (values - self.mean) / self.std

    def inverse(self, values: Array) -> Array:
        return values * self.std + self.mean


def identity_scaler(dtype=jnp.float32) -> Scaler:
    """A scaler that leaves values unchanged (the tutorial does not scale)."""
    return Scaler(mean=jnp.zeros((), dtype), std=jnp.ones((), dtype))


class WindowData(eqx.Module):
    """Training and validation sequences; every array is in the scaler's (model) units.

    Targets are real ``(N, O)`` (``target="last"``) or ``(N, T, O)`` (``"all"``), or integer
    class labels ``(N,)`` / ``(N, T)`` in ``[0, classes)`` for cross-entropy. Optional masks
    ``(N, T)`` mark the steps that exist (``rnn_jax.loss``'s ``mask``)."""

    x_train: Float[Array, "N_train T D"]
    y_train: Array
    x_val: Float[Array, "N_val T D"]
    y_val: Array
    scaler: Scaler
    m_train: Bool[Array, "N_train T"] | None = None
    m_val: Bool[Array, "N_val T"] | None = None
    classes: int = eqx.field(static=True, default=0)  # > 0: the targets are labels

    @property
    def output_dim(self) -> int:
        return self.classes if self.classes else self.y_train.shape[-1]


def check_window_data(data: WindowData) -> None:
    """Type, floating dtype, shapes that agree and finite values, checked on the host before
    anything compiles. Raises ``TypeError`` or ``ValueError`` naming the offending array."""
    if not isinstance(data, WindowData):
        raise InputTypeError(f"data must be a WindowData; got {type(data).__name__}")
    dtype = jnp.result_type(data.x_train)
    labels = data.classes > 0
    for name in ("x_train", "y_train", "x_val", "y_val"):
        values = getattr(data, name)
        kind = getattr(values, "dtype", type(values).__name__)
        if labels and name.startswith("y"):
            if not hasattr(values, "dtype") or not jnp.issubdtype(values.dtype, jnp.integer):
                raise InputTypeError(
                    f"{name} must hold integer class labels (classes={data.classes}); got {kind}"
                )
            continue
        if not hasattr(values, "dtype") or not jnp.issubdtype(values.dtype, jnp.floating):
            raise InputTypeError(f"{name} must be a floating-point array; got {kind}")
        if values.dtype != dtype:
            raise InputTypeError(f"{name} is {values.dtype} but x_train is {dtype}; use one dtype throughout")
    for split in ("train", "val"):
        xs, ys = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        per_step = ys.ndim == (2 if labels else 3)
        want = f"(N,{' T,' if per_step else ''}{'' if labels else ' O'})".replace(",)", ")")
        if xs.ndim != 3 or ys.ndim not in ((1, 2) if labels else (2, 3)) or xs.shape[0] != ys.shape[0]:
            raise InputError(
                f"x_{split} must be (N, T, D) and y_{split} {want} with the same N; "
                f"got {tuple(xs.shape)} and {tuple(ys.shape)}"
            )
        if xs.shape[0] < 1 or (per_step and ys.shape[1] != xs.shape[1]):
            raise InputError(
                f"x_{split} {tuple(xs.shape)} and y_{split} {tuple(ys.shape)} must hold N >= 1 "
                "examples with a target at every step"
            )
        mask = getattr(data, f"m_{split}")
        if mask is not None and (tuple(mask.shape) != xs.shape[:2] or mask.dtype != jnp.bool_):
            raise InputError(
                f"m_{split} must be a boolean (N, T) = {xs.shape[:2]} mask; got {mask.shape} {mask.dtype}"
            )
        for name, values in ((f"x_{split}", xs), (f"y_{split}", ys)):
            bad = int(jnp.sum(~jnp.isfinite(values)))
            if bad:
                raise InputError(f"{name} holds {bad} NaN or infinite values; clean the data first")
        if labels and (int(jnp.min(ys)) < 0 or int(jnp.max(ys)) >= data.classes):
            low, high = int(jnp.min(ys)), int(jnp.max(ys))
            raise InputError(
                f"y_{split} labels must lie in [0, {data.classes}) (skipped steps too); got {low}..{high}"
            )
    if data.x_train.shape[1:] != data.x_val.shape[1:] or data.y_train.shape[1:] != data.y_val.shape[1:]:
        raise InputError("train and validation windows must have the same length and sizes")
    if (data.m_train is None) != (data.m_val is None):
        raise InputError("give masks for both splits (m_train and m_val) or for neither")


def sine_series(
    *,
    length: int = 200,
    step: float = 1.0,
    frequency: float = 1.0,
    noise: float = 0.0,
    key: PRNGKeyArray | None = None,
    dtype=jnp.float32,
) -> Float[Array, " L"]:
    """``series[i] = sin(frequency * step * i) + noise * eps_i`` for ``i = 0 .. length-1``.

    ``frequency`` is in radians per unit time and ``step`` is the sampling interval, so the
    defaults give the tutorial's ``sin(i)``. ``eps_i`` is standard normal (needs ``key``).
    """
    t = jnp.arange(length, dtype=jnp.float64 if dtype == jnp.float64 else jnp.float32) * step
    series = jnp.sin(frequency * t).astype(dtype)
    if noise > 0:
        if key is None:
            raise InputError("key is required when noise > 0")
        series = series + noise * jax.random.normal(key, (length,), dtype)
    return series


def sliding_windows(series: Float[Array, " L"], window: int) -> tuple[Array, Array]:
    """Inputs ``series[r : r+window]`` ``(R, window, 1)`` and targets ``series[r+window]``
    ``(R, 1)`` for every start ``r = 0 .. L-window-1``."""
    n = series.shape[0] - window
    idx = jnp.arange(n)[:, None] + jnp.arange(window)[None, :]
    return series[idx][..., None], series[window:][:, None]


def n_train_windows(n_windows: int, train_fraction: float) -> int:
    """How many of the first windows train; the tutorial's 150 windows give 100."""
    return int(math.floor(n_windows * train_fraction + 0.5))


def check_sine_args(*, length: int, window: int, train_fraction: float, step: float, noise: float) -> None:
    """Errors name the argument and the expected range."""
    if window < 1:
        raise InputError(f"window must be >= 1; got {window}")
    if length <= window + 1:
        raise InputError(f"window ({window}) must be shorter than the series length ({length}) minus 1")
    if not 0.0 < train_fraction < 1.0:
        raise InputError(f"train_fraction must be in (0, 1); got {train_fraction}")
    n_windows = length - window
    n_train = n_train_windows(n_windows, train_fraction)
    if not 1 <= n_train < n_windows:
        raise InputError(
            f"train_fraction={train_fraction} leaves no training or no validation windows out of {n_windows}"
        )
    if not (math.isfinite(step) and step > 0):
        raise InputError(f"step must be a positive number; got {step}")
    if not (math.isfinite(noise) and noise >= 0):
        raise InputError(f"noise must be a non-negative number; got {noise}")
    windows = n_windows * (window + 1) * 4  # float32 inputs and targets
    check_fits({"windows": windows}, what="the series' windows", advice="use a smaller length or window")


def make_sine_data(
    *,
    length: int = 200,
    step: float = 1.0,
    frequency: float = 1.0,
    noise: float = 0.0,
    window: int = 50,
    train_fraction: float = 2 / 3,
    scale: bool = False,
    key: PRNGKeyArray | None = None,
    dtype=jnp.float32,
) -> WindowData:
    """The tutorial's task: windows of ``window`` values predict the next one.

    The first ``train_fraction`` of the windows (by start time) train, the rest validate. The
    defaults reproduce the tutorial exactly: 150 windows, starts 0..99 train (``x_train``
    ``(100, 50, 1)``) and 100..149 validate (``x_val`` ``(50, 50, 1)``).

    With ``scale=True`` the series is standardised by statistics of the values the training
    windows touch (``series[: n_train + window]``) only; ``scaler.inverse`` maps back.
    """
    check_sine_args(length=length, window=window, train_fraction=train_fraction, step=step, noise=noise)
    if noise > 0 and key is None:
        raise InputError("key is required when noise > 0")
    n_train = n_train_windows(length - window, train_fraction)
    data = _build_sine_data(
        length,
        step,
        frequency,
        noise,
        window,
        n_train,
        scale,
        jnp.dtype(dtype),
        jax.random.key(0) if key is None else key,
    )
    if scale and not float(data.scaler.std) > 0:
        raise InputError("scale=True needs a training series that is not constant")
    return data


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
def _build_sine_data(length, step, frequency, noise, window, n_train, scale, dtype, key) -> WindowData:
    # One compiled program: building the arrays op by op costs a compilation per op.
    series = sine_series(length=length, step=step, frequency=frequency, noise=noise, key=key, dtype=dtype)
    train_values = series[: n_train + window]
    scaler = (
        Scaler(mean=jnp.mean(train_values), std=jnp.std(train_values)) if scale else identity_scaler(dtype)
    )
    xs, ys = sliding_windows(scaler.transform(series), window)
    return WindowData(
        x_train=xs[:n_train], y_train=ys[:n_train], x_val=xs[n_train:], y_val=ys[n_train:], scaler=scaler
    )
