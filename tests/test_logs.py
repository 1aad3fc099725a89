"""Per-epoch logs: metrics.jsonl rows, printed lines, and what fit and run_sweep write."""

import json
import math

import jax
import numpy as np
import pytest

from rnn_jax.data.sine import make_sine_data
from rnn_jax.runs.driver import fit
from rnn_jax.runs.logs import EpochLog, default_every, epoch_rows, format_row
from rnn_jax.runs.sweep import grid, run_sweep
from rnn_jax.train.loop import TrainConfig, make_hparams

SMALL = TrainConfig(hidden_dim=4, epochs=6, batch_size=5)


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_hold_numbers_for_one_run_and_lists_for_members():
    one = epoch_rows(3, {"loss": [0.5, 0.25]})
    assert one == [{"epoch": 3, "loss": 0.5}, {"epoch": 4, "loss": 0.25}]
    many = epoch_rows(1, {"loss": np.array([[1.0, 2.0], [3.0, 4.0]])})  # (M=2, E=2)
    assert many == [{"epoch": 1, "loss": [1.0, 3.0]}, {"epoch": 2, "loss": [2.0, 4.0]}]
    assert epoch_rows(1, {}) == []


def test_printed_line_shows_the_members_median():
    line = format_row({"epoch": 7, "train_loss": [1.0, 2.0, 9.0], "val_loss": 0.5, "other": 3.0}, 300)
    assert line == "epoch   7/300  train_loss 2 (median)  val_loss 0.5"
    assert default_every(300) == 30 and default_every(7) == 1


def test_record_appends_whole_lines_and_start_rewrites_from_history(tmp_path, capsys):
    log = EpochLog(tmp_path / "m.jsonl", every=2)
    log.start(4, {})
    log.record(1, {"val_loss": [1.0, math.nan]})
    log.record(3, {"val_loss": [0.5, 0.25]})
    rows = read_rows(tmp_path / "m.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[1]["val_loss"] is None  # NaN: null
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["2/4", "4/4"]
    log.start(4, {"val_loss": [1.0]})  # resumed from a checkpoint that saw epoch 1 only
    assert read_rows(tmp_path / "m.jsonl") == [{"epoch": 1, "val_loss": 1.0}]


def test_epochs_after_an_early_stop_are_not_logged(tmp_path, capsys):
    log = EpochLog(tmp_path / "m.jsonl", quiet=True)
    log.start(10, {})
    log.record(1, {"val_loss": [3.0, 2.0, 2.0, 2.0], "stopped_at": [0.0, 0.0, 3.0, 3.0]})
    assert [r["epoch"] for r in read_rows(tmp_path / "m.jsonl")] == [1, 2, 3]
    assert capsys.readouterr().out == ""  # quiet


@pytest.fixture(scope="module")
def data():
    return make_sine_data(length=60, window=10)


@pytest.mark.slow
def test_fit_logs_every_epoch_and_calls_the_hook(tmp_path, data):
    seen = []
    result = fit(
        SMALL,
        make_hparams(seq_len=10),
        data,
        key=jax.random.key(0),
        on_epoch=lambda epoch, m: seen.append((epoch, m["val_loss"])),
        log=EpochLog(tmp_path / "metrics.jsonl", quiet=True),
        progress=False,
    )
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert [r["val_loss"] for r in rows] == pytest.approx(result.metrics["val_loss"])
    assert seen == [(r["epoch"], r["val_loss"]) for r in rows]


@pytest.mark.slow
def test_a_sweep_logs_one_line_per_epoch_with_a_value_per_member(tmp_path, data):
    members = grid(key=jax.random.key(0), n_seeds=3, seq_len=10, learning_rate=[3e-3])
    result = run_sweep(SMALL, members, data, progress=False, log=EpochLog(tmp_path / "m.jsonl", quiet=True))
    rows = read_rows(tmp_path / "m.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    logged = np.array([r["val_rmse"] for r in rows]).T  # (members, epochs)
    np.testing.assert_allclose(logged, result.metrics["val_rmse"], rtol=1e-6)


def test_without_a_terminal_progress_is_a_plain_line_per_interval(monkeypatch, capsys):
    import time

    import rnn_jax.runs.driver as runner

    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0.0)  # a line at every chunk boundary

    def chunk(state):
        return state + 1, {"loss": np.zeros(5)}

    state, _ = runner.run_chunks(
        chunk,
        0,
        (),
        n_chunks=3,
        chunk_length=5,
        start=time.perf_counter(),
        progress=True,
        desc="run",
        unit="epoch",
    )
    lines = capsys.readouterr().err.splitlines()  # captured stderr is not a terminal
    assert state == 3 and [line.split(",")[0] for line in lines] == [
        "run: epoch 5/15",
        "run: epoch 10/15",
        "run: epoch 15/15",
    ]
    runner.run_chunks(chunk, 0, (), n_chunks=3, chunk_length=5, start=time.perf_counter(), progress=False)
    assert capsys.readouterr().err == ""  # --quiet


def test_without_tqdm_lines_are_printed_and_a_terminal_gets_the_plain_progress_line(monkeypatch, capsys):
    import sys
    import time

    import rnn_jax.runs.driver as runner
    from rnn_jax.runs.logs import write_line

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # any import of it now fails
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0.0)
    write_line("epoch 1")
    progress = runner.Progress(time.perf_counter() - 100.0, 10, 0, enabled=True, desc="run")
    progress.advance(5)
    progress.close()
    captured = capsys.readouterr()
    assert captured.out == "epoch 1\n" and progress.bar is None
    assert captured.err.startswith("run: epoch 5/10")


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_log_removed_or_replaced_mid_run_is_written_again_whole_with_a_warning(tmp_path, capsys, how):
    path = tmp_path / "metrics.jsonl"
    log = EpochLog(path, quiet=True)
    log.start(8, {"loss": [0.9]})  # one epoch from a checkpoint
    log.record(2, {"loss": [0.8, 0.7]})
    if how == "removed":
        path.unlink()
    else:
        path.rename(tmp_path / "metrics.jsonl.1")  # rotation: a new file under the old name
        path.write_text('{"epoch": 99}\n')
    log.record(4, {"loss": [0.6, 0.5, 0.4]})
    assert [row["epoch"] for row in read_rows(path)] == [1, 2, 3, 4, 5, 6]
    assert read_rows(path)[-1]["loss"] == 0.4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "removed or replaced during the run" in err and "(6)" in err
    log.record(7, {"loss": [0.3]})  # then appends go on to the new file, with no more warnings
    assert len(read_rows(path)) == 7 and capsys.readouterr().err == ""
