"""Sequence classification sets of the UEA/UCR time-series archive, read from their ``.ts`` files.

The archive's format (one file per split, ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``): ``#`` comment
lines, a header of ``@key value`` lines ending with ``@data``, then one case per line, its
channels separated by ``:`` and each channel's values by ``,``, the class label last. Cases may
differ in length (``@equalLength false``); within a case every channel has the same length.

The files ship inside the ``aeon`` wheel (the ``datasets`` dependency group), which this module
finds without importing: importing the toolkit pulls in scikit-learn, numba and pandas, and
only its data files are needed. Any folder of ``.ts`` files works the same way
(``load_archive(name, folder=...)``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.data.sine import WindowData, identity_scaler
from rnn_jax.errors import InputError


class Cases(NamedTuple):
    """One split: ``xs (N, T, C)`` zero-padded after each case's end, ``lengths (N,)`` and
    ``labels (N,)``, indices into the archive's class list."""

    xs: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray


class ArchiveSet(NamedTuple):
    """A data set with the archive's own train/test split."""

    name: str
    train: Cases
    test: Cases
    classes: tuple[str, ...]


def archive_folder() -> Path:
    """The folder of the archive's data sets inside the installed ``aeon`` package."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the archive's files come with the aeon package: install the datasets group "
            "(uv sync --group datasets), or give a folder of .ts files"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def archive_names(folder: Path | None = None) -> list[str]:
    """The data sets in ``folder`` (default: ``archive_folder()``) that have both splits."""
    folder = archive_folder() if folder is None else Path(folder)
    return sorted(p.name for p in folder.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())


def load_archive(name: str, folder: Path | None = None) -> ArchiveSet:
    """Both splits of data set ``name``, their labels indexed by the training file's class list."""
    folder = archive_folder() if folder is None else Path(folder)
    paths = [folder / name / f"{name}_{split}.ts" for split in ("TRAIN", "TEST")]
    if not paths[0].is_file():
        known = ", ".join(archive_names(folder)) if folder.is_dir() else "none"
        raise InputError(f"dataset {name!r} is not in {folder} (there: {known})")
    (train, classes), (test, test_classes) = (read_ts(p) for p in paths)
    if test_classes != classes:
        raise InputError(f"{paths[1]} lists the classes {test_classes}; {paths[0]} lists {classes}")
    return ArchiveSet(name, train, test, classes)


