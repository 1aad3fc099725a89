"""Time-stamped CSV runs: gaps, ensembles, refits, and ``rnn-jax forecast`` past the file's end."""

import csv
import json

import numpy as np
import pytest

from rnn_jax.cli.main import main

SMALL = ["--window", "12", "--epochs", "4", "--hidden-dim", "8", "--batch-size", "8"]


def monthly_rows(n=120, start_year=1990, slope=0.8):
    """A trend with a yearly cycle, one row per month."""
    rng = np.random.default_rng(1)
    t = np.arange(n)
    level = 100 + slope * t + 12 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.0, n)
    stamps = [f"{start_year + i // 12}-{i % 12 + 1:02d}" for i in t]
    return stamps, level


def write_monthly(path, stamps, values):
    path.write_text("month,sales\n" + "".join(f"{s},{v}\n" for s, v in zip(stamps, values, strict=True)))
    return path


@pytest.fixture(scope="module")
def monthly_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("monthly")
    stamps, values = monthly_rows()
    path = write_monthly(folder / "sales.csv", stamps, [f"{v:.3f}" for v in values])
    out = folder / "run"
    args = ["train", "--csv", str(path), "--inputs", "sales", "--targets", "sales", "--time", "month"]
    code = main([*args, *SMALL, "--horizon", "2", "--season", "12", "--seeds", "2", "--out", str(out)])
    assert code == 0
    return path, out


@pytest.mark.slow
def test_an_ensemble_refit_on_train_and_validation_reports_its_spread(monthly_run):
    _, out = monthly_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["members"] == 2 and len(metrics["member_rmse"]["test"]) == 2
    assert metrics["refit_epochs"] == max(1, round(float(np.median(metrics["best_epoch"]))))
    assert metrics["rnn_trained_on"] == metrics["linear_ar_fitted_on"] == "train+val"
    assert metrics["test_spread"]["sales"] > 0
    assert metrics["test_period"] == {"first": "1998-07", "last": "1999-12"}
    assert all(0.0 <= w <= 1.0 for w in metrics["shrink_weights"]["sales"])
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert rows[0]["time"] == "1997-01" and rows[-1]["time"] == "1999-12"


@pytest.mark.slow
def test_forecast_starts_with_the_run_s_own_prediction_and_continues_the_calendar(
    monthly_run, tmp_path, capsys
):
    path, out = monthly_run
    predictions = [r for r in csv.DictReader((out / "predictions.csv").open()) if r["split"] == "test"]
    first = predictions[0]  # the first test window predicts 1998-07 from the rows before it
    lines = path.read_text().splitlines()
    cut_at = 1 + lines[1:].index(next(line for line in lines[1:] if line.startswith("1998-07")))
    head = tmp_path / "head.csv"
    head.write_text("\n".join(lines[:cut_at]) + "\n")
    target = tmp_path / "future.csv"
    assert (
        main(["forecast", "--run", str(out), "--csv", str(head), "--steps", "5", "--out", str(target)]) == 0
    )
    future = list(csv.DictReader(target.open()))
    assert [r["time"] for r in future] == ["1998-07", "1998-08", "1998-09", "1998-10", "1998-11"]
    assert [r["step_ahead"] for r in future] == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(float(future[0]["sales"]), float(first["rnn"]), rtol=1e-5)
    second = next(r for r in predictions if r["time"] == "1998-08" and r["step_ahead"] == "2")
    np.testing.assert_allclose(float(future[1]["sales"]), float(second["rnn"]), rtol=1e-5)
    assert float(future[0]["sales_spread"]) > 0


