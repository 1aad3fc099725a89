"""Seeds x learning rates x truncation lengths of the sine task, trained as one compiled program.

    uv run experiments/sweep.py                 # 8 seeds x 8 learning rates x 4 truncations
    uv run experiments/sweep.py --benchmark     # vmapped members against the same runs one by one

Sweep: writes sweep.json (per member: hyperparameters and final metrics; wall_seconds,
compile_seconds, members), curves.json (per-epoch validation RMSE of every member), and
heatmap.png, curves.png, ensemble.png; checkpoint.eqx as it goes (continue an interrupted sweep
with the same command and --resume DIR). A member that diverges freezes at its last good
parameters while the others train on; the exit code is then 1. Benchmark: writes
benchmark_sweep.json.
The network, data and optimiser are the sine-wave default preset's unless overridden. On a CPU
the members are split over one device per core (--cpu-devices N to choose, 1 for no split).

    uv run experiments/sweep.py --num-processes 2        # two processes on this machine

Several processes (docs/sweeps.md: on a cluster, one per host, each given --process-id and
--coordinator) train their own blocks of members; process 0 writes the results, equal bit for
bit to one process with all their devices, and each process checkpoints its own block.
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
from typing import ClassVar

import jax
import jax.numpy as jnp

from rnn_jax.cli.args import experiment_main
from rnn_jax.cli.launch import cores_per_process
from rnn_jax.data.sine import make_sine_data
from rnn_jax.errors import InputError
from rnn_jax.io import save_figure, write_json
from rnn_jax.loss import batch_predict
from rnn_jax.plots import plot_ensemble, plot_sweep_curves, plot_sweep_heatmap
from rnn_jax.runs.driver import diverged_epoch
from rnn_jax.runs.options import RunOptions, epoch_log, make_checkpointing, parse_list
from rnn_jax.runs.processes import start_processes
from rnn_jax.runs.sweep import grid, initial_states, over_members, run_sweep, split_members
from rnn_jax.train.loop import TrainConfig, check_config, make_train
from rnn_jax.train.sharding import member_mesh, replicate, use_cpu_cores


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    n_seeds: int = 8
    learning_rates: str = "3e-4,6e-4,1e-3,2e-3,3e-3,6e-3,1e-2,2e-2"
    truncations: str = "2,5,10,none"
    train: TrainConfig = TrainConfig()
    clip_threshold: float = 1.0
    seed: int = 0
    benchmark: bool = False
    bench_members: int = 32
    bench_batch_sizes: str = "1,10,100"
    bench_repeats: int = 3
    cpu_devices: int = 0  # split the CPU into this many devices; 0: one per core, 1: no split

    HELP: ClassVar[dict[str, str]] = {
        "n_seeds": "seeds per (learning rate, truncation) cell of the grid",
        "learning_rates": "comma-separated learning rates",
        "truncations": "comma-separated BPTT windows k; none for full BPTT",
        "clip_threshold": "|g| bound for clip=value, global norm for clip=norm",
        "seed": "random seed from which every member's seed is drawn",
        "benchmark": "time the sweep against the same runs one by one instead of sweeping",
        "bench_members": "members in the benchmark's sweep",
        "bench_batch_sizes": "comma-separated batch sizes the benchmark compares",
        "bench_repeats": "timed repeats of each benchmark row",
        "cpu_devices": "split the CPU into this many devices; 0: one per core (shared by the processes "
        "started here), 1: no split",
    }


def train_config(cfg: SweepConfig, **overrides) -> TrainConfig:
    """The members' static settings, with ``overrides`` (the benchmark's batch sizes)."""
    return dataclasses.replace(cfg.train, **overrides)


def sweep(cfg: SweepConfig, options: RunOptions) -> int:
    """Train the grid, write results and figures (process 0); exit code 1 if any member diverged."""
    out, first = options.out, options.processes.index == 0
    lrs, ks = (
        parse_list(cfg.learning_rates, "learning_rates"),
        parse_list(cfg.truncations, "truncations", int, allow_none=True),
    )
    data = make_sine_data(scale=True)
    config = train_config(cfg)
    check_config(config, data.x_train.shape[0])
    members = grid(
        key=jax.random.key(cfg.seed),
        n_seeds=cfg.n_seeds,
        seq_len=data.x_train.shape[1],
        learning_rate=lrs,
        truncation=ks,
        clip_threshold=[cfg.clip_threshold],
    )
    n = len(members.table)
    if first:
        print(
            f"{n} members ({cfg.n_seeds} seeds x {len(lrs)} learning rates x {len(ks)} truncations), "
            f"{cfg.train.epochs} epochs each, {len(jax.devices())} device(s) in {jax.process_count()} "
            "process(es)"
        )
    checkpointing = make_checkpointing(options, dataclasses.asdict(cfg))
    result = run_sweep(
        config,
        members,
        data,
        checkpointing=checkpointing,
        resume=options.resume,
        progress=not options.quiet,
        log=epoch_log(options) if first else None,
    )
    val_rmse = result.metrics["val_rmse"]  # (M, epochs)
    rows = [
        {
            **m,
            "final_val_rmse": float(val_rmse[i, -1]),
            "final_train_rmse": float(result.metrics["train_rmse"][i, -1]),
            "diverged_at_epoch": diverged_epoch({k: v[i].tolist() for k, v in result.metrics.items()}),
            "diverged_at_step": int(result.metrics["diverged_at_step"][i, -1]) or None,
        }
        for i, m in enumerate(members.table)
    ]
    diverged = [i for i, r in enumerate(rows) if r["diverged_at_epoch"] is not None]
    if not first:  # every process holds the gathered result; process 0 writes it
        return 1 if diverged else 0
    summary = {
        "config": dataclasses.asdict(cfg),
        "members": n,
        "devices": len(jax.devices()),
        "processes": jax.process_count(),
        "wall_seconds": result.wall_seconds,
        "compile_seconds": result.compile_seconds,
        "resumed": options.resume,
        "diverged_members": diverged,
        "per_member": rows,
    }
    write_json(out / "sweep.json", summary)
    write_json(out / "curves.json", {"val_rmse": val_rmse.tolist()})

    # (lr, k) grid of medians over seeds; members are ordered (lr, k, seed) with seed fastest
    grid_rmse = jnp.asarray(val_rmse[:, -1]).reshape(len(lrs), len(ks), cfg.n_seeds)
    median = jnp.median(grid_rmse, axis=-1)
    best_lr, best_k = (int(i) for i in jnp.unravel_index(jnp.argmin(median), median.shape))
    print(
        f"best median val RMSE {float(median[best_lr, best_k]):.3g} at learning_rate={lrs[best_lr]}, "
        f"truncation={ks[best_k]}; {result.wall_seconds:.1f} s wall "
        f"incl. {result.compile_seconds:.1f} s compile"
    )
    save_figure(plot_sweep_heatmap(median, lrs, ks), out / "heatmap.png")
    curves = jnp.asarray(val_rmse).reshape(len(lrs), len(ks), cfg.n_seeds, -1)[best_lr]
    save_figure(plot_sweep_curves(curves, ks, title=f"learning rate {lrs[best_lr]}"), out / "curves.png")

    first = (best_lr * len(ks) + best_k) * cfg.n_seeds
    ensemble = jax.tree.map(lambda x: jnp.asarray(x[first : first + cfg.n_seeds]), result.params)
    preds = jax.jit(jax.vmap(lambda p: batch_predict(p, data.x_val)[:, 0]))(ensemble)
    t = list(
        range(
            data.x_train.shape[0] + data.x_train.shape[1],
            data.x_train.shape[0] + data.x_train.shape[1] + data.x_val.shape[0],
        )
    )
    save_figure(
        plot_ensemble(
            t,
            data.scaler.inverse(data.y_val[:, 0]),
            data.scaler.inverse(preds),
            title=f"{cfg.n_seeds} seeds, learning rate {lrs[best_lr]}, truncation {ks[best_k] or 'full'}",
        ),
        out / "ensemble.png",
    )
    if diverged:
        print(
            f"error: {len(diverged)} of {n} members diverged (members {', '.join(map(str, diverged[:10]))}"
            f"{', ...' if len(diverged) > 10 else ''}); each kept its last good parameters and the others "
            f"trained on; see diverged_at_epoch in {out / 'sweep.json'}",
            file=sys.stderr,
        )
        return 1
    return 0


def _median_time(fn, repeats: int) -> dict[str, float]:
    jax.block_until_ready(fn())  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples)}


def time_batch_size(cfg: SweepConfig, data, batch_size: int) -> dict:
    """Seconds for ``bench_members`` members vmapped, and for the same runs one by one."""
    # about the same number of optimiser steps whatever the batch size
    epochs = max(2, min(cfg.train.epochs, batch_size * 3))
    config = train_config(cfg, batch_size=batch_size, epochs=epochs)
    check_config(config, data.x_train.shape[0])
    lrs = [1e-3 * (1 + i / cfg.bench_members) for i in range(cfg.bench_members)]
    members = grid(
        key=jax.random.key(cfg.seed),
        n_seeds=1,
        seq_len=data.x_train.shape[1],
        learning_rate=lrs,
        clip_threshold=[cfg.clip_threshold],
    )
    fns = make_train(config)
    run = functools.partial(fns.run, n_epochs=epochs)
    # Timed from the initial states on: building them is the same cheap work in every variant.
    states = initial_states(fns.init, members, data, member_mesh())
    vmapped = jax.jit(jax.vmap(run, in_axes=(0, 0, None))).lower(states, members.hparams, data).compile()
    # run_sweep's layout: members split over every device, all of a device's members vmapped at once
    mesh = member_mesh()
    states_dm, hparams_dm = split_members(states, mesh), split_members(members.hparams, mesh)
    data_all = replicate(data, mesh)
    width = hparams_dm.learning_rate.shape[1]
    laid_out = jax.jit(over_members(run, width)).lower(states_dm, hparams_dm, data_all).compile()
    one = jax.tree.map(lambda x: x[0], (states, members.hparams))
    single = jax.jit(run).lower(*one, data).compile()
    each = [jax.tree.map(lambda x, i=i: x[i], (states, members.hparams)) for i in range(len(lrs))]
    times = {
        "separate": _median_time(lambda: [single(s, h, data) for s, h in each], cfg.bench_repeats),
        "vmapped": _median_time(lambda: vmapped(states, members.hparams, data), cfg.bench_repeats),
        "sweep_layout": {
            **_median_time(lambda: laid_out(states_dm, hparams_dm, data_all), cfg.bench_repeats),
            "devices": mesh.devices.size,
        },
    }
    separate = times["separate"]["median_s"]
    return {
        "batch_size": batch_size,
        "epochs": epochs,
        "members": len(lrs),
        **times,
        "vmapped_over_separate": times["vmapped"]["median_s"] / separate,
        "sweep_layout_over_separate": times["sweep_layout"]["median_s"] / separate,
    }


def benchmark(cfg: SweepConfig, options: RunOptions) -> dict:
    """N vmapped members against the same N runs one by one, per batch size, in this process."""
    out = options.out
    if cfg.bench_members < 1 or cfg.bench_repeats < 1:
        raise InputError("bench_members and bench_repeats must be positive integers")
    data = make_sine_data(scale=True)
    rows = []
    for batch_size in parse_list(cfg.bench_batch_sizes, "bench_batch_sizes", int):
        row = time_batch_size(cfg, data, batch_size)
        rows.append(row)
        print(
            f"batch {batch_size:3d}, {row['members']} members x {row['epochs']} epochs: one by one "
            f"{row['separate']['median_s']:.2f} s; over that: plain vmap {row['vmapped_over_separate']:.2f}, "
            f"sweep layout ({row['sweep_layout']['devices']} device(s)) "
            f"{row['sweep_layout_over_separate']:.2f}"
        )
    result = {"config": dataclasses.asdict(cfg), "device": str(jax.devices()[0]), "rows": rows}
    write_json(out / "benchmark_sweep.json", result)
    return result


def start(cfg: SweepConfig, options: RunOptions):
    """Split the CPU into devices (before JAX runs anything), then sweep or benchmark."""
    if cfg.cpu_devices < 0:
        raise InputError(f"cpu_devices must be 0 (one per core) or a positive integer; got {cfg.cpu_devices}")
    if cfg.benchmark and options.processes.count > 1:
        raise InputError("--benchmark times one process; leave out --num-processes")
    use_cpu_cores(cfg.cpu_devices or cores_per_process())
    start_processes(options.processes)
    return (benchmark if cfg.benchmark else sweep)(cfg, options)


def main(argv: list[str] | None = None) -> int:
    return experiment_main(
        __doc__,
        SweepConfig(),
        start,
        "results/sweep",
        argv,
        resumable=True,
        processes=True,
    )


if __name__ == "__main__":
    sys.exit(main())
