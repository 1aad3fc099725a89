"""Training as pure functions: ``make_train(config)`` returns a jittable, vmappable run.

``config`` (a frozen ``TrainConfig``) holds static settings: cell, sizes, optimiser,
gradient algorithm. ``Hyperparams`` holds values that may be traced (learning rate, clipping
threshold, truncation, initial recurrent scale), so ``jax.vmap`` can sweep over them. The whole
run -- shuffling, every optimiser step of every epoch, evaluation after each epoch -- is one
``lax.scan``; nothing syncs with the host inside it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rnn_jax.batch import BatchOptions
from rnn_jax.cells import ACTIVATIONS, INITS, cell_class, cell_names, config_cell_options
from rnn_jax.cells.online import CARRIED
from rnn_jax.cells.parallel import METHODS, in_parallel, in_sequence
from rnn_jax.data.sine import WindowData
from rnn_jax.errors import InputError, InputTypeError
from rnn_jax.loss import BACKWARDS, batch_predict, loss
from rnn_jax.manual import carried_grads, manual_grads
from rnn_jax.model import RNN, init_model
from rnn_jax.objectives import OBJECTIVES, cross_entropy
from rnn_jax.resources import tree_bytes
from rnn_jax.tutorial import tutorial_grads
from rnn_jax.unroll import TARGETS

OPTIMIZERS = ("sgd", "adam")
CLIPS = ("value", "norm", "none")
SCHEDULES = ("constant", "cosine")
SELECTS = ("last", "best")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static settings of a run; changing any of them compiles a new program.

    The defaults learn: they are the settings the sine task's search found (docs/tutorial.md):
    a tanh Elman cell with H=32, Adam with global-norm clipping and a cosine schedule, shuffled
    batches of 10 and Glorot/orthogonal initialisation. ``TrainConfig.tutorial()`` gives the
    tutorial's own settings instead."""

    cell: str = "elman"  # a registered cell: "elman", "gru", "lstm", "indrnn", or your own
    hidden_dim: int = 32
    activation: str | None = None  # the cell's option (Elman, IndRNN); None: the cell's default
    cell_options: str = ""  # any other option of the cell's constructor: "reset=before"
    optimizer: str = "adam"
    clip: str = "norm"
    schedule: str = "cosine"  # "constant": keep the learning rate fixed
    epochs: int = 300
    batch_size: int = 10
    shuffle: bool = True
    init: str = "default"
    backward: str = "autodiff"  # the gradient: "manual" (hand-derived) or "tutorial" (its wrong pass)
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # between stacked layers, while training
    target: str = "last"  # "all": a target at every step (the data's y is (N, T, ...))
    objective: str = "squared"  # "cross_entropy": the data's y are class labels
    select: str = "last"  # "best": keep the parameters of the epoch with the lowest validation loss
    patience: int = 0  # stop after this many epochs without a better validation loss; 0: never
    unroll: int = 1  # steps per iteration of the time scans (lax.scan's unroll); autodiff only
    method: str = "sequential"  # or deer, quasi_deer, elk, quasi_elk: states solved in parallel
    online: str = "none"  # or "rtrl", "snap1", "uoro": the gradient carried forward (one layer, full BPTT)

    @classmethod
    def tutorial(cls, **changes) -> TrainConfig:
        """The tutorial's settings: a sigmoid Elman cell with H=100 and uniform [0, 1) weights,
        per-example SGD in order, clipping each gradient entry, 25 epochs; ``changes`` override
        fields. With the tutorial's hyperparameters (``make_hparams(learning_rate=1e-4,
        clip_threshold=10.0, truncation=5, ...)``) this is its run with correct gradients."""
        tutorial = cls(
            hidden_dim=100,
            activation="sigmoid",
            optimizer="sgd",
            clip="value",
            schedule="constant",
            epochs=25,
            batch_size=1,
            shuffle=False,
            init="tutorial",
        )
        return dataclasses.replace(tutorial, **changes)

    # The allowed values of the fields that take names (shown by --help; checked by check_config).
    CHOICES: ClassVar[dict] = {
        "cell": cell_names,
        "activation": ACTIVATIONS,
        "optimizer": OPTIMIZERS,
        "clip": CLIPS,
        "schedule": SCHEDULES,
        "init": INITS,
        "backward": BACKWARDS,
        "target": TARGETS,
        "objective": lambda: tuple(OBJECTIVES),
        "select": SELECTS,
        "method": METHODS,
        "online": ("none", *CARRIED),
    }
    # Help for each field, shown by every command whose config contains a TrainConfig.
    HELP: ClassVar[dict[str, str]] = {
        "cell": "a registered cell: elman, gru, lstm, indrnn",
        "hidden_dim": "hidden size H",
        "activation": "sigmoid, tanh or relu: the Elman (or IndRNN) nonlinearity; none for the "
        "cell's default (tanh for Elman; GRU and LSTM take none)",
        "cell_options": "other options of the cell, name=value,...: reset=before (GRU, Cho et al.); "
        "every keyword of the cell's constructor is one",
        "optimizer": "sgd or adam",
        "clip": "gradient clipping: value, norm or none",
        "schedule": "constant or cosine (learning rate decays to 0)",
        "epochs": "passes over the training windows",
        "batch_size": "examples per update (1 = the tutorial's per-example SGD)",
        "shuffle": "reshuffle the training windows every epoch",
        "init": "default (Glorot/orthogonal) or tutorial (uniform [0, 1), Elman only)",
        "backward": "the gradient: autodiff, manual (hand-derived) or tutorial (the tutorial's wrong pass)",
        "num_layers": "stacked recurrent layers",
        "bidirectional": "make every layer a forward and a reverse cell",
        "dropout": "dropout probability between stacked layers while training",
        "target": "last (one target per sequence) or all (one per step)",
        "objective": "squared (real targets) or cross_entropy (class labels; reports accuracy)",
        "select": "which parameters a run keeps: last (the final epoch's) or best (the epoch with "
        "the lowest validation loss)",
        "patience": "stop early after this many epochs without a lower validation loss (0: never)",
        "method": "how the training gradient finds the states: sequential (the scan), or in parallel "
        "over time by Newton iterations, deer (dense Jacobians) or quasi_deer (their diagonals), or "
        "by damped ones, elk and quasi_elk",
        "online": "carry the gradient forward over each sequence instead of back: rtrl (exact, for "
        "element-wise cells such as indrnn), snap1 (its diagonal approximation) or uoro (an unbiased "
        "rank-one estimate, any cell); one layer, full BPTT",
        "unroll": "time steps per iteration of the scans that the autodiff gradient runs (lax.scan's "
        "unroll): the same values from a longer program, faster on some backends and sizes",
    }


