"""What a CSV run leaves behind: its config, metrics, predictions, model and figures.

``predictions.csv`` has one row per window, step ahead and target column of the validation and
test splits: the predicted row's time stamp, the truth, the RNN ensemble's mean and spread and
every baseline. ``model.eqx`` holds the members' parameters with what ``rnn-jax forecast``
needs to use them on new rows (the scales, the time axis, the columns).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from rnn_jax.io import save_figure, write_atomic, write_json
from rnn_jax.plots import plot_horizon_errors, plot_losses, plot_test_forecasts
from rnn_jax.runs.checkpoint import save_model

MODEL_FILE = "model.eqx"
MODELS = ("rnn", "rnn_spread", "persistence", "seasonal_naive", "linear_ar")


def stamp(prep, row: int) -> str:
    """Row ``row``'s time stamp, or its index without a time column."""
    return str(row) if prep.series.time is None else prep.series.time.stamp(row)


def model_description(cfg, prep, weights) -> dict:
    """JSON-able: how ``rnn-jax forecast`` rebuilds and feeds the saved members."""
    return {
        "names": prep.names,
        "inputs": [prep.names[i] for i in prep.inputs],
        "targets": [prep.names[i] for i in prep.targets],
        "scales": prep.scales.describe(),
        "time": None if prep.series.time is None else prep.series.time.describe(),
        "members": cfg.seeds,
        "window": cfg.window,
        "horizon": cfg.horizon,
        "normalise": cfg.normalise,
        "shrink_weights": None if not cfg.shrink else np.asarray(weights).tolist(),
    }


def predictions_table(prep, predictions: dict) -> str:
    """The long-format CSV text of every validation and test prediction."""
    time_name = "row" if prep.series.time is None else "time"
    targets = [prep.names[i] for i in prep.targets]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", time_name, "step_ahead", "column", "truth", *MODELS])
    for split, by_model in predictions.items():
        truth = prep.windows[split].y
        for n, row in enumerate(prep.rows[split]):
            for k in range(truth.shape[1]):
                for j, col in enumerate(targets):
                    values = [
                        "" if by_model.get(m) is None else f"{by_model[m][n, k, j]:.9g}" for m in MODELS
                    ]
                    writer.writerow(
                        [split, stamp(prep, int(row) + k), k + 1, col, f"{truth[n, k, j]:.9g}", *values]
                    )
    return buffer.getvalue()


def write_outputs(cfg, prep, out: Path, metrics: dict, predictions: dict, trained, weights) -> None:
    """Write every output of a CSV run to ``out`` (each file atomically)."""
    write_json(out / "config.json", dataclasses.asdict(cfg))
    write_json(out / "metrics.json", metrics)
    write_json(
        out / "timing.json",
        {"wall_seconds": trained.wall_seconds, "compile_seconds": trained.compile_seconds},
    )
    table = predictions_table(prep, predictions)
    write_atomic(out / "predictions.csv", lambda f: f.write(table.encode()))
    save_model(out / MODEL_FILE, trained.params, description=model_description(cfg, prep, weights))
    save_figure(
        plot_losses(
            {"train": metrics["train_loss"], "validation": metrics["val_loss"]},
            ylabel="loss (model units; mean over members)",
        ),
        out / "loss.png",
    )
    save_figure(plot_horizon_errors(metrics["rmse"]["test"], title="test split"), out / "horizon.png")
    test = predictions["test"]
    rows = prep.rows["test"]
    labels = [stamp(prep, int(r)) for r in rows]
    targets = [prep.names[i] for i in prep.targets]
    save_figure(
        plot_test_forecasts(
            labels,
            prep.windows["test"].y[:, 0],
            {m: None if test[m] is None else np.asarray(test[m])[:, 0] for m in MODELS if m != "rnn_spread"},
            test["rnn_spread"][:, 0],
            targets,
            title=f"test split, one step ahead ({metrics['members']} member(s); band: ±1 spread)",
        ),
        out / "forecast.png",
    )


def format_summary(metrics: dict) -> str:
    """Window counts, the test period, and per column the mean test RMSE of the RNN (with the
    ensemble's spread) and of each baseline."""
    w, period = metrics["windows"], metrics["test_period"]
    test = metrics["mean_rmse"]["test"]
    steps = len(next(iter(metrics["rmse"]["test"]["rnn"].values())))
    lines = [
        f"windows: train {w['train']}, validation {w['val']}, test {w['test']}; "
        f"test period {period['first']} .. {period['last']}",
        f"test RMSE, the mean over {steps} step(s) ahead (per step: metrics.json, horizon.png); "
        f"RNN: mean of {metrics['members']} member(s) trained on {metrics['rnn_trained_on']}, "
        f"linear AR fitted on {metrics['linear_ar_fitted_on']}",
        f"{'column':<16} {'RNN':>10} {'spread':>9} {'persistence':>12} {'seasonal':>10} {'linear AR':>10}",
    ]
    for j, (col, value) in enumerate(test["rnn"].items()):

        def cell(model, width, col=col):
            return f"{'n/a':>{width}}" if test[model] is None else f"{test[model][col]:>{width}.4g}"

        spread = list(metrics["test_spread"].values())[j]
        lines.append(
            f"{col:<16} {value:>10.4g} {spread:>9.3g} {cell('persistence', 12)} "
            f"{cell('seasonal_naive', 10)} {cell('linear_ar', 10)}"
        )
    return "\n".join(lines)
