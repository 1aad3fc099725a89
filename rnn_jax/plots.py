"""Figures from arrays: each function takes data and returns a Matplotlib Figure."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

_STYLE = {
    "figure.figsize": (8, 4),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.frameon": False,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The one style every rnn_jax figure is drawn in."""
    with plt.rc_context(_STYLE):
        yield


def plot_predictions(
    splits: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]], title: str = ""
) -> Figure:
    """Prediction against truth, one panel per split.

    Args:
        splits: name -> ``(t, truth, prediction)``, three 1-D arrays of equal length, with
            ``t`` the index in the series of each predicted value.
    """
    with style():
        fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 3.6), squeeze=False)
        for ax, (name, (t, truth, pred)) in zip(axes[0], splits.items(), strict=True):
            ax.plot(t, truth, "k-", lw=1.5, label="truth")
            ax.plot(t, pred, "o", ms=3.5, color="tab:orange", label="prediction")
            ax.set_title(name)
            ax.set_xlabel("index of the predicted value in the series")
        axes[0][0].set_ylabel("value")
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper right", ncol=2)
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def plot_losses(curves: dict[str, Sequence[float]], ylabel: str = "loss", title: str = "") -> Figure:
    """Learning curves on a log scale; ``curves`` maps a label to one value per epoch."""
    with style():
        fig, ax = plt.subplots()
        for label, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
    return fig
