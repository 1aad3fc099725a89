"""Compare a gradient function against autodiff on a random problem: the engine of
``rnn-jax gradcheck``.

Error measure, per parameter array: ``max |g - g_ref| / max |g_ref|`` (relative to the
largest reference entry, so near-zero entries do not blow it up). The check passes when every
parameter is within ``TOLERANCE[dtype]``: 1e-10 in float64, 1e-4 in float32.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from rnn_jax.batch import BatchOptions, prepare
from rnn_jax.cells import ACTIVATIONS, cell_class, config_cell_options
from rnn_jax.cells import cell_names as registered_cells
from rnn_jax.cells.online import ONLINE
from rnn_jax.cells.parallel import METHODS
from rnn_jax.errors import InputError
from rnn_jax.loss import loss
from rnn_jax.manual import carried_grads, manual_grads
from rnn_jax.model import RNN, dims, init_model
from rnn_jax.objectives import OBJECTIVES, get_objective
from rnn_jax.resources import check_fits, tree_bytes
from rnn_jax.tutorial import tutorial_grads
from rnn_jax.unroll import TARGETS, Truncation

TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
HAND_PASSES = {"manual": manual_grads, "tutorial": tutorial_grads}


@dataclasses.dataclass(frozen=True)
class GradcheckConfig:
    """One random gradient check; every field is a command-line option."""

    cell: str = "elman"  # or one per layer, comma-separated: "elman,gru,lstm"
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # between stacked layers, with a fixed key (the same draw in both passes)
    objective: str = "squared"
    lengths: str = "full"  # "random": right-padded lengths in [1, T]; "holes": steps masked anywhere
    activation: str | None = None  # the cell's option (Elman, IndRNN); None: its default
    cell_options: str = ""  # any other option of the cells' constructors: "reset=before"
    target: str = "last"
    truncation: int | None = None
    input_dim: int = 3
    hidden_dim: int = 8
    output_dim: int = 2
    seq_len: int = 13
    batch: int = 4
    dtype: str = "float64"
    backward: str = "manual"
    # Instead of the hand-derived pass: the gradient of the states solved in parallel over time
    # (deer, quasi_deer), or one carried forward over each sequence (rtrl, snap1).
    method: str = "sequential"
    online: str = "none"
    seed: int = 0

    CHOICES: ClassVar[dict] = {
        "objective": lambda: tuple(OBJECTIVES),
        "lengths": lambda: LENGTHS,
        "activation": ACTIVATIONS,
        "target": TARGETS,
        "dtype": ("float32", "float64"),
        "backward": ("manual", "tutorial"),
        "method": METHODS,
        "online": ("none", *ONLINE),
    }
    HELP: ClassVar[dict[str, str]] = {
        "cell": "a registered cell (" + ", ".join(registered_cells()) + "), or one per layer, "
        "comma-separated (elman,gru,lstm)",
        "layers": "stacked layers",
        "bidirectional": "make every layer a forward and a reverse cell",
        "dropout": "dropout between stacked layers (a fixed key: the same draw in both passes)",
        "objective": "squared (real targets) or cross_entropy (softmax over integer labels)",
        "lengths": "full; random (right-padded lengths in [1, T]); holes (steps masked anywhere)",
        "activation": "the Elman or IndRNN nonlinearity (none: the cell's default)",
        "cell_options": "other options of the cells, name=value,...: reset=before (the GRU of Cho et "
        "al.; after is PyTorch's and cuDNN's); every keyword of a cell's constructor is one",
        "target": "last (one target per sequence) or all (one per step)",
        "truncation": "BPTT window k >= 1, or none for full BPTT",
        "input_dim": "input size D",
        "hidden_dim": "hidden size H",
        "output_dim": "output size O (classes, with cross_entropy)",
        "seq_len": "sequence length T",
        "batch": "sequences in the random batch",
        "dtype": "precision of the check",
        "backward": "manual (derived) or tutorial (the tutorial's wrong one)",
        "method": "check instead the gradient of the states solved in parallel over time (deer, "
        "quasi_deer, elk, quasi_elk; implicit differentiation at the solution)",
        "online": "check instead the gradient carried forward over each sequence: rtrl (exact, for "
        "element-wise cells such as indrnn) or snap1 (its diagonal approximation)",
        "seed": "random seed of the problem",
    }


LENGTHS = ("full", "random", "holes")


def layer_cells(cfg: GradcheckConfig) -> list[str]:
    """The cell of every layer: one name for all, or one per layer."""
    names = [name.strip() for name in cfg.cell.split(",")]
    return names if len(names) > 1 else names * cfg.layers


def cell_options(cfg: GradcheckConfig) -> dict[str, object]:
    """The options the config sets on its cells (``rnn_jax.cells.config_cell_options``)."""
    return config_cell_options(layer_cells(cfg), activation=cfg.activation, text=cfg.cell_options)


def check_gradcheck_config(cfg: GradcheckConfig) -> None:
    """Errors name the option and what it accepts."""
    for name in ("input_dim", "hidden_dim", "output_dim", "seq_len", "batch", "layers"):
        if getattr(cfg, name) < 1:
            raise InputError(f"{name} must be a positive integer; got {getattr(cfg, name)}")
    names = layer_cells(cfg)
    if len(names) != cfg.layers:
        raise InputError(f"cell lists {len(names)} cells for {cfg.layers} layers; give one or {cfg.layers}")
    for name in names:
        cell_class(name)
    if cfg.activation is not None and cfg.activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {cfg.activation!r}")
    cell_options(cfg)  # refuses an option a cell does not take
    BatchOptions(target=cfg.target, truncation=cfg.truncation, objective=cfg.objective)
    if cfg.lengths not in LENGTHS:
        raise InputError(f"lengths must be one of {', '.join(LENGTHS)}; got {cfg.lengths!r}")
    if not 0.0 <= cfg.dropout < 1.0 or (cfg.dropout and cfg.layers == 1):
        raise InputError(f"dropout must be in [0, 1), and 0 with one layer; got {cfg.dropout}")
    if cfg.dtype not in TOLERANCE:
        raise InputError(f"dtype must be one of {', '.join(TOLERANCE)}; got {cfg.dtype!r}")
    if cfg.backward not in HAND_PASSES:
        raise InputError(f"backward must be one of {', '.join(HAND_PASSES)}; got {cfg.backward!r}")
    if cfg.backward == "tutorial" and cfg.target != "last":
        raise InputError("backward 'tutorial' needs target 'last'; the tutorial has no 'all' form")
    if cfg.method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {cfg.method!r}")
    if cfg.online not in ("none", *ONLINE):
        raise InputError(f"online must be one of none, {', '.join(ONLINE)}; got {cfg.online!r}")
    if cfg.online != "none" and cfg.method != "sequential":
        raise InputError("give --method or --online, not both")
    if cfg.online != "none" and (cfg.layers, cfg.bidirectional, cfg.truncation) != (1, False, None):
        raise InputError(
            f"online {cfg.online!r} carries one layer's gradient over the whole sequence: it takes one "
            f"layer, one direction and no truncation; got layers {cfg.layers}, bidirectional "
            f"{cfg.bidirectional}, truncation {cfg.truncation}"
        )
    plain = (cfg.layers, cfg.bidirectional, cfg.objective, cfg.lengths) == (1, False, "squared", "full")
    if cfg.backward == "tutorial" and (cfg.cell != "elman" or not plain):
        raise InputError(
            f"backward 'tutorial' exists for one squared-error elman layer on full sequences only; "
            f"got cell {cfg.cell!r}, layers {cfg.layers}, bidirectional {cfg.bidirectional}, "
            f"objective {cfg.objective!r}, lengths {cfg.lengths!r}"
        )


def _leaf_name(path) -> str:
    return str(getattr(path[-1], "name", jax.tree_util.keystr(path[-1:])))


def _param_names(model: RNN) -> list[str]:
    """Each array's field name (``U``, ``Wh``, ``V``), or its whole path where those repeat
    (``cell.layers[1].forward.Wx`` in a stack)."""
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(model)[0]]
    short = [_leaf_name(path) for path in paths]
    if len(set(short)) == len(short):
        return short
    return [jax.tree_util.keystr(path).lstrip(".") for path in paths]


def relative_errors(grads: RNN, reference: RNN) -> dict[str, dict[str, float]]:
    """Per parameter array (named by its field: ``U``, ``Wh``, ``V``, ..., or by its path in a
    stack): ``max_abs_err`` and ``max_rel_err`` (relative to ``max |reference|``)."""
    out = {}
    pairs = zip(_param_names(reference), jax.tree.leaves(reference), jax.tree.leaves(grads), strict=True)
    for name, ref, g in pairs:
        abs_err = float(jnp.max(jnp.abs(g - ref)))
        scale = float(jnp.max(jnp.abs(ref)))
        out[name] = {
            "max_abs_err": abs_err,
            "max_rel_err": abs_err / scale if scale > 0 else abs_err,
        }
    return out


def perturbed(model: RNN, key, amount: float = 0.1) -> RNN:
    """Every weight moved by ``amount`` times a standard normal draw: off the initial values
    (zero biases, the LSTM's forget bias of 1), so that every term and the relu kink count."""
    leaves, tree = jax.tree.flatten(model)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        tree, [x + amount * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys, strict=True)]
    )


