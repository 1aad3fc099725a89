"""``rnn-jax train --csv``: train on the user's own series and compare with honest baselines on
the same test windows.

Columns are read from the CSV (``rnn_jax.data.csv``: gaps filled on request, an optional time
column checked for order and spacing), split by time into train / validation / test, and cut
into windows of ``window`` steps that predict the next ``horizon`` steps of the target columns
(all at once: the readout has ``horizon x targets`` outputs). Each window is normalised on its
own (``rnn_jax.data.windows``). ``seeds`` models train as one vmapped program (``rnn_jax.runs.sweep``);
each keeps the parameters of its best validation epoch (``--select``), may stop early
(``--patience``) and may be trained again on train + validation for the chosen number of
epochs (``--refit``). The ensemble's mean forecast is scored against persistence, a seasonal
naive forecast (``--season``) and a least-squares linear autoregression, per target column and
per step ahead, in the columns' own units.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.data.baselines import fit_linear_ar, persistence, predict_linear_ar, seasonal_naive
from rnn_jax.data.csv import FILLS, MAX_CSV_BYTES, Series, check_enough_rows, read_series
from rnn_jax.data.sine import WindowData, identity_scaler
from rnn_jax.data.windows import (
    NORMALISATIONS,
    Normalised,
    Scales,
    Windows,
    check_window_counts,
    cut,
    fit_scales,
    normalise,
    out_of_range,
    split_rows,
    window_rows,
)
from rnn_jax.errors import InputError
from rnn_jax.forecast.outputs import stamp, write_outputs
from rnn_jax.io import read_regular_file
from rnn_jax.loss import batch_predict
from rnn_jax.resources import TRAINING_ADVICE, check_fits
from rnn_jax.runs.checkpoint import DATA_KEY
from rnn_jax.runs.options import RunOptions, epoch_log, make_checkpointing, parse_list
from rnn_jax.runs.sweep import grid, run_sweep
from rnn_jax.train.loop import HPARAM_HELP, TrainConfig, check_config, make_hparams, training_parts

FEW_WINDOWS = 10  # a split with fewer windows than this gets a warning: its RMSE is noisy


@dataclasses.dataclass(frozen=True)
class CsvTrainConfig:
    """Everything a CSV run depends on; saved as config.json next to its results."""

    csv: str = ""
    inputs: str = ""  # comma-separated column names
    targets: str = ""
    time: str | None = None
    fill: str = "none"
    window: int = 24
    horizon: int = 1
    split: str = "0.7,0.15,0.15"  # train, validation, test fractions of the rows, in time order
    normalise: str = "last"
    season: int = 0
    seeds: int = 8
    refit: bool = True
    shrink: bool = True
    train: TrainConfig = dataclasses.replace(TrainConfig(), epochs=100, batch_size=16, select="best")
    learning_rate: float = 3e-3
    clip_threshold: float = 1.0
    truncation: int | None = None
    seed: int = 0

    CHOICES: ClassVar[dict] = {"fill": FILLS, "normalise": NORMALISATIONS}
    HELP: ClassVar[dict[str, str]] = {
        "csv": "the CSV file: a header row of column names, one row per time step (required)",
        "inputs": "input columns, comma-separated (required)",
        "targets": "columns to predict, comma-separated; may repeat inputs (required)",
        "time": "a time column: numbers or ISO dates (YYYY-MM, YYYY-MM-DD, YYYY-MM-DDTHH:MM); rows "
        "must be in order, without duplicates, regularly spaced; its stamps label the outputs",
        "fill": "what to do with missing values and missing time steps: none refuses them, linear "
        "interpolates, ffill repeats the last value",
        "window": "input steps per example",
        "horizon": "steps ahead to predict (all at once)",
        "split": "train,validation,test fractions of the rows, in time order, comma-separated",
        "normalise": "per-window normalisation: last predicts the change from the window's last "
        "value, last_scale also divides by the window's size of "
        "change, none z-scores with the training rows' statistics",
        "season": "season length in steps for the seasonal naive baseline (0: no seasonal baseline)",
        "seeds": "ensemble members, trained at once (vmapped); the forecast is their mean",
        "shrink": "shrink the RNN's forecast toward persistence by a weight in [0, 1] per column and "
        "step ahead, fitted on the validation windows (where persistence exists)",
        "refit": "after choosing the epoch count on validation, train again on train + validation "
        "(the linear AR is then fitted on both too)",
        "seed": "random seed (initialisation, shuffling)",
        **HPARAM_HELP,
    }


class Prepared(NamedTuple):
    """A CSV run's data: the series, its columns, splits, scales and windows."""

    series: Series
    inputs: list[int]  # indices of the input columns in series.values
    targets: list[int]
    names: list[str]  # every column read, inputs first
    rows: dict[str, np.ndarray]  # per split, each window's first target row
    scales: Scales
    windows: dict[str, Windows]  # raw values
    model: dict[str, Normalised]  # model units


