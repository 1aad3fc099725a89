"""Host-side driver: compile once, run the epochs in chunks sized by their measured time;
between chunks report progress, save checkpoints, stop on divergence or on a signal.

The maths lives in ``rnn_jax.train.loop``; this module only times, chunks, saves and reports. One
compiled program runs a chunk of any length up to its capacity (``make_train``'s ``count``), so
chunks aim at ``CHUNK_SECONDS`` whatever an epoch costs, with any epoch count (a prime one
too), and the result is bit-identical to the single-``scan`` ``train`` function whatever the
chunking (and to a run resumed from any of its checkpoints).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh
from jaxtyping import PRNGKeyArray

from rnn_jax.data.sine import WindowData, check_window_data
from rnn_jax.errors import InputError
from rnn_jax.model import RNN
from rnn_jax.resources import TRAINING_ADVICE, check_fits
from rnn_jax.runs.checkpoint import load_checkpoint, save_checkpoint
from rnn_jax.runs.logs import EpochLog, progress_bar_class
from rnn_jax.runs.processes import ChunkDecision
from rnn_jax.runs.signals import Interrupted, deferred_signals
from rnn_jax.train.loop import (
    Hyperparams,
    TrainConfig,
    check_config,
    check_data_fits,
    check_hparams,
    check_online_truncation,
    make_train,
    training_parts,
)
from rnn_jax.train.sharding import replicated_sharding, stream_state_shardings
from rnn_jax.train.stream import (
    Source,
    StreamConfig,
    StreamResult,
    check_stream_config,
    make_stream_train,
    n_updates,
)

PROGRESS_AFTER = 3.0  # seconds
# Where no progress bar can be drawn (output to a file or pipe), a plain line at the first chunk
# boundary this long after the last one, so a log shows the run is alive.
HEARTBEAT_SECONDS = 10.0
# Default checkpoint interval: at most this much work is lost to a crash, and short runs pay
# for one save only (each costs a few milliseconds, mostly fsync).
SAVE_EVERY_SECONDS = 30.0
# A chunk's target length: a signal is answered, and progress shown, about this often. Each chunk
# boundary costs one host sync (well under a millisecond for these programs).
CHUNK_SECONDS = 1.0
# The compiled chunk's capacity: epochs beyond a chunk's count are skipped steps of the scan
# (microseconds each), so a large capacity costs little; it bounds chunks of very fast epochs.
MAX_CHUNK_EPOCHS = 1000


class FitResult(NamedTuple):
    params: RNN  # the last good parameters, or the best validation epoch's (config.select)
    metrics: dict[str, list[float]]  # one value per epoch run (fewer than epochs if stopped early)
    compile_seconds: float
    wall_seconds: float  # compilation included
    diverged_at_step: int | None  # 1-based optimiser step that went NaN/inf, else None
    best_epoch: int  # 1-based epoch with the lowest validation loss (0 if none ran)
    stopped_at_epoch: int | None  # the epoch after which early stopping ended the run, else None

    @property
    def diverged_at_epoch(self) -> int | None:
        """The first epoch (1-based) in which training diverged, else ``None``."""
        return diverged_epoch(self.metrics)


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Where and how often ``fit`` saves its state.

    ``run`` describes the run (JSON-able; typically its whole configuration): a resume is
    refused unless it matches. ``every``: epochs between saves (chunks end on its multiples)
    (``None``: at the first chunk boundary ``SAVE_EVERY_SECONDS`` after the last save). A
    checkpoint is also saved at the end, when training diverges, and on SIGINT, SIGTERM or SIGHUP.
    """

    path: Path
    run: dict
    every: int | None = None

    def __post_init__(self):
        if self.every is not None and self.every < 1:
            raise InputError(f"checkpoint_every must be a positive integer; got {self.every}")


def first_non_finite(values) -> int | None:
    """1-based index of the first NaN/inf in a sequence of numbers, else ``None``."""
    return next((i + 1 for i, v in enumerate(values) if not math.isfinite(v)), None)


