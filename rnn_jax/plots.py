"""Figures from arrays: each function takes data and returns a Matplotlib Figure."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_STYLE = {
    "figure.figsize": (8, 4),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.frameon": False,
}


# One name and one colour per forecaster, in every figure.
FORECASTERS = {
    "rnn": ("RNN", "tab:orange"),
    "closed_loop": ("RNN, closed loop", "tab:orange"),
    "teacher_forced": ("RNN, teacher forced", "tab:red"),
    "persistence": ("persistence", "tab:gray"),
    "seasonal_naive": ("seasonal naive", "tab:green"),
    "linear_ar": ("linear AR", "tab:blue"),
}


def forecaster(name: str) -> tuple[str, str | None]:
    """The legend label and colour of a forecaster (unknown names keep their own)."""
    return FORECASTERS.get(name, (name.replace("_", " "), None))


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The one style every rnn_jax figure is drawn in."""
    with plt.rc_context(_STYLE):
        yield


def plot_predictions(
    splits: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]], title: str = ""
) -> Figure:
    """Prediction against truth, one column per split, with the residual (prediction - truth)
    below on its own scale: an error of 1e-4 is invisible next to a signal of size 1.

    Args:
        splits: name -> ``(t, truth, prediction)``, three 1-D arrays of equal length, with
            ``t`` the index in the series of each predicted value.
    """
    with style():
        fig, axes = plt.subplots(
            2,
            len(splits),
            figsize=(5 * len(splits), 5.4),
            squeeze=False,
            sharex="col",
            gridspec_kw={"height_ratios": [2, 1]},
        )
        for column, (name, (t, truth, pred)) in enumerate(splits.items()):
            top, bottom = axes[0][column], axes[1][column]
            top.plot(t, truth, "k-", lw=1.5, label="truth")
            top.plot(t, pred, "o", ms=3.5, color="tab:orange", label="prediction")
            top.set_title(name)
            residual = np.asarray(pred, dtype=float) - np.asarray(truth, dtype=float)
            bottom.axhline(0.0, color="k", lw=0.8)
            bottom.plot(t, residual, "o", ms=2.5, color="tab:orange")
            bottom.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
            bottom.set_xlabel("index of the predicted value in the series")
        axes[0][0].set_ylabel("value")
        axes[1][0].set_ylabel("prediction - truth")
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper right", ncol=2)
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def plot_losses(
    curves: dict[str, Sequence[float]], ylabel: str = "loss", title: str = "", xlabel: str = "epoch"
) -> Figure:
    """Learning curves on a log scale; ``curves`` maps a label to one value per epoch."""
    with style():
        fig, ax = plt.subplots()
        for label, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, label=label)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
    return fig


def plot_stream_scaling(rows: Sequence[dict], chunk_losses: Sequence[float], chunk_label: str) -> Figure:
    """A stream's cost against its length: peak memory and speed (one point per length, log
    length axis), and the longest run's loss per chunk.

    Args:
        rows: one dict per stream length with ``steps``, ``peak_memory_mib``, ``steps_per_second``.
        chunk_losses: the longest run's mean loss per chunk; ``chunk_label`` names a chunk.
    """
    steps = [r["steps"] for r in rows]
    with style():
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        axes[0].plot(steps, [r["peak_memory_mib"] for r in rows], "o-", color="tab:blue")
        axes[0].set_ylim(bottom=0)
        axes[0].set_ylabel("peak resident memory (MiB)")
        axes[0].set_title("memory: flat in the stream's length")
        axes[1].plot(steps, [r["steps_per_second"] for r in rows], "o-", color="tab:green")
        axes[1].set_ylim(bottom=0)
        axes[1].set_ylabel("time steps per second")
        axes[1].set_title("speed")
        for ax in axes[:2]:
            ax.set_xscale("log")
            ax.set_xlabel("stream length (time steps)")
        axes[2].plot(range(1, len(chunk_losses) + 1), chunk_losses, color="tab:orange")
        axes[2].set_yscale("log")
        axes[2].set_xlabel(chunk_label)
        axes[2].set_ylabel("mean loss of the chunk's updates")
        axes[2].set_title(f"training on the {steps[-1]:,d}-step stream")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
    return fig


