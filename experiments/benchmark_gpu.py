"""One training step's gradient on an accelerator: rnn_jax (autodiff, and the hand-derived pass
as ``jax.grad``'s rule) against PyTorch ``nn.RNN``/``nn.LSTM`` (cuDNN on a GPU) and Flax
``nn.RNN``, each where importable.

    PYTHONPATH=. python3 experiments/benchmark_gpu.py --device gpu     # on a GPU machine
    uv run experiments/benchmark_gpu.py --device cpu --quick           # the same code, tiny sizes

Workloads (float32, many-to-one, D = O = 1, full BPTT): batch 100 and 1024, T = 50 and 1000,
H = 100 and 1024, for a tanh Elman cell and an LSTM. Every time is a median over --repeats
calls after a warm-up call, with each framework's own synchronisation. Writes
benchmark_gpu.json (with the device's name) to --out; ``experiments/gpu_check.sh`` runs it.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import itertools
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
from benchmark import median_time  # experiments/ is the script's folder
from helpers.machine import describe_machine

from rnn_jax.cli.args import experiment_main
from rnn_jax.errors import InputError
from rnn_jax.io import write_json
from rnn_jax.loss import loss
from rnn_jax.model import init_model
from rnn_jax.runs.options import parse_list

DEVICES = ("cpu", "gpu")
TORCH_CELLS = {"elman": "RNN", "lstm": "LSTM"}


@dataclasses.dataclass(frozen=True)
class GpuBenchmarkConfig:
    device: str = "gpu"  # where rnn_jax, PyTorch and Flax run: gpu or cpu
    batches: str = "100,1024"
    seq_lens: str = "50,1000"
    hidden_sizes: str = "100,1024"
    cells: str = "elman,lstm"
    repeats: int = 5
    quick: bool = False  # tiny sizes and one repeat: checks the script, measures nothing

    HELP: ClassVar[dict[str, str]] = {
        "device": "where rnn_jax, PyTorch and Flax run: gpu or cpu",
        "batches": "comma-separated batch sizes",
        "seq_lens": "comma-separated sequence lengths T",
        "hidden_sizes": "comma-separated hidden sizes H",
        "cells": "comma-separated cells to time: elman, lstm",
        "repeats": "timed repeats of each workload; the median is reported",
        "quick": "tiny sizes and one repeat: checks that the script runs, measures nothing",
    }
    CHOICES: ClassVar[dict] = {"device": ("gpu", "cpu")}


def jax_device(kind: str) -> jax.Device:
    """The first JAX device of ``kind``; a clear error when JAX sees none."""
    if kind not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}; got {kind!r}")
    try:
        return jax.devices(kind)[0]
    except RuntimeError:
        raise InputError(
            f"JAX sees no {kind} device (it sees {', '.join(d.platform for d in jax.devices())}); "
            "install JAX with CUDA (docs/gpu.md) or pass --device cpu"
        ) from None


def rnn_jax_steps(cell: str, batch: int, seq_len: int, hidden: int, device) -> dict:
    """Jitted gradients of rnn_jax's loss, autodiff and hand-derived, with data on ``device``."""
    options = {"activation": "tanh"} if cell == "elman" else {}
    model = init_model(cell, key=jax.random.key(0), input_dim=1, hidden_dim=hidden, output_dim=1, **options)
    xs = jax.random.normal(jax.random.key(1), (batch, seq_len, 1))
    ys = jax.random.normal(jax.random.key(2), (batch, 1))
    model, xs, ys = jax.device_put((model, xs, ys), device)
    steps = {}
    for backward in ("autodiff", "manual"):
        grad = jax.jit(jax.grad(lambda m, x, y, b=backward: loss(m, x, y, backward=b)))
        steps[f"rnn_jax {backward}"] = lambda g=grad: jax.block_until_ready(g(model, xs, ys))
    return steps