def diverged_epoch(metrics: dict) -> int | None:
    """The first epoch (1-based) whose ``diverged_at_step`` is set or whose training loss is
    NaN/inf, from one member's per-epoch metrics; ``None`` if there is none."""
    flagged = next((i + 1 for i, v in enumerate(metrics.get("diverged_at_step", [])) if v > 0), None)
    return flagged or first_non_finite(metrics.get("train_loss", []))


def chunk_capacity(remaining: int, checkpointing: Checkpointing | None = None) -> int:
    """The compiled chunk's length: at most ``MAX_CHUNK_EPOCHS``, the epochs left, and the
    checkpoint interval when one is asked for."""
    every = None if checkpointing is None else checkpointing.every
    return max(1, min(remaining, MAX_CHUNK_EPOCHS, every or MAX_CHUNK_EPOCHS))


@dataclasses.dataclass
class ChunkPlan:
    """Sizes each chunk by the measured time of the ones before it.

    The first chunk is one epoch (its time is the first measurement); each next one aims at
    ``seconds``, grows at most ``GROWTH``-fold over the last (one fast measurement is not
    trusted far), ends at a checkpoint boundary when ``every`` is set, and never passes the end
    of the run or the compiled ``capacity``."""

    capacity: int
    every: int | None = None
    seconds: float = CHUNK_SECONDS
    last: int = 0  # epochs in the last chunk
    per_epoch: float | None = None  # seconds, from the last chunk

    GROWTH: ClassVar[int] = 8

    def next_count(self, done: int, total: int) -> int:
        """Epochs for the chunk after ``done`` of ``total`` epochs."""
        if self.per_epoch is None:
            count = 1
        else:
            count = min(int(self.seconds / max(self.per_epoch, 1e-9)), self.GROWTH * self.last)
        count = min(max(count, 1), self.capacity, total - done)
        if self.every:
            count = min(count, self.every - done % self.every)
        return count

    def measured(self, count: int, seconds: float) -> None:
        """Record that the last chunk ran ``count`` epochs in ``seconds``."""
        self.last, self.per_epoch = count, seconds / count


@dataclasses.dataclass
class ChunkSaver:
    """Decides, after each chunk, whether to save a checkpoint, and turns a deferred signal into
    ``Interrupted`` once the state is saved."""

    checkpointing: Checkpointing | None
    total_epochs: int
    received: list[int]
    last_save: float = dataclasses.field(default_factory=time.perf_counter)

    def due(self, epoch: int) -> bool:
        """Whether a checkpoint is due after ``epoch`` (at the end, ``after_chunk`` saves anyway)."""
        if self.checkpointing is None:
            return False
        every = self.checkpointing.every
        if every is None:
            return time.perf_counter() - self.last_save >= SAVE_EVERY_SECONDS
        return epoch % every == 0  # chunks end on multiples of every (ChunkPlan)

    def signal(self) -> int:
        """The first signal received and deferred, else 0."""
        return self.received[0] if self.received else 0

    def after_chunk(
        self,
        epoch: int,
        save: Callable[[bool], None],
        stopping: bool = False,
        decision: ChunkDecision | None = None,
    ) -> None:
        """``save(finished)`` writes the checkpoint; it is called at each multiple of ``every``
        (or every ``SAVE_EVERY_SECONDS``), at the end, when the run is ``stopping``, and on a
        signal. ``decision``: the processes' common answer (``rnn_jax.runs.processes``) on the
        checkpoint's being due and on a signal, in place of this process's own."""
        if self.checkpointing is None:
            return
        finished = stopping or epoch >= self.total_epochs
        due, signum = (self.due(epoch), self.signal()) if decision is None else decision[1:]
        if finished or signum or due:
            save(finished)
            self.last_save = time.perf_counter()
        if signum:
            raise Interrupted(signum, epoch, self.checkpointing.path)


