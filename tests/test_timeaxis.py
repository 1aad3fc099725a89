"""Time columns: parsing, order, duplicates, spacing, and stamps past the end."""

import re

import numpy as np
import pytest

from rnn_jax.data.csv import read_series
from rnn_jax.data.timeaxis import TimeAxis, grid_positions


def positions(texts):
    return grid_positions(texts, list(range(2, len(texts) + 2)), column="t", path="f.csv")


@pytest.mark.parametrize(
    ("texts", "kind", "step", "future"),
    [
        (["0", "1", "2"], "number", 1.0, "3"),
        (["1972.25", "1972.5", "1972.75"], "number", 0.25, "1973"),
        (["1949-11", "1949-12", "1950-01"], "month", 1.0, "1950-02"),
        (["2000-01-01", "2000-04-01", "2000-07-01"], "month", 3.0, "2000-10-01"),
        (["2000-02-27", "2000-02-28", "2000-02-29"], "second", 86400.0, "2000-03-01"),
        (["2000-06-01T23:00", "2000-06-01T23:30"], "second", 1800.0, "2000-06-02T00:00:00"),
        (["2000-06-01 23:00:00", "2000-06-01 23:30:00"], "second", 1800.0, "2000-06-02 00:00:00"),
    ],
)
def test_stamps_continue_the_grid_in_the_column_s_own_format(texts, kind, step, future):
    axis, pos = positions(texts)
    assert (axis.kind, axis.step) == (kind, step)
    assert pos.tolist() == list(range(len(texts)))
    if len(texts[0]) != 16:  # HH:MM without seconds comes back with them
        assert [axis.stamp(i) for i in range(len(texts))] == texts
    assert axis.stamp(len(texts)) == future
    assert TimeAxis.from_description(axis.describe()) == axis


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["0", "1", "1", "2"], "f.csv line 4, time column 't': '1' repeats line 3 ('1')"),
        (
            ["2000-01", "2000-03", "2000-02"],
            "f.csv line 4, time column 't': '2000-02' goes back in time from line 3",
        ),
        (["0", "2", "3", "4.5"], "f.csv line 5, time column 't': '4.5' is not on the regular grid"),
        (["0", "1", "soon"], "f.csv line 4, time column 't': 'soon' is not a finite number like"),
        (["2000-01", "soon"], "f.csv line 3, time column 't': 'soon' is not a number or an ISO date"),
        (["2000-13", "2001-01"], "f.csv line 2, time column 't': '2000-13' is not a number or an ISO date"),
        (
            ["2008-05", "2008-06", "2008-07-01", "2008-08"],
            "f.csv line 4, time column 't': '2008-07-01' is written as YYYY-MM-DD, the column's first "
            "stamp ('2008-05') as YYYY-MM; write every stamp of the column one way",
        ),
        (
            ["2000-06-01T23:00", "2000-06-01 23:30"],
            "'2000-06-01 23:30' is written as YYYY-MM-DD HH:MM[:SS], the column's first stamp",
        ),
    ],
)
def test_bad_time_columns_are_named_by_line(texts, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        positions(texts)


def test_missing_time_steps_are_refused_or_inserted_and_filled(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("month,x,y\n2000-01,1,10\n2000-02,,20\n2000-04,4,40\n2000-05,5,50\n")
    with pytest.raises(
        ValueError,
        match=re.escape("1 time step(s) missing from the grid of time column 'month' (after line(s) 3)"),
    ):
        read_series(path, ["x"], time="month")
    linear = read_series(path, ["x", "y"], time="month", fill="linear")
    np.testing.assert_allclose(linear.values, [[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]])
    assert linear.filled == 3 and linear.time.stamp(5) == "2000-06"
    ffill = read_series(path, ["x", "y"], time="month", fill="ffill")
    np.testing.assert_allclose(ffill.values[:, 0], [1, 1, 1, 4, 5])


def test_gaps_are_counted_and_filled(tmp_path):
    path = tmp_path / "g.csv"
    rows = ["", "2", "", "", "5", "NA", "7", ""]
    path.write_text("i,x\n" + "".join(f"{i},{v}\n" for i, v in enumerate(rows)))
    with pytest.raises(
        ValueError, match=re.escape("has 5 missing value(s) in column(s) 'x' (line(s) 2, 4, 5, 7, 9)")
    ):
        read_series(path, ["x"])
    np.testing.assert_allclose(read_series(path, ["x"], fill="linear").values[:, 0], [2, 2, 3, 4, 5, 6, 7, 7])
    np.testing.assert_allclose(read_series(path, ["x"], fill="ffill").values[:, 0], [2, 2, 2, 2, 5, 5, 7, 7])
    empty = tmp_path / "e.csv"
    empty.write_text("x,y\n,1\n,2\n")
    with pytest.raises(ValueError, match="column 'x' of .* has no values at all"):
        read_series(empty, ["x", "y"], fill="linear")
    with pytest.raises(ValueError, match="fill must be one of none, linear, ffill; got 'cubic'"):
        read_series(path, ["x"], fill="cubic")