def columns(cfg: CsvTrainConfig) -> tuple[list[str], list[str]]:
    """The input and target column names, checked."""
    for name in ("csv", "inputs", "targets"):
        if not getattr(cfg, name).strip():
            raise InputError(f"--{name} is required")
    inputs = parse_list(cfg.inputs, "inputs", str)
    targets = parse_list(cfg.targets, "targets", str)
    for name, names in (("inputs", inputs), ("targets", targets)):
        if len(set(names)) != len(names) or "" in names:
            raise InputError(f"{name} must name distinct, non-empty columns; got {getattr(cfg, name)!r}")
    return inputs, targets


def check_csv_config(cfg: CsvTrainConfig) -> None:
    """The CSV run's own options (the training ones are checked by ``check_config``)."""
    if cfg.normalise not in NORMALISATIONS:
        raise InputError(f"normalise must be one of {', '.join(NORMALISATIONS)}; got {cfg.normalise!r}")
    for name, low in (("window", 1), ("horizon", 1), ("seeds", 1), ("season", 0)):
        if getattr(cfg, name) < low:
            raise InputError(f"{name} must be an integer >= {low}; got {getattr(cfg, name)}")


def prepare_series(cfg: CsvTrainConfig) -> Prepared:
    """Read, split, scale and window the CSV as ``cfg`` says; every problem is one ``ValueError``."""
    inputs, targets = columns(cfg)
    check_csv_config(cfg)
    fractions = tuple(parse_list(cfg.split, "split"))
    names = list(dict.fromkeys(inputs + targets))
    series = read_series(cfg.csv, names, time=cfg.time, fill=cfg.fill)
    n_rows = series.values.shape[0]
    check_enough_rows(n_rows, window=cfg.window, horizon=cfg.horizon, path=cfg.csv)
    rows = window_rows(n_rows, fractions, window=cfg.window, horizon=cfg.horizon)
    check_window_counts(rows, n_rows=n_rows, window=cfg.window, horizon=cfg.horizon, what=cfg.csv)
    train_stop = split_rows(n_rows, fractions)[0][1]
    if cfg.season >= train_stop or cfg.season > rows["val"][0]:
        raise InputError(f"season ({cfg.season}) must be shorter than the training part ({train_stop} rows)")
    scales = fit_scales(series.values[:train_stop], names)
    in_idx, out_idx = [names.index(c) for c in inputs], [names.index(c) for c in targets]
    windows = {
        split: cut(series.values, r, inputs=in_idx, targets=out_idx, window=cfg.window, horizon=cfg.horizon)
        for split, r in rows.items()
    }
    model = {
        split: normalise(w.x, mode=cfg.normalise, scales=scales, inputs=in_idx, targets=out_idx)
        for split, w in windows.items()
    }
    return Prepared(series, in_idx, out_idx, names, rows, scales, windows, model)