# Help for the hyperparameters that commands take as options (see make_hparams).
HPARAM_HELP = {
    "learning_rate": "optimiser step size (the peak of the cosine schedule)",
    "clip_threshold": "|g| bound for clip=value, global norm for clip=norm",
    "truncation": "BPTT window k >= 1, or none for full BPTT",
    "init_scale": "multiplies the initial recurrent weights (their spectral radius)",
}


MAX_EPOCHS = 2**31 - 1  # the compiled loop counts epochs in int32


class Hyperparams(NamedTuple):
    """Values that may be traced, so one compiled run can be vmapped over them."""

    learning_rate: Float[Array, ""]
    clip_threshold: Float[Array, ""]  # |g| bound for "value", global norm for "norm"
    truncation: Int[Array, ""]  # BPTT window; >= T is full BPTT
    init_scale: Float[Array, ""]  # multiplies the initial W


class TrainState(eqx.Module):
    """Everything a run carries from one epoch to the next."""

    params: RNN
    opt_state: optax.OptState
    key: PRNGKeyArray
    epoch: Int[Array, ""]
    # 1-based optimiser step (counted over the whole run) whose gradient or update was NaN/inf,
    # or 0. The parameters and optimiser state are then those from the start of that epoch, and
    # stay frozen.
    diverged_at_step: Int[Array, ""]
    best_params: RNN  # the parameters after the epoch with the lowest validation loss so far
    best_loss: Float[Array, ""]  # that validation loss (inf before the first epoch)
    best_epoch: Int[Array, ""]  # that epoch, 1-based (0 before the first epoch)
    stopped_at: Int[Array, ""]  # the epoch after which early stopping froze the run, else 0

    def chosen_params(self, select: str) -> RNN:
        """The parameters a run keeps: the last epoch's, or the best validation epoch's."""
        return self.best_params if select == "best" else self.params


