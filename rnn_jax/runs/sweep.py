"""Many independent training runs as one compiled program: ``jit(vmap(train))`` over members.

A member is one (seed, hyperparameters) pair. ``grid`` builds the members of a full grid and
``random_search`` draws them at random; ``run_sweep`` trains them all at once, sharded over the
available devices, in chunks of epochs sized by their measured time (``rnn_jax.runs.driver``) with a
progress bar between chunks (bit-identical to one unchunked program).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from rnn_jax.data.sine import WindowData, check_window_data
from rnn_jax.errors import InputError
from rnn_jax.model import RNN
from rnn_jax.resources import TRAINING_ADVICE, check_fits
from rnn_jax.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnn_jax.runs.driver import Checkpointing, chunk_capacity, run_saving_chunks
from rnn_jax.runs.logs import EpochLog
from rnn_jax.runs.processes import (
    LAYOUT_KEYS,
    MemberLayout,
    agree,
    check_same_local_devices,
    gather_blocks,
    member_layout,
    process_checkpoint,
    saved_process_counts,
    this_process,
)
from rnn_jax.train.loop import (
    Hyperparams,
    TrainConfig,
    TrainState,
    check_config,
    check_data_fits,
    check_hparams,
    check_online_truncation,
    make_hparams,
    make_train,
    training_parts,
)
from rnn_jax.train.sharding import (
    member_mesh,
    member_sharding,
    pad_members,
    padded_size,
    replicate,
    replicated_sharding,
    shard_members,
)


class Members(NamedTuple):
    """The members of a sweep: ``keys (M,)``, ``hparams`` with ``(M,)`` leaves, and a table."""

    keys: PRNGKeyArray
    hparams: Hyperparams
    table: list[dict]  # per member: seed and every hyperparameter value (None = full BPTT)


# What each member of a grid costs on the host before training: its row of the table (a dict of
# its seed and hyperparameters) and its share of the stacked arrays (measured: about 450 bytes).
TABLE_BYTES_PER_MEMBER = 512
# A random search makes and checks each member's hyperparameters one by one (about 12 kB each).
DRAWN_BYTES_PER_MEMBER = 16 << 10


def grid(
    *,
    key: PRNGKeyArray,
    n_seeds: int,
    seq_len: int,
    learning_rate: Sequence[float],
    truncation: Sequence[int | None] = (None,),
    clip_threshold: Sequence[float] = (10.0,),
    init_scale: Sequence[float] = (1.0,),
) -> Members:
    """Every combination of the given values, each with ``n_seeds`` seeds (seed varies fastest).

    Every value is validated first; an error names the member and the value. Seed ``s`` uses
    the same key in every grid cell, so cells differ only by their hyperparameters.
    """
    if n_seeds < 1:
        raise InputError(f"n_seeds must be a positive integer; got {n_seeds}")
    axes = {
        "learning_rate": learning_rate,
        "truncation": truncation,
        "clip_threshold": clip_threshold,
        "init_scale": init_scale,
    }
    for name, values in axes.items():
        if len(values) == 0:
            raise InputError(f"{name} must list at least one value")
    cells = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    n = len(cells) * n_seeds
    check_fits(
        {"the members' table": n * TABLE_BYTES_PER_MEMBER},
        what=f"a grid of {n} members",
        advice="list fewer seeds or values",
    )
    per_cell = []
    for c, member in enumerate(cells):  # seeds share their cell's hyperparameters: checked once
        try:
            per_cell.append(make_hparams(seq_len=seq_len, **member))
        except ValueError as err:
            raise InputError(f"member {c * n_seeds} (seed 0, {_describe(member)}): {err}") from None
    table = [{"seed": seed, **member} for member in cells for seed in range(n_seeds)]
    keys = jax.random.split(key, n_seeds)[np.tile(np.arange(n_seeds), len(cells))]
    hparams = jax.tree.map(lambda x: jnp.repeat(x, n_seeds, axis=0), stacked(per_cell))
    return Members(keys=keys, hparams=hparams, table=table)


def stacked(hparams: Sequence[Hyperparams]) -> Hyperparams:
    """One ``Hyperparams`` whose leaves stack the given ones' along a new first axis ``(M,)``.

    Stacked on the host: ``jnp.stack`` of one scalar per member compiles a concatenation of M
    operands, which took minutes at M = 50 000."""
    return jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])), *hparams)


def random_search(
    *,
    key: PRNGKeyArray,
    n_members: int,
    seq_len: int,
    learning_rate: tuple[float, float],
    truncation: tuple[int, int] | None = None,
    clip_threshold: tuple[float, float] = (10.0, 10.0),
    init_scale: tuple[float, float] = (1.0, 1.0),
) -> Members:
    """``n_members`` independent draws: learning rate, clipping threshold and initial scale
    log-uniform in their ``(low, high)`` ranges, truncation uniform over the integers
    ``low..high`` (``None``: full BPTT for all). Each member has its own seed."""
    ranges = {"learning_rate": learning_rate, "clip_threshold": clip_threshold, "init_scale": init_scale}
    for name, (low, high) in ranges.items():
        if not 0 < low <= high:
            raise InputError(f"{name} range must satisfy 0 < low <= high; got ({low}, {high})")
    if truncation is not None and not 1 <= truncation[0] <= truncation[1]:
        raise InputError(f"truncation range must satisfy 1 <= low <= high; got {truncation}")
    if n_members < 1:
        raise InputError(f"n_members must be a positive integer; got {n_members}")
    check_fits(
        {"the members' hyperparameters": n_members * DRAWN_BYTES_PER_MEMBER},
        what=f"a random search of {n_members} members",
        advice="draw fewer members",
    )
    seed_key, *draw_keys = jax.random.split(key, 5)
    draws = {
        name: jnp.exp(jax.random.uniform(k, (n_members,), minval=jnp.log(low), maxval=jnp.log(high))).tolist()
        for k, (name, (low, high)) in zip(draw_keys, ranges.items(), strict=False)
    }
    ks = [None] * n_members
    if truncation is not None:
        ks = jax.random.randint(draw_keys[3], (n_members,), truncation[0], truncation[1] + 1).tolist()
    table = [
        {
            "seed": i,
            "learning_rate": draws["learning_rate"][i],
            "truncation": ks[i],
            "clip_threshold": draws["clip_threshold"][i],
            "init_scale": draws["init_scale"][i],
        }
        for i in range(n_members)
    ]
    hps = [make_hparams(seq_len=seq_len, **{k: v for k, v in m.items() if k != "seed"}) for m in table]
    return Members(
        keys=jax.random.split(seed_key, n_members),
        hparams=stacked(hps),
        table=table,
    )


def _describe(member: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in member.items())


class SweepResult(NamedTuple):
    params: RNN  # leaves (M, ...), on the host; last or best epoch's (config.select)
    metrics: dict[str, Array]  # each (M, epochs), on the host
    compile_seconds: float
    wall_seconds: float  # compilation included
    best_epoch: np.ndarray  # (M,) 1-based epoch of each member's lowest validation loss


def over_members(fn, width: int):
    """``fn(member_a, member_b, shared)`` for arrays laid out ``(devices, members_per_device, ...)``:
    ``vmap`` over the device axis (one slice per device), ``lax.map`` over that device's members
    in vmapped groups of ``width``. When one group holds a device's members, the two member axes
    are merged and vmapped once: nested (1, M) batch axes measured 1.17 of the time of the same
    runs one by one at batch 100 on a 2-core CPU, one merged axis 0.90."""

    def per_device(a, b, shared):
        return jax.lax.map(lambda ab: fn(ab[0], ab[1], shared), (a, b), batch_size=width)

    def merged(a, b, shared):
        n_dev, per_device = jax.tree.leaves(a)[0].shape[:2]
        flat, split = (
            (lambda x: x.reshape(n_dev * per_device, *x.shape[2:])),
            (lambda x: x.reshape(n_dev, per_device, *x.shape[1:])),
        )
        out = jax.vmap(fn, in_axes=(0, 0, None))(jax.tree.map(flat, a), jax.tree.map(flat, b), shared)
        return jax.tree.map(split, out)

    def call(a, b, shared):
        if width >= jax.tree.leaves(a)[0].shape[1]:
            return merged(a, b, shared)
        return jax.vmap(per_device, in_axes=(0, 0, None))(a, b, shared)

    return call


def split_members(tree, mesh):
    """Leaves with a leading member axis ``(M, ...)``, padded to a multiple of the device count and
    laid out ``(devices, members_per_device, ...)``, each device holding its own slice."""
    n_pad, n_dev = padded_size(jax.tree.leaves(tree)[0].shape[0], mesh), mesh.devices.size
    padded = pad_members(tree, n_pad)
    return shard_members(jax.tree.map(lambda x: x.reshape(n_dev, n_pad // n_dev, *x.shape[1:]), padded), mesh)


def initial_states(init, members: Members, data: WindowData, mesh) -> TrainState:
    """Every member's initial state, ``(M, ...)``, built on the mesh's first device.

    Not sharded on purpose: on CPU all devices share one thread pool, and the orthogonal
    initialiser's batched QR (LAPACK, which splits its batch over that pool and waits for it)
    deadlocks when every device runs one at the same time (seen with 2 forced host devices on a
    2-core machine, H=32). Initialisation is cheap; training is what runs sharded."""
    first = jax.sharding.SingleDeviceSharding(mesh.devices.flat[0])
    return jax.jit(jax.vmap(init, in_axes=(0, 0, None)))(
        *jax.device_put((members.keys, members.hparams, data), first)
    )


def run_sweep(
    config: TrainConfig,
    members: Members,
    data: WindowData,
    *,
    devices: Sequence[jax.Device] | None = None,
    vmap_width: int | None = None,
    progress: bool = True,
    log: EpochLog | None = None,
    checkpointing: Checkpointing | None = None,
    resume: bool = False,
) -> SweepResult:
    """Train every member in one compiled program, members sharded over ``devices``.

    Members are laid out ``(devices, members_per_device)``: each device trains its own members,
    ``vmap_width`` at a time (default: all of them; a smaller width bounds the memory of the
    vmapped activations). All at once is the fastest at every batch size measured on a 2-core
    CPU (32 members, ``experiments/sweep.py --benchmark``): on one device 0.55-0.63 of the time
    of the same runs one by one at batch 10 and 0.93-0.98 at batch 100, where one member at a
    time (width 1) took 1.03-1.15; split into one device per core (``rnn_jax.train.sharding.
    use_cpu_cores``), 0.30-0.32 and 0.57-0.61. The member axis is padded to a multiple of the
    device count (the padding repeats the last member and is dropped). Results do not depend on
    the layout beyond float32 rounding.

    Several processes (``rnn_jax.runs.processes.start_processes``): each calls ``run_sweep`` with
    the same arguments and trains the block of members that falls on its own devices
    (``devices`` defaults to ``jax.local_devices()``); the result, gathered in every process, is
    bit-identical to one process holding all the devices. Each process checkpoints its own
    block (``rnn_jax.runs.processes.process_checkpoint``) and resumes from it; ``log`` and
    ``progress`` act in process 0 only.

    A member whose training diverges freezes at its last good parameters (its
    ``diverged_at_step`` metric says where); the others train on. Early stopping freezes a
    member the same way, and when every member has stopped the sweep ends, its metrics cut
    after the last member's stop (what comes after is frozen repeats, however the epochs were
    chunked). ``checkpointing`` and ``resume`` work as in ``rnn_jax.runs.driver.fit``; checkpoints
    hold one member axis, so a sweep may resume on another number of devices. ``log`` writes
    ``metrics.jsonl`` (each metric a list over members) and prints the members' median every
    few epochs.
    """
    check_window_data(data)
    check_config(config, data.x_train.shape[0])
    check_data_fits(config, data)
    check_hparams(members.hparams)
    check_online_truncation(config, members.hparams, data.x_train.shape[1])
    if resume and checkpointing is None:
        raise InputError("resume=True needs checkpointing (where to resume from)")
    start = time.perf_counter()
    index, count = this_process()
    if count > 1:
        check_same_local_devices(len(jax.local_devices() if devices is None else devices))
    mesh = member_mesh(jax.local_devices() if devices is None and count > 1 else devices)
    n_dev = mesh.devices.size
    layout = member_layout(len(members.table), n_dev, index, count)
    n, block = layout.n, layout.stop - layout.start
    width = vmap_width or block // n_dev
    if width < 1:
        raise InputError(f"vmap_width must be a positive integer; got {width}")
    one = jax.tree.map(lambda x: x[0], members.hparams)
    parts = training_parts(config, one, data, members=block, parallel=min(width, block // n_dev) * n_dev)
    check_fits(parts, what=f"a sweep of {n} members", advice=f"{TRAINING_ADVICE}, or a smaller vmap_width")
    fns = make_train(config)
    mine = member_block(Members(members.keys, members.hparams, []), layout)
    state, history = _first_state(fns, mine, data, mesh, layout, checkpointing if resume else None)
    hparams, data = split_members(mine.hparams, mesh), replicate(data, mesh)
    remaining = config.epochs - int(np.max(jax.device_get(state.epoch)))
    capacity = chunk_capacity(max(remaining, 1), checkpointing)
    run = _compiled_chunk(fns, state, hparams, data, mesh, width, capacity)
    compile_seconds = time.perf_counter() - start

    def ours(tree):  # this process's real members, flat: (devices, per device, ...) -> (members, ...)
        return jax.tree.map(lambda x: x.reshape(block, *x.shape[2:])[: layout.real_stop - layout.start], tree)

    def everyone(tree):  # every process's real members, (n, ...), in every process
        return ours(tree) if count == 1 else gather_blocks(_padded(ours(tree), block), layout)

    if log is not None and index == 0:
        log.start(config.epochs, _joined(history) if history else {})

    def after_chunk(state, chunk):
        first = sum(next(iter(c.values())).shape[1] for c in history) + 1
        # One host sync per chunk: back to one member axis, padding dropped.
        history.append(everyone(chunk))
        if log is not None and index == 0:
            log.record(first, history[-1])

        def save(finished: bool) -> None:
            path = process_checkpoint(checkpointing.path, index, count)
            mine = {k: v[layout.start : layout.real_stop] for k, v in _joined(history).items()}
            run = _checkpoint_run(checkpointing.run, layout, count)
            save_checkpoint(path, ours(jax.device_get(state)), run=run, metrics=mine, finished=finished)

        # A diverged or early-stopped member freezes while the others train on; the sweep
        # ends early only when every member has stopped.
        return save, bool(np.all(history[-1]["stopped_at"][:, -1] > 0))

    state = run_saving_chunks(
        run,
        state,
        (hparams, data),
        checkpointing=checkpointing,
        total_epochs=config.epochs,
        remaining=remaining,
        capacity=capacity,
        start=start,
        progress=progress and index == 0,
        after_chunk=after_chunk,
        desc=f"{n} members",
        agree=agree if count > 1 else None,
    )
    params = everyone(jax.device_get(state.chosen_params(config.select)))
    best_epoch = np.asarray(everyone(jax.device_get(state.best_epoch)))
    metrics = _joined(history)
    stopped = metrics["stopped_at"][:, -1]
    if np.all(stopped > 0):  # the epochs after the last member's stop changed nothing
        metrics = {k: v[:, : int(stopped.max())] for k, v in metrics.items()}
    return SweepResult(params, metrics, compile_seconds, time.perf_counter() - start, best_epoch)


def member_block(members: Members, layout: MemberLayout) -> Members:
    """This process's members of the padded axis (all of them with one process)."""
    padded = pad_members((members.keys, members.hparams), layout.n_padded)
    keys, hparams = jax.tree.map(lambda x: x[layout.start : layout.stop], padded)
    return Members(keys, hparams, members.table[layout.start : layout.real_stop])