def random_batch(
    model: RNN, key, *, batch: int, seq_len: int, target: str = "last", objective: str = "squared"
):
    """Standard normal inputs ``(N, T, D)`` and targets ``(N, O)`` or ``(N, T, O)`` for
    ``model``; for cross-entropy, uniform labels ``(N,)`` or ``(N, T)`` in ``[0, O)``."""
    input_dim, _, output_dim = dims(model)
    x_key, y_key = jax.random.split(key)
    dtype = model.readout.V.dtype
    xs = jax.random.normal(x_key, (batch, seq_len, input_dim), dtype)
    scored = (batch,) if target == "last" else (batch, seq_len)
    if get_objective(objective).labels:
        return xs, jax.random.randint(y_key, scored, 0, output_dim)
    return xs, jax.random.normal(y_key, (*scored, output_dim), dtype)


def random_mask(key, *, batch: int, seq_len: int, kind: str) -> dict:
    """``{"lengths": (N,)}`` drawn uniformly in ``[1, T]`` (``"random"``), ``{"mask": (N, T)}``
    keeping each step with probability 0.6 and at least one per example (``"holes"``), or
    ``{}`` (``"full"``)."""
    if kind == "random":
        return {"lengths": jax.random.randint(key, (batch,), 1, seq_len + 1)}
    if kind == "holes":
        keep = jax.random.bernoulli(key, 0.6, (batch, seq_len))
        return {"mask": keep.at[:, 0].set(keep[:, 0] | ~jnp.any(keep, axis=1))}
    return {}


