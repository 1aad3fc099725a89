"""Speed of the hand-derived gradient against autodiff on this CPU, measured in one process.

    uv run experiments/benchmark_grads.py [--out results/benchmark_grads] [--rounds 21]

Cases: a tanh Elman network (D = O = 1, float32) at T=50 for every batch size and hidden size
asked for (batch 100 and 1, H = 100 and 32 by default), full BPTT and k=5. Five jitted
functions per case: ``jax.grad(loss)`` (autodiff), ``manual_grads`` (the hand-derived pass),
``jax.grad(loss(..., backward="manual"))`` (the same pass as autodiff's rule), ``loss``
alone (the forward pass every gradient includes), and the floor: the loss together with the
matrix products the backward pass cannot avoid (``backward_products``), which bounds from
below what any hand-derived pass can reach.

This machine's timings drift by tens of percent within a minute, so the five are timed in
interleaved rounds: in each round each runs ``calls`` times back to back (``calls`` chosen so
that one sample lasts about --sample-seconds), and each round gives one ratio to autodiff per
variant. Reported per case: the median time of each variant, the median and quartiles of each
ratio over the rounds, the share of rounds in which it was at most 0.8 and at most 1, and the
backward-only ratio (the loss's time subtracted from both) and the floor's ratio. Also the two layout findings
behind the hand-derived pass's speed on AVX2 CPUs, each form against the other (``layouts``
in the JSON; see ``layout_seconds``), and the wall time of a 25-epoch
tutorial-preset training run with each gradient, in alternating rounds. Writes
benchmark_grads.json with the CPU's model and flags (AVX-512 or not).
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
from helpers.machine import describe_machine, machine_line  # experiments/ is the script's folder
from jaxtyping import Array, Float

from rnn_jax.cells.base import sum_outer
from rnn_jax.cli.args import experiment_main
from rnn_jax.data.sine import make_sine_data
from rnn_jax.errors import InputError
from rnn_jax.io import write_json
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_model
from rnn_jax.runs.options import parse_list
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train

GRADIENTS = ("autodiff", "manual", "rule")


@dataclasses.dataclass(frozen=True)
class GradBenchmarkConfig:
    rounds: int = 21
    sample_seconds: float = 0.05
    batches: str = "100,1"
    hidden_sizes: str = "100,32"
    truncations: str = "none,5"
    seq_len: int = 50
    training_rounds: int = 5

    HELP: ClassVar[dict[str, str]] = {
        "rounds": "interleaved rounds per case; each gives one ratio per variant",
        "sample_seconds": "about how long one variant runs back to back in a round",
        "batches": "comma-separated batch sizes N",
        "hidden_sizes": "comma-separated hidden sizes H",
        "truncations": "comma-separated truncations k (none: full BPTT)",
        "seq_len": "sequence length T",
        "training_rounds": "alternating rounds of the 25-epoch training run with each gradient (0: skip)",
    }


def case_functions(truncation: int | None) -> dict:
    """The jitted functions timed for one case: three gradients, the loss alone, and the floor:
    the loss and the backward pass's matrix products (``backward_products``) in one program.
    Each takes ``(model, xs, ys, (deltas, h_prev))``; only the floor reads the last."""
    return {
        "autodiff": jax.jit(lambda m, xs, ys, d: jax.grad(loss)(m, xs, ys, truncation=truncation)),
        "manual": jax.jit(lambda m, xs, ys, d: manual_grads(m, xs, ys, truncation=truncation)),
        "rule": jax.jit(
            lambda m, xs, ys, d: jax.grad(loss)(m, xs, ys, truncation=truncation, backward="manual")
        ),
        "loss": jax.jit(lambda m, xs, ys, d: loss(m, xs, ys, truncation=truncation)),
        "floor": jax.jit(
            lambda m, xs, ys, d: (loss(m, xs, ys, truncation=truncation), backward_products(m.cell.W, *d))
        ),
    }


def backward_products(
    W: Float[Array, "H H"], deltas: Float[Array, "K N H"], h_prev: Float[Array, "K N H"]
) -> tuple[Float[Array, "N H"], Float[Array, "H H"]]:
    """The matrix products an Elman backward pass over a window of ``K`` steps cannot avoid,
    and nothing else: ``K - 1`` products ``g W`` in sequence (each reverse step needs the one
    before it) and ``dW`` as one product over the ``K N`` rows.

    The loss and these products, in one program, are the floor of any hand-derived gradient
    that computes the same quantities: the forward pass is shared, these products are the least
    the backward adds (the elementwise work, the stored states and the readout's gradient are
    left out, and XLA may run the products beside the forward pass, which no real backward can:
    the floor errs low)."""

    def step(g, delta):
        return (g + delta) @ W, None

    carried, _ = jax.lax.scan(step, jnp.zeros_like(deltas[0]), deltas[1:], reverse=True)
    rows = deltas.shape[-1]
    return carried, sum_outer(deltas.reshape(-1, rows), h_prev.reshape(-1, rows))


def interleaved_seconds(fns: dict, args: tuple, rounds: int, sample_seconds: float) -> dict[str, list]:
    """Seconds per call of each function, one sample per round, the functions taking turns.

    Each function is compiled and run once first; ``calls`` per sample is set from the first
    function's warm time, the same for all, so every sample of a round spans a similar time."""
    for fn in fns.values():
        jax.block_until_ready(fn(*args))
    first = next(iter(fns.values()))
    start = time.perf_counter()
    jax.block_until_ready(first(*args))
    calls = max(1, int(sample_seconds / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = fn(*args)
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - start) / calls)
    return samples