def window_data(prep: Prepared, train_splits: tuple[str, ...]) -> WindowData:
    """Model-unit windows for training: ``train_splits`` as training data, the validation split
    for validation. Targets are flattened to ``(N, K * D_out)``."""

    def xy(split):
        w, m = prep.windows[split], prep.model[split]
        y = m.targets(w.y)
        return m.x, y.reshape(len(y), -1)

    parts = [xy(s) for s in train_splits]
    x_val, y_val = xy("val")
    return WindowData(
        x_train=jnp.asarray(np.concatenate([p[0] for p in parts]), jnp.float32),
        y_train=jnp.asarray(np.concatenate([p[1] for p in parts]), jnp.float32),
        x_val=jnp.asarray(x_val, jnp.float32),
        y_val=jnp.asarray(y_val, jnp.float32),
        scaler=identity_scaler(),
    )


def data_identity(path: str) -> str:
    """SHA-256 of the CSV's bytes: a checkpoint resumes only on the data it was trained on."""
    return hashlib.sha256(read_regular_file(path, limit=MAX_CSV_BYTES, what="CSV file")).hexdigest()


class Trained(NamedTuple):
    params: object  # RNN with a leading member axis (M, ...)
    val_forecast: np.ndarray  # (N_val, K, D_out) the selected members' mean, before any refit
    metrics: dict[str, np.ndarray]  # each (M, epochs) of the selection run
    best_epoch: np.ndarray  # (M,)
    refit_epochs: int | None
    wall_seconds: float
    compile_seconds: float


def train_members(cfg: CsvTrainConfig, prep: Prepared, options: RunOptions, progress: bool = True) -> Trained:
    """Train ``cfg.seeds`` members at once; with ``refit``, train them again on train +
    validation for the median of their best epochs. Checkpointed and resumable."""
    config = cfg.train
    data = window_data(prep, ("train",))
    check_config(config, data.x_train.shape[0])
    # Before the members are drawn: their table alone outgrows memory at absurd counts.
    one = make_hparams(learning_rate=cfg.learning_rate, seq_len=cfg.window, truncation=cfg.truncation)
    parts = training_parts(config, one, data, members=cfg.seeds, parallel=cfg.seeds)
    check_fits(
        parts, what=f"an ensemble of {cfg.seeds} members", advice=f"{TRAINING_ADVICE}, or fewer --seeds"
    )
    members = grid(
        key=jax.random.key(cfg.seed),
        n_seeds=cfg.seeds,
        seq_len=cfg.window,
        learning_rate=[cfg.learning_rate],
        truncation=[cfg.truncation],
        clip_threshold=[cfg.clip_threshold],
    )
    identity = {**dataclasses.asdict(cfg), DATA_KEY: data_identity(cfg.csv)}
    checkpointing = make_checkpointing(options, identity)
    devices = jax.devices()[: min(cfg.seeds, jax.device_count())]
    chosen = run_sweep(
        config,
        members,
        data,
        devices=devices,
        checkpointing=checkpointing,
        resume=options.resume,
        progress=progress and not options.quiet,
        log=epoch_log(options),
    )
    wall, compile_s = chosen.wall_seconds, chosen.compile_seconds
    val_forecast = ensemble_forecast(chosen.params, prep.model["val"], cfg.horizon)[0]
    if not cfg.refit:
        return Trained(chosen.params, val_forecast, chosen.metrics, chosen.best_epoch, None, wall, compile_s)
    epochs = max(1, int(round(float(np.median(chosen.best_epoch)))))
    refit_config = dataclasses.replace(config, epochs=epochs, select="last", patience=0)
    refit_data = window_data(prep, ("train", "val"))
    refit_options = options._replace(out=options.out / "refit")
    refit_checkpointing = make_checkpointing(
        refit_options._replace(resume=options.resume and (refit_options.out / "checkpoint.eqx").exists()),
        {**identity, "refit_epochs": epochs},
    )
    again = run_sweep(
        refit_config,
        members,
        refit_data,
        devices=devices,
        checkpointing=refit_checkpointing,
        resume=options.resume and refit_checkpointing.path.exists(),
        progress=progress and not options.quiet,
        log=epoch_log(refit_options),
    )
    return Trained(
        again.params,
        val_forecast,
        chosen.metrics,
        chosen.best_epoch,
        epochs,
        wall + again.wall_seconds,
        compile_s + again.compile_seconds,
    )


