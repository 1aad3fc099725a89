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
from rnn_jax.runs.checkpoint import load_checkpoint, save_checkpoint
from rnn_jax.runs.driver import Checkpointing, chunk_capacity, run_saving_chunks
from rnn_jax.runs.logs import EpochLog
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

    A member whose training diverges freezes at its last good parameters (its
    ``diverged_at_step`` metric says where); the others train on. ``checkpointing`` and
    ``resume`` work as in ``rnn_jax.runs.driver.fit``; checkpoints hold one member axis, so a sweep
    may resume on another number of devices. ``log`` writes ``metrics.jsonl`` (each metric a
    list over members) and prints the members' median every few epochs.
    """
    check_window_data(data)
    check_config(config, data.x_train.shape[0])
    check_data_fits(config, data)
    check_hparams(members.hparams)
    check_online_truncation(config, members.hparams, data.x_train.shape[1])
    if resume and checkpointing is None:
        raise InputError("resume=True needs checkpointing (where to resume from)")
    start = time.perf_counter()
    fns = make_train(config)
    mesh = member_mesh(devices)
    n = len(members.table)
    n_pad = padded_size(n, mesh)
    n_dev = mesh.devices.size
    width = vmap_width or n_pad // n_dev
    if width < 1:
        raise InputError(f"vmap_width must be a positive integer; got {width}")
    one = jax.tree.map(lambda x: x[0], members.hparams)
    parts = training_parts(config, one, data, members=n_pad, parallel=min(width, n_pad // n_dev) * n_dev)
    check_fits(parts, what=f"a sweep of {n} members", advice=f"{TRAINING_ADVICE}, or a smaller vmap_width")

    def by_member(tree):
        return jax.tree.map(lambda x: x.reshape(n_pad, *x.shape[2:])[:n], tree)

    hparams = split_members(members.hparams, mesh)
    data = replicate(data, mesh)

    by_member_sharding, everywhere = member_sharding(mesh), replicated_sharding(mesh)
    shardings = {"in_shardings": (by_member_sharding, by_member_sharding, everywhere)}
    shardings["out_shardings"] = by_member_sharding
    history: list[dict[str, np.ndarray]] = []  # per chunk, each (M, epochs in the chunk)
    if resume:
        like = jax.eval_shape(jax.vmap(fns.init, in_axes=(0, 0, None)), members.keys, members.hparams, data)
        saved_state, saved_metrics = load_checkpoint(checkpointing.path, like, run=checkpointing.run)
        state = split_members(saved_state, mesh)
        history.append(saved_metrics)
    else:
        state = split_members(initial_states(fns.init, members, data, mesh), mesh)
    remaining = config.epochs - int(np.max(jax.device_get(state.epoch)))

    capacity = chunk_capacity(max(remaining, 1), checkpointing)
    shardings["in_shardings"] = (*shardings["in_shardings"], everywhere)

    def run_members(s, h, shared):  # the chunk's epoch count travels with the shared data
        return fns.run(s, h, shared[0], capacity, shared[1])

    chunk = jax.jit(lambda s, h, d, count: over_members(run_members, width)(s, h, (d, count)), **shardings)
    chunk = chunk.lower(state, hparams, data, jax.ShapeDtypeStruct((), np.int32)).compile()

    def run(state, hparams, data, count):
        return chunk(state, hparams, data, jax.device_put(count, everywhere))

    compile_seconds = time.perf_counter() - start

    def metrics_so_far() -> dict[str, np.ndarray]:
        return {k: np.concatenate([c[k] for c in history], axis=1) for k in history[0]}

    if log is not None:
        log.start(config.epochs, metrics_so_far() if history else {})

    def after_chunk(state, chunk):
        first = sum(next(iter(c.values())).shape[1] for c in history) + 1
        # One host sync per chunk: back to one member axis, padding dropped.
        history.append({k: v.reshape(n_pad, -1)[:n] for k, v in jax.device_get(chunk).items()})
        if log is not None:
            log.record(first, history[-1])

        def save(finished: bool) -> None:
            path, run = checkpointing.path, checkpointing.run
            flat = by_member(jax.device_get(state))
            save_checkpoint(path, flat, run=run, metrics=metrics_so_far(), finished=finished)

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
        progress=progress,
        after_chunk=after_chunk,
        desc=f"{n} members",
    )
    params = by_member(jax.device_get(state.chosen_params(config.select)))
    best_epoch = np.asarray(by_member(jax.device_get(state.best_epoch)))
    return SweepResult(params, metrics_so_far(), compile_seconds, time.perf_counter() - start, best_epoch)