def fit(
    config: TrainConfig,
    hparams: Hyperparams,
    data: WindowData,
    *,
    key: PRNGKeyArray,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    log: EpochLog | None = None,
    progress: bool = True,
    checkpointing: Checkpointing | None = None,
    resume: bool = False,
) -> FitResult:
    """Train one model; ``on_epoch(epoch, metrics)`` is called on the host for every epoch,
    after the chunk that ran it (the hook to send metrics to TensorBoard and the like;
    docs/runs.md), and ``log`` writes ``metrics.jsonl`` and prints a line every few epochs.

    The run stops at the end of the chunk in which training diverged (NaN/inf gradient or
    parameters; detected inside the compiled loop), keeping the last good parameters. With
    ``checkpointing`` the state is saved as described there; SIGINT/SIGTERM/SIGHUP then save it at the
    next chunk boundary and raise ``Interrupted``. ``resume=True`` continues from the saved
    checkpoint (refused if it belongs to another run) and ends bit-identical to an
    uninterrupted run.

    A progress bar (on a terminal) appears once the run has lasted ``PROGRESS_AFTER`` seconds;
    print per-epoch lines with ``rnn_jax.runs.logs.write_line`` so that they do not break it.
    """
    check_window_data(data)
    check_config(config, data.x_train.shape[0])
    check_data_fits(config, data)
    check_hparams(hparams)
    check_online_truncation(config, hparams, data.x_train.shape[1])
    if resume and checkpointing is None:
        raise InputError("resume=True needs checkpointing (where to resume from)")
    check_fits(training_parts(config, hparams, data), what="training", advice=TRAINING_ADVICE)
    start = time.perf_counter()
    fns = make_train(config)
    state_shape = jax.eval_shape(fns.init, key, hparams, data)
    history: dict[str, list[float]] = {}
    if resume:
        state, saved = load_checkpoint(checkpointing.path, state_shape, run=checkpointing.run)
        history = {name: values.tolist() for name, values in saved.items()}
    else:
        state = jax.jit(fns.init)(key, hparams, data)
    if log is not None:
        log.start(config.epochs, history)
    remaining = config.epochs - int(state.epoch)
    if remaining <= 0 or int(state.diverged_at_step) > 0 or int(state.stopped_at) > 0:
        return _result(state, history, 0.0, start, config)

    capacity = chunk_capacity(remaining, checkpointing)
    count_shape = jax.ShapeDtypeStruct((), np.int32)
    run = (
        jax.jit(lambda state, hparams, data, count: fns.run(state, hparams, data, capacity, count))
        .lower(state_shape, hparams, data, count_shape)
        .compile()
    )
    compile_seconds = time.perf_counter() - start

    def after_chunk(state, chunk):
        first = len(next(iter(history.values()), []))
        for name, values in chunk.items():
            history.setdefault(name, []).extend(float(v) for v in values)
        if log is not None:
            log.record(first + 1, chunk)
        if on_epoch is not None:
            for i in range(len(chunk["train_loss"])):
                on_epoch(first + i + 1, {name: float(v[i]) for name, v in chunk.items()})

        def save(finished: bool) -> None:
            path, run = checkpointing.path, checkpointing.run
            save_checkpoint(path, state, run=run, metrics=history, finished=finished)

        return save, bool(chunk["diverged_at_step"][-1] > 0 or chunk["stopped_at"][-1] > 0)

    state = run_saving_chunks(
        run,
        state,
        (hparams, data),
        checkpointing=checkpointing,
        total_epochs=config.epochs,
        remaining=remaining,
        capacity=capacity,
        start=start,
        progress=progress,
        after_chunk=after_chunk,
    )
    return _result(state, history, compile_seconds, start, config)


