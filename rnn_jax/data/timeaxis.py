"""A series' time column: parsed, checked for order and regular spacing, and extended past the end.

A time column holds numbers (``0, 1, 2`` or ``1972.25, 1972.5``), ISO months (``1949-01``),
ISO dates (``2000-06-01``) or ISO date-times (``2000-06-01T00:30``, ``2000-06-01 00:30:00``).
Every row must sit on one regular grid: ``origin + position * step``, positions strictly
increasing. Dates whose day and clock time never change (the 1st of each month, say) are spaced
in calendar months, since months differ in length; all other dates are spaced in seconds. A
jump of several steps means rows are missing: the caller decides whether to insert them (and
fill their values) or refuse.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rnn_jax.errors import InputError

MONTH = re.compile(r"^\d{4}-\d{2}$")
KINDS = ("number", "month", "second")
FORMATS = {  # how each style of stamp is written, for messages
    "month": "YYYY-MM",
    "date": "YYYY-MM-DD",
    "datetime-T": "YYYY-MM-DDTHH:MM[:SS]",
    "datetime-space": "YYYY-MM-DD HH:MM[:SS]",
}


class TimeAxis(NamedTuple):
    """The grid ``origin + i * step`` in ``kind`` units, and how to print its stamps."""

    kind: str  # "number", "month" (calendar months) or "second"
    origin: float | dt.datetime
    step: float  # in the kind's units; positive
    style: str  # "int", "float", "month", "date", "datetime-T", "datetime-space"

    def stamp(self, i: int) -> str:
        """The time of grid position ``i`` (any integer: positions past the end are forecasts),
        written as the column wrote it."""
        if self.kind == "number":
            value = self.origin + i * self.step
            return str(round(value)) if self.style == "int" else f"{value:.10g}"
        if self.kind == "month":
            months = self.origin.year * 12 + self.origin.month - 1 + i * round(self.step)
            when = self.origin.replace(year=months // 12, month=months % 12 + 1)
        else:
            when = self.origin + dt.timedelta(seconds=i * self.step)
        return _format(when, self.style)

    def describe(self) -> dict:
        """JSON-able: what a run saves so that ``from_description`` rebuilds it."""
        origin = self.origin if self.kind == "number" else self.origin.isoformat()
        return {"kind": self.kind, "origin": origin, "step": self.step, "style": self.style}

    @classmethod
    def from_description(cls, saved: dict) -> TimeAxis:
        origin = saved["origin"]
        if saved["kind"] != "number":
            origin = dt.datetime.fromisoformat(origin)
        return cls(saved["kind"], origin, float(saved["step"]), saved["style"])


def _format(when: dt.datetime, style: str) -> str:
    if style == "month":
        return f"{when.year:04d}-{when.month:02d}"
    if style == "date":
        return when.date().isoformat()
    return when.isoformat(sep="T" if style == "datetime-T" else " ")


def _parse_datetime(text: str) -> tuple[dt.datetime, str]:
    if MONTH.match(text):
        return dt.datetime(int(text[:4]), int(text[5:]), 1), "month"
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    if len(text) == 10:
        return when, "date"
    return when, "datetime-T" if "T" in text else "datetime-space"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_times(texts: Sequence[str], lines: Sequence[int], *, column: str, path) -> tuple[str, list, str]:
    """``(kind, values, style)``: numbers as floats, dates as ``datetime``; an unreadable stamp
    is named by line."""
    if _is_number(texts[0]):  # the first stamp decides: numbers, or dates
        bad = next((i for i, t in enumerate(texts) if not _is_number(t)), None)
        if bad is not None:
            raise InputError(
                f"{path} line {lines[bad]}, time column {column!r}: {texts[bad]!r} is not a finite number "
                f"like the column's first stamp ({texts[0]!r})"
            )
        values = [float(t) for t in texts]
        integral = all(v == round(v) for v in values)
        return "number", values, "int" if integral else "float"
    parsed, styles = [], []
    for text, line in zip(texts, lines, strict=True):
        try:
            when, style = _parse_datetime(text.strip())
        except ValueError:
            raise InputError(
                f"{path} line {line}, time column {column!r}: {text!r} is not a number or an ISO date "
                "(YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS])"
            ) from None
        parsed.append(when)
        styles.append(style)
    style = styles[0]
    mixed = next((i for i, s in enumerate(styles) if s != style), None)
    if mixed is not None:  # the stamps a forecast writes take the column's one format
        raise InputError(
            f"{path} line {lines[mixed]}, time column {column!r}: {texts[mixed]!r} is written as "
            f"{FORMATS[styles[mixed]]}, the column's first stamp ({texts[0]!r}) as {FORMATS[style]}; "
            "write every stamp of the column one way"
        )
    monthly = len({(w.day, w.time()) for w in parsed}) == 1
    return ("month" if monthly else "second"), parsed, style


def _offsets(kind: str, values: list) -> np.ndarray:
    """Each stamp's distance from the first, in the kind's units (float64)."""
    if kind == "number":
        return np.asarray(values, np.float64) - values[0]
    if kind == "month":
        first = values[0].year * 12 + values[0].month
        return np.asarray([w.year * 12 + w.month - first for w in values], np.float64)
    return np.asarray([(w - values[0]).total_seconds() for w in values], np.float64)


def grid_positions(
    texts: Sequence[str], lines: Sequence[int], *, column: str, path
) -> tuple[TimeAxis, np.ndarray]:
    """The regular grid the stamps sit on and each row's integer position on it, ``(rows,)``.

    Refuses, naming the lines, a stamp that repeats or goes back in time, and one off the grid
    (its distance from the previous stamp is not a whole number of steps). The step is the
    smallest distance between neighbouring rows; a larger whole multiple means missing rows,
    which the positions show (they skip)."""
    kind, values, style = parse_times(texts, lines, column=column, path=path)
    offsets = _offsets(kind, values)
    if len(values) < 2:
        return TimeAxis(kind, values[0], 1.0, style), np.zeros(len(values), np.int64)
    gaps = np.diff(offsets)
    bad = next((i for i, g in enumerate(gaps) if g <= 0), None)
    if bad is not None:
        what = "repeats" if gaps[bad] == 0 else "goes back in time from"
        raise InputError(
            f"{path} line {lines[bad + 1]}, time column {column!r}: {texts[bad + 1]!r} {what} "
            f"line {lines[bad]} ({texts[bad]!r}); rows must be in time order without duplicates"
        )
    step = float(gaps.min())
    positions = offsets / step
    rounded = np.round(positions)
    off = np.flatnonzero(np.abs(positions - rounded) > 1e-6 * np.maximum(1.0, np.abs(positions)))
    if off.size:
        i = int(off[0])
        raise InputError(
            f"{path} line {lines[i]}, time column {column!r}: {texts[i]!r} is not on the regular "
            f"grid of the other rows (a step of {_step_text(kind, step)} from {texts[0]!r})"
        )
    return TimeAxis(kind, values[0], step, style), rounded.astype(np.int64)


def spacing_text(axis: TimeAxis) -> str:
    """``"a step of 1 month(s), stamps YYYY-MM"``: what a run's calendar is, for messages."""
    written = FORMATS.get(axis.style, "numbers")
    return f"a step of {_step_text(axis.kind, axis.step)}, stamps {written}"


def _step_text(kind: str, step: float) -> str:
    if kind == "month":
        return f"{step:g} month(s)"
    if kind == "second":
        return f"{step:g} s"
    return f"{step:g}"
