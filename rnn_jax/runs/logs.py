"""Per-epoch logs of a run: ``metrics.jsonl`` for tools, a few printed lines for people.

A run's metrics reach the host once per compiled chunk (never inside the compiled loop).
``EpochLog.record`` then appends one JSON line per epoch to ``metrics.jsonl`` in one write and
an fsync, so that after a crash or ``kill -9`` the file holds every finished chunk's epochs as
whole lines, and prints a line every ``every`` epochs. A run that starts (or resumes) first
rewrites the file from what its checkpoint holds, so the file never lists an epoch the
checkpoint lost, nor one twice.

A line looks like ``{"epoch": 3, "train_loss": 0.012, "val_loss": 0.011, ...}``; in a sweep or
ensemble each metric is a list with one value per member.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rnn_jax.io import append_json_lines, write_json_lines

METRICS_LOG = "metrics.jsonl"
LINES_PER_RUN = 10  # printed lines in a run when --log-every is not given
SHOWN = ("train_loss", "val_loss", "val_rmse", "val_accuracy")  # the metrics a printed line shows


def default_every(epochs: int) -> int:
    """Epochs between printed lines that give about ``LINES_PER_RUN`` lines."""
    return max(1, math.ceil(epochs / LINES_PER_RUN))


def _plain(values: np.ndarray) -> float | list[float]:
    return float(values) if values.ndim == 0 else [float(v) for v in values]


def epoch_rows(first_epoch: int, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per epoch, ``{"epoch": first_epoch + i, name: value, ...}``, from metrics of
    shape ``(E,)`` (one run: numbers) or ``(M, E)`` (M members: lists)."""
    arrays = {name: np.asarray(values) for name, values in metrics.items()}
    if not arrays:
        return []
    n_epochs = next(iter(arrays.values())).shape[-1]
    return [
        {"epoch": first_epoch + i, **{name: _plain(a[..., i]) for name, a in arrays.items()}}
        for i in range(n_epochs)
    ]


def format_row(row: dict[str, Any], total_epochs: int) -> str:
    """``epoch   30/300  train_loss 0.0012  val_loss ...``; members' values as their median."""
    width = len(str(total_epochs))
    parts = [f"epoch {row['epoch']:{width}d}/{total_epochs}"]
    for name in SHOWN:
        if name in row:
            value = row[name]
            if isinstance(value, list):
                parts.append(f"{name} {np.nanmedian(value) if value else math.nan:.4g} (median)")
            else:
                parts.append(f"{name} {value:.4g}")
    return "  ".join(parts)


@dataclasses.dataclass
class EpochLog:
    """Where a run's per-epoch metrics go: ``path`` (a ``metrics.jsonl``; ``None``: no file) and
    a printed line every ``every`` epochs and at the last one (``None``: about ten lines per
    run), unless ``quiet``. ``rnn_jax.runs.driver.fit`` and ``rnn_jax.runs.sweep.run_sweep`` call
    ``start`` once and ``record`` after every chunk."""

    path: Path | None = None
    every: int | None = None
    quiet: bool = False
    total_epochs: int = 0
    # Every line the file should hold, and the file that holds them (device, inode): a file
    # removed or replaced mid-run (log rotation, a user's rm) is written again, whole.
    _rows: list = dataclasses.field(default_factory=list, repr=False)
    _identity: tuple | None = dataclasses.field(default=None, repr=False)

    def start(self, total_epochs: int, history: dict[str, Any]) -> None:
        """Begin a run of ``total_epochs`` whose first epochs' metrics (from a checkpoint, or
        none) are ``history``: the file is rewritten to hold exactly those."""
        self.total_epochs = total_epochs
        if self.path is not None:
            self._rows = epoch_rows(1, history)
            self._rewrite()

    def _rewrite(self) -> None:
        write_json_lines(self.path, self._rows)
        self._identity = _file_identity(self.path)

    def _append(self, rows: list[dict[str, Any]]) -> None:
        self._rows.extend(rows)
        if _file_identity(self.path) != self._identity:
            self._rewrite()
            warn(
                f"warning: {self.path} was removed or replaced during the run; written again with "
                f"every epoch so far ({len(self._rows)})"
            )
        else:
            append_json_lines(self.path, rows)

    def record(self, first_epoch: int, chunk: dict[str, Any]) -> None:
        """Log one chunk's metrics, whose first epoch is ``first_epoch`` (1-based). Epochs after
        an early stop of a single run are left out (they repeat the stopped state)."""
        rows = epoch_rows(first_epoch, chunk)
        stopped = [r["stopped_at"] for r in rows if isinstance(r.get("stopped_at"), float)]
        last = int(stopped[-1]) if stopped and stopped[-1] > 0 else self.total_epochs
        rows = [r for r in rows if r["epoch"] <= last]
        if self.path is not None and rows:
            self._append(rows)
        if self.quiet:
            return
        every = self.every or default_every(self.total_epochs)
        for row in rows:
            if row["epoch"] % every == 0 or row["epoch"] == last:
                write_line(format_row(row, self.total_epochs))


def _file_identity(path: Path) -> tuple | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def warn(text: str) -> None:
    """One line on stderr (after any progress bar's line)."""
    print(text, file=sys.stderr, flush=True)


def progress_bar_class():
    """``tqdm``'s bar class, or ``None`` where tqdm is not installed.

    tqdm is a dependency of the package, but nothing else needs it: a bare environment (an
    accelerator image with JAX preinstalled, ``PYTHONPATH=.``) still trains and logs, with
    plain lines instead of a bar."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def write_line(text: str) -> None:
    """One line on stdout that does not break a progress bar drawn on stderr."""
    bar = progress_bar_class()
    if bar is None:
        print(text, flush=True)
    else:
        bar.write(text)