def plot_horizon_errors(errors: dict[str, dict[str, Sequence[float]] | None], title: str = "") -> Figure:
    """Error against horizon step, one panel per target column, one line per model;
    ``errors[model][column]`` holds one value per step ahead (``None``: model not applicable)."""
    models = {m: per for m, per in errors.items() if per is not None}
    cols = list(next(iter(models.values())))
    with style():
        fig, axes = plt.subplots(1, len(cols), figsize=(4.5 * len(cols), 3.6), squeeze=False)
        for ax, col in zip(axes[0], cols, strict=True):
            for model, per in models.items():
                label, color = forecaster(model)
                ax.plot(range(1, len(per[col]) + 1), per[col], marker="o", ms=3, label=label, color=color)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("steps ahead")
            ax.set_ylabel(f"RMSE of {col}")
            ax.set_title(f"{title} {col}".strip())
        axes[0][0].legend()
        fig.tight_layout()
    return fig


def plot_test_forecasts(
    stamps: Sequence[str],
    truth,
    predictions: dict,
    spread,
    columns: Sequence[str],
    title: str = "",
) -> Figure:
    """Forecasts against the truth over the test period, one panel per target column.

    Args:
        stamps: ``(N,)`` time stamps of the predicted rows (tick labels).
        truth: ``(N, C)`` true values.
        predictions: forecaster name -> ``(N, C)`` (``None``: not applicable).
        spread: ``(N, C)`` the RNN ensemble's standard deviation (a band around its mean).
        columns: the ``C`` column names.
    """
    x = range(len(stamps))
    with style():
        fig, axes = plt.subplots(len(columns), 1, figsize=(9, 3.2 * len(columns)), squeeze=False)
        for j, (ax, col) in enumerate(zip(axes[:, 0], columns, strict=True)):
            ax.plot(x, truth[:, j], "k-", lw=1.6, label="truth")
            for name, pred in predictions.items():
                if pred is None:
                    continue
                label, color = forecaster(name)
                main = name == "rnn"
                ax.plot(
                    x, pred[:, j], lw=1.4 if main else 0.9, ls="-" if main else "--", color=color, label=label
                )
            rnn = predictions["rnn"][:, j]
            ax.fill_between(x, rnn - spread[:, j], rnn + spread[:, j], color=forecaster("rnn")[1], alpha=0.25)
            ticks = list(range(0, len(stamps), max(1, len(stamps) // 6)))
            ax.set_xticks(ticks, [stamps[i] for i in ticks])
            ax.set_ylabel(col)
        axes[0, 0].legend(ncol=5, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.02))
        axes[-1, 0].set_xlabel("time of the predicted value")
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def _median_band(ax, x, rows, label, color, low_q=0.25, high_q=0.75, linestyle="-"):
    """Median over ``rows`` (a list of per-member lists) with a quantile band."""
    values = jnp.asarray(rows)
    ax.plot(x, jnp.median(values, axis=0), linestyle, color=color, marker="o", ms=3, label=label)
    ax.fill_between(
        x, jnp.quantile(values, low_q, axis=0), jnp.quantile(values, high_q, axis=0), color=color, alpha=0.2
    )


def plot_truncation_bias(result: dict, activations: Sequence[str]) -> Figure:
    """Three panels against the truncation length k: cosine to the full gradient over random
    initialisations (median, interquartile band), the same along a training run, and the final
    validation RMSE when training with k (median, min-max band over seeds)."""
    ks = result["truncations"]
    colors = dict(zip(activations, ("tab:blue", "tab:red", "tab:green"), strict=False))
    linestyles = dict(zip(activations, ("-", "--", ":"), strict=False))
    epoch_colours = plt.get_cmap("viridis")
    norm = plt.Normalize(min(result["checkpoints"]), max(result["checkpoints"]))
    with style():
        fig, axes = plt.subplots(1, 3, figsize=(15.5, 4))
        for act in activations:
            r = result[act]
            _median_band(axes[0], ks, r["cos_init"], act, colors[act])
            # One line per checkpoint: colour is the epoch (one colour bar), style the activation.
            for epoch, row in zip(result["checkpoints"], r["cos_run"], strict=True):
                axes[1].plot(ks, row, linestyles[act], marker="o", ms=2.5, color=epoch_colours(norm(epoch)))
            axes[1].plot([], [], linestyles[act], color="0.3", label=act)
            _median_band(
                axes[2], ks, list(map(list, zip(*r["val_rmse"], strict=True))), act, colors[act], 0.0, 1.0
            )
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=epoch_colours), ax=axes[1], pad=0.02)
        bar.set_label("training epoch")
        axes[0].set_title(f"random initialisations (n={len(result[activations[0]]['cos_init'])})")
        axes[1].set_title("along a full-BPTT training run")
        for ax in axes[:2]:
            ax.set_ylabel("cosine(truncated, full gradient)")
            ax.axhline(1.0, color="k", lw=0.8)
        axes[2].set_yscale("log")
        axes[2].set_ylabel("final validation RMSE")
        axes[2].set_title("training with truncation k")
        for ax in axes:
            ax.set_xlabel("truncation k (steps)")
            ax.legend(fontsize=7)
        fig.tight_layout()
    return fig


