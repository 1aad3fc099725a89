"""``rnn-jax train --csv``: the user's own multivariate series, with both baselines."""

import json

import numpy as np
import pytest

from rnn_jax.cli import main


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


ARGS = ["--window", "12", "--horizon", "3", "--epochs", "3", "--hidden-dim", "8"]


def test_metrics_per_target_column_for_the_rnn_and_both_baselines(weather, tmp_path, capsys):
    code = main(
        [
            "train",
            "--csv",
            str(weather),
            "--inputs",
            "temperature,humidity",
            "--targets",
            "humidity,temperature",
        ]
        + ARGS
        + ["--out", str(tmp_path)]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "persistence" in printed and "linear AR" in printed and "humidity" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["rows"] == {"total": 400, "train": 280 - 14, "val": 60 - 14, "test": 60 - 14}
    for split in ("val", "test"):
        for model in ("rnn", "persistence", "linear_ar"):
            per_column = metrics["rmse"][split][model]
            assert set(per_column) == {"humidity", "temperature"}
            assert all(len(v) == 3 and min(v) > 0 for v in per_column.values())
    # Errors are in each column's own units: temperature errors dwarf humidity errors.
    persistence = metrics["mean_rmse"]["test"]["persistence"]
    assert persistence["temperature"] > 10 * persistence["humidity"]
    for name in ("config.json", "timing.json", "loss.png", "horizon.png", "checkpoint.eqx"):
        assert (tmp_path / name).exists()


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
        ("hour,temperature,humidity\n0,1.0,\n", [], "line 2, column 'humidity': missing value"),
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
            [],
            "its val part",
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
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_required_options_are_named(capsys):
    assert main(["train", "--inputs", "a", "--targets", "a"]) == 2
    assert "--csv is required" in capsys.readouterr().err