def _autodiff(model, xs, ys, **options):
    """``jax.grad(rnn_jax.loss)``: a function of its own, so its compiled programs are kept."""
    return jax.grad(loss)(model, xs, ys, **options)


@functools.cache
def _jitted(fn: Callable, static: tuple[str, ...]) -> Callable:
    """One ``jax.jit`` per function and set of static options, so that checks of the same
    shapes reuse the compiled program instead of compiling it again."""
    return jax.jit(fn, static_argnames=static)


def check_gradients(
    model: RNN,
    xs,
    ys,
    *,
    target: str = "last",
    truncation: Truncation = None,
    backward: Callable[..., RNN] = manual_grads,
    tolerance: float | None = None,
    objective: str = "squared",
    **batch_options,
) -> dict:
    """Compare ``backward(model, xs, ys, target=, truncation=, ...)`` (by default the model's
    own hand-derived pass, through ``manual_grads``) with ``jax.grad(rnn_jax.loss)``.

    Works for any cell or stack of them, your own included. ``batch_options`` are ``loss``'s
    ``lengths``, ``mask``, ``h0`` and ``key``. ``tolerance`` defaults to ``TOLERANCE`` for the
    dtype of ``xs``. Returns ``{"ok", "max_rel_err", "tolerance", "per_param"}``.
    """
    options = BatchOptions(target=target, truncation=truncation, objective=objective, **batch_options)
    prepare(model, xs, ys, options)
    static = {"target": target}
    if options.static_truncation:
        static["truncation"] = truncation
    else:  # a traced window: one compiled program serves every length
        batch_options = {**batch_options, "truncation": truncation}
    if objective != "squared":  # passed only where set: the tutorial's pass has no such option
        static["objective"] = objective
    kwargs = {**static, **batch_options}
    reference = _jitted(_autodiff, tuple(static))(model, xs, ys, **kwargs)
    grads = _jitted(backward, tuple(static))(model, xs, ys, **kwargs)
    per_param = relative_errors(grads, reference)
    max_rel = max(p["max_rel_err"] for p in per_param.values())
    tol = TOLERANCE[str(xs.dtype)] if tolerance is None else tolerance
    a, b = (ravel_pytree(eqx.filter(g, eqx.is_array))[0] for g in (grads, reference))
    cosine = float(a @ b / max(float(jnp.linalg.norm(a) * jnp.linalg.norm(b)), 1e-300))
    return {
        "ok": bool(max_rel <= tol),
        "max_rel_err": max_rel,
        "tolerance": tol,
        "cosine": cosine,  # of the two whole gradients: how far an approximation points the same way
        "per_param": per_param,
    }


def _parallel_grads(model, xs, ys, *, method: str, **options):
    """The gradient of ``loss`` with every cell's states solved by ``method``."""
    return jax.grad(loss)(model, xs, ys, method=method, **options)


