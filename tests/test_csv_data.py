import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_jax.data.csv import check_enough_rows, read_csv_columns

GOOD = "time,temp,humidity\n0,20.5,0.61\n1,21.0,0.60\n2,21.25,0.58\n"


def write(tmp_path, text: str | bytes, name="series.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_reads_the_requested_columns_in_order(tmp_path):
    values = read_csv_columns(write(tmp_path, GOOD + "\n"), ["humidity", "temp"])
    np.testing.assert_array_equal(values, [[0.61, 20.5], [0.60, 21.0], [0.58, 21.25]])
    assert values.dtype == np.float64


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        (GOOD.replace("21.0", ""), ["temp"], "has 1 missing value(s) in column(s) 'temp' (line(s) 3)"),
        (GOOD.replace("21.0", "NA"), ["temp"], "has 1 missing value(s) in column(s) 'temp' (line(s) 3)"),
        (GOOD.replace("0.58", "dry"), ["humidity"], "line 4, column 'humidity': 'dry' is not a number"),
        (GOOD.replace("20.5", "inf"), ["temp"], "line 2, column 'temp': 'inf' is not a finite number"),
        (GOOD, ["pressure"], "column 'pressure' is not in"),
        (GOOD.replace("1,21.0,0.60", "1,21.0"), ["temp"], "line 3 has 2 fields; the header has 3"),
        ("", ["temp"], "is empty; expected a header row"),
        ("time,temp\n", ["temp"], "has a header but no data rows"),
        ("t,t\n1,2\n", ["t"], "duplicate column names in its header: t"),
        (b"\xff\xfe\x00binary", ["temp"], "is not a UTF-8 text file"),
        ("a,b\n1,\x002\n", ["a"], "contains NUL bytes"),
    ],
)
def test_malformed_files_are_named_by_line_and_column(tmp_path, text, columns, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_csv_columns(write(tmp_path, text), columns)


def test_missing_file_and_directory_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_csv_columns(tmp_path / "nope.csv", ["a"])
    with pytest.raises(ValueError, match="is a folder, not a file"):
        read_csv_columns(tmp_path, ["a"])


def test_pipes_devices_and_oversized_files_are_refused_before_reading(tmp_path, monkeypatch):
    import os

    import rnn_jax.data.csv

    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(ValueError, match="is not a regular file"):
        read_csv_columns(fifo, ["a"])
    with pytest.raises(ValueError, match="is not a regular file"):
        read_csv_columns("/dev/zero", ["a"])  # would never end
    monkeypatch.setattr(rnn_jax.data.csv, "MAX_CSV_BYTES", 10)
    with pytest.raises(ValueError, match="series.csv is 42 bytes, above the limit of 10 bytes"):
        read_csv_columns(write(tmp_path, "a\n" + "1\n" * 20), ["a"])


def test_too_few_rows_for_the_window_is_named():
    with pytest.raises(ValueError, match="data.csv has 10 rows; window 8 and horizon 2 need at least 11"):
        check_enough_rows(10, window=8, horizon=2, path="data.csv")
    with pytest.raises(ValueError, match="horizon must be an integer >= 1; got 0"):
        check_enough_rows(10, window=3, horizon=0)
    check_enough_rows(11, window=8, horizon=2)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blob=st.one_of(
        st.binary(max_size=200), st.text(alphabet=st.sampled_from('ab,1.-e\n"\r x\x00'), max_size=200)
    )
)
def test_fuzz_any_file_reads_cleanly_or_fails_with_a_value_error(tmp_path, blob):
    path = write(tmp_path, blob, "fuzz.csv")
    try:
        values = read_csv_columns(path, ["a"])
    except ValueError as err:
        assert str(err) and "\n" not in str(err)  # one sentence, fit for a one-line error
    else:
        assert values.ndim == 2 and values.shape[1] == 1 and np.all(np.isfinite(values))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    n_rows=st.integers(1, 12),
    bad=st.sampled_from(["", "NaN", "abc", "1e999", "--1"]),
)
def test_fuzz_one_bad_cell_is_reported_at_its_line_and_column(tmp_path, data, n_rows, bad):
    columns = ["x", "y", "z"]
    rows = [[str(r + c / 10) for c in range(3)] for r in range(n_rows)]
    row, col = data.draw(st.integers(0, n_rows - 1)), data.draw(st.integers(0, 2))
    rows[row][col] = bad
    text = ",".join(columns) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    where = (
        f"column(s) '{columns[col]}' (line(s) {row + 2})"
        if bad in ("", "NaN")
        else f"line {row + 2}, column '{columns[col]}'"
    )
    with pytest.raises(ValueError, match=re.escape(where)):
        read_csv_columns(write(tmp_path, text, "cell.csv"), columns)
