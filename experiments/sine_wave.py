"""The tutorial's experiment done right: read 50 values of sin(i), predict the 51st.

    uv run experiments/sine_wave.py                  # --preset default: best settings found
    uv run experiments/sine_wave.py --preset seed    # the tutorial's hyperparameters
    uv run experiments/sine_wave.py --help           # every option with its default

Writes config.json, metrics.json, timing.json, predictions.json, predictions.png, loss.png
and checkpoint.eqx to --out (default results/sine_wave/<preset>/). Interrupted (Ctrl-C, SIGTERM, SIGHUP
or killed) runs continue from their last checkpoint: run the same command again with
``--resume DIR``.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import sys
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp

from rnn_jax.cli.args import (
    OneLineParser,
    add_config_arguments,
    add_run_options,
    config_from_args,
    folder_arg,
    run_options,
)
from rnn_jax.data.sine import check_sine_args, make_sine_data, n_train_windows
from rnn_jax.io import digest_arrays, save_figure, write_json
from rnn_jax.loss import batch_predict
from rnn_jax.plots import plot_losses, plot_predictions
from rnn_jax.runs.checkpoint import DATA_KEY, FILENAME
from rnn_jax.runs.driver import fit
from rnn_jax.runs.options import RunOptions, epoch_log, make_checkpointing
from rnn_jax.runs.signals import run_command
from rnn_jax.train.loop import HPARAM_HELP, TrainConfig, check_config, make_hparams


@dataclasses.dataclass(frozen=True)
class SineWaveConfig:
    """Everything a run depends on; saved as config.json next to its results."""

    # data: series[i] = sin(frequency * step * i) + noise
    length: int = 200
    step: float = 1.0
    frequency: float = 1.0
    noise: float = 0.0
    window: int = 50
    train_fraction: float = 2 / 3
    scale: bool = True
    # model and training: static settings, then the hyperparameters
    train: TrainConfig = TrainConfig()
    init_scale: float = 1.0
    learning_rate: float = 3e-3
    clip_threshold: float = 1.0
    truncation: int | None = None
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "length": "number of samples in the series",
        "step": "sampling interval",
        "frequency": "angular frequency, radians per unit time",
        "noise": "std of added Gaussian noise",
        "window": "input values per example",
        "train_fraction": "share of windows (earliest first) that train",
        "scale": "standardise with training-split statistics",
        "seed": "random seed (data noise, initialisation, shuffling)",
        **HPARAM_HELP,
    }


PRESETS = {
    # The best settings found on this task (docs/tutorial.md): the library's defaults.
    "default": SineWaveConfig(),
    # The tutorial's hyperparameters (a sigmoid Elman cell with H=100 and uniform [0, 1) weights,
    # per-example SGD at lr 1e-4, value clipping at 10, 5-step truncation, no scaling), with
    # correct gradients.
    "seed": SineWaveConfig(
        scale=False,
        train=TrainConfig.tutorial(),
        learning_rate=1e-4,
        clip_threshold=10.0,
        truncation=5,
    ),
}


def parse_config(argv: list[str]) -> tuple[SineWaveConfig, RunOptions]:
    """``--preset`` picks the defaults; every other option overrides one field."""
    pre = OneLineParser(add_help=False)
    pre.add_argument("--preset", default="default")
    known, _ = pre.parse_known_args(argv)
    if known.preset not in PRESETS:
        pre.error(f"--preset must be one of {', '.join(PRESETS)}; got {known.preset!r}")
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--preset",
        default=known.preset,
        choices=list(PRESETS),
        help="starting settings; the defaults shown are this preset's (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=folder_arg, default=None, help="output folder (default: results/sine_wave/<preset>)"
    )
    add_run_options(parser)
    add_config_arguments(parser, PRESETS[known.preset])
    args = parser.parse_args(argv)
    options = run_options(parser, args, Path("results") / "sine_wave" / args.preset)
    return config_from_args(SineWaveConfig, args), options


def predict_in_original_units(params, data) -> dict[str, jax.Array]:
    """Truth and prediction for every window, train then validation, in the series' units."""
    xs = jnp.concatenate([data.x_train, data.x_val])
    ys = jnp.concatenate([data.y_train, data.y_val])[:, 0]
    pred = batch_predict(params, xs)[:, 0]
    return {"truth": data.scaler.inverse(ys), "prediction": data.scaler.inverse(pred)}