def _padded(tree, size: int):
    """Leaves ``(m, ...)`` with their last entry repeated up to ``(size, ...)`` (on the host)."""
    return jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)]), tree)


def _joined(history: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-chunk metrics ``(M, epochs in the chunk)`` joined along the epochs."""
    return {k: np.concatenate([c[k] for c in history], axis=1) for k in history[0]}


def _checkpoint_run(run: dict, layout: MemberLayout, count: int) -> dict:
    """The run description a process's checkpoint holds: with several processes, also which
    members it holds, so that a resume on another layout is refused by name."""
    if count == 1:
        return run
    return {**run, **dict(zip(LAYOUT_KEYS, ([layout.start, layout.real_stop], count), strict=True))}


def _first_state(fns, mine: Members, data, mesh, layout: MemberLayout, checkpointing):
    """This process's block of states laid out on its devices, and the metrics so far (from
    ``checkpointing`` when resuming, else the initial states and no metrics)."""
    if checkpointing is None:
        return split_members(initial_states(fns.init, mine, data, mesh), mesh), []
    index, count = this_process()
    path = process_checkpoint(checkpointing.path, index, count)
    if not path.exists():
        found = saved_process_counts(checkpointing.path)
        held = f"; {checkpointing.path.parent} holds the checkpoints of {found} process(es)" if found else ""
        raise InputError(f"no checkpoint for process {index} of {count} at {path}{held}: resume with as many")
    real = layout.real_stop - layout.start
    keys, hparams = jax.tree.map(lambda x: x[:real], (mine.keys, mine.hparams))
    like = jax.eval_shape(jax.vmap(fns.init, in_axes=(0, 0, None)), keys, hparams, data)
    run = _checkpoint_run(checkpointing.run, layout, count)
    try:
        saved_state, saved_metrics = load_checkpoint(path, like, run=run)
    except CheckpointError as err:
        if count == 1:
            raise
        raise InputError(
            f"{err} (process {index} of {count} holds members {layout.start}..{layout.real_stop - 1} "
            "now; a resume needs the layout the sweep was saved with: the same members, processes "
            "and devices per process)"
        ) from None
    block = layout.stop - layout.start
    state = split_members(pad_members(saved_state, block), mesh)
    metrics = saved_metrics if count == 1 else gather_blocks(_padded(saved_metrics, block), layout)
    return state, [metrics]


def _compiled_chunk(fns, state, hparams, data, mesh, width: int, capacity: int):
    """``run(state, hparams, data, count)``: one chunk of up to ``capacity`` epochs of every
    member on ``mesh``, compiled once."""
    by_member, everywhere = member_sharding(mesh), replicated_sharding(mesh)

    def run_members(s, h, shared):  # the chunk's epoch count travels with the shared data
        return fns.run(s, h, shared[0], capacity, shared[1])

    chunk = jax.jit(
        lambda s, h, d, count: over_members(run_members, width)(s, h, (d, count)),
        in_shardings=(by_member, by_member, everywhere, everywhere),
        out_shardings=by_member,
    )
    chunk = chunk.lower(state, hparams, data, jax.ShapeDtypeStruct((), np.int32)).compile()

    def run(state, hparams, data, count):
        return chunk(state, hparams, data, jax.device_put(count, everywhere))

    return run
