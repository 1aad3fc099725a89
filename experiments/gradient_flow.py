"""Vanishing and exploding gradients made visible, and how often the tutorial's clipping fires.

    uv run experiments/gradient_flow.py [--out results/gradient_flow]

(a) ``||dL/dh_t||`` against the lag ``T - t`` on the sine windows, for sigmoid and tanh and for
    several spectral radii of ``W`` (orthogonal ``W`` times the radius), median over random
    initialisations; one vmapped program over (radius, init).
(b) The fraction of gradient entries that value clipping (|g| > 10) cuts in each epoch of the
    tutorial preset, with correct gradients and with the tutorial's backward pass.
Writes gradient_flow.json (raw arrays) and gradient_flow.png.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import sys
import time
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp

from rnn_jax.cli.args import experiment_main
from rnn_jax.data.sine import make_sine_data
from rnn_jax.errors import InputError
from rnn_jax.io import save_figure, write_json
from rnn_jax.manual import state_grads
from rnn_jax.model import init_elman
from rnn_jax.plots import plot_gradient_flow
from rnn_jax.runs.options import parse_list
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train


@dataclasses.dataclass(frozen=True)
class GradientFlowConfig:
    radii: str = "0.5,1,2,4,8"
    activations: str = "sigmoid,tanh"
    hidden_dim: int = 100
    n_inits: int = 16
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "radii": "comma-separated spectral radii of the initial recurrent weights",
        "activations": "comma-separated Elman activations: sigmoid, tanh, relu",
        "hidden_dim": "hidden size H",
        "n_inits": "random initialisations per radius (the median is plotted)",
        "seed": "random seed of the initialisations and data",
    }


def state_grad_norms(key, radius, data, activation: str, hidden_dim: int) -> jax.Array:
    """Mean over training windows of ``||dL/dh_t||``, indexed by lag ``T - t``: ``(T,)``."""
    params = init_elman(
        key=key, input_dim=1, hidden_dim=hidden_dim, output_dim=1, scale=radius, activation=activation
    )
    dhs = state_grads(params, data.x_train, data.y_train)  # (N, T, H)
    return jnp.mean(jnp.linalg.norm(dhs, axis=-1), axis=0)[::-1]


def clip_fractions(data) -> dict[str, list[float]]:
    """Per epoch, the share of gradient entries clipped at |g| > 10 in the tutorial preset."""
    hp = make_hparams(learning_rate=1e-4, clip_threshold=10.0, truncation=5, seq_len=data.x_train.shape[1])
    out = {}
    for grad in ("autodiff", "tutorial"):
        train = make_train(TrainConfig.tutorial(backward=grad)).train
        _, metrics = jax.jit(train)(jax.random.key(0), hp, data)
        out[grad] = metrics["clip_fraction"].tolist()
    return out


def run(cfg: GradientFlowConfig, out: Path) -> dict:
    radii = parse_list(cfg.radii, "radii")
    if min(radii) <= 0:
        raise InputError(f"radii must be positive numbers; got {cfg.radii!r}")
    if cfg.n_inits < 1 or cfg.hidden_dim < 1:
        raise InputError("n_inits and hidden_dim must be positive integers")
    activations = [a for a in cfg.activations.split(",") if a]
    for a in activations:
        if a not in ("sigmoid", "tanh", "relu"):
            raise InputError(f"activations must be from sigmoid, tanh, relu; got {a!r}")

    start = time.perf_counter()
    data = make_sine_data()  # the tutorial's unscaled windows
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.n_inits)
    result: dict = {"config": dataclasses.asdict(cfg), "radii": radii, "norms": {}}
    for activation in activations:
        fn = jax.jit(
            jax.vmap(
                jax.vmap(
                    lambda k, r, a=activation: state_grad_norms(k, r, data, a, cfg.hidden_dim), (0, None)
                ),
                (None, 0),
            )
        )
        norms = jnp.median(fn(keys, jnp.asarray(radii)), axis=1)  # (R, T)
        result["norms"][activation] = norms.tolist()
        ratio = norms[:, -1] / norms[:, 0]
        print(
            f"{activation}: ||dL/dh|| at lag {norms.shape[1] - 1} / at lag 0 by radius: "
            + " ".join(f"{r:g}:{q:.2g}" for r, q in zip(radii, ratio.tolist(), strict=True))
        )
    result["clip_fraction"] = clip_fractions(data)
    for grad, fractions in result["clip_fraction"].items():
        print(
            f"tutorial preset, {grad} gradients: share of entries clipped per epoch, first/last "
            f"{fractions[0]:.3g}/{fractions[-1]:.3g}"
        )
    result["wall_seconds"] = time.perf_counter() - start
    write_json(out / "gradient_flow.json", result)
    save_figure(plot_gradient_flow(result), out / "gradient_flow.png")
    return result


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, GradientFlowConfig(), run, "results/gradient_flow", argv)


if __name__ == "__main__":
    sys.exit(main())
