"""Sequence classification on public benchmarks, offline: the UEA/UCR archive and MNIST-1D.

    uv run --group datasets experiments/classify.py --dataset JapaneseVowels
    uv run --group datasets experiments/classify.py --dataset mnist1d --epochs 100

``--dataset`` takes the archive's names (those whose ``.ts`` files ship in the aeon wheel:
JapaneseVowels, BasicMotions, GunPoint, ItalyPowerDemand, ...; ``--ts-folder`` reads any
folder of ``.ts`` files instead) or ``mnist1d`` (regenerated locally by the mnist1d package,
with its default arguments). The archive's own train/test split is used; variable lengths
(JapaneseVowels: 7-29 steps) become masks, and the classifier reads each case's own last step.
``--n-seeds`` seeds train as one vmapped program (``run_sweep``); the test accuracy is the last
epoch's (nothing is selected on the test split). Beside it, the archive's classic baselines
recomputed on the same split: 1-nearest-neighbour with Euclidean distance (cases of unequal
length compared on a common grid) and with dependent DTW over all channels.

Writes classify_NAME.json (per-seed accuracies, mean and spread, baselines, machine, wall
time), classify_NAME_confusion.png (test confusion matrix, all seeds pooled) and
classify_NAME_accuracy.png (test accuracy over epochs, mean and range over seeds).
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import sys
import time
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers.machine import describe_machine  # noqa: E402

from rnn_jax.cli.args import experiment_main  # noqa: E402
from rnn_jax.data.archive import (  # noqa: E402
    ArchiveSet,
    Cases,
    as_window_data,
    describe,
    load_archive,
    nearest_neighbour,
)
from rnn_jax.errors import InputError  # noqa: E402
from rnn_jax.io import save_figure, write_json  # noqa: E402
from rnn_jax.loss import batch_predict  # noqa: E402
from rnn_jax.plots import plot_accuracy_curves, plot_confusion  # noqa: E402
from rnn_jax.runs.sweep import grid, run_sweep  # noqa: E402
from rnn_jax.train.loop import TrainConfig, check_config  # noqa: E402

# Published figures this run compares to, with where they come from.
PUBLISHED = {
    "mnist1d": {
        "source": "Greydanus & Kobak, 'Scaling down deep learning with MNIST-1D', ICML 2024 "
        "(test accuracy, default data set)",
        "accuracy": {"GRU": 0.91, "CNN": 0.94, "MLP": 0.68},
    },
}


@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
    dataset: str = "JapaneseVowels"
    ts_folder: str | None = None  # a folder of NAME/NAME_TRAIN.ts, NAME_TEST.ts; None: aeon's
    n_seeds: int = 5
    learning_rate: float = 3e-3
    clip_threshold: float = 1.0
    train: TrainConfig = TrainConfig(
        cell="gru", hidden_dim=64, objective="cross_entropy", target="last", epochs=150, batch_size=16
    )
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "dataset": "the archive's name of the data set (JapaneseVowels, BasicMotions, GunPoint, "
        "ItalyPowerDemand, ...) or mnist1d",
        "ts_folder": "read the .ts files from this folder instead of the aeon package's",
        "n_seeds": "seeds trained side by side (vmapped); the spread is over them",
        "learning_rate": "Adam step size (cosine schedule over the run)",
        "clip_threshold": "global gradient norm bound",
        "seed": "random seed from which every member's seed is drawn",
    }


def load(cfg: ClassifyConfig) -> ArchiveSet:
    """The data set, from the archive's files or regenerated (MNIST-1D)."""
    if cfg.dataset.lower() == "mnist1d":
        return mnist1d()
    return load_archive(cfg.dataset, None if cfg.ts_folder is None else Path(cfg.ts_folder))


