"""rnn_jax against what users would write instead, on the same training work, in one process.

    uv run experiments/benchmark.py [--out results/benchmark] [--repeats 7]

Workloads (T=50, H=100, one input and one output, float32, the tutorial's sizes):

  a  the tutorial's epoch: a loss pass over its 150 windows plus 100 per-example SGD steps
     with 5-step truncation and value clipping at +-10
  b  one full-batch gradient step at batch 100, full BPTT
  c  the same with 5-step truncation
  d  one full-BPTT step at batch 16 for T = 50 ... 50 000, with and without
     rematerialisation; each in its own subprocess, which also reports its peak memory
  e  workload b for H = 32 ... 1024

Variants: rnn_jax with autodiff and with the hand-derived gradient; a per-example NumPy loop in
the tutorial's style (our own correct BPTT), the tutorial's own loop as published (its wrong
gradient; for context) and a batch-vectorised NumPy BPTT; PyTorch eager (a sigmoid cell, and
``nn.RNN``, which offers tanh and relu but no sigmoid, against rnn_jax with tanh) and Flax
``nn.RNN(nn.SimpleCell)`` when importable (see ``helpers/alternatives.py``; neither is a dependency:
``uv sync --group bench`` adds Flax; PyTorch is installed into the environment by hand), else
reported as skipped.
Every time is a median over --repeats runs after a warm-up, with min and max; the variants of
one workload that run in JAX (rnn_jax's and Flax's) take turns call by call, so that a machine
whose speed drifts slows them alike and their ratios hold within a run; PyTorch and NumPy run
on their own, after them, as their thread pools spin on after each call. Each row also
gives the FLOP count, the achieved GFLOP/s, the ratio to this machine's measured matmul peak,
and the ratio to the dependent-chain floor: a step needs 2T sequential (B, H) x (H, H) products
(T forward, T backward) that cannot overlap, and one such link is timed on its own.
Writes benchmark.json, benchmark.md and benchmark.png to --out.
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

import jax
import jax.numpy as jnp
import numpy as np
import optax
from helpers import alternatives
from helpers.machine import describe_machine, machine_line

from rnn_jax.cli.args import experiment_main
from rnn_jax.data.sine import make_sine_data
from rnn_jax.errors import InputError
from rnn_jax.io import save_figure, write_atomic, write_json
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import init_model
from rnn_jax.runs.options import parse_list


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    repeats: int = 7
    hidden_sizes: str = "32,100,256,1024"
    seq_lens: str = "50,500,5000,50000"
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "repeats": "timed repeats of each workload; the median is reported",
        "hidden_sizes": "comma-separated hidden sizes H for the scaling table",
        "seq_lens": "comma-separated sequence lengths T for the scaling table",
        "seed": "random seed of the weights and data",
    }


def median_time(fn, repeats: int) -> dict[str, float]:
    """Seconds per call of ``fn()`` (which must block until done): median, min, max."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples)}


def interleaved_times(fns: dict, repeats: int) -> dict[str, dict[str, float]]:
    """Seconds per call of each ``fn()`` (each must block until done): after one warm-up call
    each, the functions take turns call by call, so that a machine whose speed drifts within a
    minute slows them alike. Median, min and max per function."""
    for fn in fns.values():
        fn()
    samples: dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s)}
        for name, s in samples.items()
    }


# ---------------------------------------------------------------- NumPy references (float32)


def numpy_params(model) -> dict[str, np.ndarray]:
    cell, readout = model.cell, model.readout
    arrays = {"U": cell.U, "W": cell.W, "b": cell.b, "V": readout.V, "c": readout.c}
    return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def elman_model(seed: int, hidden: int, activation: str = "sigmoid"):
    """The benchmarks' Elman network (D = O = 1); the same weights for every activation."""
    return init_model(
        "elman", key=jax.random.key(seed), input_dim=1, hidden_dim=hidden, output_dim=1, activation=activation
    )