def read_ts(path: Path) -> tuple[Cases, tuple[str, ...]]:
    """One ``.ts`` file: its cases and the class labels its header declares, in order.

    Errors name the file, the line and what was expected; a missing value (``?``) or one that
    is not a finite number is refused (the archive's sets used here have none)."""
    path = Path(path)
    header: dict[str, str] = {}
    series, labels = [], []
    lines = path.read_text().splitlines()
    data_at = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if data_at is None:
            if not line.startswith("@"):
                raise InputError(
                    f"{path} line {number}: expected a header line (@key value); got {line[:40]!r}"
                )
            key, _, value = line[1:].partition(" ")
            header[key.lower()] = value.strip()
            if key.lower() == "data":
                data_at = number
            continue
        *channels, label = line.split(":")
        if not channels:
            raise InputError(f"{path} line {number}: a case needs its values and a label after ':'")
        try:
            values = [[float(v) for v in c.split(",")] for c in channels]
        except ValueError:
            where = f"{path} line {number}"
            raise InputError(f"{where}: values must be numbers (a missing '?' is not read)") from None
        if len({len(v) for v in values}) != 1:
            raise InputError(f"{path} line {number}: the channels have different lengths")
        case = np.asarray(values, np.float64).T  # (T, C)
        if not np.all(np.isfinite(case)):
            raise InputError(f"{path} line {number}: values must be finite")
        series.append(case)
        labels.append(label.strip())
    class_line = header.get("classlabel", "").split()
    if data_at is None or not class_line or class_line[0].lower() != "true":
        raise InputError(f"{path}: expected a header with '@classLabel true <labels>' and '@data'")
    classes = tuple(class_line[1:])
    if not series:
        raise InputError(f"{path}: no cases after @data")
    if len({s.shape[1] for s in series}) != 1:
        raise InputError(f"{path}: the cases have different numbers of channels")
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise InputError(f"{path}: labels {unknown} are not among the declared classes {list(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    return _padded(series, [index[label] for label in labels]), classes


def _padded(series: list[np.ndarray], labels: list[int]) -> Cases:
    lengths = np.asarray([len(s) for s in series], np.int32)
    xs = np.zeros((len(series), int(lengths.max()), series[0].shape[1]), np.float32)
    for i, s in enumerate(series):
        xs[i, : len(s)] = s
    return Cases(xs, lengths, np.asarray(labels, np.int32))


def as_window_data(data: ArchiveSet) -> WindowData:
    """Training and test cases as ``WindowData`` (the test split in the validation slots), each
    channel standardised by the training cases' mean and spread over their real steps, both
    splits padded to one length with masks marking the real steps."""
    length = max(data.train.xs.shape[1], data.test.xs.shape[1])
    masks = [np.arange(length)[None, :] < c.lengths[:, None] for c in (data.train, data.test)]
    real = data.train.xs[masks[0][:, : data.train.xs.shape[1]]]  # (steps, C)
    mean, std = real.mean(axis=0), real.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def standard(cases: Cases, mask: np.ndarray) -> np.ndarray:
        xs = np.zeros((len(cases.xs), length, cases.xs.shape[2]), np.float32)
        xs[:, : cases.xs.shape[1]] = cases.xs
        return np.where(mask[..., None], (xs - mean) / std, 0.0).astype(np.float32)

    return WindowData(
        x_train=jnp.asarray(standard(data.train, masks[0])),
        y_train=jnp.asarray(data.train.labels),
        x_val=jnp.asarray(standard(data.test, masks[1])),
        y_val=jnp.asarray(data.test.labels),
        scaler=identity_scaler(),
        m_train=jnp.asarray(masks[0]),
        m_val=jnp.asarray(masks[1]),
        classes=len(data.classes),
    )


def describe(data: ArchiveSet) -> dict:
    """Sizes of a data set, as the archive's tables give them."""
    lengths = np.concatenate([data.train.lengths, data.test.lengths])
    return {
        "train_cases": len(data.train.labels),
        "test_cases": len(data.test.labels),
        "channels": int(data.train.xs.shape[2]),
        "classes": len(data.classes),
        "lengths": [int(lengths.min()), int(lengths.max())],
        "chance": 1.0 / len(data.classes),
        "majority_test": float(np.bincount(data.test.labels).max() / len(data.test.labels)),
    }


def nearest_neighbour(data: ArchiveSet) -> dict:
    """Test accuracy of 1-NN with Euclidean distance and with dependent DTW (all channels in one
    warping path, no window), on z-normalised inputs as the model sees them."""
    windows = as_window_data(data)
    train, test = np.asarray(windows.x_train), np.asarray(windows.x_val)
    lengths = [data.train.lengths, data.test.lengths]
    grid_len = int(max(lengths[0].max(), lengths[1].max()))

    def resampled(xs, ls):  # each case stretched onto one grid, for the Euclidean distance
        out = np.empty((len(xs), grid_len, xs.shape[2]), np.float32)
        for i, (x, n) in enumerate(zip(xs, ls, strict=True)):
            t = np.linspace(0, n - 1, grid_len)
            out[i] = np.stack([np.interp(t, np.arange(n), x[:n, c]) for c in range(x.shape[1])], 1)
        return out

    a, b = resampled(train, lengths[0]), resampled(test, lengths[1])
    euclid = ((b[:, None] - a[None]) ** 2).sum(axis=(2, 3))
    pairwise = jax.jit(jax.vmap(jax.vmap(dtw_distance, (None, None, 0, 0)), (0, 0, None, None)))
    dtw = np.asarray(pairwise(test, lengths[1], train, lengths[0]))
    labels = [data.train.labels, data.test.labels]
    return {
        f"1-NN {name}": float(np.mean(labels[0][np.argmin(d, axis=1)] == labels[1]))
        for name, d in (("Euclidean", euclid), ("DTW (dependent, no window)", dtw))
    }


def dtw_distance(x, nx, y, ny):
    """Dependent DTW between ``x[:nx]`` and ``y[:ny]`` (``(T, C)`` each, zero-padded): squared
    Euclidean step costs, one path for all channels; a ``lax.scan`` over the rows of the cost
    matrix, each row a ``lax.scan`` over its columns."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    cost = ((x[:, None] - y[None]) ** 2).sum(-1)  # (Tx, Ty)
    big = jnp.asarray(jnp.inf, cost.dtype)
    cols = jnp.arange(cost.shape[1])

    def row(prev, i):
        def cell(left, j):
            best = jnp.minimum(jnp.minimum(prev[j], left), jnp.where(j > 0, prev[j - 1], big))
            best = jnp.where((i == 0) & (j == 0), 0.0, best)
            value = jnp.where((i < nx) & (j < ny), cost[i, j] + best, big)
            return value, value

        _, this = jax.lax.scan(cell, big, cols)
        return this, this[ny - 1]

    _, last = jax.lax.scan(row, jnp.full(cost.shape[1], big), jnp.arange(cost.shape[0]))
    return last[nx - 1]