def run(cfg: SineWaveConfig, options: RunOptions) -> dict:
    """Validate, train (checkpointing to ``options.out``), save config/metrics/timing/predictions
    and both figures; return the metrics."""
    out = options.out
    shape = {"length": cfg.length, "window": cfg.window, "train_fraction": cfg.train_fraction}
    check_sine_args(**shape, step=cfg.step, noise=cfg.noise)
    hparams = make_hparams(
        learning_rate=cfg.learning_rate,
        clip_threshold=cfg.clip_threshold,
        truncation=cfg.truncation,
        seq_len=cfg.window,
        init_scale=cfg.init_scale,
    )
    tcfg = cfg.train
    n_train = n_train_windows(cfg.length - cfg.window, cfg.train_fraction)
    check_config(tcfg, n_train)

    data_key, train_key = jax.random.split(jax.random.key(cfg.seed))
    data = make_sine_data(
        **shape, step=cfg.step, frequency=cfg.frequency, noise=cfg.noise, scale=cfg.scale, key=data_key
    )
    # The run's identity: its options and the data they generated (a checkpoint made by a version
    # of the code that drew other data is not resumed).
    identity = {**dataclasses.asdict(cfg), DATA_KEY: digest_arrays(data.x_train, data.y_train)}
    checkpointing = make_checkpointing(options, identity)

    result = fit(
        tcfg,
        hparams,
        data,
        key=train_key,
        log=epoch_log(options),
        progress=not options.quiet,
        checkpointing=checkpointing,
        resume=options.resume,
    )
    metrics = {
        "train_loss": result.metrics["train_loss"],
        "val_loss": result.metrics["val_loss"],
        "train_rmse": result.metrics["train_rmse"][-1],
        "val_rmse": result.metrics["val_rmse"][-1],
        "epochs": cfg.train.epochs,
        "epochs_run": len(result.metrics["train_loss"]),
        "diverged_at_epoch": result.diverged_at_epoch,
        "diverged_at_step": result.diverged_at_step,
        "per_epoch": {k: result.metrics[k] for k in ("train_rmse", "val_rmse", "clip_fraction")},
        "units": "loss: 0.5 * mean squared error in model units; rmse: original units of the series",
    }
    write_json(out / "config.json", dataclasses.asdict(cfg))
    write_json(out / "metrics.json", metrics)
    # Timings live apart so that metrics.json is bit-identical across runs of one command.
    timing = {"wall_seconds": result.wall_seconds, "compile_seconds": result.compile_seconds}
    write_json(out / "timing.json", timing | {"resumed": options.resume})

    preds = jax.device_get(jax.jit(predict_in_original_units)(result.params, data))
    n_train = data.x_train.shape[0]
    t = list(range(cfg.window, cfg.window + n_train + data.x_val.shape[0]))
    splits = {
        "train": (t[:n_train], preds["truth"][:n_train].tolist(), preds["prediction"][:n_train].tolist()),
        "validation": (
            t[n_train:],
            preds["truth"][n_train:].tolist(),
            preds["prediction"][n_train:].tolist(),
        ),
    }
    write_json(
        out / "predictions.json",
        {k: dict(zip(("t", "truth", "prediction"), v, strict=True)) for k, v in splits.items()},
    )
    save_figure(
        plot_predictions(splits, title=f"val RMSE {metrics['val_rmse']:.2g}"), out / "predictions.png"
    )
    save_figure(
        plot_losses(
            {"train": metrics["train_loss"], "validation": metrics["val_loss"]},
            ylabel="0.5 x mean squared error",
        ),
        out / "loss.png",
    )
    return metrics | timing


def main(argv: list[str] | None = None) -> int:
    cfg, options = parse_config(sys.argv[1:] if argv is None else argv)
    out = options.out

    def go() -> int:
        m = run(cfg, options)
        if m["diverged_at_epoch"] is not None:
            step = f" (optimiser step {m['diverged_at_step']})" if m["diverged_at_step"] else ""
            print(
                f"error: training diverged in epoch {m['diverged_at_epoch']}{step}: a gradient or "
                f"parameter became NaN or infinite; the last good parameters (from the start of "
                f"that epoch) are in "
                f"{out / FILENAME}, metrics in {out}. Try a smaller learning_rate, clipping, or "
                "init default",
                file=sys.stderr,
            )
            return 1
        print(
            f"val RMSE {m['val_rmse']:.3g} (train {m['train_rmse']:.3g}), "
            f"{m['wall_seconds']:.2f} s wall incl. {m['compile_seconds']:.2f} s compile -> {out}"
        )
        return 0

    return run_command(go, out)


if __name__ == "__main__":
    sys.exit(main())