def plot_gradient_flow(result: dict) -> Figure:
    """One panel per activation: ``||dL/dh_t||`` against lag, a line per spectral radius; and
    the per-epoch share of clipped gradient entries."""
    activations = list(result["norms"])
    with style():
        fig, axes = plt.subplots(1, len(activations) + 1, figsize=(5 * (len(activations) + 1), 4))
        cmap = plt.get_cmap("viridis")
        for ax, act in zip(axes, activations, strict=False):
            for i, (radius, norms) in enumerate(zip(result["radii"], result["norms"][act], strict=True)):
                ax.plot(
                    range(len(norms)),
                    norms,
                    color=cmap(i / max(len(result["radii"]) - 1, 1)),
                    label=f"radius {radius:g}",
                )
            ax.set_yscale("log")
            ax.set_xlabel("lag T - t (steps back from the prediction)")
            ax.set_ylabel("median ||dL/dh_t||")
            ax.set_title(f"{act}, orthogonal W x radius")
            ax.legend(fontsize=8)
        ax = axes[-1]
        for grad, fractions in result["clip_fraction"].items():
            ax.plot(range(1, len(fractions) + 1), fractions, "-o", ms=3, label=f"{grad} gradients")
        ax.set_xlabel("epoch")
        ax.set_ylabel("share of gradient entries clipped")
        ax.set_title("tutorial preset: value clipping at |g| > 10")
        ax.legend(fontsize=8)
        fig.tight_layout()
    return fig


def _truncation_label(k) -> str:
    return "full" if k is None else str(k)