def numpy_grads_batch(p: dict, xs: np.ndarray, ys: np.ndarray, k: int | None) -> dict:
    """Batch-vectorised BPTT, sigmoid cell, target last, the mean loss: Python loop over time,
    matrix products over the batch."""
    n, t_len, _ = xs.shape
    hs = np.zeros((t_len + 1, n, p["W"].shape[0]), np.float32)
    for t in range(t_len):
        a = xs[:, t] @ p["U"].T + hs[t] @ p["W"].T + p["b"]
        hs[t + 1] = 1.0 / (1.0 + np.exp(-a))
    err = (hs[-1] @ p["V"].T + p["c"] - ys) / n
    g = {name: np.zeros_like(v) for name, v in p.items()}
    g["V"], g["c"] = err.T @ hs[-1], err.sum(0)
    dh = err @ p["V"]
    first = 0 if k is None else max(0, t_len - k)
    for t in range(t_len - 1, first - 1, -1):
        delta = dh * hs[t + 1] * (1.0 - hs[t + 1])
        g["U"] += delta.T @ xs[:, t]
        g["W"] += delta.T @ hs[t]
        g["b"] += delta.sum(0)
        dh = delta @ p["W"]
    return g


def numpy_grads_example(p: dict, x: np.ndarray, y: np.ndarray, k: int | None) -> dict:
    """One example, written as the tutorial writes it: vectors and loops."""
    return numpy_grads_batch(p, x[None], y[None], k)


def numpy_tutorial_epoch(p: dict, x_all: np.ndarray, y_all: np.ndarray, lr: float) -> dict:
    """Loss over every window (one at a time), then per-example SGD on the first 100 with
    5-step truncation and clipping at +-10, as the tutorial's loop does."""
    total = 0.0
    for x, y in zip(x_all, y_all, strict=True):
        h = np.zeros(p["W"].shape[0], np.float32)
        for step in x:
            h = 1.0 / (1.0 + np.exp(-(p["U"] @ step + p["W"] @ h + p["b"])))
        total += 0.5 * float(np.sum((p["V"] @ h + p["c"] - y) ** 2))
    for x, y in zip(x_all[:100], y_all[:100], strict=True):
        g = numpy_grads_example(p, x, y, 5)
        p = {name: v - lr * np.clip(g[name], -10, 10) for name, v in p.items()}
    return p


# ---------------------------------------------------------------- rnn_jax


def jax_grad_fn(kind: str, truncation):
    fn = jax.grad(loss) if kind == "autodiff" else manual_grads
    return jax.jit(lambda p, xs, ys: fn(p, xs, ys, truncation=truncation))


def jax_tutorial_epoch(kind: str):
    """One jitted epoch: the loss pass and 100 per-example clipped SGD steps in one scan."""
    grad = jax.grad(loss) if kind == "autodiff" else manual_grads
    opt = optax.chain(optax.clip(10.0), optax.sgd(1e-4))

    def epoch(params, xs_all, ys_all):
        total = loss(params, xs_all, ys_all)

        def step(carry, xy):
            params, state = carry
            g = grad(params, xy[0][None], xy[1][None], truncation=5)
            updates, state = opt.update(g, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), (xs_all[:100], ys_all[:100]))
        return params, total

    return jax.jit(epoch)