def ratio_summary(ratios: list[float]) -> dict[str, float]:
    """Median and quartiles of per-round ratios, and how often they were at most 0.8 and 1."""
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return {
        "median": statistics.median(ratios),
        "q1": q1,
        "q3": q3,
        "share_at_most_0.8": sum(r <= 0.8 for r in ratios) / len(ratios),
        "share_at_most_1": sum(r <= 1.0 for r in ratios) / len(ratios),
    }


def measure_case(cfg: GradBenchmarkConfig, batch: int, hidden: int, truncation: int | None) -> dict:
    """One case's times and ratios (see the module docstring)."""
    model = init_model(
        "elman", key=jax.random.key(0), input_dim=1, hidden_dim=hidden, output_dim=1, activation="tanh"
    )
    xs = jax.random.normal(jax.random.key(1), (batch, cfg.seq_len, 1))
    ys = jax.random.normal(jax.random.key(2), (batch, 1))
    window = cfg.seq_len if truncation is None else min(truncation, cfg.seq_len)
    deltas, h_prev = jax.random.normal(jax.random.key(3), (2, window, batch, hidden))
    args = (model, xs, ys, (deltas, h_prev))
    samples = interleaved_seconds(case_functions(truncation), args, cfg.rounds, cfg.sample_seconds)
    row: dict = {"batch": batch, "hidden": hidden, "seq_len": cfg.seq_len, "truncation": truncation}
    row["median_s"] = {name: statistics.median(s) for name, s in samples.items()}
    auto, forward = samples["autodiff"], samples["loss"]
    for name in ("manual", "rule"):
        ratios = [a / b for a, b in zip(samples[name], auto, strict=True)]
        row[f"{name}_over_autodiff"] = ratio_summary(ratios)
        backward_only = [
            (a - f) / (b - f) for a, b, f in zip(samples[name], auto, forward, strict=True) if b > f
        ]
        if backward_only:
            row[f"{name}_backward_over_autodiff_backward"] = ratio_summary(backward_only)
    floors = [f / a for f, a in zip(samples["floor"], auto, strict=True)]
    row["floor_over_autodiff"] = ratio_summary(floors)
    return row


def training_seconds(cfg: GradBenchmarkConfig) -> dict[str, dict]:
    """Wall time of the 25-epoch tutorial-preset run with each gradient, alternating."""
    data = make_sine_data()
    hp = make_hparams(learning_rate=1e-4, truncation=5, seq_len=50)
    runs = {name: jax.jit(make_train(TrainConfig.tutorial(backward=name)).train) for name in GRADIENTS[:2]}
    samples = interleaved_seconds(runs, (jax.random.key(0), hp, data), cfg.training_rounds, 0.0)
    return {name: {"median_s": statistics.median(s), "min_s": min(s)} for name, s in samples.items()}


