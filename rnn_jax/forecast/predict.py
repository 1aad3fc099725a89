"""``rnn-jax forecast``: a trained CSV run forecasts past the end of a file.

The run's folder holds its ``config.json`` and ``model.eqx`` (the members' parameters, the
training rows' scales and the columns). The CSV is read as the run read its own (same columns,
time column and fill), its last ``window`` rows are normalised as in training, and each member
forecasts the next ``horizon`` rows; the forecast is the members' mean. Further steps feed the
forecast back in as inputs (closed loop), which needs every input column among the targets.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.data.csv import header_of, read_series
from rnn_jax.data.sine import WindowData, identity_scaler
from rnn_jax.data.timeaxis import TimeAxis, spacing_text
from rnn_jax.data.windows import Scales, normalise
from rnn_jax.errors import InputError
from rnn_jax.forecast.outputs import MODEL_FILE
from rnn_jax.forecast.train import CsvTrainConfig, member_predictions
from rnn_jax.io import check_field_types, write_atomic
from rnn_jax.resources import check_fits
from rnn_jax.runs.checkpoint import CheckpointError, load_model, read_model_description
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train

MAX_STEPS = 1_000_000


def load_run(run: Path) -> tuple[CsvTrainConfig, dict]:
    """The run's config and its model's description (the parameters are read by ``load_params``)."""
    config_path = run / "config.json"
    try:
        saved = json.loads(config_path.read_text())
        if not isinstance(saved, dict):
            raise TypeError("not a mapping of fields")
        check_field_types(CsvTrainConfig, saved, str(config_path))
        cfg = CsvTrainConfig(**{**saved, "train": TrainConfig(**saved["train"])})
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{run} holds no finished CSV run (no config.json)") from None
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise InputError(f"{config_path} is not the config of an rnn-jax train run ({err})") from None
    model_path = run / MODEL_FILE
    if not model_path.exists():
        raise InputError(f"{run} holds no trained model ({MODEL_FILE}); has its training finished?")
    try:
        return cfg, read_model_description(model_path)
    except CheckpointError as err:
        raise InputError(str(err)) from None


def load_params(run: Path, cfg: CsvTrainConfig, description: dict):
    """The members' parameters ``(M, ...)`` saved in the run's folder."""
    try:
        return load_model(run / MODEL_FILE, _params_like(cfg, description))
    except CheckpointError as err:
        raise InputError(str(err)) from None


def _params_like(cfg: CsvTrainConfig, description: dict):
    """The structure of the saved members' parameters, built without computing anything."""
    inputs, targets = description["inputs"], description["targets"]
    n = cfg.train.batch_size  # one batch: the optimiser's schedule needs a step per epoch
    shape = (n, cfg.window, len(inputs))
    data = WindowData(
        x_train=jnp.zeros(shape, jnp.float32),
        y_train=jnp.zeros((n, cfg.horizon * len(targets)), jnp.float32),
        x_val=jnp.zeros(shape, jnp.float32),
        y_val=jnp.zeros((n, cfg.horizon * len(targets)), jnp.float32),
        scaler=identity_scaler(),
    )
    hparams = make_hparams(learning_rate=1.0, seq_len=cfg.window)
    init = make_train(cfg.train).init
    keys = jax.random.split(jax.random.key(0), description["members"])
    return jax.eval_shape(jax.vmap(lambda k: init(k, hparams, data).params), keys)