def long_sequence_step(seq_len: int, remat: bool, repeats: int) -> dict:
    """Workload d in this process: one full-BPTT gradient at batch 16, H=100; seconds and the
    process's peak resident memory."""
    import resource

    params = elman_model(0, 100, "tanh")
    xs = jax.random.normal(jax.random.key(1), (16, seq_len, 1))
    ys = jax.random.normal(jax.random.key(2), (16, 1))
    grad = jax.jit(jax.grad(lambda p, xs, ys: loss(p, xs, ys, remat=remat)))
    timing = median_time(lambda: jax.block_until_ready(grad(params, xs, ys)), repeats)
    return {**timing, "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def long_sequence_rows(cfg, record) -> dict:
    """Workload d, each (T, remat) in a fresh subprocess so that peak memory is its own."""
    import json
    import subprocess

    out = {}
    for seq_len in parse_list(cfg.seq_lens, "seq_lens", int):
        for remat in (False, True):
            repeats = max(1, cfg.repeats // 3) if seq_len >= 10_000 else cfg.repeats
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(seq_len), str(int(remat)), str(repeats)],
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                raise RuntimeError(f"the T={seq_len} run failed:\n{child.stderr}")
            row = json.loads(child.stdout.strip().splitlines()[-1])
            out[seq_len, remat] = row
            timing = {k: row[k] for k in ("median_s", "min_s", "max_s")}
            record(
                f"d T={seq_len}, batch 16",
                f"rnn_jax {'remat' if remat else 'stored'}",
                timing,
                step_flops(16, 100, seq_len, None),
                seq_len=seq_len,
            )
            rows_peak = f"{row['peak_memory_mib']:.0f} MiB"
            print(f"{'':<22} {'':<24} peak {rows_peak}")
    return out


# ---------------------------------------------------------------- machine limits


def matmul_peak_gflops(repeats: int) -> float:
    """Best GFLOP/s of a 1024 x 1024 float32 matrix product on this device."""
    a = jax.random.normal(jax.random.key(0), (1024, 1024))
    f = jax.jit(lambda a: a @ a)
    t = median_time(lambda: f(a).block_until_ready(), repeats)["min_s"]
    return 2 * 1024**3 / t / 1e9


def chain_link_seconds(batch: int, hidden: int, repeats: int, length: int = 500) -> float:
    """Seconds per link of ``h <- sigmoid(h W)``: ``length`` dependent (B, H) x (H, H) products."""
    w = jax.random.normal(jax.random.key(0), (hidden, hidden)) / hidden**0.5
    h0 = jnp.zeros((batch, hidden))
    f = jax.jit(lambda h: jax.lax.scan(lambda h, _: (jax.nn.sigmoid(h @ w), None), h, length=length)[0])
    return median_time(lambda: f(h0).block_until_ready(), repeats)["median_s"] / length


def step_flops(batch: int, hidden: int, t_len: int, k: int | None) -> float:
    """Multiply-adds x 2 of one gradient: forward 2BH^2 per step; backward 4BH^2 per step it
    covers (W^T delta and delta h^T); input and output products are negligible at D = O = 1."""
    back = t_len if k is None else min(k, t_len)
    return 2.0 * batch * hidden**2 * (t_len + 2 * back)


# ---------------------------------------------------------------- workloads


def run(cfg: BenchmarkConfig, out: Path) -> dict:
    if cfg.repeats < 1:
        raise InputError(f"repeats must be a positive integer; got {cfg.repeats}")
    sizes = parse_list(cfg.hidden_sizes, "hidden_sizes", int)
    if min(sizes) < 1:
        raise InputError(f"hidden_sizes must be positive integers; got {cfg.hidden_sizes!r}")
    skipped = {
        name: why
        for name, module in (("flax", "flax"), ("pytorch", "torch"))
        if (why := alternatives.missing(module)) is not None
    }
    machine = describe_machine()
    print(machine_line(machine))
    peak = matmul_peak_gflops(cfg.repeats)
    print(f"matmul peak (1024 x 1024 float32): {peak:.1f} GFLOP/s")
    rows = []

    def record(workload, variant, timing, flops=None, floor=None, **sizes):
        row = {"workload": workload, "variant": variant, **sizes, **timing}
        if flops is not None:
            row |= {"gflop": flops / 1e9, "gflops": flops / timing["median_s"] / 1e9}
            row["fraction_of_peak"] = row["gflops"] / peak
        if floor is not None:
            row["chain_floor_s"] = floor
            row["over_chain_floor"] = timing["median_s"] / floor
        rows.append(row)
        print(f"{workload:<22} {variant:<24} {timing['median_s'] * 1e3:10.3f} ms")

    # (a) the tutorial's epoch
    data = make_sine_data()
    x_all = jnp.concatenate([data.x_train, data.x_val])
    y_all = jnp.concatenate([data.y_train, data.y_val])
    params = elman_model(cfg.seed, 100)
    compiled = {kind: jax_tutorial_epoch(kind) for kind in ("autodiff", "manual")}
    epochs = {
        f"rnn_jax {kind}": lambda e=epoch: jax.block_until_ready(e(params, x_all, y_all))
        for kind, epoch in compiled.items()
    }
    for name, timing in interleaved_times(epochs, cfg.repeats).items():
        record("a tutorial epoch", name, timing)
    p_np, xa, ya = numpy_params(params), np.asarray(x_all), np.asarray(y_all)
    few = max(1, cfg.repeats // 3)
    record(
        "a tutorial epoch",
        "numpy per-example loop",
        median_time(lambda: numpy_tutorial_epoch(p_np, xa, ya, 1e-4), few),
    )
    record(
        "a tutorial epoch",
        "numpy, tutorial as published (wrong grad)",
        median_time(lambda: alternatives.tutorial_epoch_as_published(p_np, xa, ya, 1e-4), 1),
    )
    if "pytorch" not in skipped:
        record(
            "a tutorial epoch",
            "pytorch eager",
            median_time(alternatives.torch_tutorial_epoch(p_np, xa, ya, 1e-4), few),
        )

    # (b), (c), (e): one gradient at batch 100
    def gradient_rows(workload: str, hidden: int, k: int | None, numpy_too: bool) -> None:
        p, p_tanh = elman_model(cfg.seed, hidden), elman_model(cfg.seed, hidden, "tanh")
        xs = jax.random.normal(jax.random.key(1), (100, 50, 1))
        ys = jax.random.normal(jax.random.key(2), (100, 1))
        flops = step_flops(100, hidden, 50, k)
        link = chain_link_seconds(100, hidden, cfg.repeats)
        floor = link * (50 + (50 if k is None else k))
        variants = {f"rnn_jax {kind}": jax_grad_fn(kind, k) for kind in ("autodiff", "manual")}
        if k is not None:
            variants["rnn_jax autodiff, traced k"] = jax.jit(
                lambda p, xs, ys: jax.grad(loss)(p, xs, ys, truncation=jnp.int32(k))
            )
        if numpy_too:  # nn.RNN has no sigmoid: rnn_jax with tanh is its counterpart
            variants |= {f"rnn_jax {kind} (tanh)": jax_grad_fn(kind, k) for kind in ("autodiff", "manual")}
        calls = {
            name: lambda f=fn, m=(p_tanh if "(tanh)" in name else p): jax.block_until_ready(f(m, xs, ys))
            for name, fn in variants.items()
        }
        pn, xn, yn = numpy_params(p), np.asarray(xs), np.asarray(ys)
        if "flax" not in skipped:
            calls["flax nn.RNN(SimpleCell)"] = alternatives.flax_gradient_step(pn, xn, yn, k)
        for name, timing in interleaved_times(calls, cfg.repeats).items():
            record(workload, name, timing, flops, floor, hidden=hidden)
        # Other frameworks are timed on their own: their thread pools keep spinning for a while
        # after a call, and on two cores that slowed whichever JAX call came next.
        others = {}
        if "pytorch" not in skipped and numpy_too:
            others["pytorch eager"] = alternatives.torch_gradient_step(pn, xn, yn, k)
            others["pytorch nn.RNN (tanh)"] = alternatives.torch_nn_rnn_step(pn, xn, yn, k)
        if numpy_too:
            others["numpy vectorised"] = lambda: numpy_grads_batch(pn, xn, yn, k)
        for name, fn in others.items():
            record(workload, name, median_time(fn, cfg.repeats), flops, floor, hidden=hidden)
        if numpy_too:
            record(
                workload,
                "numpy per-example loop",
                median_time(
                    lambda: [numpy_grads_example(pn, x, y, k) for x, y in zip(xn, yn, strict=True)],
                    max(1, cfg.repeats // 3),
                ),
                flops,
                floor,
            )

    long = long_sequence_rows(cfg, record)
    for (seq_len, remat), row in long.items():
        match = next(
            r
            for r in rows
            if r["workload"] == f"d T={seq_len}, batch 16"
            and r["variant"].endswith("remat" if remat else "stored")
        )
        match["peak_memory_mib"] = row["peak_memory_mib"]
    gradient_rows("b batch 100, full", 100, None, True)
    gradient_rows("c batch 100, k=5", 100, 5, True)
    for hidden in sizes:
        gradient_rows(f"e H={hidden}, full", hidden, None, False)

    def median(workload, variant):
        return next(
            (r["median_s"] for r in rows if r["workload"] == workload and r["variant"] == variant), None
        )

    def ratio(workload, slower, faster, workload_faster=None):
        a, b = median(workload, slower), median(workload_faster or workload, faster)
        return None if a is None or b is None else a / b

    floor_b = next(r["chain_floor_s"] for r in rows if r["workload"] == "b batch 100, full")
    epoch, step = "a tutorial epoch", "b batch 100, full"
    compared = [  # (workload, the slower variant, the variants it is divided by)
        (epoch, "numpy per-example loop", ("rnn_jax autodiff", "rnn_jax manual")),
        (epoch, "numpy, tutorial as published (wrong grad)", ("rnn_jax autodiff",)),
        (epoch, "pytorch eager", ("rnn_jax autodiff", "rnn_jax manual")),
        (step, "rnn_jax manual", ("rnn_jax autodiff",)),
        (step, "pytorch nn.RNN (tanh)", ("rnn_jax autodiff (tanh)", "rnn_jax manual (tanh)")),
        (step, "pytorch eager", ("rnn_jax autodiff",)),
        (step, "flax nn.RNN(SimpleCell)", ("rnn_jax autodiff",)),
    ]
    ratios = {
        f"{workload[0]} {slow} / {fast}": ratio(workload, slow, fast)
        for workload, slow, fasts in compared
        for fast in fasts
    }
    ratios["b autodiff / chain floor"] = median("b batch 100, full", "rnn_jax autodiff") / floor_b
    ratios["b manual / chain floor"] = median("b batch 100, full", "rnn_jax manual") / floor_b
    for kind in ("autodiff", "manual"):
        ratios[f"c k=5 / full ({kind})"] = ratio(
            "c batch 100, k=5", f"rnn_jax {kind}", f"rnn_jax {kind}", "b batch 100, full"
        )
    ratios = {name: value for name, value in ratios.items() if value is not None}
    lens = sorted({t for t, _ in long})
    if len(lens) > 1:
        shortest, longest = lens[0], lens[-1]
        stored_short = long[shortest, False]["peak_memory_mib"]
        ratios[f"d peak memory, T={longest} remat / T={shortest} stored"] = (
            long[longest, True]["peak_memory_mib"] / stored_short
        )
        ratios[f"d peak memory, T={longest} stored / T={shortest} stored"] = (
            long[longest, False]["peak_memory_mib"] / stored_short
        )
        ratios[f"d time, T={longest} remat / stored"] = (
            long[longest, True]["median_s"] / long[longest, False]["median_s"]
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    result = {
        "config": dataclasses.asdict(cfg),
        "device": str(jax.devices()[0]),
        "machine": machine,
        "jax": jax.__version__,
        "matmul_peak_gflops": peak,
        "skipped": skipped,
        "rows": rows,
        "ratios": ratios,
    }
    write_json(out / "benchmark.json", result)
    write_atomic(out / "benchmark.md", lambda f: f.write(markdown(result).encode()))
    save_figure(plot_rows(rows), out / "benchmark.png")
    return result


def markdown(result: dict) -> str:
    lines = [
        f"{machine_line(result['machine'])}; JAX {result['jax']} on {result['device']}; "
        f"matmul peak {result['matmul_peak_gflops']:.1f} GFLOP/s.",
        "",
        "| workload | variant | median ms (min–max) | GFLOP/s | of peak | × chain floor | peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        gf = f"{r['gflops']:.2f}" if "gflops" in r else ""
        frac = f"{r['fraction_of_peak']:.1%}" if "fraction_of_peak" in r else ""
        floor = f"{r['over_chain_floor']:.2f}" if "over_chain_floor" in r else ""
        peak = f"{r['peak_memory_mib']:.0f}" if "peak_memory_mib" in r else ""
        lines.append(
            f"| {r['workload']} | {r['variant']} | {r['median_s'] * 1e3:.3f} ({r['min_s'] * 1e3:.3f}–"
            f"{r['max_s'] * 1e3:.3f}) | {gf} | {frac} | {floor} | {peak} |"
        )
    lines += ["", *(f"- {name}: {value:.2f}" for name, value in result["ratios"].items())]
    lines += [f"- {name} skipped: {why}" for name, why in result["skipped"].items()]
    return "\n".join(lines) + "\n"


def plot_rows(rows: list[dict]):
    """Five panels: (a) and (b)/(c) as bars per variant; (d) time and peak memory against T;
    (e) time against H with the dependent-chain floor. Every time axis is logarithmic."""
    import matplotlib.pyplot as plt

    from rnn_jax.plots import style

    def of(prefix):
        return [r for r in rows if r["workload"].startswith(prefix)]

    with style():
        fig = plt.figure(figsize=(15, 9))
        grid = fig.add_gridspec(2, 6)
        ax_a, ax_bc = fig.add_subplot(grid[0, :3]), fig.add_subplot(grid[0, 3:])
        ax_dt, ax_dm, ax_e = (fig.add_subplot(grid[1, 2 * i : 2 * i + 2]) for i in range(3))

        a = sorted(of("a "), key=lambda r: r["median_s"])
        bars = ax_a.barh([r["variant"] for r in a], [r["median_s"] * 1e3 for r in a], color="tab:blue")
        ax_a.bar_label(bars, fmt="%.3g ms", padding=3, fontsize=8)
        ax_a.set(xscale="log", xlabel="ms per epoch (median)", title="(a) the tutorial's epoch")

        full, cut = {r["variant"]: r for r in of("b ")}, {r["variant"]: r for r in of("c ")}
        names = sorted(full, key=lambda v: full[v]["median_s"]) + [v for v in cut if v not in full]
        for shift, runs, label in ((0.2, full, "full BPTT (b)"), (-0.2, cut, "k = 5 (c)")):
            ms = [runs[v]["median_s"] * 1e3 if v in runs else 0 for v in names]
            ax_bc.barh([y + shift for y in range(len(names))], ms, 0.4, label=label)
        floor = next((r["chain_floor_s"] for r in full.values() if "chain_floor_s" in r), None)
        if floor is not None:
            ax_bc.axvline(floor * 1e3, color="k", ls="--", lw=1, label="chain floor (b)")
        ax_bc.set_yticks(range(len(names)), names)
        ax_bc.set(xscale="log", xlabel="ms per gradient (median)", title="(b), (c) batch 100, T=50, H=100")
        ax_bc.legend(loc="lower right", fontsize=8)

        for remat, colour in ((False, "tab:blue"), (True, "tab:orange")):
            d = sorted(
                (r for r in of("d ") if r["variant"].endswith("remat" if remat else "stored")),
                key=lambda r: r["seq_len"],
            )
            label = "rematerialised" if remat else "stored"
            t = [r["seq_len"] for r in d]
            ax_dt.plot(t, [r["median_s"] / r["seq_len"] * 1e6 for r in d], "o-", color=colour, label=label)
            mem = [(r["seq_len"], r["peak_memory_mib"]) for r in d if "peak_memory_mib" in r]
            if mem:
                ax_dm.plot(*zip(*mem, strict=True), "o-", color=colour, label=label)
        ax_dt.set(xscale="log", xlabel="T", ylabel="µs per time step", title="(d) batch 16, full BPTT")
        ax_dm.set(xscale="log", xlabel="T", ylabel="peak MiB (own process)", title="(d) memory")
        for ax in (ax_dt, ax_dm):
            ax.legend(fontsize=8)

        e = of("e ")
        for variant in dict.fromkeys(r["variant"] for r in e):
            these = sorted((r for r in e if r["variant"] == variant), key=lambda r: r["hidden"])
            ax_e.plot([r["hidden"] for r in these], [r["median_s"] * 1e3 for r in these], "o-", label=variant)
        floors = sorted({(r["hidden"], r["chain_floor_s"]) for r in e if "chain_floor_s" in r})
        if floors:
            ax_e.plot(*zip(*((h, f * 1e3) for h, f in floors), strict=True), "k--", lw=1, label="chain floor")
        ax_e.set(
            xscale="log", yscale="log", xlabel="H", ylabel="ms per gradient", title="(e) batch 100, T=50"
        )
        ax_e.legend(fontsize=8)
        fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # internal: one long-sequence measurement, JSON on stdout
        import json

        print(json.dumps(long_sequence_step(int(argv[1]), bool(int(argv[2])), int(argv[3]))))
        return 0
    return experiment_main(__doc__, BenchmarkConfig(), run, "results/benchmark", argv)


if __name__ == "__main__":
    sys.exit(main())