@jax.jit
def member_predictions(params, x):
    """Every member's predictions ``(M, N, O)`` for windows ``x (N, W, D)``."""
    return jax.vmap(lambda p: batch_predict(p, x))(params)


def ensemble_forecast(params, norm: Normalised, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, spread, members)`` in the series' own units: the members' mean and standard
    deviation ``(N, K, D_out)``, and each member's forecast ``(M, N, K, D_out)``."""
    raw = np.asarray(member_predictions(params, jnp.asarray(norm.x, jnp.float32)), np.float64)
    levels = np.stack([norm.levels(r.reshape(r.shape[0], horizon, -1)) for r in raw])
    return levels.mean(axis=0), levels.std(axis=0), levels


def baselines(cfg: CsvTrainConfig, prep: Prepared, split: str, fitted_on: tuple[str, ...]) -> dict:
    """Persistence (when every target is an input), the seasonal naive forecast (with a season)
    and the linear autoregression fitted on ``fitted_on``, each ``(N, K, D_out)`` or ``None``."""

    def z_windows(s):
        w = prep.windows[s]
        z = normalise(w.x, mode="none", scales=prep.scales, inputs=prep.inputs, targets=prep.targets)
        return Windows(z.x, z.targets(w.y), w.rows), z

    fit = [z_windows(s)[0] for s in fitted_on]
    weights = fit_linear_ar(Windows(*(np.concatenate([getattr(f, a) for f in fit]) for a in Windows._fields)))
    scaled, z = z_windows(split)
    w = prep.windows[split]
    all_inputs = set(prep.targets) <= set(prep.inputs)
    positions = list(range(len(prep.inputs)))
    as_inputs = [prep.inputs.index(t) for t in prep.targets] if all_inputs else None
    out = {
        "persistence": persistence(w, positions, as_inputs) if all_inputs else None,
        "seasonal_naive": None,
        "linear_ar": z.levels(predict_linear_ar(weights, scaled)),
    }
    if cfg.season and all_inputs:
        out["seasonal_naive"] = seasonal_naive(
            prep.series.values, prep.rows[split], season=cfg.season, horizon=cfg.horizon, targets=prep.targets
        )
    return out


def shrink_weights(rnn: np.ndarray, anchor: np.ndarray | None, truth: np.ndarray) -> np.ndarray:
    """Least-squares weights ``(K, D_out)`` in [0, 1] for ``anchor + a * (rnn - anchor)`` against
    ``truth``, all ``(N, K, D_out)``: how far to trust the RNN's departure from persistence. Ones
    when there is no anchor."""
    if anchor is None:
        return np.ones(rnn.shape[1:])
    move, needed = rnn - anchor, truth - anchor
    scale = np.sum(move * move, axis=0)
    weights = np.where(scale > 0, np.sum(move * needed, axis=0) / np.where(scale > 0, scale, 1.0), 1.0)
    return np.clip(weights, 0.0, 1.0)