def layout_seconds(cfg: GradBenchmarkConfig) -> dict[str, dict]:
    """The two layout findings behind the hand-derived pass's speed, each form against the
    other in interleaved rounds at N=100, T=50, H=100: a batched forward scan's stored states
    asked for batch-major (as the pass did) or time-major (as it does), and ``dU = sum_t delta_t
    x_t^T`` over 5000 rows as ``deltas.T @ xs`` or as ``(xs.T @ deltas).T`` (``sum_outer``)."""
    cell = init_model("elman", key=jax.random.key(0), input_dim=1, hidden_dim=100, output_dim=1).cell
    xs = jax.random.normal(jax.random.key(1), (100, cfg.seq_len, 1))
    deltas = jax.random.normal(jax.random.key(2), (100 * cfg.seq_len, 100))
    flat_xs = xs.reshape(-1, 1)
    time_major = jnp.swapaxes(xs, 0, 1)
    pairs = {  # each form with its arguments (arguments, not constants: XLA would fold those)
        "forward states": {
            "batch-major": (jax.jit(lambda c, x: jax.vmap(c.states)(x)), cell, xs),
            "time-major": (
                jax.jit(lambda c, x: jax.vmap(c.states, in_axes=1, out_axes=1)(x)),
                cell,
                time_major,
            ),
        },
        "dU product": {
            "deltas.T @ xs": (jax.jit(lambda d, x: d.T @ x), deltas, flat_xs),
            "(xs.T @ deltas).T": (jax.jit(lambda d, x: (x.T @ d).T), deltas, flat_xs),
        },
    }
    result = {}
    for what, forms in pairs.items():
        calls = {name: functools.partial(*form) for name, form in forms.items()}
        samples = interleaved_seconds(calls, (), cfg.rounds, cfg.sample_seconds)
        old, new = samples
        ratios = [b / a for a, b in zip(samples[old], samples[new], strict=True)]
        result[what] = {
            "median_s": {name: statistics.median(s) for name, s in samples.items()},
            f"{new} / {old}": ratio_summary(ratios),
        }
    return result


def check(cfg: GradBenchmarkConfig) -> list[tuple[int, int, int | None]]:
    """The cases to measure; errors name the option."""
    if cfg.rounds < 1 or cfg.seq_len < 1 or cfg.training_rounds < 0:
        raise InputError("rounds and seq_len must be positive integers, training_rounds at least 0")
    if not cfg.sample_seconds >= 0:
        raise InputError(f"sample_seconds must be at least 0; got {cfg.sample_seconds}")
    batches = parse_list(cfg.batches, "batches", int)
    sizes = parse_list(cfg.hidden_sizes, "hidden_sizes", int)
    truncations = parse_list(cfg.truncations, "truncations", int, allow_none=True)
    if min(batches + sizes) < 1 or any(k is not None and k < 1 for k in truncations):
        raise InputError("batches, hidden_sizes and truncations must be positive integers (or none)")
    return [(n, h, k) for n in batches for h in sizes for k in truncations]


def case_line(row: dict) -> str:
    k = "full" if row["truncation"] is None else f"k={row['truncation']}"
    ms = row["median_s"]
    parts = [f"N={row['batch']:<4} H={row['hidden']:<4} {k:<5} autodiff {ms['autodiff'] * 1e3:7.3f} ms"]
    for name in ("manual", "rule"):
        r = row[f"{name}_over_autodiff"]
        parts.append(f"{name} {ms[name] * 1e3:7.3f} ms ({r['median']:.2f}x, q {r['q1']:.2f}-{r['q3']:.2f})")
    back = row.get("manual_backward_over_autodiff_backward")
    if back is not None:
        parts.append(f"backward only {back['median']:.2f}x")
    parts.append(f"floor {row['floor_over_autodiff']['median']:.2f}x")
    return "  ".join(parts)


def run(cfg: GradBenchmarkConfig, out: Path) -> dict:
    cases = check(cfg)
    machine = describe_machine()
    print(machine_line(machine))
    rows = []
    for batch, hidden, truncation in cases:
        rows.append(measure_case(cfg, batch, hidden, truncation))
        print(case_line(rows[-1]), flush=True)
    layouts = layout_seconds(cfg)
    for what, row in layouts.items():
        ((name, ratio),) = ((k, v) for k, v in row.items() if k != "median_s")
        print(f"{what}: {name} = {ratio['median']:.2f} (quartiles {ratio['q1']:.2f}-{ratio['q3']:.2f})")
    training = training_seconds(cfg) if cfg.training_rounds else {}
    for name, t in training.items():
        print(f"tutorial preset, 25 epochs ({name}): {t['median_s']:.3f} s")
    result = {
        "config": dataclasses.asdict(cfg),
        "machine": machine,
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "gradient": rows,
        "layouts": layouts,
        "training_25_epochs": training,
    }
    write_json(out / "benchmark_grads.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, GradBenchmarkConfig(), run, "results/benchmark_grads", argv)


if __name__ == "__main__":
    sys.exit(main())
