"""`rnn-jax train --csv` with its default settings on real and synthetic series: does the RNN
beat persistence at every step, and how close is it to the linear autoregression?

    uv run experiments/forecast_csv.py                      # every series below
    uv run experiments/forecast_csv.py --series air_passengers,wine_sales --extra "--seeds 8"

Runs the command on each series of DATA (``--data``, default ``../shared/data`` beside the
checkout, when present) and on the sine, Mackey-Glass and oscillator CSVs that
``experiments/forecast.py`` writes (generated here the same way). Each run gets only the options
its file needs (columns, ``--time``, ``--fill``) plus ``--extra``. Writes forecast_csv.json and
a Markdown table (forecast_csv.md) with the RNN's, persistence's, the seasonal naive and the
linear AR's test RMSE one step ahead, the worst RNN / persistence ratio over the steps ahead and
the wall time of each run.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from helpers.machine import describe_machine, machine_line  # experiments/ is the script's folder

from rnn_jax.cli.args import experiment_main
from rnn_jax.cli.main import main as rnn_jax
from rnn_jax.errors import InputError
from rnn_jax.io import write_atomic, write_json
from rnn_jax.runs.options import parse_list

HERE = Path(__file__).resolve().parent
# file, options it needs: its columns and its time column (each series' own season, for the
# seasonal naive baseline, is named where it has one)
REAL = {
    "air_passengers": (
        "air_passengers.csv",
        "--inputs passengers --targets passengers --time month --season 12",
    ),
    "wine_sales": ("wine_sales.csv", "--inputs bottles --targets bottles --time month --season 12"),
    "taylor_electricity": (
        "taylor_electricity.csv",
        "--inputs demand_mw --targets demand_mw --time step --season 48",
    ),
    "interest_inflation": ("interest_inflation.csv", "--inputs Dp,R --targets Dp,R --season 4"),
}
SYNTHETIC = {
    "sine": "--inputs x --targets x --time step",
    "mackey_glass": "--inputs x --targets x --time step",
    "oscillators": "--inputs x1,x2 --targets x1,x2 --time step",
}


@dataclasses.dataclass(frozen=True)
class ForecastCsvConfig:
    series: str = ",".join([*REAL, *SYNTHETIC])
    data: str = str(HERE.parent.parent / "shared" / "data")
    extra: str = ""
    length: int = 2000  # rows of each synthetic series

    HELP = {
        "series": "comma-separated names among " + ", ".join([*REAL, *SYNTHETIC]),
        "data": "folder holding the real series' CSV files",
        "extra": "options added to every run, e.g. '--seeds 8' or '--normalise none'",
        "length": "rows of each synthetic series",
    }


def synthetic_csv(name: str, length: int, folder: Path) -> Path:
    """The CSV ``experiments/forecast.py`` writes for ``name``."""
    sys.path.insert(0, str(HERE))
    from forecast import task_series, write_csv

    series, names = task_series(name, length)
    path = folder / f"{name}.csv"
    write_csv(path, series, names)
    return path


def one_run(name: str, csv: Path, options: str, extra: str, out: Path) -> dict:
    import json

    argv = ["train", "--csv", str(csv), *shlex.split(options), *shlex.split(extra), "--out", str(out / name)]
    start = time.perf_counter()
    code = rnn_jax(argv)
    wall = time.perf_counter() - start
    if code != 0:
        raise InputError(f"rnn-jax {' '.join(argv)} exited with {code}")
    metrics = json.loads((out / name / "metrics.json").read_text())
    rows = {}
    test = metrics["rmse"]["test"]
    for col, rnn in test["rnn"].items():
        pers = test["persistence"][col]
        rows[col] = {
            "rnn": rnn[0],
            "persistence": pers[0],
            "seasonal_naive": None if test["seasonal_naive"] is None else test["seasonal_naive"][col][0],
            "linear_ar": test["linear_ar"][col][0],
            "worst_rnn_over_persistence": float(np.max(np.asarray(rnn) / np.asarray(pers))),
            "rnn_over_linear_ar": rnn[0] / test["linear_ar"][col][0],
        }
    return {
        "command": "rnn-jax " + shlex.join(argv),
        "wall_seconds": wall,
        "windows": metrics["windows"],
        "columns": rows,
    }


def table(results: dict) -> str:
    lines = [
        "| series | column | test windows | RNN | persistence | seasonal naive | linear AR | "
        "RNN / AR | worst RNN / persistence | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for col, r in res["columns"].items():
            seasonal = "–" if r["seasonal_naive"] is None else f"{r['seasonal_naive']:.4g}"
            lines.append(
                f"| {name} | {col} | {res['windows']['test']} | {r['rnn']:.4g} | {r['persistence']:.4g} | "
                f"{seasonal} | {r['linear_ar']:.4g} | {r['rnn_over_linear_ar']:.2f} | "
                f"{r['worst_rnn_over_persistence']:.2f} | {res['wall_seconds']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def run(cfg: ForecastCsvConfig, out: Path) -> int:
    names = parse_list(cfg.series, "series", str)
    unknown = [n for n in names if n not in REAL and n not in SYNTHETIC]
    if unknown:
        raise InputError(f"series must be among {', '.join([*REAL, *SYNTHETIC])}; got {unknown[0]!r}")
    data = Path(cfg.data)
    results = {}
    for name in names:
        if name in REAL:
            file, options = REAL[name]
            if not (data / file).is_file():
                print(f"skipping {name}: {data / file} is not there", file=sys.stderr)
                continue
            csv = data / file
        else:
            csv, options = synthetic_csv(name, cfg.length, out / "data"), SYNTHETIC[name]
        results[name] = one_run(name, csv, options, cfg.extra, out)
    machine = describe_machine()
    write_json(
        out / "forecast_csv.json", {"config": dataclasses.asdict(cfg), "machine": machine, "series": results}
    )
    text = table(results)
    write_atomic(out / "forecast_csv.md", lambda f: f.write(text.encode()))
    print(machine_line(machine))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, ForecastCsvConfig(), run, "results/forecast_csv", argv)


if __name__ == "__main__":
    sys.exit(main())