def forecast_rows(
    cfg, description: dict, params, history: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, spread)`` of the next ``steps`` rows of the targets ``(steps, D_out)`` after the
    raw ``history (L, C)`` (columns as ``description["names"]``).

    Each round forecasts ``horizon`` rows from the last ``window`` ones and appends their mean,
    so the next round reads it as input (closed loop). The rounds are one ``lax.scan`` in one
    compiled program: a million steps cost one dispatch, not a million. The bookkeeping is
    float64 (``jax.enable_x64``), as the series' own units need; the members run in float32,
    as they were trained."""
    names = description["names"]
    inputs = [names.index(c) for c in description["inputs"]]
    targets = [names.index(c) for c in description["targets"]]
    scales = Scales.from_description(description["scales"])
    horizon, window, mode = description["horizon"], description["window"], description["normalise"]
    rounds = -(-steps // horizon)
    # Persistence, the last row repeated, is what the members are shrunk towards.
    shrink = description["shrink_weights"] if set(targets) <= set(inputs) else None
    fed_back = [targets.index(c) for c in inputs] if rounds > 1 else None  # run_forecast checked

    def one_round(recent, _):
        """``recent (W, D_in)`` raw rows -> those after this round's, and its ``(K, D_out)``
        mean and spread."""
        norm = normalise(recent[None], mode=mode, scales=scales, inputs=inputs, targets=targets)
        raw = member_predictions(params, norm.x.astype(jnp.float32))  # (M, 1, K * D_out)
        levels = norm.levels(raw.reshape(raw.shape[0], horizon, -1))  # (M, K, D_out)
        if shrink is not None:
            last = recent[-1, [inputs.index(t) for t in targets]][None, None]  # (1, 1, D_out)
            levels = last + jnp.asarray(shrink)[None] * (levels - last)  # weights (K, D_out)
        mean = levels.mean(axis=0)
        if fed_back is not None:
            recent = jnp.concatenate([recent, mean[:, fed_back]])[-window:]
        return recent, (mean, levels.std(axis=0))

    with jax.enable_x64(True):
        start = jnp.asarray(history[-window:, inputs], jnp.float64)
        _, (means, spreads) = jax.jit(lambda r: jax.lax.scan(one_round, r, length=rounds))(start)
        means, spreads = np.asarray(means), np.asarray(spreads)
    flat = (-1, len(targets))
    return means.reshape(flat)[:steps], spreads.reshape(flat)[:steps]


def check_calendar(axis: TimeAxis | None, saved: dict | None, csv_path, run: Path) -> None:
    """Refuse a file whose time column is on another calendar than the run's own: another
    kind of stamp, step or format (a daily file for a run trained on months)."""
    if saved is None or axis is None:
        return
    trained = TimeAxis.from_description(saved)
    same = (axis.kind, axis.style) == (trained.kind, trained.style) and math.isclose(axis.step, trained.step)
    if not same:
        raise InputError(
            f"{csv_path}'s time column has {spacing_text(axis)}; the run in {run} was trained on "
            f"{spacing_text(trained)}: give a file on the run's calendar"
        )


def run_forecast(run: Path, csv_path: str, steps: int, out: Path | None = None) -> Path:
    """Forecast ``steps`` rows past the end of ``csv_path`` with the run saved in ``run``;
    writes them as CSV (default ``run/forecast.csv``) and returns its path."""
    if isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"steps must be an integer between 1 and {MAX_STEPS}; got {steps}")
    cfg, description = load_run(run)
    # The forecast rows (every column, float64), each member's predictions of them, and the
    # mean, spread and text of each row written.
    columns, members = len(description["names"]), description.get("members", 1)
    per_step = 8 * (columns + members * len(description["targets"])) + 64 * (
        1 + 2 * len(description["targets"])
    )
    check_fits(
        {"forecast rows": steps * per_step},
        what=f"a forecast of {steps:,} steps",
        advice="ask for fewer --steps",
    )
    names = description["names"]
    header = header_of(csv_path)
    missing = [c for c in names + ([cfg.time] if cfg.time else []) if c not in header]
    if missing:
        raise InputError(
            f"{csv_path} lacks column(s) {', '.join(map(repr, missing))} that the run in {run} was trained "
            f"on (inputs {', '.join(description['inputs'])}; targets {', '.join(description['targets'])})"
        )
    if steps > description["horizon"] and not set(description["inputs"]) <= set(description["targets"]):
        raise InputError(
            f"steps ({steps}) exceed the trained horizon ({description['horizon']}): forecasting further "
            "feeds predictions back as inputs, which needs every input column among the targets"
        )
    order = [c for c in header if c in names]
    if order != names:
        raise InputError(
            f"{csv_path} has the run's columns in the order {', '.join(order)}; the run in {run} read "
            f"them as {', '.join(names)}: give a file with the run's column order"
        )
    series = read_series(csv_path, names, time=cfg.time, fill=cfg.fill)
    check_calendar(series.time, description.get("time"), csv_path, run)
    params = load_params(run, cfg, description)
    if len(series.values) < cfg.window:
        raise InputError(f"{csv_path} has {len(series.values)} rows; the run's window needs {cfg.window}")
    length = len(series.values)
    axis: TimeAxis | None = series.time
    if axis is not None:
        try:
            axis.stamp(length + steps - 1)
        except (ValueError, OverflowError):
            raise InputError(
                f"{steps} steps past the end of {csv_path} ({axis.stamp(length - 1)}) would pass the "
                "year 9999, the last a time stamp can name; ask for fewer --steps"
            ) from None
    mean, spread = forecast_rows(cfg, description, params, series.values, steps)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    targets = description["targets"]
    spread_names = [f"{c}_spread" for c in targets] if description["members"] > 1 else []
    writer.writerow(["time" if axis else "row", "step_ahead", *targets, *spread_names])
    for i in range(steps):
        when = axis.stamp(length + i) if axis else str(length + i)
        extra = [f"{v:.9g}" for v in spread[i]] if spread_names else []
        writer.writerow([when, i + 1, *(f"{v:.9g}" for v in mean[i]), *extra])
    path = out or run / "forecast.csv"
    return write_atomic(path, lambda f: f.write(buffer.getvalue().encode()))