def plot_sweep_heatmap(median_rmse, learning_rates: Sequence[float], truncations: Sequence) -> Figure:
    """Median final validation RMSE over seeds, ``median_rmse (n_lr, n_k)``, log colour scale."""
    from matplotlib.colors import LogNorm

    values = jnp.asarray(median_rmse)
    with style():
        fig, ax = plt.subplots(figsize=(1.1 * len(learning_rates) + 2, 0.8 * len(truncations) + 1.8))
        image = ax.imshow(values.T, norm=LogNorm(), cmap="viridis_r", aspect="auto", origin="lower")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                ax.text(i, j, f"{float(values[i, j]):.1e}", ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(range(len(learning_rates)), [f"{lr:g}" for lr in learning_rates])
        ax.set_yticks(range(len(truncations)), [_truncation_label(k) for k in truncations])
        ax.set_xlabel("learning rate")
        ax.set_ylabel("truncation k")
        ax.grid(False)
        fig.colorbar(image, ax=ax, label="median final validation RMSE")
        fig.tight_layout()
    return fig


def plot_sweep_curves(curves, truncations: Sequence, title: str = "") -> Figure:
    """Validation RMSE per epoch, ``curves (n_k, n_seeds, epochs)``: median and min-max band."""
    values = jnp.asarray(curves)
    epochs = range(1, values.shape[-1] + 1)
    with style():
        fig, ax = plt.subplots()
        cmap = plt.get_cmap("plasma")
        for j, k in enumerate(truncations):
            color = cmap(j / max(len(truncations), 1))
            ax.plot(epochs, jnp.median(values[j], axis=0), color=color, label=f"k={_truncation_label(k)}")
            ax.fill_between(
                epochs, jnp.min(values[j], axis=0), jnp.max(values[j], axis=0), color=color, alpha=0.2
            )
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation RMSE (median, min-max over seeds)")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
    return fig


def plot_ensemble(t: Sequence[int], truth, predictions, title: str = "") -> Figure:
    """Truth and the ensemble's median prediction with its min-max band, ``predictions (S, N)``."""
    preds = jnp.asarray(predictions)
    with style():
        fig, (ax, ax_err) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=(2, 1))
        ax.plot(t, truth, "k-", lw=1.2, label="truth")
        ax.plot(t, jnp.median(preds, axis=0), "o", ms=3, color="tab:orange", label="median prediction")
        ax.fill_between(
            t,
            jnp.min(preds, axis=0),
            jnp.max(preds, axis=0),
            color="tab:orange",
            alpha=0.3,
            label="min-max over seeds",
        )
        ax.set_ylabel("value")
        ax.legend(ncol=3, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        fig.suptitle(title)
        errors = preds - jnp.asarray(truth)[None, :]
        ax_err.fill_between(
            t, jnp.min(errors, axis=0), jnp.max(errors, axis=0), color="tab:orange", alpha=0.3
        )
        ax_err.plot(t, jnp.median(errors, axis=0), color="tab:orange")
        ax_err.axhline(0.0, color="k", lw=0.8)
        ax_err.set_ylabel("prediction - truth")
        ax_err.set_xlabel("index of the predicted value in the series")
        fig.tight_layout()
    return fig


def plot_memory_tasks(results: dict, seq_lens: dict[str, int]) -> Figure:
    """What each cell learns against the truncation window ``k``, one panel per task.

    ``results[task][cell]`` maps ``"k"`` (ints, ``None`` for full BPTT) and ``"score"`` (the
    final validation MSE for adding, accuracy for recall); ``results[task]["references"]``
    maps a label to a horizontal reference level; ``seq_lens[task]`` is the task's T."""
    with style():
        fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
        for ax, (task, by_cell) in zip(axes[0], results.items(), strict=True):
            seq_len = seq_lens[task]
            for cell, row in by_cell.items():
                if cell == "references":
                    continue
                ks = [seq_len if k is None else k for k in row["k"]]
                ax.plot(ks, row["score"], marker="o", label=cell)
            for (label, level), dash in zip(by_cell["references"].items(), ("--", ":", "-."), strict=False):
                ax.axhline(level, color="grey", linestyle=dash, linewidth=1, label=label)
            if task == "adding":
                reach = "windows that reach a mark"
                ax.axvspan(seq_len // 2 + 1, seq_len, color="grey", alpha=0.08, label=reach)
                ax.set_yscale("log")
                ax.set_ylabel("validation MSE")
            else:
                ax.set_ylabel("validation accuracy")
            ax.set_xlabel(f"truncation window k (k = {seq_len}: full BPTT)")
            ax.set_title(f"{task}, T = {seq_len}")
            ax.legend(fontsize=8)
        fig.tight_layout()
    return fig


def _not_run(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def plot_beyond_bptt(result: dict) -> Figure:
    """Four panels of ``experiments/beyond_bptt.py``'s result: parallel over sequential time
    against T, Newton iterations against the spectral radius, the long-lag task's accuracy
    against wall time, and the approximate gradients' cosines with the exact one."""
    with style():
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        speed, conv, lag, approx = axes.ravel()
        if "speed" in result:
            cells = list(dict.fromkeys(r["cell"] for r in result["speed"]))
            sizes = sorted({r["hidden"] for r in result["speed"]})
            for cell, hidden in sorted({(r["cell"], r["hidden"]) for r in result["speed"]}):
                rows = [r for r in result["speed"] if (r["cell"], r["hidden"]) == (cell, hidden)]
                rows = [r for r in rows if "forward" in r["seconds"]["quasi_deer"]]
                times = [(r["seconds"]["quasi_deer"], r["seconds"]["sequential"]) for r in rows]
                ratio = [
                    parallel["forward_backward"] / plain["forward_backward"] for parallel, plain in times
                ]
                size = sizes.index(hidden)
                style_of = {"marker": "os^Dv"[size % 5], "linestyle": ("-", "--", ":", "-.")[size % 4]}
                label = f"{cell} H={hidden}"
                speed.plot(
                    [r["seq_len"] for r in rows],
                    ratio,
                    color=f"C{cells.index(cell)}",
                    label=label,
                    **style_of,
                )
            speed.axhline(1.0, color="grey", linewidth=1)
            speed.set_xscale("log")
            speed.set_yscale("log")
            speed.set_xlabel("sequence length T")
            speed.set_ylabel("quasi-DEER / sequential time (fwd + bwd)")
            speed.set_title(f"parallel in time on {result.get('device', 'cpu')}: below 1 wins")
            speed.legend(fontsize=7, ncol=2)
        else:
            _not_run(speed, "speed")
        if "convergence" in result:
            rows = [r for r in result["convergence"] if r["label"].startswith("untrained")]
            radii = [r["radius"] for r in rows]
            for method in ("deer", "quasi_deer", "elk", "quasi_elk"):
                if method in rows[0]:
                    conv.plot(radii, [r[method]["iterations"] for r in rows], marker="o", label=method)
            trained = [r for r in result["convergence"] if r["label"].startswith("trained")]
            for r in trained:
                conv.scatter([r["radius"]] * 2, [r["deer"]["iterations"], r["quasi_deer"]["iterations"]],
                             marker="*", s=120, color="black", label="trained (sine)", zorder=3)  # fmt: skip
            conv.set_xlabel("spectral radius of W (untrained Elman, H=8, T=1000)")
            conv.set_ylabel("Newton iterations (cap: not converged)")
            twin = conv.twinx()
            twin.plot(radii, [r["lyapunov"] for r in rows], color="tab:red", linestyle="--", label="Lyapunov")
            twin.axhline(0.0, color="tab:red", linewidth=0.5)
            twin.set_ylabel("largest Lyapunov exponent", color="tab:red")
            conv.legend(fontsize=8, loc="upper left")
            conv.set_title("Newton iterations against the spectral radius")
        else:
            _not_run(conv, "convergence")
        if "long_lag" in result:
            for label, run in result["long_lag"].items():
                if label == "chance":
                    continue
                accuracy = np.asarray(run["accuracy"]).mean(axis=0)
                seconds = run["wall_seconds"] * np.arange(1, len(accuracy) + 1) / len(accuracy)
                lag.plot(seconds, accuracy, label=label)
            lag.axhline(result["long_lag"]["chance"], color="grey", linestyle="--", label="chance")
            lag.set_xlabel("wall time (s), epochs spread evenly")
            lag.set_ylabel("validation accuracy (mean over seeds)")
            lag.set_title(f"recall, T = {result['config']['recall_len']}, IndRNN")
            lag.legend(fontsize=8)
        else:
            _not_run(lag, "long lag")
        if "approximations" in result:
            rows = result["approximations"]
            keys = ["snap1", "uoro_one_draw", "uoro_mean"]
            width = 0.8 / len(keys)
            for i, key in enumerate(keys):
                values = [r.get(key, np.nan) for r in rows]
                approx.bar(np.arange(len(rows)) + i * width, values, width, label=key.replace("_", " "))
            approx.set_xticks(np.arange(len(rows)) + width, [r["cell"] for r in rows])
            approx.set_ylabel("cosine with the exact gradient")
            approx.set_title("approximate online gradients")
            approx.axhline(1.0, color="grey", linewidth=1)
            approx.legend(fontsize=8)
        else:
            _not_run(approx, "approximations")
        fig.tight_layout()
    return fig


def plot_confusion(counts, classes: Sequence[str], title: str = "") -> Figure:
    """A confusion matrix ``counts (true, predicted)``, each row shown as shares of its class."""
    counts = np.asarray(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(8.0, 2.0 + 0.45 * len(classes))
    with style():
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.grid(False)
        ticks = np.arange(len(classes))
        ax.set_xticks(ticks, classes, rotation=90 if len(classes) > 12 else 0)
        ax.set_yticks(ticks, classes)
        if len(classes) <= 12:
            for (i, j), n in np.ndenumerate(counts):
                if n:
                    ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                            color="white" if shares[i, j] > 0.5 else "black")  # fmt: skip
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, label="share of the true class")
        fig.tight_layout()
    return fig


def plot_accuracy_curves(curves, baselines: dict[str, float], title: str = "") -> Figure:
    """Accuracy over epochs ``curves (seeds, epochs)``: the mean and the range over seeds, with
    each baseline as a horizontal line."""
    curves = np.asarray(curves)
    epochs = np.arange(1, curves.shape[1] + 1)
    with style():
        fig, ax = plt.subplots()
        ax.plot(epochs, curves.mean(axis=0), color="tab:orange", label=f"RNN, mean of {len(curves)} seeds")
        ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color="tab:orange", alpha=0.25,
                        label="range over seeds")  # fmt: skip
        colors = ("tab:gray", "tab:blue", "tab:green")
        for (name, value), color in zip(baselines.items(), colors, strict=False):
            ax.axhline(value, color=color, linestyle="--", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig
