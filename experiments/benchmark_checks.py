"""What the checks inside the compiled program cost, measured in one process.

    uv run experiments/benchmark_checks.py [--out results/benchmark_checks] [--rounds 9]

``rnn_jax.batch.prepare`` ties the batch's inputs to the checks of every value that is traced
(``checked_in_program``: NaN or infinite inputs and targets, lengths outside ``[1, T]``, a
traced window below 1), so that a compiled program refuses what the eager call refuses. Every
jitted gradient and every training update pays for them. Two workloads are timed with the checks
and with them replaced by nothing (the counterfactual), the two taking turns (this machine
drifts by tens of percent within a minute):

- ``benchmark_grads.py``'s cases: autodiff's and the hand-derived gradient of a tanh Elman
  network at T=50 for each batch size, hidden size and truncation asked for, jitted with
  ``traced_checks=True`` and ``False``; one ratio (checked over unchecked) per round and gradient;
- one jitted training run (``make_train``, the sine task, a traced truncation), with the
  checks and with ``checked_in_program`` replaced by nothing; one ratio per round.

Reported: the median ratio and its quartiles. Writes benchmark_checks.json with the CPU's model
and flags.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import contextlib
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import ClassVar
from unittest import mock

import jax
from benchmark_grads import GradBenchmarkConfig, interleaved_seconds, ratio_summary
from benchmark_grads import check as grad_cases  # experiments/ is the script's folder
from helpers.machine import describe_machine, machine_line

import rnn_jax.batch
from rnn_jax.cli.args import experiment_main
from rnn_jax.data.sine import make_sine_data
from rnn_jax.io import write_json
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_model
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train


@dataclasses.dataclass(frozen=True)
class ChecksBenchmarkConfig:
    rounds: int = 9
    sample_seconds: float = 0.05
    batches: str = "100,1"
    hidden_sizes: str = "100,32"
    truncations: str = "none,5"
    seq_len: int = 50
    hidden_dim: int = 32
    epochs: int = 20
    length: int = 400
    window: int = 50

    HELP: ClassVar[dict[str, str]] = {
        "rounds": "alternating rounds; each gives one ratio (checked over unchecked)",
        "sample_seconds": "about how long one gradient runs back to back in a round",
        "batches": "comma-separated batch sizes N of the gradient cases",
        "hidden_sizes": "comma-separated hidden sizes H of the gradient cases",
        "truncations": "comma-separated truncations k of the gradient cases (none: full BPTT)",
        "seq_len": "sequence length T of the gradient cases",
        "hidden_dim": "hidden size H of the Elman network trained",
        "epochs": "epochs of each timed training run",
        "length": "samples in the sine series",
        "window": "steps per training window (T)",
    }


def unchecked(xs, ys, options, mask):
    """``checked_in_program`` replaced by nothing: the counterfactual being timed."""
    return xs


def without_checks():
    """While it holds, training programs traced anew carry no checks (``checked_in_program``
    is read when tracing): ``make_train`` has no option for them, as they cost it nothing
    measurable."""
    return mock.patch.object(rnn_jax.batch, "checked_in_program", unchecked)


def gradient_function(name: str, truncation: int | None, checks: bool):
    """``benchmark_grads.py``'s jitted ``name`` gradient (``autodiff`` or ``manual``), with
    or without the traced checks (``traced_checks``)."""
    options = {"truncation": truncation, "traced_checks": checks}
    if name == "autodiff":
        return jax.jit(lambda m, xs, ys: jax.grad(loss)(m, xs, ys, **options))
    return jax.jit(lambda m, xs, ys: manual_grads(m, xs, ys, **options))


def gradient_cases(cfg: ChecksBenchmarkConfig) -> list[tuple[int, int, int | None]]:
    """``(batch, hidden, truncation)`` of each case, checked as ``benchmark_grads.py`` checks them."""
    fields = ("rounds", "sample_seconds", "batches", "hidden_sizes", "truncations", "seq_len")
    return grad_cases(GradBenchmarkConfig(**{f: getattr(cfg, f) for f in fields}, training_rounds=0))


def gradient_case(cfg: ChecksBenchmarkConfig, batch: int, hidden: int, truncation: int | None) -> dict:
    """One of ``benchmark_grads.py``'s cases: each gradient's median time with and without the
    checks, and the per-round ratio."""
    model = init_model(
        "elman", key=jax.random.key(0), input_dim=1, hidden_dim=hidden, output_dim=1, activation="tanh"
    )
    xs = jax.random.normal(jax.random.key(1), (batch, cfg.seq_len, 1))
    ys = jax.random.normal(jax.random.key(2), (batch, 1))
    fns = {
        f"{name} {label}": gradient_function(name, truncation, checks)
        for name in ("autodiff", "manual")
        for label, checks in (("checked", True), ("unchecked", False))
    }
    samples = interleaved_seconds(fns, (model, xs, ys), cfg.rounds, cfg.sample_seconds)
    row: dict = {"batch": batch, "hidden": hidden, "seq_len": cfg.seq_len, "truncation": truncation}
    row["median_s"] = {name: statistics.median(t) for name, t in samples.items()}
    for name in ("autodiff", "manual"):
        ratios = [
            a / b for a, b in zip(samples[f"{name} checked"], samples[f"{name} unchecked"], strict=True)
        ]
        row[f"{name}_checked_over_unchecked"] = {**ratio_summary(ratios), "rounds": ratios}
    return row


def gradient_line(row: dict) -> str:
    k = "full BPTT" if row["truncation"] is None else f"k={row['truncation']}"
    parts = [
        f"{name} {row[f'{name}_checked_over_unchecked']['median']:.3f} "
        f"({row[f'{name}_checked_over_unchecked']['q1']:.3f}-{row[f'{name}_checked_over_unchecked']['q3']:.3f})"
        for name in ("autodiff", "manual")
    ]
    return f"N={row['batch']:>3} H={row['hidden']:>3} {k:>9}: checked / unchecked " + ", ".join(parts)


def training_run(cfg: ChecksBenchmarkConfig, *, checks: bool):
    """A compiled training run (called once here, so that timing it times no compilation)."""
    data = make_sine_data(length=cfg.length, window=cfg.window, scale=True)
    hparams = make_hparams(learning_rate=1e-2, seq_len=cfg.window, truncation=5)
    config = TrainConfig(hidden_dim=cfg.hidden_dim, epochs=cfg.epochs, batch_size=10)
    with contextlib.nullcontext() if checks else without_checks():
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
    gradients = []
    for case in gradient_cases(cfg):
        gradients.append(gradient_case(cfg, *case))
        print(gradient_line(gradients[-1]), flush=True)
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
        "gradients": gradients,
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