PARALLEL_PASSES = {m: functools.partial(_parallel_grads, method=m) for m in METHODS if m != "sequential"}
ONLINE_PASSES = {m: functools.partial(carried_grads, online=m) for m in ONLINE}


def checked_pass(cfg: GradcheckConfig) -> tuple[str, Callable[..., RNN]]:
    """The name and function of the gradient the config compares with autodiff's."""
    if cfg.online != "none":
        return cfg.online, ONLINE_PASSES[cfg.online]
    if cfg.method != "sequential":
        return cfg.method, PARALLEL_PASSES[cfg.method]
    return cfg.backward, HAND_PASSES[cfg.backward]


def run_gradcheck(cfg: GradcheckConfig) -> dict:
    """Draw a random problem for the configured cell and compare ``cfg.backward`` against
    ``jax.grad(loss)``. Returns ``check_gradients``'s report plus ``"config"``."""
    check_gradcheck_config(cfg)
    with jax.enable_x64(cfg.dtype == "float64"):
        init_key, noise_key, data_key, mask_key, dropout_key = jax.random.split(jax.random.key(cfg.seed), 5)

        def init(key):
            return init_model(
                layer_cells(cfg),
                key=key,
                input_dim=cfg.input_dim,
                hidden_dim=cfg.hidden_dim,
                output_dim=cfg.output_dim,
                num_layers=cfg.layers,
                bidirectional=cfg.bidirectional,
                dropout=cfg.dropout,
                dtype=jnp.dtype(cfg.dtype),
                **cell_options(cfg),
            )

        itemsize = jnp.dtype(cfg.dtype).itemsize
        per_step = cfg.batch * cfg.seq_len * itemsize
        width = cfg.hidden_dim * cfg.layers * (2 if cfg.bidirectional else 1)
        parts = {
            # the parameters, and the two gradients compared
            "parameters and gradients": 3 * tree_bytes(jax.eval_shape(init, init_key)),
            "inputs": per_step * cfg.input_dim,
            "hidden states": per_step * width,
        }
        advice = "use a smaller --input-dim, --hidden-dim, --seq-len or --batch"
        check_fits(parts, what="the gradient check", advice=advice)
        model = perturbed(init(init_key), noise_key)
        xs, ys = random_batch(
            model, data_key, batch=cfg.batch, seq_len=cfg.seq_len, target=cfg.target, objective=cfg.objective
        )
        options = random_mask(mask_key, batch=cfg.batch, seq_len=cfg.seq_len, kind=cfg.lengths)
        if cfg.dropout:
            options["key"] = dropout_key
        report = check_gradients(
            model,
            xs,
            ys,
            target=cfg.target,
            truncation=cfg.truncation,
            backward=checked_pass(cfg)[1],
            objective=cfg.objective,
            **options,
        )
    return {**report, "checked": checked_pass(cfg)[0], "config": dataclasses.asdict(cfg)}


def format_report(report: dict) -> str:
    """A per-parameter table and a verdict line."""
    cfg = report["config"]
    options = "".join(f", {v}" for v in (cfg["activation"], cfg["cell_options"]) if v)
    shape = f"{cfg['layers']} layers, " if cfg["layers"] > 1 else ""
    shape += "bidirectional, " if cfg["bidirectional"] else ""
    shape += f"dropout {cfg['dropout']}, " if cfg["dropout"] else ""
    shape += f"lengths {cfg['lengths']}, " if cfg["lengths"] != "full" else ""
    width = max(6, *(len(name) for name in report["per_param"]))
    lines = [
        f"{report['checked']} vs autodiff  ({cfg['cell']}{options}, {shape}{cfg['objective']}, "
        f"target={cfg['target']}, truncation={cfg['truncation']}, {cfg['dtype']}, N={cfg['batch']} "
        f"T={cfg['seq_len']} D={cfg['input_dim']} H={cfg['hidden_dim']} O={cfg['output_dim']})",
        f"{'param':<{width}} {'max abs err':>12} {'max rel err':>12}",
    ]
    for name, err in report["per_param"].items():
        lines.append(f"{name:<{width}} {err['max_abs_err']:>12.3e} {err['max_rel_err']:>12.3e}")
    verdict = "PASS" if report["ok"] else "FAIL"
    lines.append(
        f"{verdict}: max rel err {report['max_rel_err']:.3e} (tolerance {report['tolerance']:.0e}); "
        f"cosine with autodiff's gradient {report['cosine']:.6f}"
    )
    return "\n".join(lines)
