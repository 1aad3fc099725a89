"""How far is the truncated gradient from the full one, and what does truncation cost in the end?

    uv run experiments/truncation_bias.py [--out results/truncation_bias]

For the sine task (default preset's data, target "last"), sigmoid and tanh:
  (a) cosine similarity and relative error between the k-step truncated gradient and the full
      BPTT gradient (whole training set), over many random initialisations and at points along a
      full-BPTT training run: one vmapped program over (init, k);
  (b) final validation RMSE after training with truncation k (default preset otherwise), vmapped
      over (k, seed) in one compiled program.
Writes truncation_bias.json (raw arrays) and truncation_bias.png.
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
from rnn_jax.manual import manual_grads
from rnn_jax.plots import plot_truncation_bias
from rnn_jax.runs.options import parse_list
from rnn_jax.train.loop import TrainConfig, check_config, make_hparams, make_train


@dataclasses.dataclass(frozen=True)
class TruncationBiasConfig:
    truncations: str = "1,2,3,5,8,12,20,30,40,50"
    activations: str = "sigmoid,tanh"
    n_inits: int = 32
    checkpoints: str = "0,5,20,60,150,300"  # epochs along the full-BPTT run where gradients are compared
    n_seeds: int = 3
    hidden_dim: int = 32
    epochs: int = 300
    learning_rate: float = 3e-3
    seed: int = 0

    HELP: ClassVar[dict[str, str]] = {
        "truncations": "comma-separated truncation lengths k to compare with full BPTT",
        "activations": "comma-separated Elman activations: sigmoid, tanh, relu",
        "n_inits": "random initialisations for the gradient comparison at the start",
        "checkpoints": "comma-separated epochs along a full-BPTT run where gradients are compared",
        "n_seeds": "seeds trained per truncation",
        "hidden_dim": "hidden size H",
        "epochs": "passes over the training windows",
        "learning_rate": "Adam step size (the peak of the cosine schedule)",
        "seed": "random seed of the initialisations and data",
    }


def _flat(tree) -> jax.Array:
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def gradient_agreement(params, data, ks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cosine similarity and relative error of the k-truncated gradient to the full one, ``(K,)``."""
    full = _flat(manual_grads(params, data.x_train, data.y_train))

    def one(k):
        g = _flat(manual_grads(params, data.x_train, data.y_train, truncation=k))
        cos = jnp.dot(g, full) / (jnp.linalg.norm(g) * jnp.linalg.norm(full))
        return cos, jnp.linalg.norm(g - full) / jnp.linalg.norm(full)

    return jax.vmap(one)(ks)


def study(
    config: TrainConfig, cfg: TruncationBiasConfig, data, ks: jax.Array, checkpoints: list[int]
) -> dict:
    """Parts (a) and (b) for one activation."""
    fns = make_train(config)
    full_hp = make_hparams(learning_rate=cfg.learning_rate, clip_threshold=1.0, seq_len=data.x_train.shape[1])
    agree = jax.jit(jax.vmap(lambda p: gradient_agreement(p, data, ks)))
    init_key, run_key, seed_key = jax.random.split(jax.random.key(cfg.seed), 3)

    # (a) over random initialisations
    inits = jax.vmap(lambda k: fns.init(k, full_hp, data))(jax.random.split(init_key, cfg.n_inits))
    cos_init, rel_init = agree(inits.params)

    # (a) along one full-BPTT training run: advance between checkpoints, compare at each
    run_fn = jax.jit(fns.run, static_argnames="n_epochs")
    state, along = fns.init(run_key, full_hp, data), []
    for prev, epoch in zip([0, *checkpoints], checkpoints, strict=False):
        if epoch > prev:
            state, _ = run_fn(state, full_hp, data, n_epochs=epoch - prev)
        along.append(state.params)
    cos_run, rel_run = agree(jax.tree.map(lambda *xs: jnp.stack(xs), *along))

    # (b) final validation RMSE when training with truncation k, over (k, seed): one program
    def final_rmse(k, key):
        return fns.train(key, full_hp._replace(truncation=k), data)[1]["val_rmse"][-1]

    seeds = jax.random.split(seed_key, cfg.n_seeds)
    rmse = jax.jit(jax.vmap(jax.vmap(final_rmse, (None, 0)), (0, None)))(ks, seeds)
    return {
        "cos_init": cos_init.tolist(),
        "rel_err_init": rel_init.tolist(),
        "cos_run": cos_run.tolist(),
        "rel_err_run": rel_run.tolist(),
        "val_rmse": rmse.tolist(),
    }


def run(cfg: TruncationBiasConfig, out: Path) -> dict:
    ks = parse_list(cfg.truncations, "truncations", int)
    checkpoints = parse_list(cfg.checkpoints, "checkpoints", int)
    activations = [a for a in cfg.activations.split(",") if a]
    window = 50
    if min(ks) < 1:
        raise InputError(f"truncations must all be >= 1; got {min(ks)}")
    if sorted(checkpoints) != checkpoints or checkpoints[0] < 0 or checkpoints[-1] > cfg.epochs:
        raise InputError(
            f"checkpoints must be increasing epochs within 0..{cfg.epochs}; got {cfg.checkpoints}"
        )
    for name in ("n_inits", "n_seeds"):
        if getattr(cfg, name) < 1:
            raise InputError(f"{name} must be a positive integer; got {getattr(cfg, name)}")
    base = dict(hidden_dim=cfg.hidden_dim, epochs=cfg.epochs, batch_size=10)
    for activation in activations:
        check_config(TrainConfig(**base, activation=activation), n_train=100)
    make_hparams(learning_rate=cfg.learning_rate, seq_len=window)

    start = time.perf_counter()
    data = make_sine_data(scale=True)
    k_arr = jnp.asarray(ks, jnp.int32)
    result: dict = {"config": dataclasses.asdict(cfg), "truncations": ks, "checkpoints": checkpoints}
    for activation in activations:
        result[activation] = study(TrainConfig(**base, activation=activation), cfg, data, k_arr, checkpoints)
        cos_init, rmse = (
            jnp.asarray(result[activation]["cos_init"]),
            jnp.asarray(result[activation]["val_rmse"]),
        )
        print(
            f"{activation}: median cos(k) over inits "
            + " ".join(f"{k}:{c:.3f}" for k, c in zip(ks, jnp.median(cos_init, axis=0).tolist(), strict=True))
        )
        print(
            f"{activation}: median val RMSE(k) "
            + " ".join(f"{k}:{r:.2g}" for k, r in zip(ks, jnp.median(rmse, axis=1).tolist(), strict=True))
        )
    result["wall_seconds"] = time.perf_counter() - start
    write_json(out / "truncation_bias.json", result)
    save_figure(plot_truncation_bias(result, activations), out / "truncation_bias.png")
    return result


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, TruncationBiasConfig(), run, "results/truncation_bias", argv)


if __name__ == "__main__":
    sys.exit(main())
