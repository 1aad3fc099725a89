"""Beyond the sequential scan: where parallel-in-time evaluation wins, when it fails to
converge, and whether gradients carried forward learn what truncation cannot.

    uv run experiments/beyond_bptt.py                          # every part, CPU-sized grid
    uv run experiments/beyond_bptt.py --parts speed --seq-lens 1000,10000,100000 --hidden-sizes 1,8,32,128

Parts (``--parts``, comma-separated):

- ``speed``: for each cell, T and H, a batch of ``--batch`` sequences: the sequential scan
  against DEER and quasi-DEER (``rnn_jax.cells.parallel``), forward and forward + backward,
  jitted, the median of ``--rounds`` timed calls, with the Newton iterations each needed.
  DEER keeps ``T n^2`` Jacobian entries per sequence; a case over ``--dense-budget-mb`` is
  skipped and says so. Peak memory (XLA's own buffer assignment of the compiled program) at
  ``--memory-seq-len`` steps: the sequential scan's forward + backward against quasi-DEER's.
- ``convergence``: iterations to converge (cap ``--max-iter``) of an Elman cell over the
  spectral radius of its recurrent matrix, untrained; of Gaussian matrices of gain ``--gains``
  driven weakly (chaotic above gain 1 at H=32); and of a cell trained on the sine task; each
  with its largest Lyapunov exponent (``largest_lyapunov_exponent``).
- ``approximations``: the cosine of SnAp-1's and UORO's gradients with the exact one (UORO:
  one draw, and the mean of ``--uoro-draws``), per cell.
- ``long_lag``: the recall task (the symbol at step 0 named at step T) with IndRNN: exact RTRL,
  TBPTT(k) for each ``--windows`` and full BPTT, the same data, initial weights and updates,
  seeds vmapped (one compiled sweep per gradient); validation accuracy over epochs and wall time.

Writes beyond_bptt.json and beyond_bptt.png to --out, with the CPU's model and flags.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from helpers.machine import describe_machine, machine_line  # experiments/ is the script's folder
from jax.flatten_util import ravel_pytree

from rnn_jax.cells import make_cell
from rnn_jax.cells.online import initial_carry, online_grads, uoro_grads, uoro_initial_carry
from rnn_jax.cells.parallel import Solver, largest_lyapunov_exponent, solve_states
from rnn_jax.cli.args import experiment_main
from rnn_jax.data.memory_tasks import task_data
from rnn_jax.data.sine import make_sine_data
from rnn_jax.errors import InputError
from rnn_jax.io import save_figure, write_json
from rnn_jax.model import init_model
from rnn_jax.objectives import get_objective
from rnn_jax.plots import plot_beyond_bptt
from rnn_jax.runs.options import parse_list
from rnn_jax.runs.sweep import grid, run_sweep
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train

PARTS = ("speed", "convergence", "approximations", "long_lag")
PARALLEL = ("deer", "quasi_deer")


@dataclasses.dataclass(frozen=True)
class BeyondConfig:
    parts: str = ",".join(PARTS)
    cells: str = "elman,gru,lstm,indrnn"
    seq_lens: str = "100,1000,10000"
    hidden_sizes: str = "1,8,32"
    batch: int = 16
    rounds: int = 3
    dense_budget_mb: int = 256
    memory_seq_len: int = 100_000
    max_iter: int = 100
    scales: str = "0.5,0.9,1.2,1.5,2,3"
    gains: str = "1.5,2,3"
    convergence_seq_len: int = 1000
    uoro_draws: int = 1000
    recall_len: int = 100
    symbols: int = 4
    windows: str = "10,50"
    hidden_dim: int = 32
    epochs: int = 60
    n_seeds: int = 4
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "parts": "comma-separated parts: " + ", ".join(PARTS),
        "cells": "comma-separated cells of the speed and approximation parts",
        "seq_lens": "comma-separated sequence lengths T of the speed part",
        "hidden_sizes": "comma-separated hidden sizes H of the speed part",
        "batch": "sequences per timed call (vmapped)",
        "rounds": "timed calls per case (the median is reported)",
        "dense_budget_mb": "skip DEER where its Jacobians (batch x T x n^2 float32) exceed this",
        "memory_seq_len": "T of the peak-memory comparison",
        "max_iter": "Newton iterations at most (then the sequential fallback)",
        "scales": "comma-separated spectral radii of the convergence part's recurrent matrix",
        "gains": "comma-separated gains of its Gaussian H=32 matrices, weakly driven (the chaotic "
        "regime above 1; empty: none)",
        "convergence_seq_len": "T of the convergence part's sequences",
        "uoro_draws": "UORO draws averaged for the mean estimate's cosine",
        "recall_len": "the long-lag task's T (the symbol is T steps back)",
        "symbols": "the long-lag task's symbols (chance 1/K)",
        "windows": "comma-separated TBPTT windows k of the long-lag part (each < recall_len)",
        "hidden_dim": "the long-lag part's IndRNN size",
        "epochs": "the long-lag part's epochs",
        "n_seeds": "seeds per gradient in the long-lag part (vmapped)",
        "seed": "data and initialisation seed",
    }


def check(cfg: BeyondConfig) -> dict:
    parts = parse_list(cfg.parts, "parts", str)
    if set(parts) - set(PARTS):
        raise InputError(f"parts must be among {', '.join(PARTS)}; got {cfg.parts!r}")
    sizes = ("batch", "rounds", "dense_budget_mb", "memory_seq_len", "max_iter", "uoro_draws")
    for name in (*sizes, "convergence_seq_len"):
        if getattr(cfg, name) < 1:
            raise InputError(f"{name} must be a positive integer; got {getattr(cfg, name)}")
    windows = parse_list(cfg.windows, "windows", int)
    if any(not 1 <= k < cfg.recall_len for k in windows):
        raise InputError(f"windows must lie in [1, recall_len={cfg.recall_len}); got {cfg.windows!r}")
    return {
        "parts": parts,
        "cells": parse_list(cfg.cells, "cells", str),
        "seq_lens": parse_list(cfg.seq_lens, "seq_lens", int),
        "hidden_sizes": parse_list(cfg.hidden_sizes, "hidden_sizes", int),
        "scales": parse_list(cfg.scales, "scales", float),
        "windows": windows,
    }


def median_seconds(fn, *args, rounds: int, budget: float = 5.0) -> float:
    """The median of up to ``rounds`` timed calls after a warm one; fewer once the calls have
    taken ``budget`` seconds (a slow case needs no more to tell it is slow)."""
    jax.block_until_ready(fn(*args))  # compiled and warm
    times = []
    while len(times) < rounds and (not times or sum(times) < budget):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def state_size(cell) -> int:
    return ravel_pytree(cell.initial_state())[0].shape[0]


def speed_case(cfg: BeyondConfig, name: str, seq_len: int, hidden: int) -> dict:
    """One cell, T and H: each method's forward and forward + backward time, and iterations."""
    cell = make_cell(name, key=jax.random.key(0), input_dim=1, hidden_dim=hidden)
    xs = jax.random.normal(jax.random.key(1), (cfg.batch, seq_len, 1))
    n = state_size(cell)
    row: dict = {"cell": name, "seq_len": seq_len, "hidden": hidden, "state_size": n, "seconds": {}}

    def states_of(method):
        if method == "sequential":
            return lambda c, x: (jax.vmap(c.states)(x), None)
        solver = Solver(method, max_iter=cfg.max_iter)
        return lambda c, x: jax.vmap(lambda s: solve_states(c, s, solver=solver))(x)

    for method in ("sequential", *PARALLEL):
        dense_mb = cfg.batch * seq_len * n * n * 4 / 2**20
        if method == "deer" and dense_mb > cfg.dense_budget_mb:
            row["seconds"][method] = {"skipped": f"Jacobians {dense_mb:.0f} MB > {cfg.dense_budget_mb} MB"}
            continue
        run = states_of(method)
        forward = jax.jit(lambda c, x, run=run: run(c, x))

        def total(c, x, run=run):
            return jnp.sum(jnp.sin(jax.tree.leaves(run(c, x)[0])[0]))

        both = jax.jit(jax.grad(total))
        entry = {
            "forward": median_seconds(forward, cell, xs, rounds=cfg.rounds),
            "forward_backward": median_seconds(both, cell, xs, rounds=cfg.rounds),
        }
        report = forward(cell, xs)[1]
        if report is not None:
            entry["iterations"] = float(jnp.mean(report.iterations))
            entry["converged"] = float(jnp.mean(report.converged))
        row["seconds"][method] = entry
    return row