def torch_step(cell: str, batch: int, seq_len: int, hidden: int, device: str):
    """``nn.RNN`` (tanh) or ``nn.LSTM`` with a linear readout of the last step; on a GPU PyTorch
    runs the whole recurrence as one cuDNN call."""
    import torch

    where = "cuda" if device == "gpu" else "cpu"
    rnn = getattr(torch.nn, TORCH_CELLS[cell])(1, hidden, batch_first=True).to(where)
    readout = torch.nn.Linear(hidden, 1).to(where)
    xs = torch.randn(batch, seq_len, 1, device=where)
    ys = torch.randn(batch, 1, device=where)

    def step():
        rnn.zero_grad()
        readout.zero_grad()
        out = readout(rnn(xs)[0][:, -1])
        (0.5 * ((out - ys) ** 2).sum(-1).mean()).backward()
        if where == "cuda":
            torch.cuda.synchronize()

    return step


def flax_step(cell: str, batch: int, seq_len: int, hidden: int, device):
    """Flax ``nn.RNN`` over ``SimpleCell`` (tanh) or ``OptimizedLSTMCell`` with a ``Dense`` readout."""
    import flax.linen as nn

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            unit = (
                nn.SimpleCell(features=hidden) if cell == "elman" else nn.OptimizedLSTMCell(features=hidden)
            )
            return nn.Dense(1)(nn.RNN(unit)(xs)[:, -1])

    model = Model()
    xs = jax.device_put(jax.random.normal(jax.random.key(1), (batch, seq_len, 1)), device)
    ys = jax.device_put(jax.random.normal(jax.random.key(2), (batch, 1)), device)
    variables = jax.device_put(model.init(jax.random.key(0), xs), device)
    grad = jax.jit(jax.grad(lambda v, x, y: 0.5 * jnp.mean(jnp.sum((model.apply(v, x) - y) ** 2, axis=-1))))
    return lambda: jax.block_until_ready(grad(variables, xs, ys))


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def run(cfg: GpuBenchmarkConfig, out: Path) -> dict:
    device = jax_device(cfg.device)
    sizes = {
        "batch": parse_list(cfg.batches, "batches", int),
        "seq_len": parse_list(cfg.seq_lens, "seq_lens", int),
        "hidden": parse_list(cfg.hidden_sizes, "hidden_sizes", int),
    }
    cells = parse_list(cfg.cells, "cells", str)
    for cell in cells:
        if cell not in TORCH_CELLS:
            raise InputError(f"cells must be from {', '.join(TORCH_CELLS)}; got {cell!r}")
    repeats = 1 if cfg.quick else cfg.repeats
    if cfg.quick:
        sizes = {"batch": [4], "seq_len": [6], "hidden": [8]}
    torch_ok = available("torch") and (cfg.device == "cpu" or __import__("torch").cuda.is_available())
    flax_ok = available("flax")
    rows = []
    for cell, batch, seq_len, hidden in itertools.product(cells, *sizes.values()):
        variants = rnn_jax_steps(cell, batch, seq_len, hidden, device)
        if torch_ok:
            variants[f"pytorch nn.{TORCH_CELLS[cell]}"] = torch_step(cell, batch, seq_len, hidden, cfg.device)
        if flax_ok:
            variants["flax nn.RNN"] = flax_step(cell, batch, seq_len, hidden, device)
        for name, step in variants.items():
            timing = median_time(step, repeats)
            rows.append(
                {"cell": cell, "batch": batch, "seq_len": seq_len, "hidden": hidden, "variant": name} | timing
            )
            shape = f"{cell:<6} N={batch:<5} T={seq_len:<5} H={hidden:<5}"
            print(f"{shape} {name:<22} {timing['median_s'] * 1e3:10.3f} ms")
    result = {
        "device": str(device),
        "device_kind": device.device_kind,
        "host": describe_machine(),
        "jax": jax.__version__,
        "skipped": [n for n, ok in (("pytorch", torch_ok), ("flax", flax_ok)) if not ok],
        "quick": cfg.quick,
        "rows": rows,
    }
    write_json(out / "benchmark_gpu.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, GpuBenchmarkConfig(), run, "results/benchmark_gpu", argv)


if __name__ == "__main__":
    raise SystemExit(main())
