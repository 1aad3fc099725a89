"""Training on an endless stream with TBPTT(k1, k2): does memory stay flat as the stream grows?

    uv run experiments/long_stream.py                     # 10^4, 10^5 and 10^6 steps
    uv run experiments/long_stream.py --steps 1000000     # one length

The stream is a two-tone signal whose amplitude drifts slowly,
``x_t = (1 + 0.5 sin 2πt/P3) (sin 2πt/P1 + 0.5 sin 2πt/P2)``, computed from the step index
inside the compiled loop (no array of the stream exists), and the model predicts ``x_{t+1}``.
Each length runs in a fresh subprocess, so that its peak memory (the process's maximum resident
set size) is its own. Writes long_stream.json and long_stream.png (loss along the longest
stream) to --out.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp

from rnn_jax.cli.args import experiment_main
from rnn_jax.errors import InputError
from rnn_jax.io import save_figure, write_json
from rnn_jax.plots import plot_stream_scaling
from rnn_jax.runs.driver import fit_stream
from rnn_jax.runs.options import parse_list
from rnn_jax.runs.signals import run_command
from rnn_jax.train.stream import StreamConfig, check_stream_config


@dataclasses.dataclass(frozen=True)
class LongStreamConfig:
    steps: str = "10000,100000,1000000"
    cell: str = "elman"
    hidden_dim: int = 32
    k1: int = 10
    k2: int = 30
    learning_rate: float = 3e-3
    updates_per_chunk: int = 200
    periods: str = "40,157,50000"  # P1, P2 (the tones) and P3 (the amplitude drift), in steps
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "steps": "comma-separated stream lengths; each runs in a fresh process",
        "cell": "a registered cell: elman, gru, lstm, indrnn",
        "hidden_dim": "hidden size H",
        "k1": "time steps between updates (TBPTT k1)",
        "k2": "time steps the gradient reaches back (TBPTT k2 >= k1)",
        "learning_rate": "Adam step size",
        "updates_per_chunk": "updates per compiled chunk (between progress reports)",
        "periods": "comma-separated P1, P2, P3: the two tones' periods and the amplitude drift's, in steps",
        "seed": "random seed (initialisation and stream noise)",
    }


def stream_config(cfg: LongStreamConfig) -> StreamConfig:
    return StreamConfig(
        cell=cfg.cell,
        hidden_dim=cfg.hidden_dim,
        k1=cfg.k1,
        k2=cfg.k2,
        learning_rate=cfg.learning_rate,
        updates_per_chunk=cfg.updates_per_chunk,
    )


def two_tone_source(periods: list[int], k2: int):
    """``source(start) -> (xs (k2, 1), ys (k2, 1))``: the signal and the next value. Phases are
    taken modulo each integer period first, so they stay exact at any step index."""
    p1, p2, p3 = periods

    def signal(t):
        def wave(p):
            return jnp.sin(2 * jnp.pi * (t % p).astype(jnp.float32) / p)

        return (1.0 + 0.5 * wave(p3)) * (wave(p1) + 0.5 * wave(p2))

    def source(start):
        t = start + jnp.arange(k2 + 1, dtype=jnp.int32)
        x = signal(t)[:, None]
        return x[:-1], x[1:]

    return source


def check(cfg: LongStreamConfig) -> tuple[list[int], list[int]]:
    lengths = parse_list(cfg.steps, "steps", int)
    periods = parse_list(cfg.periods, "periods", int)
    if len(periods) != 3 or min(periods) < 2:
        raise InputError(f"periods must be three integers >= 2 (P1, P2, P3); got {cfg.periods!r}")
    for n in lengths:
        check_stream_config(stream_config(cfg), n)
    return lengths, periods


def one_length(cfg: LongStreamConfig, n_steps: int) -> dict:
    """Train on ``n_steps`` of the stream in this process; speed, loss and peak memory."""
    _, periods = check(cfg)
    config = stream_config(cfg)
    result = fit_stream(
        config,
        two_tone_source(periods, cfg.k2),
        n_steps=n_steps,
        input_dim=1,
        output_dim=1,
        key=jax.random.key(cfg.seed),
        progress=False,
    )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    last = result.chunk_losses[-1]
    return {
        "steps": result.steps,
        "updates": (result.steps - cfg.k2) // cfg.k1 + 1,
        "steps_per_second": result.steps / result.run_seconds,
        "run_seconds": result.run_seconds,
        "compile_seconds": result.compile_seconds,
        "peak_memory_mib": peak_kib / 1024,
        "final_chunk_rmse": (2 * last) ** 0.5,
        "chunk_losses": result.chunk_losses,
    }


def run(cfg: LongStreamConfig, out: Path) -> dict:
    lengths, _ = check(cfg)
    rows = []
    for n in lengths:
        args = [f"--{f.name.replace('_', '-')}={getattr(cfg, f.name)}" for f in dataclasses.fields(cfg)]
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(n), *args], capture_output=True, text=True, check=False
        )
        if child.returncode == 2:  # the child's own one-line refusal (bad input, no memory)
            raise InputError(child.stderr.strip().removeprefix("error: "))
        if child.returncode != 0:
            raise RuntimeError(f"the {n}-step run failed:\n{child.stderr}")
        row = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{row['steps']:>9,d} steps: {row['steps_per_second']:,.0f} steps/s, peak memory "
            f"{row['peak_memory_mib']:.0f} MiB, last-chunk RMSE {row['final_chunk_rmse']:.3g}"
        )
    base = rows[0]["peak_memory_mib"]
    summary = {
        "config": dataclasses.asdict(cfg),
        "device": str(jax.devices()[0]),
        "rows": [{k: v for k, v in r.items() if k != "chunk_losses"} for r in rows],
        "peak_memory_over_shortest": [r["peak_memory_mib"] / base for r in rows],
    }
    write_json(out / "long_stream.json", summary)
    longest = rows[-1]
    save_figure(
        plot_stream_scaling(
            rows,
            longest["chunk_losses"],
            f"chunk of {cfg.updates_per_chunk} updates ({cfg.updates_per_chunk * cfg.k1} steps)",
        ),
        out / "long_stream.png",
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # internal: one length, JSON on stdout
        from rnn_jax.cli.args import OneLineParser, add_config_arguments, config_from_args

        parser = OneLineParser()
        add_config_arguments(parser, LongStreamConfig())
        cfg = config_from_args(LongStreamConfig, parser.parse_args(argv[2:]))
        return run_command(lambda: print(json.dumps(one_length(cfg, int(argv[1])))))
    return experiment_main(__doc__, LongStreamConfig(), run, "results/long_stream", argv)


if __name__ == "__main__":
    sys.exit(main())