def peak_bytes(fn, *args) -> int:
    """The compiled program's buffers at their largest: arguments, outputs and temporaries
    (XLA's own assignment; on CPU what the process allocates for it)."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    return int(stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes)


def memory_row(cfg: BeyondConfig, name: str) -> dict:
    """Peak memory of one sequence's forward + backward at ``memory_seq_len`` steps (H=32): the
    sequential scan (it stores every state for autodiff), quasi-DEER (``O(T n)``: states and
    diagonals) and, for IndRNN, exact RTRL's online gradient (``O(n)`` in T besides its inputs)."""
    seq_len, hidden = cfg.memory_seq_len, 32
    per_step = get_objective("squared").per_step
    model = init_model(name, key=jax.random.key(0), input_dim=1, hidden_dim=hidden, output_dim=1)
    xs, ys = jnp.zeros((seq_len, 1)), jnp.zeros((seq_len, 1))
    weights = jnp.full(seq_len, 1.0 / seq_len)
    solver = Solver("quasi_deer", max_iter=cfg.max_iter)

    def scored(m, states):
        return jnp.sum(weights * per_step(m.readout(m.cell.hidden(states)), ys))

    row = {
        "cell": name,
        "seq_len": seq_len,
        "hidden": hidden,
        "inputs_bytes": int(xs.nbytes + ys.nbytes + weights.nbytes),
        "sequential": peak_bytes(jax.grad(lambda m: scored(m, m.cell.states(xs))), model),
        "quasi_deer": peak_bytes(
            jax.grad(lambda m: scored(m, solve_states(m.cell, xs, solver=solver)[0])), model
        ),
    }
    if name == "indrnn":
        carried = jax.jit(lambda m: online_grads(m, initial_carry(m.cell), xs, ys, weights, per_step)[1])
        row["rtrl"] = peak_bytes(carried, model)
    return row


