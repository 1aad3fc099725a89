"""Host-side driver: compile once, run the epochs in equal chunks, report progress between them.

The maths lives in ``rnn_jax.train``; this module only times, chunks and reports. Chunks all
have the same length, so the run compiles once, and the result is bit-identical to the
single-``scan`` ``train`` function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from rnn_jax.cells import ElmanParams
from rnn_jax.data import WindowData, check_window_data
from rnn_jax.train import Hyperparams, TrainConfig, make_train

PROGRESS_AFTER = 3.0  # seconds


class FitResult(NamedTuple):
    params: ElmanParams
    metrics: dict[str, list[float]]  # one value per epoch
    compile_seconds: float
    wall_seconds: float  # compilation included

    @property
    def diverged_at_epoch(self) -> int | None:
        """The first epoch (1-based) whose training loss is NaN or infinite, else ``None``."""
        return first_non_finite(self.metrics["train_loss"])


def first_non_finite(values) -> int | None:
    """1-based index of the first NaN/inf in a sequence of numbers, else ``None``."""
    return next((i + 1 for i, v in enumerate(values) if not math.isfinite(v)), None)


def chunk_length(epochs: int, max_chunks: int = 20) -> int:
    """The smallest divisor of ``epochs`` that gives at most ``max_chunks`` equal chunks."""
    return next(d for d in range(1, epochs + 1) if epochs % d == 0 and epochs // d <= max_chunks)


def fit(
    config: TrainConfig,
    hparams: Hyperparams,
    data: WindowData,
    *,
    key: PRNGKeyArray,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train one model; ``on_epoch(epoch, metrics)`` is called on the host after each chunk.

    A progress bar (on a terminal) appears once the run has lasted ``PROGRESS_AFTER`` seconds;
    print per-epoch lines with ``tqdm.write`` so that they do not break it.
    """
    check_window_data(data)
    start = time.perf_counter()
    fns = make_train(config)
    n_epochs = chunk_length(config.epochs)
    init = jax.jit(fns.init).lower(key, hparams, data).compile()
    state_shape = jax.eval_shape(fns.init, key, hparams, data)
    run = (
        jax.jit(fns.run, static_argnames="n_epochs")
        .lower(state_shape, hparams, data, n_epochs=n_epochs)
        .compile()
    )
    compile_seconds = time.perf_counter() - start

    history: dict[str, list[float]] = {}

    def record(_, chunk):
        chunk = jax.device_get(chunk)  # one host sync per chunk, never inside the compiled loop
        first = len(next(iter(history.values()), []))
        for name, values in chunk.items():
            history.setdefault(name, []).extend(float(v) for v in values)
        if on_epoch is not None:
            for i in range(n_epochs):
                on_epoch(first + i + 1, {name: float(v[i]) for name, v in chunk.items()})

    state, _ = run_chunks(
        run,
        init(key, hparams, data),
        (hparams, data),
        n_chunks=config.epochs // n_epochs,
        chunk_epochs=n_epochs,
        start=start,
        progress=progress,
        on_chunk=record,
    )
    params = jax.block_until_ready(state.params)
    return FitResult(params, history, compile_seconds, time.perf_counter() - start)


def run_chunks(
    run,
    state,
    args: tuple,
    *,
    n_chunks: int,
    chunk_epochs: int,
    start: float,
    progress: bool,
    desc: str | None = None,
    on_chunk: Callable | None = None,
):
    """``state, metrics = run(state, *args)`` ``n_chunks`` times; returns the last state and the
    list of per-chunk metrics. ``on_chunk(i, metrics)`` runs on the host after each chunk. A
    progress bar (on a terminal) appears once ``PROGRESS_AFTER`` seconds have passed since
    ``start``."""
    bar, outputs = None, []
    for i in range(n_chunks):
        state, metrics = run(state, *args)
        outputs.append(metrics)
        if on_chunk is not None:
            on_chunk(i, metrics)
        if bar is None and progress and time.perf_counter() - start > PROGRESS_AFTER:
            bar = tqdm(
                total=n_chunks * chunk_epochs,
                initial=i * chunk_epochs,
                unit="epoch",
                leave=False,
                disable=None,
                desc=desc,
            )
        if bar is not None:
            jax.block_until_ready(metrics)  # advance the bar honestly; only between chunks
            bar.update(chunk_epochs)
    if bar is not None:
        bar.close()
    return state, outputs