def shrunk(rnn: np.ndarray, anchor: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
    """``anchor + weights * (rnn - anchor)``; the forecast itself without an anchor."""
    return rnn if anchor is None else anchor + weights * (rnn - anchor)


def rmse_per_step(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RMSE over windows, ``(K, D_out)``: one per step ahead and target column."""
    return np.sqrt(np.mean((np.asarray(prediction, np.float64) - truth) ** 2, axis=0))


def warnings_for(cfg: CsvTrainConfig, prep: Prepared) -> list[str]:
    """What the user should know before trusting the numbers: tiny splits, extrapolation."""
    out = [
        f"the {split} split has only {len(r)} windows; its RMSE is a noisy estimate"
        for split, r in prep.rows.items()
        if len(r) < FEW_WINDOWS
    ]
    names = [prep.names[i] for i in prep.inputs]
    return out + out_of_range(prep.model["train"].x, prep.model["test"].x, names, normalise=cfg.normalise)


def run_csv_training(cfg: CsvTrainConfig, options: RunOptions, progress: bool = True) -> dict:
    """Validate, train, evaluate against the baselines; write config, metrics, timing,
    predictions, the model and figures to ``options.out``."""
    prep = prepare_series(cfg)
    warnings = warnings_for(cfg, prep)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    trained = train_members(cfg, prep, options, progress)
    fitted_on = ("train", "val") if cfg.refit else ("train",)
    targets = [prep.names[i] for i in prep.targets]
    predictions, errors, member_errors = {}, {}, {}
    weights = None
    for split in ("val", "test"):
        _, _, members = ensemble_forecast(trained.params, prep.model[split], cfg.horizon)
        truth = prep.windows[split].y
        others = baselines(cfg, prep, split, fitted_on)
        anchor = others["persistence"] if cfg.shrink else None
        if weights is None:  # fitted on the validation split (held out while the epoch was chosen)
            weights = shrink_weights(trained.val_forecast, anchor, truth)
        members = np.stack([shrunk(m, anchor, weights) for m in members])
        predictions[split] = {"rnn": members.mean(axis=0), "rnn_spread": members.std(axis=0), **others}
        errors[split] = {
            model: None if pred is None else _per_column(rmse_per_step(pred, truth), targets)
            for model, pred in predictions[split].items()
            if model != "rnn_spread"
        }
        member_errors[split] = [_per_column(rmse_per_step(m, truth), targets) for m in members]
    first, last = int(prep.rows["test"][0]), int(prep.rows["test"][-1]) + cfg.horizon - 1
    metrics = {
        "units": "RMSE in each target column's own units, one value per step ahead, over the "
        "split's windows; mean_rmse averages those over the steps ahead",
        "rows": {
            "total": int(prep.series.values.shape[0]),
            "filled_values": prep.series.filled,
            **{s: int(b - a) for s, (a, b) in zip(("train", "val", "test"), _bounds(cfg, prep), strict=True)},
        },
        "windows": {s: len(r) for s, r in prep.rows.items()},
        "test_period": {"first": stamp(prep, first), "last": stamp(prep, last)},
        "normalise": cfg.normalise,
        "rnn_trained_on": "train+val" if cfg.refit else "train",
        "shrink_weights": None if not cfg.shrink else _per_column(weights, targets),
        "linear_ar_fitted_on": "+".join(fitted_on),
        "members": cfg.seeds,
        "best_epoch": trained.best_epoch.tolist(),
        "refit_epochs": trained.refit_epochs,
        "stopped_at_epoch": [_first_positive(v) for v in trained.metrics["stopped_at"]],
        "train_loss": np.mean(trained.metrics["train_loss"], axis=0).tolist(),
        "val_loss": np.mean(trained.metrics["val_loss"], axis=0).tolist(),
        "diverged_at_epoch": _first_diverged(trained.metrics),
        "rmse": errors,
        "mean_rmse": {
            split: {
                model: None if per is None else {col: float(np.mean(v)) for col, v in per.items()}
                for model, per in by_model.items()
            }
            for split, by_model in errors.items()
        },
        "member_rmse": member_errors,
        "test_spread": {
            col: float(np.mean(predictions["test"]["rnn_spread"][..., j])) for j, col in enumerate(targets)
        },
        "warnings": warnings,
    }
    write_outputs(cfg, prep, options.out, metrics, predictions, trained, weights)
    return metrics


def _bounds(cfg: CsvTrainConfig, prep: Prepared):
    return split_rows(prep.series.values.shape[0], tuple(parse_list(cfg.split, "split")))


def _per_column(rmse: np.ndarray, names: list[str]) -> dict[str, list[float]]:
    return {col: rmse[:, j].tolist() for j, col in enumerate(names)}


def _first_positive(values) -> int | None:
    hits = np.flatnonzero(np.asarray(values) > 0)
    return int(values[hits[0]]) if hits.size else None


def _first_diverged(metrics: dict) -> int | None:
    """The earliest epoch (1-based) in which any member diverged, else ``None``."""
    flagged = np.asarray(metrics["diverged_at_step"]) > 0
    epochs = [int(np.argmax(row)) + 1 for row in flagged if row.any()]
    return min(epochs) if epochs else None
