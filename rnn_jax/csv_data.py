"""Reading users' own series from CSV files, strictly: every problem is named by line and column.

A file is a header row of column names followed by one row per time step. Every requested
column must hold a finite number in every row; anything else (a missing value, text, an
infinity, a row with too few or too many fields) is refused with the line number, the column
and what was found, rather than skipped or silently turned into NaN.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MISSING = {"", "na", "n/a", "nan", "null", "none", "-"}


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"CSV file {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"CSV file {path} is a directory, not a file") from None
    except OSError as err:
        raise ValueError(f"cannot read CSV file {path}: {err.strerror}") from None
    try:
        return raw.decode("utf-8-sig")  # tolerate the byte-order mark spreadsheets write
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not a UTF-8 text file (undecodable byte at offset {err.start})"
        ) from None


def _number(text: str, path: Path, line: int, column: str) -> float:
    where = f"{path} line {line}, column {column!r}"
    if text.strip().lower() in MISSING:
        raise ValueError(f"{where}: missing value ({text!r}); fill or drop the row first")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {text!r} is not a finite number")
    return value


def read_csv_columns(path: str | Path, columns: Sequence[str]) -> np.ndarray:
    """The named columns of a CSV file as a float64 array ``(rows, len(columns))``, in file order.

    Raises ``ValueError`` naming the file, line and column of the first problem found.
    """
    path = Path(path)
    if not columns:
        raise ValueError("columns must name at least one column")
    text = _decode(path)
    if "\x00" in text:
        raise ValueError(f"{path} is not a text CSV file (it contains NUL bytes)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        # (line where the row ends, fields): quoted fields may span lines
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as err:
        raise ValueError(f"{path} is not valid CSV: {err}") from None
    if not rows or not any(field.strip() for field in rows[0][1]):
        raise ValueError(f"{path} is empty; expected a header row of column names")
    header = [name.strip() for name in rows[0][1]]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path} has duplicate column names in its header: {', '.join(duplicates)}")
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise ValueError(
            f"column {unknown[0]!r} is not in {path}; its columns are {', '.join(map(repr, header))}"
        )
    index = [header.index(c) for c in columns]
    values = []
    for line, row in rows[1:]:
        if not row:  # a blank line (for example at the end of the file)
            continue
        if len(row) != len(header):
            raise ValueError(f"{path} line {line} has {len(row)} fields; the header has {len(header)}")
        values.append([_number(row[i], path, line, c) for i, c in zip(index, columns, strict=True)])
    if not values:
        raise ValueError(f"{path} has a header but no data rows")
    return np.asarray(values, dtype=np.float64)


def check_enough_rows(n_rows: int, *, window: int, horizon: int, path: str | Path = "the series") -> None:
    """A window of ``window`` steps predicting ``horizon`` steps ahead needs ``window + horizon``
    rows per example, and at least one example for training and one for validation."""
    for name, value in (("window", window), ("horizon", horizon)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value}")
    needed = window + horizon + 1
    if n_rows < needed:
        raise ValueError(
            f"{path} has {n_rows} rows; window {window} and horizon {horizon} need at least {needed} "
            "(one training and one validation example)"
        )