def run_saving_chunks(
    run,
    state,
    args: tuple,
    *,
    checkpointing: Checkpointing | None,
    total_epochs: int,
    remaining: int,
    capacity: int,
    start: float,
    progress: bool,
    after_chunk: Callable,
    desc: str | None = None,
    agree: Callable[[ChunkDecision], ChunkDecision] | None = None,
):
    """Run the ``remaining`` epochs in chunks sized by ``ChunkPlan``, with checkpoints and
    deferred signals; ``state, metrics = run(state, *args, count)`` runs one chunk of ``count``
    epochs (``capacity`` at most), its metrics' last axis holding ``capacity`` epochs.

    ``after_chunk(state, metrics) -> (save, stopping)`` records a chunk's metrics (on the host,
    trimmed to its epochs) and returns ``save(finished)``, which writes the checkpoint, and
    whether the run stops here. ``agree`` makes the processes of one run take the same
    decisions after each chunk (``rnn_jax.runs.processes.agree``); ``stopping`` must then be
    the same in every process already. Returns the last state."""
    every = None if checkpointing is None else checkpointing.every
    plan = ChunkPlan(capacity, every)
    done = total_epochs - remaining
    bar = Progress(start, total_epochs, done, enabled=progress, desc=desc)
    with deferred_signals() if checkpointing is not None else contextlib.nullcontext([]) as received:
        saver = ChunkSaver(checkpointing, total_epochs, received)
        count = plan.next_count(done, total_epochs)
        while done < total_epochs:
            began = time.perf_counter()
            state, metrics = run(state, *args, np.int32(count))
            # One host sync per chunk, never inside the compiled loop; it also ends the chunk's timing.
            metrics = {k: v[..., :count] for k, v in jax.device_get(metrics).items()}
            plan.measured(count, time.perf_counter() - began)
            done += count
            save, stopping = after_chunk(state, metrics)
            decision = None
            if agree is not None:
                proposal = plan.next_count(done, total_epochs) if done < total_epochs else 0
                decision = agree(ChunkDecision(proposal, saver.due(done), saver.signal()))
            saver.after_chunk(done, save, stopping=stopping, decision=decision)
            if stopping:
                break
            bar.advance(count)
            if done < total_epochs:
                count = plan.next_count(done, total_epochs) if decision is None else decision.next_count
    bar.close()
    return state


def _result(state, history, compile_seconds: float, start: float, config: TrainConfig) -> FitResult:
    params = jax.block_until_ready(state.chosen_params(config.select))
    step, stopped = int(state.diverged_at_step), int(state.stopped_at)
    if stopped:  # the epochs of the last chunk after the stop changed nothing
        history = {name: values[:stopped] for name, values in history.items()}
    return FitResult(
        params,
        history,
        compile_seconds,
        time.perf_counter() - start,
        step or None,
        int(state.best_epoch),
        stopped or None,
    )


class Progress:
    """A progress bar on a terminal, once ``PROGRESS_AFTER`` seconds have passed since
    ``start``; elsewhere (a log file, a pipe) a plain line on stderr every ``HEARTBEAT_SECONDS``.
    Advanced between chunks only."""

    def __init__(self, start: float, total: int, done: int, *, enabled: bool, desc=None, unit="epoch"):
        self.start, self.total, self.done, self.enabled = start, total, done, enabled
        self.desc, self.unit = desc, unit
        self.bar_class = progress_bar_class()
        self.terminal = sys.stderr.isatty() and self.bar_class is not None
        self.last_line = start
        self.bar = None

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.enabled:
            return
        if not self.terminal and now - self.last_line >= HEARTBEAT_SECONDS:
            line = (
                f"{self.desc or 'training'}: {self.unit} {self.done}/{self.total}, {now - self.start:.0f} s"
            )
            print(line, file=sys.stderr, flush=True)
            self.last_line = now
        if self.bar is None and self.terminal and now - self.start > PROGRESS_AFTER:
            self.bar = self.bar_class(
                total=self.total,
                initial=self.done - n,
                unit=self.unit,
                leave=False,
                disable=None,
                desc=self.desc,
            )
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_chunks(
    run,
    state,
    args: tuple,
    *,
    n_chunks: int,
    chunk_length: int,
    start: float,
    progress: bool,
    desc: str | None = None,
    unit: str = "update",
):
    """``state, metrics = run(state, *args)`` ``n_chunks`` times (chunks of a fixed
    ``chunk_length`` units); returns the last state and the list of per-chunk metrics, with
    ``Progress`` between chunks."""
    bar, outputs = Progress(start, n_chunks * chunk_length, 0, enabled=progress, desc=desc, unit=unit), []
    for _ in range(n_chunks):
        state, metrics = run(state, *args)
        outputs.append(metrics)
        if bar.enabled:
            jax.block_until_ready(metrics)  # advance honestly; only between chunks
        bar.advance(chunk_length)
    bar.close()
    return state, outputs