def mnist1d() -> ArchiveSet:
    """MNIST-1D with the package's default arguments, generated here (no download): 4000
    training and 1000 test sequences of 40 steps, 10 classes."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise InputError("mnist1d comes with the datasets group: uv sync --group datasets") from None
    data = make_dataset(get_dataset_args())

    def cases(xs, ys):
        xs = np.asarray(xs, np.float32)[..., None]
        return Cases(xs, np.full(len(xs), xs.shape[1], np.int32), np.asarray(ys, np.int32))

    return ArchiveSet("mnist1d", cases(data["x"], data["y"]), cases(data["x_test"], data["y_test"]),
                      tuple(str(c) for c in range(10)))  # fmt: skip


def confusion(params, data, n_classes: int) -> np.ndarray:
    """Test confusion counts ``(true, predicted)`` summed over the seeds' models."""
    predict = jax.jit(jax.vmap(lambda p: batch_predict(p, data.x_val, target="last", mask=data.m_val)))
    predicted = np.asarray(jnp.argmax(predict(params), axis=-1))  # (seeds, N)
    counts = np.zeros((n_classes, n_classes), np.int64)
    for row in predicted:
        np.add.at(counts, (np.asarray(data.y_val), row), 1)
    return counts


def run(cfg: ClassifyConfig, out: Path) -> dict:
    start = time.perf_counter()
    archive = load(cfg)
    data = as_window_data(archive)
    config = cfg.train
    check_config(config, data.x_train.shape[0])
    members = grid(
        key=jax.random.key(cfg.seed),
        n_seeds=cfg.n_seeds,
        seq_len=data.x_train.shape[1],
        learning_rate=[cfg.learning_rate],
        clip_threshold=[cfg.clip_threshold],
    )
    shape = describe(archive)
    print(
        f"{archive.name}: {shape['train_cases']} train / {shape['test_cases']} test cases, "
        f"{shape['channels']} channel(s), lengths {shape['lengths'][0]}-{shape['lengths'][1]}, "
        f"{shape['classes']} classes; {cfg.n_seeds} seeds of {config.cell} H={config.hidden_dim}"
    )
    result = run_sweep(config, members, data, progress=True)
    curves = result.metrics["val_accuracy"]  # (seeds, epochs): the test split
    final = curves[:, -1]
    baselines = nearest_neighbour(archive) if archive.name != "mnist1d" else {}
    counts = confusion(result.params, data, len(archive.classes))
    summary = {
        "dataset": archive.name,
        "data": shape,
        "config": dataclasses.asdict(cfg),
        "machine": describe_machine(),
        "test_accuracy": {
            "per_seed": final.tolist(),
            "mean": float(final.mean()),
            "std": float(final.std(ddof=1)) if len(final) > 1 else 0.0,
            "min": float(final.min()),
            "max": float(final.max()),
        },
        "train_accuracy_mean": float(result.metrics["train_accuracy"][:, -1].mean()),
        "baselines_recomputed": baselines,
        "published": PUBLISHED.get(archive.name, {}),
        "confusion": counts.tolist(),
        "wall_seconds": time.perf_counter() - start,
        "train_seconds": result.wall_seconds,
    }
    acc = summary["test_accuracy"]
    print(
        f"test accuracy {acc['mean']:.4f} ± {acc['std']:.4f} over {cfg.n_seeds} seeds "
        f"(min {acc['min']:.4f}, max {acc['max']:.4f}); "
        + "".join(f"{k} {v:.4f}; " for k, v in baselines.items())
        + f"{summary['wall_seconds']:.0f} s"
    )
    name = archive.name
    write_json(out / f"classify_{name}.json", summary)
    save_figure(plot_confusion(counts, archive.classes, title=f"{name}: test, {cfg.n_seeds} seeds pooled"),
                out / f"classify_{name}_confusion.png")  # fmt: skip
    save_figure(plot_accuracy_curves(curves, baselines, title=f"{name}: test accuracy"),
                out / f"classify_{name}_accuracy.png")  # fmt: skip
    return summary


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, ClassifyConfig(), run, "results/classify", argv)


if __name__ == "__main__":
    sys.exit(main())