def convergence_rows(cfg: BeyondConfig, scales: list[float]) -> list[dict]:
    """Iterations to converge over the spectral radius, untrained, and for a trained cell."""
    hidden, seq_len = 8, cfg.convergence_seq_len
    xs = jax.random.normal(jax.random.key(1), (seq_len, 1))
    rows = []
    base = make_cell("elman", key=jax.random.key(0), input_dim=1, hidden_dim=hidden)
    radius = float(jnp.max(jnp.abs(jnp.linalg.eigvals(base.W))))
    for scale in scales:
        cell = eqx.tree_at(lambda c: c.W, base, base.W * (scale / radius))
        rows.append(convergence_row(cfg, f"untrained, radius {scale:g}", scale, cell, xs))
    # The chaotic regime (Sompolinsky et al. 1988): a Gaussian W of gain g > 1, H = 32, driven
    # weakly, so that saturation does not contract it.
    chaotic = make_cell("elman", key=jax.random.key(0), input_dim=1, hidden_dim=32)
    gaussian = jax.random.normal(jax.random.key(5), (32, 32)) / jnp.sqrt(32.0)
    weak = 0.01 * xs
    for gain in parse_list(cfg.gains, "gains", float) if cfg.gains else []:
        cell = eqx.tree_at(lambda c: c.W, chaotic, gain * gaussian)
        radius = float(jnp.max(jnp.abs(jnp.linalg.eigvals(cell.W))))
        # Dense ELK is left out here: on these cells its smoother slowed to minutes per
        # iteration in float32 (docs/beyond_bptt.md).
        label = f"gaussian W, H=32, gain {gain:g}, weak input"
        rows.append(convergence_row(cfg, label, radius, cell, weak, ("deer", "quasi_deer", "quasi_elk")))
    data = make_sine_data(length=400, window=50, scale=True)
    config = TrainConfig(hidden_dim=hidden, activation="tanh", epochs=200, batch_size=10)
    trained = jax.jit(make_train(config).train)(
        jax.random.key(2), make_hparams(learning_rate=1e-2, seq_len=50), data
    )[0]
    sine = jnp.sin(jnp.arange(seq_len) * 0.1)[:, None]
    trained_radius = float(jnp.max(jnp.abs(jnp.linalg.eigvals(trained.cell.W))))
    rows.append(convergence_row(cfg, "trained on the sine task", trained_radius, trained.cell, sine))
    return rows