@pytest.mark.slow
def test_forecast_refuses_a_file_without_the_run_s_columns(monthly_run, tmp_path, capsys):
    _, out = monthly_run
    other = tmp_path / "other.csv"
    other.write_text("month,revenue\n" + "".join(f"2000-{m:02d},{m}\n" for m in range(1, 13)))
    assert main(["forecast", "--run", str(out), "--csv", str(other), "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks column(s) 'sales' that the run in" in err


@pytest.mark.slow
def test_gaps_need_fill_and_run_with_it(tmp_path, capsys):
    stamps, values = monthly_rows(80)
    cells = [f"{v:.3f}" for v in values]
    for i in (5, 17, 18, 40):
        cells[i] = ""
    del stamps[60], cells[60]  # a missing month too
    path = write_monthly(tmp_path / "gaps.csv", stamps, cells)
    args = ["train", "--csv", str(path), "--inputs", "sales", "--targets", "sales", "--time", "month"]
    assert main([*args, *SMALL, "--seeds", "1", "--no-refit", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 time step(s) missing" in err and "--fill linear" in err
    assert main([*args[:-2], *SMALL, "--seeds", "1", "--no-refit", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "has 4 missing value(s) in column(s) 'sales' (line(s) 7, 19, 20, 42)" in err
    )
    code = main(
        [*args, *SMALL, "--seeds", "1", "--no-refit", "--fill", "linear", "--out", str(tmp_path / "c")]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["rows"]["total"] == 80 and metrics["rows"]["filled_values"] == 5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s[:10] + [s[9]] + s[11:], "line 12, time column 'month': '1990-10' repeats line 11"),
        (
            lambda s: s[:10] + [s[11], s[10]] + s[12:],
            "line 13, time column 'month': '1990-11' goes back in time from line 12",
        ),
        (
            lambda s: s[:10] + ["1990/11"] + s[11:],
            "line 12, time column 'month': '1990/11' is not a number or an ISO date",
        ),
    ],
)
def test_bad_time_columns_are_one_line_exit_2(tmp_path, capsys, edit, message):
    stamps, values = monthly_rows(60)
    path = write_monthly(tmp_path / "t.csv", edit(stamps), [f"{v:.3f}" for v in values])
    args = [
        "train",
        "--csv",
        str(path),
        "--inputs",
        "sales",
        "--targets",
        "sales",
        "--time",
        "month",
        *SMALL,
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.slow
def test_small_splits_and_extrapolation_are_warned_about_not_refused(tmp_path, capsys):
    stamps, values = monthly_rows(60, slope=3.0)
    path = write_monthly(tmp_path / "short.csv", stamps, [f"{v:.3f}" for v in values])
    args = ["train", "--csv", str(path), "--inputs", "sales", "--targets", "sales", "--time", "month", *SMALL]
    assert (
        main([*args, "--seeds", "1", "--no-refit", "--normalise", "none", "--out", str(tmp_path / "a")]) == 0
    )
    err = capsys.readouterr().err
    assert "warning: the val split has only 9 windows" in err and "warning: the test split has only 9" in err
    # the trend takes the z-scored test inputs far above anything seen in training
    assert "warning: test inputs of column 'sales' reach" in err
    assert main([*args, "--seeds", "1", "--no-refit", "--out", str(tmp_path / "b")]) == 0
    assert "test inputs of column" not in capsys.readouterr().err  # not with the default normalisation


@pytest.mark.slow
def test_forecast_refuses_a_file_on_another_calendar_naming_both(monthly_run, tmp_path, capsys):
    _, out = monthly_run
    daily = tmp_path / "daily.csv"
    daily.write_text("month,sales\n" + "".join(f"2000-01-{d:02d},{d}.5\n" for d in range(1, 29)))
    assert main(["forecast", "--run", str(out), "--csv", str(daily), "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "time column has a step of 86400 s, stamps YYYY-MM-DD; the run in" in err
    assert "was trained on a step of 1 month(s), stamps YYYY-MM: give a file on the run's calendar" in err


@pytest.mark.slow
def test_forecast_past_the_year_9999_is_refused(monthly_run, tmp_path, capsys):
    path, out = monthly_run
    late = write_monthly(tmp_path / "late.csv", *monthly_rows(start_year=9989))
    assert main(["forecast", "--run", str(out), "--csv", str(late), "--steps", "1000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(9998-12) would pass the year 9999" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["train"].update(hidden_dim="six"),
            "config.json: train.hidden_dim must be int; got 'six'",
        ),
        (lambda c: c.update(window=2.5), "window must be int; got 2.5"),
        (lambda c: c.update(time=3), "time must be str or null; got 3"),
        (lambda c: c.update(refit="yes"), "refit must be bool; got 'yes'"),
    ],
)
def test_a_run_whose_config_has_a_wrong_type_is_refused_as_input(
    monthly_run, tmp_path, capsys, edit, message
):
    import shutil

    path, out = monthly_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns(".rnn_jax.lock"))
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["forecast", "--run", str(copy), "--csv", str(path), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "internal error" not in err


def test_forecast_refuses_the_run_s_columns_in_another_order(tmp_path, capsys):
    import dataclasses
    import hashlib

    from rnn_jax.forecast.train import CsvTrainConfig
    from rnn_jax.runs.checkpoint import MODEL_FORMAT, sealed

    run = tmp_path / "run"
    run.mkdir()
    config = dataclasses.asdict(CsvTrainConfig(csv="ab.csv", inputs="a,b", targets="a"))
    (run / "config.json").write_text(json.dumps(config))
    header = {
        "format": MODEL_FORMAT,
        "description": {"names": ["a", "b"], "inputs": ["a", "b"], "targets": ["a"], "horizon": 1},
        "payload_bytes": 1,
        "payload_sha256": hashlib.sha256(b"0").hexdigest(),
    }
    (run / "model.eqx").write_bytes(json.dumps(sealed(header)).encode() + b"\n0")
    swapped = tmp_path / "ba.csv"
    swapped.write_text("b,a\n" + "".join(f"{i},{2 * i}\n" for i in range(30)))
    assert main(["forecast", "--run", str(run), "--csv", str(swapped), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has the run's columns in the order b, a; the run in" in err
    assert "read them as a, b: give a file with the run's column order" in err


@pytest.mark.slow
def test_a_forecast_too_large_for_memory_is_refused_before_it_runs(monkeypatch, monthly_run, capsys):
    import rnn_jax.resources

    path, out = monthly_run
    monkeypatch.setattr(rnn_jax.resources, "available_bytes", lambda device=None: 1 << 20)  # 1 MiB free
    assert main(["forecast", "--run", str(out), "--csv", str(path), "--steps", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not enough memory for a forecast of 100,000 steps" in err
    assert "ask for fewer --steps" in err


@pytest.mark.slow
def test_a_long_forecast_is_its_first_rounds_then_a_forecast_from_them(monthly_run):
    """The closed loop, one compiled scan: forecasting 6 rows (three rounds of the horizon, 2)
    equals forecasting 2, appending their mean to the history and forecasting 4 more."""
    from rnn_jax.data.csv import read_series
    from rnn_jax.forecast.predict import forecast_rows, load_params, load_run

    path, out = monthly_run
    cfg, description = load_run(out)
    params = load_params(out, cfg, description)
    history = read_series(str(path), description["names"], time=cfg.time, fill=cfg.fill).values
    mean, spread = forecast_rows(cfg, description, params, history, 6)
    first, _ = forecast_rows(cfg, description, params, history, 2)
    rest, rest_spread = forecast_rows(cfg, description, params, np.concatenate([history, first]), 4)
    assert mean.shape == spread.shape == (6, 1) and mean.dtype == np.float64
    np.testing.assert_allclose(mean, np.concatenate([first, rest]), rtol=1e-12)
    np.testing.assert_allclose(spread[2:], rest_spread, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(mean)) and not np.allclose(mean[2:4], mean[4:6])
