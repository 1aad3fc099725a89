"""Reading users' own series from CSV files: every problem is named by line and column.

A file is a header row of column names followed by one row per time step. Every requested
column must hold a finite number in every row, or a missing-value marker (empty, ``NA``,
``nan``, ...) that the caller asks to fill; anything else (text, an infinity, a row with too
few or too many fields) is refused with the line number, the column and what was found, rather
than skipped or silently turned into NaN. An optional time column puts the rows on a regular
grid (``rnn_jax.data.timeaxis``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnn_jax.data.timeaxis import TimeAxis, grid_positions
from rnn_jax.errors import InputError
from rnn_jax.io import read_regular_file

MISSING = {"", "na", "n/a", "nan", "null", "none", "-"}
# Larger files are refused: their windows would not fit in memory on the machines we know.
MAX_CSV_BYTES = 1 << 30


def _decode(path: Path) -> str:
    raw = read_regular_file(path, limit=MAX_CSV_BYTES, what="CSV file")
    try:
        return raw.decode("utf-8-sig")  # tolerate the byte-order mark spreadsheets write
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path} is not a UTF-8 text file (undecodable byte at offset {err.start})"
        ) from None


FILLS = ("none", "linear", "ffill")
SHOW_LINES = 5  # how many lines an error about gaps names


class Series(NamedTuple):
    """Columns read from a CSV file: ``values (L, C)`` float64 on a regular grid, and the grid's
    time axis (``None`` without a time column: row ``i`` is step ``i``)."""

    values: np.ndarray
    time: TimeAxis | None
    filled: int  # values that were missing (gaps and inserted rows) and were filled


def _number(text: str, path: Path, line: int, column: str) -> float:
    """The cell's value; ``nan`` marks a missing value (a gap), anything else unusable is refused."""
    if text.strip().lower() in MISSING:
        return math.nan
    where = f"{path} line {line}, column {column!r}"
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return value


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the data rows ``(line, fields)``, blank lines dropped, field counts checked."""
    text = _decode(path)
    if "\x00" in text:
        raise InputError(f"{path} is not a text CSV file (it contains NUL bytes)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        # (line where the row ends, fields): quoted fields may span lines
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as err:
        raise InputError(f"{path} is not valid CSV: {err}") from None
    if not rows or not any(field.strip() for field in rows[0][1]):
        raise InputError(f"{path} is empty; expected a header row of column names")
    header = [name.strip() for name in rows[0][1]]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(f"{path} has duplicate column names in its header: {', '.join(duplicates)}")
    data = []
    for line, row in rows[1:]:
        if not row:  # a blank line (for example at the end of the file)
            continue
        if len(row) != len(header):
            raise InputError(f"{path} line {line} has {len(row)} fields; the header has {len(header)}")
        data.append((line, row))
    if not data:
        raise InputError(f"{path} has a header but no data rows")
    return header, data


def _column_index(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise InputError(f"column {name!r} is not in {path}; its columns are {', '.join(map(repr, header))}")
    return header.index(name)


def _lines_text(lines) -> str:
    shown = ", ".join(str(v) for v in lines[:SHOW_LINES])
    return shown + (", ..." if len(lines) > SHOW_LINES else "")


def fill_gaps(values: np.ndarray, how: str, names: Sequence[str], path) -> np.ndarray:
    """Fill the ``nan`` entries of ``values (L, C)`` column by column: ``"linear"`` interpolates
    between the neighbouring values, ``"ffill"`` repeats the last value before the gap. Gaps
    before a column's first value take that value under both (there is nothing earlier); a
    column with no value at all is refused."""
    out = values.copy()
    steps = np.arange(len(values))
    for j, name in enumerate(names):
        known = np.isfinite(values[:, j])
        if not known.any():
            raise InputError(f"column {name!r} of {path} has no values at all; there is nothing to fill from")
        if known.all():
            continue
        if how == "linear":
            out[:, j] = np.interp(steps, steps[known], values[known, j])
        else:
            last_known = np.maximum.accumulate(np.where(known, steps, -1))
            out[:, j] = values[np.maximum(last_known, int(np.argmax(known))), j]
    return out


def header_of(path: str | Path) -> list[str]:
    """The column names of a CSV file (the whole file is checked as ``read_series`` would)."""
    return _rows(Path(path))[0]


def read_series(
    path: str | Path, columns: Sequence[str], *, time: str | None = None, fill: str = "none"
) -> Series:
    """The named columns of a CSV file on a regular time grid, in file order.

    Missing values (empty, ``NA``, ``nan``, ...) are refused with their count and first lines
    under ``fill="none"``; ``"linear"`` and ``"ffill"`` fill them (see ``fill_gaps``). With a
    ``time`` column, rows must be in time order without duplicates and on one regular grid
    (``rnn_jax.data.timeaxis``); rows missing from the grid are inserted as gaps (and filled) when
    ``fill`` allows, else refused by line. Any other problem (text, infinity, a ragged row) is
    refused with its line and column.
    """
    path = Path(path)
    if fill not in FILLS:
        raise InputError(f"fill must be one of {', '.join(FILLS)}; got {fill!r}")
    if not columns:
        raise InputError("columns must name at least one column")
    if time is not None and time in columns:
        raise InputError(f"time column {time!r} cannot also be a value column")
    header, rows = _rows(path)
    index = [_column_index(header, c, path) for c in columns]
    lines = [line for line, _ in rows]
    values = np.asarray(
        [[_number(row[i], path, line, c) for i, c in zip(index, columns, strict=True)] for line, row in rows],
        dtype=np.float64,
    )
    axis = None
    if time is not None:
        t = _column_index(header, time, path)
        axis, positions = grid_positions([row[t] for _, row in rows], lines, column=time, path=path)
        jumps = np.flatnonzero(np.diff(positions) > 1)
        if jumps.size and fill == "none":
            missing = int(np.sum(np.diff(positions) - 1))
            raise InputError(
                f"{path}: {missing} time step(s) missing from the grid of time column {time!r} (after "
                f"line(s) {_lines_text([lines[i] for i in jumps])}); use --fill linear or --fill ffill "
                "to insert and fill them"
            )
        grid = np.full((int(positions[-1]) + 1, len(columns)), np.nan)
        grid[positions] = values
        values = grid
    gaps = ~np.isfinite(values)
    if gaps.any() and fill == "none":
        rows_with_gaps = np.flatnonzero(gaps.any(axis=1))
        names = [c for j, c in enumerate(columns) if gaps[:, j].any()]
        raise InputError(
            f"{path} has {int(gaps.sum())} missing value(s) in column(s) {', '.join(map(repr, names))} "
            f"(line(s) {_lines_text([lines[i] for i in rows_with_gaps])}); use --fill linear or "
            "--fill ffill to fill them"
        )
    if gaps.any():
        values = fill_gaps(values, fill, columns, path)
    return Series(values, axis, int(gaps.sum()))


def read_csv_columns(path: str | Path, columns: Sequence[str]) -> np.ndarray:
    """The named columns of a CSV file as a float64 array ``(rows, len(columns))``, in file order.

    Strict: no gaps, no time checks (see ``read_series``). Raises ``ValueError`` naming the
    file, line and column of the first problem found.
    """
    return read_series(path, columns).values


def check_enough_rows(n_rows: int, *, window: int, horizon: int, path: str | Path = "the series") -> None:
    """A window of ``window`` steps predicting ``horizon`` steps ahead needs ``window + horizon``
    rows per example, and at least one example for training and one for validation."""
    for name, value in (("window", window), ("horizon", horizon)):
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be an integer >= 1; got {value}")
    needed = window + horizon + 1
    if n_rows < needed:
        raise InputError(
            f"{path} has {n_rows} rows; window {window} and horizon {horizon} need at least {needed} "
            "(one training and one validation example)"
        )
