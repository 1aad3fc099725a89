"""The ``rnn-jax`` command: ``gradcheck`` and ``train``. Argument handling lives in
``rnn_jax.cli.args``; the work in ``rnn_jax.gradcheck`` and ``rnn_jax.forecast.train``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rnn_jax.cli.args import (
    OneLineParser,
    add_config_arguments,
    add_run_options,
    config_from_args,
    folder_arg,
    run_options,
)
from rnn_jax.runs.signals import answer_signals, run_command


def _gradcheck(argv: Sequence[str]) -> int:
    from rnn_jax.gradcheck import TOLERANCE, GradcheckConfig, format_report, run_gradcheck

    parser = OneLineParser(
        prog="rnn-jax gradcheck",
        description="Compare a hand-written backward pass with jax.grad on a random problem. "
        f"Passes when every parameter's max |g - g_autodiff| / max |g_autodiff| is within "
        f"{TOLERANCE['float64']:.0e} (float64) or {TOLERANCE['float32']:.0e} (float32). "
        "Exit code 0: pass, 1: fail, 2: bad arguments.",
    )
    add_config_arguments(parser, GradcheckConfig())
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    args = parser.parse_args(argv)

    def go() -> int:
        report = run_gradcheck(config_from_args(GradcheckConfig, args))
        print(json.dumps(report, indent=2) if args.json else format_report(report))
        return 0 if report["ok"] else 1

    return run_command(go)


def _train(argv: Sequence[str]) -> int:
    from rnn_jax.forecast.outputs import format_summary
    from rnn_jax.forecast.train import CsvTrainConfig, run_csv_training

    parser = OneLineParser(
        prog="rnn-jax train",
        description="Train on your own CSV series and compare with persistence and a linear "
        "autoregression (and a seasonal naive forecast with --season) on the same test windows. Writes "
        "config.json, metrics.json, timing.json, predictions.csv, model.eqx, checkpoint.eqx, loss.png, "
        "horizon.png and forecast.png to --out.",
    )
    parser.add_argument("--out", type=folder_arg, default=None, help="output folder (default: results/train)")
    add_run_options(parser)
    add_config_arguments(parser, CsvTrainConfig())
    args = parser.parse_args(argv)
    options = run_options(parser, args, Path("results") / "train")
    config = config_from_args(CsvTrainConfig, args)
    if isinstance(config.seeds, int) and config.seeds > 1:
        from rnn_jax.train.sharding import use_cpu_cores

        # ensemble members train on every core (before JAX starts its backends)
        with contextlib.suppress(RuntimeError):
            use_cpu_cores()

    def go() -> int:
        metrics = run_csv_training(config, options)
        print(format_summary(metrics))
        print(f"-> {options.out}")
        if metrics["diverged_at_epoch"] is None:
            return 0
        print(
            f"error: training diverged in epoch {metrics['diverged_at_epoch']} (a gradient or parameter "
            f"became NaN or infinite in at least one member); the results and metrics are in {options.out} "
            "(metrics.json says which members). Try a smaller learning_rate or clip_threshold",
            file=sys.stderr,
        )
        return 1

    return run_command(go, options.out)


def _forecast(argv: Sequence[str]) -> int:
    from rnn_jax.forecast.predict import MAX_STEPS, run_forecast

    parser = OneLineParser(
        prog="rnn-jax forecast",
        description="Forecast past the end of a CSV file with a run trained by rnn-jax train: reads "
        "the file's last rows as that run read its own (columns, --time, --fill) and writes the next "
        "STEPS rows, time-stamped, as CSV. Steps beyond the trained horizon feed the forecast back in.",
    )
    parser.add_argument(
        "--run",
        type=Path,
        required=True,
        metavar="DIR",
        help="a finished rnn-jax train output folder (required)",
    )
    parser.add_argument(
        "--csv", required=True, metavar="FILE", help="the CSV file whose end to forecast from (required)"
    )
    parser.add_argument(
        "--steps", type=int, required=True, metavar="K", help=f"rows to forecast, 1 to {MAX_STEPS} (required)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="the forecast CSV (default: DIR/forecast.csv)"
    )
    args = parser.parse_args(argv)

    def go() -> int:
        path = run_forecast(args.run, args.csv, args.steps, args.out)
        print(f"-> {path}")
        return 0

    return run_command(go)


COMMANDS = {"gradcheck": _gradcheck, "train": _train, "forecast": _forecast}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnn-jax`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from rnn_jax.io import package_version

        print(f"rnn-jax {package_version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"usage: rnn-jax {{{','.join(COMMANDS)}}} [options] | --version\n"
            "  gradcheck   verify hand-derived BPTT gradients against autodiff\n"
            "  train       train on your own CSV series, with baselines\n"
            "  forecast    forecast past the end of a CSV file with a trained run"
        )
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


def console_main() -> int:
    """``rnn-jax`` as installed: ``main``, quiet when its reader goes away (``| head``), one
    line on a signal at any moment."""
    answer_signals()
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Whatever is still buffered has nowhere to go; point stdout at /dev/null so that
        # Python's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(console_main())