SOLVES = (*PARALLEL, "elk", "quasi_elk")


def convergence_row(cfg, label, radius, cell, xs, methods=SOLVES) -> dict:
    row = {
        "label": label,
        "radius": radius,
        "lyapunov": float(largest_lyapunov_exponent(cell, xs, burn_in=100)),
    }
    sequential = cell.states(xs)
    for method in methods:
        solver = Solver(method, max_iter=cfg.max_iter, fallback=False)
        states, report = jax.jit(lambda x, solver=solver: solve_states(cell, x, solver=solver))(xs)
        row[method] = {
            "iterations": int(report.iterations),
            "converged": bool(report.converged),
            "residual": float(report.residual),
            "error_vs_sequential": float(jnp.max(jnp.abs(states - sequential))),
        }
    return row


def approximation_row(cfg: BeyondConfig, name: str) -> dict:
    """Cosines of UORO (one draw, and the mean of ``uoro_draws``) and of SnAp-1 (Elman) or
    exact RTRL (IndRNN) with the exact gradient, on one sequence (T=50, H=16)."""
    seq_len, hidden, out = 50, 16, 2
    per_step = get_objective("squared").per_step
    xs = jax.random.normal(jax.random.key(1), (seq_len, 2))
    ys = jax.random.normal(jax.random.key(2), (seq_len, out))
    weights = jnp.full(seq_len, 1.0 / seq_len)
    model = init_model(name, key=jax.random.key(0), input_dim=2, hidden_dim=hidden, output_dim=out)

    def exact_loss(m):
        return jnp.sum(weights * per_step(m.readout(m.cell.hidden(m.cell.states(xs))), ys))

    exact = ravel_pytree(jax.grad(exact_loss)(model).cell)[0]

    def cosine(g):
        return float(g @ exact / (jnp.linalg.norm(g) * jnp.linalg.norm(exact)))

    def draw(key):
        grads = uoro_grads(model, uoro_initial_carry(model.cell), xs, ys, weights, per_step, key)[1]
        return ravel_pytree(grads.cell)[0]

    draws = jax.jit(jax.vmap(draw))(jax.random.split(jax.random.key(3), cfg.uoro_draws))
    row = {"cell": name, "uoro_one_draw": cosine(draws[0]), "uoro_mean": cosine(draws.mean(axis=0))}
    if name in ("elman", "indrnn"):
        carried = online_grads(model, initial_carry(model.cell), xs, ys, weights, per_step)[1]
        row["snap1" if name == "elman" else "rtrl"] = cosine(ravel_pytree(carried.cell)[0])
    return row


