"""Long-range memory tasks: what each cell learns with full BPTT, and with truncation windows
shorter than the dependency.

    uv run experiments/memory_tasks.py                  # adding and recall, T = 100
    uv run experiments/memory_tasks.py --seq-len 200 --cells gru,lstm

Both tasks are drawn from a key at run time (``rnn_jax.data.memory_tasks``). For each task and cell,
every truncation window trains as one member of one compiled sweep (``rnn_jax.runs.sweep``; the
window is a traced hyperparameter), on the same data and initial weights. In the adding problem
(Hochreiter & Schmidhuber's placement) both marked values lie more than T/2 steps before the
target, so a window shorter than that never holds one. In recall the symbol is T steps back.
Writes memory_tasks.json and memory_tasks.png to --out.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

from rnn_jax.cli.args import experiment_main
from rnn_jax.data.memory_tasks import ADDING_MEAN_MSE, task_data
from rnn_jax.errors import InputError
from rnn_jax.io import save_figure, write_json
from rnn_jax.plots import plot_memory_tasks
from rnn_jax.runs.options import parse_list
from rnn_jax.runs.sweep import grid, run_sweep
from rnn_jax.train.loop import TrainConfig


@dataclasses.dataclass(frozen=True)
class MemoryTasksConfig:
    tasks: str = "adding,recall"
    cells: str = "elman,gru,lstm"
    seq_len: int = 100  # the adding problem's T
    truncations: str = "10,25,49,75,none"
    recall_len: int = 30  # recall's T
    recall_truncations: str = "5,10,20,25,none"
    hidden_dim: int = 64
    epochs: int = 20
    batch_size: int = 50
    n_train: int = 5000
    n_val: int = 1000
    symbols: int = 8  # recall's alphabet
    learning_rate: float = 3e-3
    seed: int = 0

    HELP = {
        "tasks": "comma-separated: adding, recall",
        "cells": "comma-separated cells",
        "seq_len": "the adding problem's sequence length T",
        "truncations": "the adding problem's windows k, comma-separated (none: full BPTT)",
        "recall_len": "recall's sequence length T",
        "recall_truncations": "recall's windows k, comma-separated (none: full BPTT)",
        "hidden_dim": "hidden size H",
        "epochs": "passes over the training sequences",
        "batch_size": "sequences per update",
        "n_train": "training sequences (drawn once)",
        "n_val": "validation sequences",
        "symbols": "recall: the number of symbols K (chance accuracy 1/K)",
        "learning_rate": "Adam step size (cosine decay to 0)",
        "seed": "data and initialisation seed",
    }


def check(cfg: MemoryTasksConfig):
    tasks = parse_list(cfg.tasks, "tasks", str)
    bad = set(tasks) - {"adding", "recall"}
    if bad:
        raise InputError(f"tasks must be adding or recall; got {', '.join(sorted(bad))}")
    cells = parse_list(cfg.cells, "cells", str)
    windows = {
        "adding": parse_list(cfg.truncations, "truncations", int, allow_none=True),
        "recall": parse_list(cfg.recall_truncations, "recall_truncations", int, allow_none=True),
    }
    for name in (
        "seq_len",
        "recall_len",
        "hidden_dim",
        "epochs",
        "batch_size",
        "n_train",
        "n_val",
        "symbols",
    ):
        least = 2 if name in ("seq_len", "recall_len", "symbols") else 1
        if getattr(cfg, name) < least:
            raise InputError(f"{name} must be at least {least}; got {getattr(cfg, name)}")
    return tasks, cells, windows


def train_config(cfg: MemoryTasksConfig, task: str, cell: str) -> TrainConfig:
    return TrainConfig(
        cell=cell,
        hidden_dim=cfg.hidden_dim,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        objective="cross_entropy" if task == "recall" else "squared",
    )


def run(cfg: MemoryTasksConfig, out: Path) -> dict:
    tasks, cells, windows = check(cfg)
    data_key, init_key = jax.random.split(jax.random.key(cfg.seed))
    results: dict = {}
    for task in tasks:
        ks, seq_len = windows[task], cfg.seq_len if task == "adding" else cfg.recall_len
        data = task_data(
            task, data_key, n_train=cfg.n_train, n_val=cfg.n_val, seq_len=seq_len, symbols=cfg.symbols
        )
        results[task] = {
            "references": {"predict the mean (1/6)": ADDING_MEAN_MSE}
            if task == "adding"
            else {f"chance (1/{cfg.symbols})": 1.0 / cfg.symbols}
        }
        for cell in cells:
            members = grid(
                key=init_key, n_seeds=1, seq_len=seq_len, learning_rate=[cfg.learning_rate], truncation=ks
            )
            result = run_sweep(train_config(cfg, task, cell), members, data, progress=True)
            if task == "adding":
                score = np.asarray(result.metrics["val_rmse"])[:, -1] ** 2
            else:
                score = np.asarray(result.metrics["val_accuracy"])[:, -1]
            results[task][cell] = {"k": ks, "score": score.tolist(), "wall_seconds": result.wall_seconds}
            shown = ", ".join(f"k={k or 'full'}: {s:.3g}" for k, s in zip(ks, score, strict=True))
            what = "MSE" if task == "adding" else "accuracy"
            print(f"{task:>6} {cell:>5} ({what}): {shown} ({result.wall_seconds:.0f} s)")
    write_json(out / "memory_tasks.json", {"config": dataclasses.asdict(cfg), "results": results})
    lengths = {"adding": cfg.seq_len, "recall": cfg.recall_len}
    save_figure(plot_memory_tasks(results, {t: lengths[t] for t in tasks}), out / "memory_tasks.png")
    return results


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, MemoryTasksConfig(), run, "results/memory_tasks", argv)


if __name__ == "__main__":
    sys.exit(main())