def make_hparams(
    *,
    learning_rate: float = 3e-3,
    clip_threshold: float = 1.0,
    truncation: int | None = None,
    seq_len: int,
    init_scale: float = 1.0,
) -> Hyperparams:
    """Validated ``Hyperparams``; ``truncation=None`` (full BPTT) becomes ``seq_len``.

    The defaults suit ``TrainConfig()`` (Adam, global-norm clipping); the tutorial's values are
    ``learning_rate=1e-4, clip_threshold=10.0, truncation=5``.

    >>> int(make_hparams(seq_len=50).truncation)  # full BPTT: a window as long as the sequence
    50
    >>> make_hparams(seq_len=50, learning_rate=0.0)
    Traceback (most recent call last):
    rnn_jax.errors.InputError: learning_rate must be a positive number; got 0.0
    """
    for name, value in (
        ("learning_rate", learning_rate),
        ("clip_threshold", clip_threshold),
        ("init_scale", init_scale),
        ("truncation", 1 if truncation is None else truncation),
        ("seq_len", seq_len),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputTypeError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    checks = {
        "learning_rate": (learning_rate, lambda: learning_rate > 0, "a positive number"),
        "clip_threshold": (clip_threshold, lambda: clip_threshold > 0, "a positive number"),
        "init_scale": (init_scale, lambda: init_scale > 0, "a positive number"),
    }
    for name, (value, ok, expected) in checks.items():
        if not (math.isfinite(value) and ok()):
            raise InputError(f"{name} must be {expected}; got {value}")
    if truncation is not None and (int(truncation) != truncation or truncation < 1):
        raise InputError(f"truncation must be None or an integer >= 1; got {truncation}")
    return Hyperparams(
        learning_rate=jnp.asarray(learning_rate, jnp.float32),
        clip_threshold=jnp.asarray(clip_threshold, jnp.float32),
        truncation=jnp.asarray(seq_len if truncation is None else truncation, jnp.int32),
        init_scale=jnp.asarray(init_scale, jnp.float32),
    )


def check_online_truncation(config: TrainConfig, hparams: Hyperparams, seq_len: int) -> None:
    """An online gradient reaches every step: refuse a truncation window shorter than ``T``."""
    windows = np.asarray(hparams.truncation)
    if config.online != "none" and np.any(windows < seq_len):
        raise InputError(
            f"online {config.online!r} reaches back to every step: truncation must be none; got "
            f"{int(windows.ravel()[np.argmax(windows.ravel() < seq_len)])}"
        )


def check_hparams(hparams: Hyperparams) -> None:
    """Check concrete ``Hyperparams`` (one run's scalars, or a sweep's stacked ``(M,)`` arrays) on
    the host: numeric, finite, positive, truncation >= 1. The error names the first bad member."""
    if not isinstance(hparams, Hyperparams):
        raise InputTypeError(
            f"hparams must be a Hyperparams (see make_hparams); got {type(hparams).__name__}"
        )
    for name, value in hparams._asdict().items():
        values = np.asarray(value)
        if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
            raise InputTypeError(f"hparams.{name} must be numeric; got dtype {values.dtype}")
        low = 1 if name == "truncation" else 0
        bad = ~np.isfinite(values) | (values < low) | ((values == 0) & (low == 0))
        if np.any(bad):
            where = f" (member {int(np.argmax(bad.ravel()))})" if values.ndim else ""
            expected = "an integer >= 1" if name == "truncation" else "a positive number"
            raise InputError(
                f"hparams.{name}{where} must be {expected}; got {values.ravel()[np.argmax(bad.ravel())]}"
            )


def check_config(config: TrainConfig, n_train: int) -> None:
    """Reject unknown names and impossible sizes before anything is compiled."""
    if not isinstance(config, TrainConfig):
        raise InputTypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    choices = {
        "cell": cell_names(),
        "optimizer": OPTIMIZERS,
        "clip": CLIPS,
        "schedule": SCHEDULES,
        "init": INITS,
        "backward": BACKWARDS,
        "select": SELECTS,
        "method": METHODS,
        "online": ("none", *CARRIED),
    }
    for name, allowed in choices.items():
        value = getattr(config, name)
        if value not in allowed:
            raise InputError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    if config.activation is not None and config.activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {config.activation!r}")
    for name in ("hidden_dim", "epochs", "batch_size", "patience", "unroll"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InputTypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
        if value < (0 if name == "patience" else 1):
            kind = "a non-negative" if name == "patience" else "a positive"
            raise InputError(f"{name} must be {kind} integer; got {getattr(config, name)}")
    for name in ("epochs", "patience"):
        if getattr(config, name) > MAX_EPOCHS:
            limit = f"{MAX_EPOCHS:,} (epoch counters are int32)"
            raise InputError(f"{name} must be at most {limit}; got {getattr(config, name)}")
    if config.cell != "elman" and "tutorial" in (config.init, config.backward):
        raise InputError(
            f"init and backward 'tutorial' exist for the elman cell only; got cell {config.cell!r} "
            f"with init {config.init!r} and backward {config.backward!r}"
        )
    cell_options(config)  # refuses an option the cell does not take
    BatchOptions(target=config.target, objective=config.objective)
    if config.unroll != 1 and config.backward != "autodiff":
        raise InputError(
            f"unroll {config.unroll} needs backward 'autodiff' (the hand-derived pass scans "
            f"one step at a time); got backward {config.backward!r}"
        )
    shape = (config.num_layers, config.bidirectional, config.backward, config.method, config.unroll)
    if config.online != "none" and shape != (1, False, "autodiff", "sequential", 1):
        raise InputError(
            f"online {config.online!r} carries one layer's gradient forward: it takes one layer, one "
            "direction, backward 'autodiff', method 'sequential' and unroll 1"
        )
    if config.online == "rtrl" and not cell_class(config.cell).ELEMENTWISE:
        raise InputError(
            f"exact rtrl needs a cell whose recurrence is element-wise (indrnn); got {config.cell!r}: "
            "use online snap1, its diagonal approximation"
        )
    if config.method != "sequential" and config.backward == "tutorial":
        raise InputError(f"method {config.method!r} needs backward 'autodiff' or 'manual'; got 'tutorial'")
    plain = (config.target, config.objective, config.num_layers, config.bidirectional)
    if config.backward == "tutorial" and plain != ("last", "squared", 1, False):
        raise InputError("backward 'tutorial' exists for one layer, target 'last' and squared error only")
    layers = config.num_layers
    if isinstance(layers, bool) or not isinstance(layers, numbers.Integral) or layers < 1:
        raise InputError(f"num_layers must be a positive integer; got {layers!r}")
    if not 0.0 <= config.dropout < 1.0 or (config.dropout and config.num_layers == 1):
        raise InputError(f"dropout must be in [0, 1), and 0 with one layer; got {config.dropout}")
    if config.batch_size > n_train:
        raise InputError(f"batch_size ({config.batch_size}) must not exceed the {n_train} training windows")


def check_data_fits(config: TrainConfig, data: WindowData) -> None:
    """The data's targets agree with the config's target and objective."""
    labels = data.classes > 0
    if labels != (config.objective == "cross_entropy"):
        raise InputError(
            f"objective {config.objective!r} needs "
            f"{'integer class labels (WindowData classes > 0)' if not labels else 'real-valued targets'}; "
            f"the data holds {'labels' if labels else 'real targets'}"
        )
    per_step = data.y_train.ndim == (2 if labels else 3)
    if per_step != (config.target == "all"):
        need = "a target at every step" if config.target == "all" else "one target per sequence"
        raise InputError(
            f"target {config.target!r} needs {need}; the data's y_train has shape {tuple(data.y_train.shape)}"
        )


def cell_options(config: TrainConfig) -> dict[str, object]:
    """The options ``config`` sets on its cell (``rnn_jax.cells.config_cell_options``)."""
    return config_cell_options(config.cell, activation=config.activation, text=config.cell_options)


def make_optimizer(config: TrainConfig, hparams: Hyperparams, n_train: int) -> optax.GradientTransformation:
    """Clipping then the optimiser; built from (possibly traced) hyperparameters."""
    clip = {
        "value": lambda: optax.clip(hparams.clip_threshold),
        "norm": lambda: optax.clip_by_global_norm(hparams.clip_threshold),
        "none": optax.identity,
    }[config.clip]()
    lr = hparams.learning_rate
    if config.schedule == "cosine":
        total_steps = config.epochs * (n_train // config.batch_size)
        lr = optax.cosine_decay_schedule(hparams.learning_rate, decay_steps=total_steps)
    opt = {"sgd": optax.sgd, "adam": optax.adam}[config.optimizer](lr)
    return optax.chain(clip, opt)


def make_grad_fn(config: TrainConfig) -> Callable[..., RNN]:
    """``grad_fn(params, xs, ys, truncation, mask, key) -> RNN`` for the chosen algorithm."""
    if config.backward == "tutorial":
        return lambda params, xs, ys, truncation, mask, key: tutorial_grads(
            params, xs, ys, target="last", truncation=truncation
        )
    options = {"target": config.target, "objective": config.objective}
    if config.online != "none":  # full BPTT's gradient, carried forward: truncation is not read
        return lambda params, xs, ys, truncation, mask, key: carried_grads(
            params, xs, ys, online=config.online, mask=mask, key=key, **options
        )
    fn = {"autodiff": jax.grad(functools.partial(loss, unroll=config.unroll)), "manual": manual_grads}
    fn = fn[config.backward]

    def grad_fn(params, xs, ys, truncation, mask, key):
        # The cells wrapped for the solve and unwrapped again: the gradient has the params' shape.
        model = in_parallel(params, config.method)
        return in_sequence(fn(model, xs, ys, truncation=truncation, mask=mask, key=key, **options))

    return grad_fn


def evaluate(params: RNN, data: WindowData, config: TrainConfig | None = None) -> dict[str, Array]:
    """Per split: the loss (model units) and the RMSE (the series' own units), or for
    cross-entropy the loss (nats), bits (the loss in bits) and accuracy; over valid steps."""
    target = "last" if config is None else config.target
    n_train = data.x_train.shape[0]
    # One forward pass over both splits: a single scan compiles and runs faster than two.
    xs = jnp.concatenate([data.x_train, data.x_val])
    mask = None if data.m_train is None else jnp.concatenate([data.m_train, data.m_val])
    predictions = batch_predict(params, xs, target=target, mask=mask)
    ys = jnp.concatenate([data.y_train, data.y_val])
    out = {}
    for split, part in (("train", slice(0, n_train)), ("val", slice(n_train, None))):
        valid = None if mask is None or target == "last" else mask[part]
        if data.classes:
            nats = cross_entropy(predictions[part], ys[part])
            hits = (jnp.argmax(predictions[part], axis=-1) == ys[part]).astype(nats.dtype)
            out[f"{split}_loss"] = _valid_mean(nats, valid)
            out[f"{split}_bits"] = out[f"{split}_loss"] / jnp.log(2.0)
            out[f"{split}_accuracy"] = _valid_mean(hits, valid)
        else:
            sq_err = (predictions[part] - ys[part]) ** 2
            out[f"{split}_loss"] = 0.5 * _valid_mean(jnp.sum(sq_err, axis=-1), valid)
            out[f"{split}_rmse"] = jnp.sqrt(_valid_mean(jnp.mean(sq_err, axis=-1), valid)) * data.scaler.std
    return out


def _valid_mean(values: Array, valid: Array | None) -> Array:
    """The mean over all entries, or over those ``valid`` marks."""
    if valid is None:
        return jnp.mean(values)
    return jnp.sum(jnp.where(valid, values, 0.0)) / jnp.sum(valid)


class TrainFns(NamedTuple):
    """``init`` builds the state; ``run`` advances it ``n`` epochs; ``train`` is the whole run."""

    init: Callable[[PRNGKeyArray, Hyperparams, WindowData], TrainState]
    run: Callable[..., tuple[TrainState, dict[str, Array]]]
    train: Callable[[PRNGKeyArray, Hyperparams, WindowData], tuple[RNN, dict[str, Array]]]


def clip_fraction_fn(config: TrainConfig) -> Callable[[RNN, Array], Array]:
    """How much the clipping touches one gradient: for ``"value"`` (and ``"none"``, as a
    diagnostic) the share of entries with ``|g| > threshold``; for ``"norm"``, 1 if the global
    norm exceeds the threshold, else 0."""
    if config.clip == "norm":
        return lambda grads, threshold: (optax.tree.norm(grads) > threshold).astype(jnp.float32)

    def entries(grads, threshold):
        leaves = jax.tree.leaves(grads)
        over = sum(jnp.sum(jnp.abs(g) > threshold) for g in leaves)
        return over / sum(g.size for g in leaves)

    return entries


def all_finite(tree) -> Array:
    """``True`` when no leaf of ``tree`` holds a NaN or an infinity (a scalar bool array)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def select_tree(pred: Array, on_true, on_false):
    """Leafwise ``jnp.where(pred, on_true, on_false)`` for two trees of the same structure."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def params_dtype(params: RNN):
    """The floating dtype of the model's parameters (that of its losses)."""
    return jax.tree.leaves(params)[0].dtype


Optimizer = optax.GradientTransformation | Callable[[Hyperparams], optax.GradientTransformation]


def optimizer_factory(config: TrainConfig, optimizer: Optimizer | None):
    """``build(hparams, n_train) -> GradientTransformation``: ``optimizer`` itself, or what it
    builds from the (possibly traced) hyperparameters, or, for ``None``, the one the config's
    ``optimizer``, ``clip`` and ``schedule`` names describe (``make_optimizer``)."""
    if optimizer is None:
        return lambda hparams, n_train: make_optimizer(config, hparams, n_train)
    if isinstance(optimizer, optax.GradientTransformation):
        return lambda hparams, n_train: optimizer
    if callable(optimizer):
        return lambda hparams, n_train: optimizer(hparams)
    raise InputTypeError(
        f"optimizer must be an optax.GradientTransformation, a function of the hyperparameters "
        f"returning one, or None; got {type(optimizer).__name__}"
    )


def make_train(config: TrainConfig, *, optimizer: Optimizer | None = None) -> TrainFns:
    """Build pure training functions for ``config``.

    ``optimizer`` replaces the one the config names: an ``optax.GradientTransformation``
    (clipping included, if wanted: ``optax.chain(optax.clip_by_global_norm(1.0),
    optax.adamw(1e-3))``), or a function ``hparams -> GradientTransformation``, so that a sweep
    can still vmap the learning rate (``lambda hp: optax.adam(hp.learning_rate)``). The config's
    ``optimizer``, ``clip`` and ``schedule`` (and the hyperparameters your function does not
    read) are then unused.

    ``train(key, hparams, data) -> (params, metrics)`` runs ``config.epochs`` epochs in one
    ``lax.scan``; ``metrics`` maps ``train_loss, val_loss, train_rmse, val_rmse,
    clip_fraction`` (see ``clip_fraction_fn``), ``diverged_at_step`` (see ``TrainState``; 0
    while finite) and ``stopped_at`` (the epoch early stopping froze the run, else 0) to arrays
    of shape ``(epochs,)``. ``params`` are the last epoch's or, with ``config.select ==
    "best"``, those of the epoch with the lowest validation loss. ``init`` and
    ``run(state, hparams, data, n_epochs, count=None)`` split the same computation into chunks
    (for progress reporting, checkpoints and resuming) and give bit-identical results: a chunk
    runs ``n_epochs`` epochs, or with ``count`` (a traced int32 scalar) only its first ``count``
    of them, so one compiled program runs chunks of any length up to ``n_epochs``; the metrics
    rows past ``count`` are zeros, to be dropped.
    """
    grad_fn = make_grad_fn(config)
    clip_share = clip_fraction_fn(config)
    build_optimizer = optimizer_factory(config, optimizer)

    def init(key: PRNGKeyArray, hparams: Hyperparams, data: WindowData) -> TrainState:
        init_key, shuffle_key = jax.random.split(key)
        params = init_model(
            config.cell,
            key=init_key,
            input_dim=data.x_train.shape[2],
            hidden_dim=config.hidden_dim,
            output_dim=data.output_dim,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            init=config.init,
            scale=hparams.init_scale,
            dtype=data.x_train.dtype,
            **cell_options(config),
        )
        opt_state = build_optimizer(hparams, data.x_train.shape[0]).init(params)
        zero = jnp.zeros((), jnp.int32)
        return TrainState(
            params=params,
            opt_state=opt_state,
            key=shuffle_key,
            epoch=zero,
            diverged_at_step=zero,
            best_params=params,
            best_loss=jnp.asarray(jnp.inf, params_dtype(params)),
            best_epoch=zero,
            stopped_at=zero,
        )

    def one_epoch(state: TrainState, hparams: Hyperparams, data: WindowData):
        n_train = data.x_train.shape[0]
        optimizer = build_optimizer(hparams, n_train)
        steps = n_train // config.batch_size  # a ragged last batch is dropped
        key, perm_key = jax.random.split(state.key)
        drop_key = jax.random.fold_in(perm_key, 1)  # dropout or UORO only; the permutation keeps its key
        order = jax.random.permutation(perm_key, n_train) if config.shuffle else jnp.arange(n_train)
        batches = order[: steps * config.batch_size].reshape(steps, config.batch_size)

        def step(carry, step_idx):
            params, opt_state, first_bad = carry
            i, idx = step_idx
            mask = None if data.m_train is None else data.m_train[idx]
            # Dropout's masks, or UORO's signs (one layer: never both).
            random = config.dropout or config.online == "uoro"
            dropout_key = jax.random.fold_in(drop_key, i) if random else None
            xs, ys = data.x_train[idx], data.y_train[idx]
            grads = grad_fn(params, xs, ys, hparams.truncation, mask, dropout_key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            # Only a scalar per step: the first step whose gradient or update is not finite.
            finite = all_finite(grads) & all_finite(params)
            first_bad = jnp.where((first_bad == 0) & ~finite, i + 1, first_bad)
            return (params, opt_state, first_bad), clip_share(grads, hparams.clip_threshold)

        (params, opt_state, first_bad), clipped = jax.lax.scan(
            step,
            (state.params, state.opt_state, jnp.zeros((), jnp.int32)),
            (jnp.arange(steps, dtype=jnp.int32), batches),
        )
        # Checked inside the compiled loop, once per epoch (no host sync): an epoch in which a
        # step went non-finite is undone, so the state rolls back to the last good one (the
        # start of that epoch), and a diverged run stays frozen there.
        alive = state.diverged_at_step == 0
        advance = alive & (first_bad == 0)
        params, opt_state = select_tree(advance, (params, opt_state), (state.params, state.opt_state))
        diverged_at = jnp.where(alive & ~advance, state.epoch * steps + first_bad, state.diverged_at_step)
        metrics = evaluate(params, data, config)
        metrics["clip_fraction"] = jnp.mean(clipped)
        metrics["diverged_at_step"] = diverged_at
        epoch = state.epoch + 1
        # Model selection inside the loop: the best parameters so far are carried, not synced.
        better = metrics["val_loss"] < state.best_loss
        best_params = select_tree(better, params, state.best_params)
        best_epoch = jnp.where(better, epoch, state.best_epoch)
        waited_out = (config.patience > 0) & (epoch - best_epoch >= config.patience)
        metrics["stopped_at"] = jnp.where(waited_out, epoch, 0)
        new_state = TrainState(
            params=params,
            opt_state=opt_state,
            key=key,
            epoch=epoch,
            diverged_at_step=diverged_at,
            best_params=best_params,
            best_loss=jnp.where(better, metrics["val_loss"], state.best_loss),
            best_epoch=best_epoch,
            stopped_at=metrics["stopped_at"],
        )
        return new_state, metrics

    def frozen_epoch(state: TrainState, hparams: Hyperparams, data: WindowData):
        """An epoch after early stopping: nothing changes; the metrics repeat the final ones."""
        metrics = evaluate(state.params, data, config)
        metrics["clip_fraction"] = jnp.zeros((), metrics["train_loss"].dtype)
        metrics["diverged_at_step"] = state.diverged_at_step
        metrics["stopped_at"] = state.stopped_at
        return eqx.tree_at(lambda s: s.epoch, state, state.epoch + 1), metrics

    def epoch_or_frozen(state: TrainState, hparams: Hyperparams, data: WindowData):
        if config.patience == 0:
            return one_epoch(state, hparams, data)
        # Under vmap (sweeps, ensembles) the cond becomes a select and both branches run; a
        # single run skips the work.
        return jax.lax.cond(state.stopped_at > 0, frozen_epoch, one_epoch, state, hparams, data)

    def idle(state: TrainState, hparams: Hyperparams, data: WindowData):
        """A scan step past a chunk's ``count``: nothing runs; its metrics row is dropped."""
        shapes = jax.eval_shape(epoch_or_frozen, state, hparams, data)[1]
        return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def run(
        state: TrainState,
        hparams: Hyperparams,
        data: WindowData,
        n_epochs: int,
        count: Int[Array, ""] | None = None,
    ):
        if count is None:
            return jax.lax.scan(lambda s, _: epoch_or_frozen(s, hparams, data), state, length=n_epochs)

        # One program for chunks of any length up to n_epochs: the host sizes each chunk by its
        # measured time. The predicate is the scan index, never batched, so under vmap (sweeps)
        # the cond stays a branch and the skipped steps cost nothing but the loop.
        def step(s, i):
            return jax.lax.cond(i < count, epoch_or_frozen, idle, s, hparams, data)

        return jax.lax.scan(step, state, jnp.arange(n_epochs, dtype=jnp.int32))

    def train(key: PRNGKeyArray, hparams: Hyperparams, data: WindowData):
        state, metrics = run(init(key, hparams, data), hparams, data, config.epochs)
        return state.chosen_params(config.select), metrics

    return TrainFns(init=init, run=run, train=train)


def training_parts(
    config: TrainConfig, hparams: Hyperparams, data: WindowData, *, members: int = 1, parallel: int = 1
) -> dict[str, int]:
    """Lower bounds, in bytes, of what training ``config`` on ``data`` keeps in memory:
    ``members`` copies of the training state (parameters, best parameters, optimiser state)
    plus gradients and updates, and for the ``parallel`` members trained at once the hidden
    states a backward pass through a batch keeps, and those of evaluating the largest split.
    ``hparams`` are one member's."""
    state = jax.eval_shape(make_train(config).init, jax.random.key(0), hparams, data)
    params = tree_bytes(state.params)
    n_train, seq_len = data.x_train.shape[:2]
    width = config.hidden_dim * config.num_layers * (2 if config.bidirectional else 1)
    itemsize = data.x_train.dtype.itemsize
    return {
        "parameters and optimiser state": members * (tree_bytes(state) + 2 * params),
        "hidden states": parallel * config.batch_size * seq_len * width * itemsize,
        "evaluation": parallel * max(n_train, data.x_val.shape[0]) * width * itemsize,
    }
