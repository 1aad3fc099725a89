"""``rnn-jax train --csv``: the user's own multivariate series, with both baselines."""

import json

import numpy as np
import pytest

from rnn_jax.cli.main import main
from rnn_jax.forecast.predict import load_params, load_run


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    """Hourly temperature and humidity with a daily cycle and noise."""
    rng = np.random.default_rng(0)
    t = np.arange(400)
    temp = 15 + 8 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, t.size)
    hum = 0.6 - 0.2 * np.sin(2 * np.pi * (t - 2) / 24) + rng.normal(0, 0.02, t.size)
    path = tmp_path_factory.mktemp("data") / "weather.csv"
    rows = "".join(f"{i},{a:.3f},{b:.4f}\n" for i, a, b in zip(t, temp, hum, strict=True))
    path.write_text("hour,temperature,humidity\n" + rows)
    return path


ARGS = [
    "--window",
    "12",
    "--horizon",
    "3",
    "--epochs",
    "3",
    "--hidden-dim",
    "8",
    "--seeds",
    "1",
    "--no-refit",
]


@pytest.mark.slow
def test_metrics_per_target_column_for_the_rnn_and_every_baseline(weather, tmp_path, capsys):
    code = main(
        [
            "train",
            "--csv",
            str(weather),
            "--inputs",
            "temperature,humidity",
            "--targets",
            "humidity,temperature",
            "--season",
            "24",
        ]
        + ARGS
        + ["--out", str(tmp_path)]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "persistence" in printed and "linear AR" in printed and "humidity" in printed
    assert "windows: train 266, validation 58, test 58" in printed and "mean over 3 step(s)" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["rows"] == {"total": 400, "filled_values": 0, "train": 280, "val": 60, "test": 60}
    assert metrics["windows"] == {"train": 280 - 12 - 3 + 1, "val": 60 - 3 + 1, "test": 60 - 3 + 1}
    assert metrics["test_period"] == {"first": "340", "last": "399"}
    for split in ("val", "test"):
        for model in ("rnn", "persistence", "seasonal_naive", "linear_ar"):
            per_column = metrics["rmse"][split][model]
            assert set(per_column) == {"humidity", "temperature"}
            assert all(len(v) == 3 and min(v) > 0 for v in per_column.values())
    # Errors are in each column's own units: temperature errors dwarf humidity errors.
    persistence = metrics["mean_rmse"]["test"]["persistence"]
    assert persistence["temperature"] > 10 * persistence["humidity"]
    for name in ("config.json", "timing.json", "loss.png", "horizon.png", "forecast.png", "checkpoint.eqx"):
        assert (tmp_path / name).exists()
    table = (tmp_path / "predictions.csv").read_text().splitlines()
    assert table[0] == "split,row,step_ahead,column,truth,rnn,rnn_spread,persistence,seasonal_naive,linear_ar"
    assert len(table) == 1 + (58 + 58) * 3 * 2
    first_test = next(line for line in table if line.startswith("test,")).split(",")
    assert first_test[1:4] == ["340", "1", "humidity"]


@pytest.mark.slow
def test_targets_outside_the_inputs_skip_persistence(weather, tmp_path):
    args = ["train", "--csv", str(weather), "--inputs", "temperature", "--targets", "humidity", *ARGS]
    assert main([*args, "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        metrics["rmse"]["test"]["persistence"] is None and "humidity" in metrics["rmse"]["test"]["linear_ar"]
    )


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("hour,temperature,humidity\n0,1.0,\n", [], "1 missing value(s) in column(s) 'humidity' (line(s) 2)"),
        (
            "hour,temperature,humidity\n0,warm,0.5\n",
            [],
            "line 2, column 'temperature': 'warm' is not a number",
        ),
        ("hour,temp,humidity\n0,1.0,0.5\n", [], "column 'temperature' is not in"),
        (
            "hour,temperature,humidity\n" + "0,1.0,0.5\n" * 10,
            [],
            "has 10 rows; window 12 and horizon 3 need at least 16",
        ),
        (
            "hour,temperature,humidity\n" + "".join(f"{i},{i}.5,0.{i % 9 + 1}\n" for i in range(40)),
            ["--split", "0.9,0.05,0.05"],
            "its val split holds 0 window(s)",
        ),
        (
            "hour,temperature,humidity\n" + "".join(f"{i},{i}.5,0.{i % 9 + 1}\n" for i in range(40)),
            ["--season", "30"],
            "season (30) must be shorter than the training part (28 rows)",
        ),
        (
            "hour,temperature,humidity\n" + "".join(f"{i},{i}.5,0.{i % 9 + 1}\n" for i in range(40)),
            ["--time", "hour", "--inputs", "hour"],
            "time column 'hour' cannot also be a value column",
        ),
    ],
)
def test_bad_csv_files_are_one_line_exit_2(tmp_path, capsys, text, extra, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    code = main(
        [
            "train",
            "--csv",
            str(path),
            "--inputs",
            "temperature,humidity",
            "--targets",
            "humidity",
            *ARGS,
            *extra,
            # A folder of its own: test workers running side by side would share the default.
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_required_options_are_named(capsys):
    assert main(["train", "--inputs", "a", "--targets", "a"]) == 2
    assert "--csv is required" in capsys.readouterr().err


def test_the_command_trains_the_reset_before_gru(weather, tmp_path):
    args = ["train", "--csv", str(weather), "--inputs", "temperature", "--targets", "temperature", *ARGS]
    assert main([*args, "--cell", "gru", "--cell-options", "reset=before", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["train"]["cell_options"] == "reset=before"
    cfg, description = load_run(tmp_path)
    members = load_params(tmp_path, cfg, description)
    assert members.cell.reset == "before" and members.cell.bh_n is None


@pytest.mark.slow
def test_a_diverging_ensemble_exits_1_with_one_line_saying_so(weather, tmp_path, capsys):
    args = ["train", "--csv", str(weather), "--inputs", "temperature", "--targets", "temperature", *ARGS]
    assert main([*args, "--learning-rate", "1e30", "--quiet", "--out", str(tmp_path)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
    assert len(err) == 1 and err[0].startswith("error: training diverged in epoch 1 (a gradient")
    assert json.loads((tmp_path / "metrics.json").read_text())["diverged_at_epoch"] == 1
