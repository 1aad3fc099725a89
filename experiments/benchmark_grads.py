"""Speed of the hand-derived gradient against autodiff, measured in one process.

    uv run experiments/benchmark_grads.py [--out results/benchmark_grads]

For T=50, H=100 (the tutorial's sizes), batch 1 and 100, full BPTT and k=5: the median time of
one jitted gradient evaluation (after warm-up, min and max over repeats too), and the wall time
of a whole 25-epoch tutorial-preset training run with each gradient. Writes benchmark_grads.json.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.command import answer_signals

    answer_signals()

import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import ClassVar

import jax

from rnn_jax.args import experiment_main
from rnn_jax.data import make_sine_data
from rnn_jax.errors import InputError
from rnn_jax.io import write_json
from rnn_jax.losses import loss
from rnn_jax.manual_grads import manual_grads
from rnn_jax.model import init_elman
from rnn_jax.train import TrainConfig, make_hparams, make_train


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    repeats: int = 7
    calls: int = 200  # gradient evaluations per repeat
    hidden_dim: int = 100
    seq_len: int = 50

    HELP: ClassVar[dict[str, str]] = {
        "repeats": "timed repeats of each measurement; the median is reported",
        "calls": "gradient evaluations per repeat",
        "hidden_dim": "hidden size H",
        "seq_len": "sequence length T",
    }


def time_calls(fn, args, repeats: int, calls: int) -> dict[str, float]:
    """Seconds per call: median, min and max over ``repeats`` batches of ``calls`` calls."""
    jax.block_until_ready(fn(*args))  # compile and warm up
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        jax.block_until_ready(out)
        per_call.append((time.perf_counter() - start) / calls)
    return {"median_s": statistics.median(per_call), "min_s": min(per_call), "max_s": max(per_call)}


def run(cfg: BenchmarkConfig, out: Path) -> dict:
    if min(cfg.repeats, cfg.calls, cfg.hidden_dim, cfg.seq_len) < 1:
        raise InputError("repeats, calls, hidden_dim and seq_len must be positive integers")
    grads = {
        "autodiff": jax.jit(jax.grad(loss), static_argnames=("truncation",)),
        "manual": jax.jit(manual_grads, static_argnames=("truncation",)),
    }
    params = init_elman(
        key=jax.random.key(0), input_dim=1, hidden_dim=cfg.hidden_dim, output_dim=1, activation="sigmoid"
    )
    rows = []
    for batch in (1, 100):
        xs = jax.random.normal(jax.random.key(1), (batch, cfg.seq_len, 1))
        ys = jax.random.normal(jax.random.key(2), (batch, 1))
        for truncation in (None, 5):
            row = {"batch": batch, "truncation": truncation}
            for name, fn in grads.items():
                row[name] = time_calls(
                    lambda p, x, y, f=fn, t=truncation: f(p, x, y, truncation=t),
                    (params, xs, ys),
                    cfg.repeats,
                    cfg.calls,
                )
            row["manual_over_autodiff"] = row["manual"]["median_s"] / row["autodiff"]["median_s"]
            rows.append(row)
            print(
                f"batch {batch:3d} truncation {truncation!s:>4}: "
                f"autodiff {row['autodiff']['median_s'] * 1e6:7.1f} us"
                f"  manual {row['manual']['median_s'] * 1e6:7.1f} us  ratio {row['manual_over_autodiff']:.2f}"
            )

    data = make_sine_data()
    hp = make_hparams(learning_rate=1e-4, truncation=5, seq_len=50)
    training = {}
    for name in grads:
        train = jax.jit(make_train(TrainConfig.tutorial(grad=name)).train)
        training[name] = time_calls(train, (jax.random.key(0), hp, data), cfg.repeats, 1)
        print(f"tutorial preset, 25 epochs ({name}): {training[name]['median_s']:.3f} s")
    result = {
        "config": dataclasses.asdict(cfg),
        "gradient": rows,
        "training_25_epochs": training,
        "device": str(jax.devices()[0]),
    }
    write_json(out / "benchmark_grads.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, BenchmarkConfig(), run, "results/benchmark_grads", argv)


if __name__ == "__main__":
    sys.exit(main())
