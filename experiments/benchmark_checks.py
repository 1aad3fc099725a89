"""What the checks inside the compiled program cost a training run, measured in one process.

    uv run experiments/benchmark_checks.py [--out results/benchmark_checks] [--rounds 9]

``rnn_jax.batch.prepare`` ties the batch's inputs to the checks of every value that is traced
(``checked_in_program``: NaN or infinite inputs and targets, lengths outside ``[1, T]``, a
traced window below 1), so that a compiled program refuses what the eager call refuses. In a
training run every batch is traced, so each update pays for the checks. This times one jitted
training run (``make_train``, the sine task, a traced truncation) with the checks and with them
replaced by nothing, in alternating rounds (this machine drifts by tens of percent within a
minute), and reports the median ratio and its quartiles. Writes benchmark_checks.json with the
CPU's model and flags.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import ClassVar
from unittest import mock

import jax
from helpers.machine import describe_machine, machine_line  # experiments/ is the script's folder

import rnn_jax.batch
from rnn_jax.cli.args import experiment_main
from rnn_jax.data.sine import make_sine_data
from rnn_jax.io import write_json
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train


@dataclasses.dataclass(frozen=True)
class ChecksBenchmarkConfig:
    rounds: int = 9
    hidden_dim: int = 32
    epochs: int = 20
    length: int = 400
    window: int = 50

    HELP: ClassVar[dict[str, str]] = {
        "rounds": "alternating rounds; each gives one ratio (checked over unchecked)",
        "hidden_dim": "hidden size H of the Elman network trained",
        "epochs": "epochs of each timed training run",
        "length": "samples in the sine series",
        "window": "steps per training window (T)",
    }


def unchecked(xs, ys, options, mask):
    """``checked_in_program`` replaced by nothing: the counterfactual being timed."""
    return xs


def training_run(cfg: ChecksBenchmarkConfig, *, checks: bool):
    """A compiled training run (called once here, so that timing it times no compilation)."""
    data = make_sine_data(length=cfg.length, window=cfg.window, scale=True)
    hparams = make_hparams(learning_rate=1e-2, seq_len=cfg.window, truncation=5)
    config = TrainConfig(hidden_dim=cfg.hidden_dim, epochs=cfg.epochs, batch_size=10)
    replacement = rnn_jax.batch.checked_in_program if checks else unchecked
    with mock.patch.object(rnn_jax.batch, "checked_in_program", replacement):  # read when tracing
        train = jax.jit(make_train(config).train).lower(jax.random.key(0), hparams, data).compile()
    jax.block_until_ready(train(jax.random.key(0), hparams, data))
    return lambda: jax.block_until_ready(train(jax.random.key(0), hparams, data))


def seconds(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def run(cfg: ChecksBenchmarkConfig, out: Path) -> dict:
    machine = describe_machine()
    print(machine_line(machine), flush=True)
    checked, plain = training_run(cfg, checks=True), training_run(cfg, checks=False)
    times = {"checked": [], "unchecked": []}
    for _ in range(cfg.rounds):
        times["checked"].append(seconds(checked))
        times["unchecked"].append(seconds(plain))
    ratios = [a / b for a, b in zip(times["checked"], times["unchecked"], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    result = {
        "config": dataclasses.asdict(cfg),
        "machine": machine,
        "jax": jax.__version__,
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "checked_over_unchecked": {"median": median, "q1": q1, "q3": q3, "rounds": ratios},
    }
    print(
        f"training {cfg.epochs} epochs, H={cfg.hidden_dim}: checked / unchecked = {median:.3f} "
        f"(quartiles {q1:.3f}-{q3:.3f}, {cfg.rounds} rounds)"
    )
    write_json(out / "benchmark_checks.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, ChecksBenchmarkConfig(), run, "results/benchmark_checks", argv)


if __name__ == "__main__":
    sys.exit(main())