def fit_stream(
    config: StreamConfig,
    source: Source,
    *,
    n_steps: int,
    input_dim: int,
    output_dim: int,
    key: PRNGKeyArray,
    progress: bool = True,
    mesh: Mesh | None = None,
) -> StreamResult:
    """Train on the first ``n_steps`` of a stream with TBPTT(k1, k2) (``rnn_jax.train.stream``): every
    update that fits, in compiled chunks of ``config.updates_per_chunk`` and one shorter last
    chunk if they do not divide evenly (two programs, each compiled once).

    The arrays inside ``source`` (a ``jax.tree_util.Partial`` or an equinox module holding them,
    as ``rnn_jax.data.text.stream_source`` and ``rnn_jax.train.stream.array_source`` return) are
    arguments of the compiled chunk, not constants in it. ``mesh`` (``rnn_jax.train.sharding.
    stream_mesh``: every device of every process) trains data-parallel: the ``config.streams``
    streams are split over its devices, each carrying its own streams' states, and the
    parameters are replicated; the mean loss over streams, and so its gradient, is reduced
    across devices by the compiled program (one all-reduce per update). The source's arrays must
    then be split the same way (``rnn_jax.train.sharding.shard_streams``). The result equals the
    one-device run's to float32 rounding (the sum over streams is ordered differently)."""
    check_stream_config(config, n_steps)
    if mesh is not None and (config.streams < 1 or config.streams % mesh.devices.size):
        raise InputError(
            f"streams ({config.streams}) must be a positive multiple of the mesh's {mesh.devices.size} "
            "devices to split them over it"
        )
    total = n_updates(n_steps, config)
    full, rest = divmod(total, config.updates_per_chunk)
    start = time.perf_counter()
    dims = {"input_dim": input_dim, "output_dim": output_dim}
    init, _ = make_stream_train(config, source, **dims)
    arrays, static = eqx.partition(source, eqx.is_array)

    def chunk(state, arrays, length: int):
        return make_stream_train(config, eqx.combine(arrays, static), **dims)[1](state, length)

    key_data, impl = np.asarray(jax.random.key_data(key)), jax.random.key_impl(key)

    def init_from(data):  # a plain array in, the same in every process
        return init(jax.random.wrap_key_data(data, impl=impl))

    if mesh is None:
        place = {}
        state = jax.jit(init_from)(key_data)
    else:
        shardings = stream_state_shardings(jax.eval_shape(init, key), mesh)
        place = {"out_shardings": (shardings, replicated_sharding(mesh))}
        state = jax.jit(init_from, out_shardings=shardings)(key_data)
    program = jax.jit(chunk, static_argnames="length", **place)
    compiled = {
        length: program.lower(state, arrays, length=length).compile()
        for length in {config.updates_per_chunk if full else None, rest or None} - {None}
    }
    compile_seconds = time.perf_counter() - start
    begin = time.perf_counter()
    losses = []
    if full:
        state, losses = run_chunks(
            compiled[config.updates_per_chunk],
            state,
            (arrays,),
            n_chunks=full,
            chunk_length=config.updates_per_chunk,
            start=start,
            progress=progress,
        )
    if rest:
        state, last = compiled[rest](state, arrays)
        losses = [*losses, last]
    params = jax.block_until_ready(state.params)
    if mesh is not None:  # replicated: this process's copy
        params = jax.tree.map(lambda x: x.addressable_data(0), params)
    steps = total * config.k1 + config.k2 - config.k1
    return StreamResult(
        params,
        [float(np.asarray(v.addressable_data(0))) for v in losses],
        steps,
        compile_seconds,
        time.perf_counter() - begin,
    )
