"""``rnn-jax train --csv``: train on the user's own multivariate series and compare with two
honest baselines on the same split.

Columns are read strictly (``rnn_jax.csv_data``), the series is split by time into train /
validation / test, scaled with training statistics only, and cut into windows of ``window``
steps that predict the next ``horizon`` steps of the target columns (all steps at once: the
readout has ``horizon x targets`` outputs). Every run also fits persistence (repeat the last
value) and a least-squares linear autoregression on the same windows, and reports all three
per target column and per horizon step, in the columns' own units.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.args import RunOptions, make_checkpointing, parse_list
from rnn_jax.csv_data import check_enough_rows, read_csv_columns
from rnn_jax.data import WindowData, identity_scaler
from rnn_jax.io import save_figure, write_json
from rnn_jax.losses import batch_predict
from rnn_jax.plots import plot_horizon_errors, plot_losses
from rnn_jax.runner import fit
from rnn_jax.series import (
    as_jnp,
    check_split_sizes,
    fit_linear_ar,
    make_splits,
    persistence,
    predict_linear_ar,
    rmse_by_column_and_step,
)
from rnn_jax.train import HPARAM_HELP, TUNED, TrainConfig, check_config, make_hparams


@dataclasses.dataclass(frozen=True)
class CsvTrainConfig:
    """Everything a CSV run depends on; saved as config.json next to its results."""

    csv: str = ""
    inputs: str = ""  # comma-separated column names
    targets: str = ""
    window: int = 24
    horizon: int = 1
    split: str = "0.7,0.15,0.15"  # train, validation, test fractions of the rows, in time order
    train: TrainConfig = dataclasses.replace(TUNED, epochs=100, batch_size=16)
    learning_rate: float = 3e-3
    clip_threshold: float = 1.0
    truncation: int | None = None
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "csv": "the CSV file: a header row of column names, one row per time step",
        "inputs": "input columns, comma-separated",
        "targets": "columns to predict, comma-separated (may repeat inputs)",
        "window": "input steps per example",
        "horizon": "steps ahead to predict (all at once)",
        "split": "train,validation,test fractions of the rows, in time order",
        "seed": "random seed (initialisation, shuffling)",
        **HPARAM_HELP,
    }


def columns(cfg: CsvTrainConfig) -> tuple[list[str], list[str]]:
    """The input and target column names, checked."""
    for name in ("csv", "inputs", "targets"):
        if not getattr(cfg, name).strip():
            raise ValueError(f"--{name} is required")
    inputs = parse_list(cfg.inputs, "inputs", str)
    targets = parse_list(cfg.targets, "targets", str)
    for name, names in (("inputs", inputs), ("targets", targets)):
        if len(set(names)) != len(names) or "" in names:
            raise ValueError(f"{name} must name distinct, non-empty columns; got {getattr(cfg, name)!r}")
    return inputs, targets


def run_csv_training(cfg: CsvTrainConfig, options: RunOptions) -> dict:
    """Validate, train, evaluate against the baselines, write config/metrics/timing and figures."""
    inputs, targets = columns(cfg)
    fractions = tuple(parse_list(cfg.split, "split"))
    names = list(dict.fromkeys(inputs + targets))
    series = read_csv_columns(cfg.csv, names)
    check_enough_rows(series.shape[0], window=cfg.window, horizon=cfg.horizon, path=cfg.csv)
    check_split_sizes(series.shape[0], fractions, window=cfg.window, horizon=cfg.horizon, what=cfg.csv)
    in_idx, out_idx = [names.index(c) for c in inputs], [names.index(c) for c in targets]
    windows, scaler = make_splits(
        series, inputs=in_idx, targets=out_idx, window=cfg.window, horizon=cfg.horizon, fractions=fractions
    )
    (x_tr, y_tr), (x_va, y_va) = as_jnp(windows["train"]), as_jnp(windows["val"])
    data = WindowData(x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, scaler=identity_scaler())
    config = cfg.train
    check_config(config, x_tr.shape[0])
    hparams = make_hparams(
        learning_rate=cfg.learning_rate,
        clip_threshold=cfg.clip_threshold,
        truncation=cfg.truncation,
        seq_len=cfg.window,
    )
    checkpointing = make_checkpointing(options, dataclasses.asdict(cfg))
    result = fit(
        config,
        hparams,
        data,
        key=jax.random.key(cfg.seed),
        checkpointing=checkpointing,
        resume=options.resume,
    )

    std = scaler.std[out_idx]
    weights = fit_linear_ar(windows["train"])
    errors: dict[str, dict] = {}
    for split in ("val", "test"):
        w = windows[split]
        rnn = np.asarray(batch_predict(result.params, jnp.asarray(w.x, jnp.float32)))
        predictions = {
            "rnn": rnn.reshape(w.y.shape),
            "persistence": persistence(w, in_idx, out_idx) if set(out_idx) <= set(in_idx) else None,
            "linear_ar": predict_linear_ar(weights, w),
        }
        errors[split] = {
            model: None
            if pred is None
            else {
                col: rmse_by_column_and_step(pred, w.y, std)[:, j].tolist() for j, col in enumerate(targets)
            }
            for model, pred in predictions.items()
        }
    metrics = {
        "units": "RMSE in each target column's own units, one value per horizon step",
        "rows": {"total": int(series.shape[0]), **{s: len(windows[s].x) for s in ("train", "val", "test")}},
        "train_loss": result.metrics["train_loss"],
        "val_loss": result.metrics["val_loss"],
        "diverged_at_epoch": result.diverged_at_epoch,
        "rmse": errors,
        "mean_rmse": {
            split: {
                model: None if per is None else {col: float(np.mean(v)) for col, v in per.items()}
                for model, per in by_model.items()
            }
            for split, by_model in errors.items()
        },
    }
    out = options.out
    write_json(out / "config.json", dataclasses.asdict(cfg))
    write_json(out / "metrics.json", metrics)
    write_json(
        out / "timing.json", {"wall_seconds": result.wall_seconds, "compile_seconds": result.compile_seconds}
    )
    save_figure(
        plot_losses(
            {"train": result.metrics["train_loss"], "validation": result.metrics["val_loss"]},
            ylabel="0.5 x mean squared error (scaled units)",
        ),
        out / "loss.png",
    )
    save_figure(plot_horizon_errors(errors["test"], title="test split"), out / "horizon.png")
    return metrics


def format_summary(metrics: dict) -> str:
    """A per-column table of mean test RMSE: the RNN and both baselines."""
    test = metrics["mean_rmse"]["test"]
    lines = [f"{'test RMSE':<16} {'rnn':>10} {'persistence':>12} {'linear AR':>10}"]
    for col, value in test["rnn"].items():
        pers = "n/a" if test["persistence"] is None else f"{test['persistence'][col]:.4g}"
        lines.append(f"{col:<16} {value:>10.4g} {pers:>12} {test['linear_ar'][col]:>10.4g}")
    return "\n".join(lines)