def long_lag(cfg: BeyondConfig, windows: list[int]) -> dict:
    """Recall with IndRNN: RTRL, TBPTT(k) and full BPTT, one compiled sweep of seeds each."""
    data = task_data(
        "recall",
        jax.random.key(cfg.seed),
        n_train=2048,
        n_val=512,
        seq_len=cfg.recall_len,
        symbols=cfg.symbols,
    )
    base = TrainConfig(
        cell="indrnn", hidden_dim=cfg.hidden_dim, epochs=cfg.epochs, batch_size=64, objective="cross_entropy"
    )
    runs = {"rtrl": (dataclasses.replace(base, online="rtrl"), None)}
    runs.update({f"tbptt k={k}": (base, k) for k in windows})
    runs["full bptt"] = (base, None)
    out = {"chance": 1.0 / cfg.symbols}
    for label, (config, k) in runs.items():
        members = grid(
            key=jax.random.key(cfg.seed + 1), n_seeds=cfg.n_seeds, seq_len=cfg.recall_len,
            learning_rate=[3e-3], truncation=[k],
        )  # fmt: skip
        result = run_sweep(config, members, data, progress=False)
        accuracy = np.asarray(result.metrics["val_accuracy"])  # (members, epochs)
        out[label] = {
            "accuracy": accuracy.tolist(),
            "final_mean": float(accuracy[:, -1].mean()),
            "final_spread": float(accuracy[:, -1].std()),
            "wall_seconds": result.wall_seconds,
        }
        print(f"long lag, {label:>12}: accuracy {accuracy[:, -1].mean():.3f} ± {accuracy[:, -1].std():.3f} "
              f"({result.wall_seconds:.1f} s)", flush=True)  # fmt: skip
    return out


def speed_line(row: dict) -> str:
    parts = []
    sequential = row["seconds"]["sequential"]
    for method in PARALLEL:
        entry = row["seconds"][method]
        if "skipped" in entry:
            parts.append(f"{method} skipped")
            continue
        forward = entry["forward"] / sequential["forward"]
        both = entry["forward_backward"] / sequential["forward_backward"]
        converged = f", {entry['converged']:.0%} converged" if entry["converged"] < 1 else ""
        parts.append(f"{method} {forward:.2f}x / {both:.2f}x ({entry['iterations']:.1f} it{converged})")
    return f"{row['cell']:>6} T={row['seq_len']:>6} H={row['hidden']:>3}: parallel/sequential " + "; ".join(
        parts
    )


def run(cfg: BeyondConfig, out: Path) -> dict:
    choices = check(cfg)
    machine = describe_machine()
    print(machine_line(machine), flush=True)
    result: dict = {"config": dataclasses.asdict(cfg), "machine": machine, "jax": jax.__version__}
    result["device"] = str(jax.devices()[0].platform)
    if "speed" in choices["parts"]:
        rows = []
        for name in choices["cells"]:
            for seq_len in choices["seq_lens"]:
                for hidden in choices["hidden_sizes"]:
                    rows.append(speed_case(cfg, name, seq_len, hidden))
                    print(speed_line(rows[-1]), flush=True)
        result["speed"] = rows
        result["memory"] = [memory_row(cfg, name) for name in ("elman", "indrnn")]
        for row in result["memory"]:
            shown = ", ".join(
                f"{k} {row[k] / 2**10:,.0f} KiB" for k in ("sequential", "quasi_deer", "rtrl") if k in row
            )
            print(f"peak memory, {row['cell']} T={row['seq_len']} H={row['hidden']}: {shown}", flush=True)
    if "convergence" in choices["parts"]:
        result["convergence"] = convergence_rows(cfg, choices["scales"])
        for row in result["convergence"]:
            shown = ", ".join(
                f"{m} {row[m]['iterations']} it{'' if row[m]['converged'] else ' (not converged)'}"
                for m in SOLVES
                if m in row
            )
            print(f"convergence, {row['label']}: Lyapunov {row['lyapunov']:+.3f}; {shown}", flush=True)
    if "approximations" in choices["parts"]:
        result["approximations"] = [approximation_row(cfg, name) for name in choices["cells"]]
        for row in result["approximations"]:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "cell")
            print(f"cosine with the exact gradient, {row['cell']}: {shown}", flush=True)
    if "long_lag" in choices["parts"]:
        result["long_lag"] = long_lag(cfg, choices["windows"])
    write_json(out / "beyond_bptt.json", result)
    save_figure(plot_beyond_bptt(result), out / "beyond_bptt.png")
    return result


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, BeyondConfig(), run, "results/beyond_bptt", argv)


if __name__ == "__main__":
    sys.exit(main())
