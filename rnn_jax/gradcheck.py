"""Compare a gradient function against autodiff on a random problem: the engine of
``rnn-jax gradcheck``.

Error measure, per parameter array: ``max |g - g_ref| / max |g_ref|`` (relative to the
largest reference entry, so near-zero entries do not blow it up). The check passes when every
parameter is within ``TOLERANCE[dtype]``: 1e-10 in float64, 1e-4 in float32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from rnn_jax.cells import ACTIVATIONS, cell_class, check_options
from rnn_jax.cells.gru import RESETS
from rnn_jax.losses import check_batch, loss
from rnn_jax.manual_grads import manual_grads
from rnn_jax.model import RNN, dims, init_model
from rnn_jax.tutorial import tutorial_grads
from rnn_jax.unroll import Truncation, check_target, check_truncation

TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
BACKWARDS = {"manual": manual_grads, "tutorial": tutorial_grads}


@dataclasses.dataclass(frozen=True)
class GradcheckConfig:
    """One random gradient check; every field is a command-line option."""

    cell: str = "elman"
    activation: str | None = None  # the cell's option (Elman, IndRNN); None: its default
    reset: str | None = None  # the GRU's option: "after" (default) or "before"
    target: str = "last"
    truncation: int | None = None
    input_dim: int = 3
    hidden_dim: int = 8
    output_dim: int = 2
    seq_len: int = 13
    batch: int = 4
    dtype: str = "float64"
    backward: str = "manual"
    seed: int = 0


def cell_options(cfg: GradcheckConfig) -> dict[str, str]:
    """The cell options the config sets."""
    return {name: getattr(cfg, name) for name in ("activation", "reset") if getattr(cfg, name) is not None}


def check_gradcheck_config(cfg: GradcheckConfig) -> None:
    """Errors name the option and what it accepts."""
    cell_class(cfg.cell)
    if cfg.activation is not None and cfg.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {cfg.activation!r}")
    if cfg.reset is not None and cfg.reset not in RESETS:
        raise ValueError(f"reset must be one of {', '.join(RESETS)}; got {cfg.reset!r}")
    check_options(cfg.cell, cell_options(cfg))
    check_target(cfg.target)
    check_truncation(cfg.truncation)
    for name in ("input_dim", "hidden_dim", "output_dim", "seq_len", "batch"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be a positive integer; got {getattr(cfg, name)}")
    if cfg.dtype not in TOLERANCE:
        raise ValueError(f"dtype must be one of {', '.join(TOLERANCE)}; got {cfg.dtype!r}")
    if cfg.backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {', '.join(BACKWARDS)}; got {cfg.backward!r}")
    if cfg.backward == "tutorial" and cfg.target != "last":
        raise ValueError("backward 'tutorial' needs target 'last'; the tutorial has no 'all' form")
    if cfg.backward == "tutorial" and cfg.cell != "elman":
        raise ValueError(f"backward 'tutorial' exists for the elman cell only; got cell {cfg.cell!r}")


def _leaf_name(path) -> str:
    return str(getattr(path[-1], "name", jax.tree_util.keystr(path[-1:])))


def relative_errors(grads: RNN, reference: RNN) -> dict[str, dict[str, float]]:
    """Per parameter array (named by its field: ``U``, ``Wh``, ``V``, ...): ``max_abs_err`` and
    ``max_rel_err`` (relative to ``max |reference|``)."""
    out = {}
    pairs = zip(jax.tree_util.tree_flatten_with_path(reference)[0], jax.tree.leaves(grads), strict=True)
    for (path, ref), g in pairs:
        abs_err = float(jnp.max(jnp.abs(g - ref)))
        scale = float(jnp.max(jnp.abs(ref)))
        out[_leaf_name(path)] = {
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


def random_batch(model: RNN, key, *, batch: int, seq_len: int, target: str = "last"):
    """Standard normal inputs ``(N, T, D)`` and targets ``(N, O)`` or ``(N, T, O)`` for ``model``."""
    input_dim, _, output_dim = dims(model)
    x_key, y_key = jax.random.split(key)
    dtype = model.readout.V.dtype
    xs = jax.random.normal(x_key, (batch, seq_len, input_dim), dtype)
    y_shape = (batch, output_dim) if target == "last" else (batch, seq_len, output_dim)
    return xs, jax.random.normal(y_key, y_shape, dtype)


def check_gradients(
    model: RNN,
    xs,
    ys,
    *,
    target: str = "last",
    truncation: Truncation = None,
    backward: Callable[..., RNN] = manual_grads,
    tolerance: float | None = None,
) -> dict:
    """Compare ``backward(model, xs, ys, target=, truncation=)`` (by default the cell's own
    hand-derived pass, through ``manual_grads``) with ``jax.grad(rnn_jax.loss)``.

    Works for any cell, your own included. ``tolerance`` defaults to ``TOLERANCE`` for the
    dtype of ``xs``. Returns ``{"ok", "max_rel_err", "tolerance", "per_param"}``.
    """
    check_batch(model, xs, ys, target)
    check_truncation(truncation)
    kwargs = {"target": target, "truncation": truncation}
    reference = jax.jit(jax.grad(loss), static_argnames=tuple(kwargs))(model, xs, ys, **kwargs)
    grads = jax.jit(backward, static_argnames=tuple(kwargs))(model, xs, ys, **kwargs)
    per_param = relative_errors(grads, reference)
    max_rel = max(p["max_rel_err"] for p in per_param.values())
    tol = TOLERANCE[str(xs.dtype)] if tolerance is None else tolerance
    return {"ok": bool(max_rel <= tol), "max_rel_err": max_rel, "tolerance": tol, "per_param": per_param}


def run_gradcheck(cfg: GradcheckConfig) -> dict:
    """Draw a random problem for the configured cell and compare ``cfg.backward`` against
    ``jax.grad(loss)``. Returns ``check_gradients``'s report plus ``"config"``."""
    check_gradcheck_config(cfg)
    with jax.enable_x64(cfg.dtype == "float64"):
        init_key, noise_key, data_key = jax.random.split(jax.random.key(cfg.seed), 3)
        model = init_model(
            cfg.cell,
            key=init_key,
            input_dim=cfg.input_dim,
            hidden_dim=cfg.hidden_dim,
            output_dim=cfg.output_dim,
            dtype=jnp.dtype(cfg.dtype),
            **cell_options(cfg),
        )
        model = perturbed(model, noise_key)
        xs, ys = random_batch(model, data_key, batch=cfg.batch, seq_len=cfg.seq_len, target=cfg.target)
        report = check_gradients(
            model, xs, ys, target=cfg.target, truncation=cfg.truncation, backward=BACKWARDS[cfg.backward]
        )
    return {**report, "config": dataclasses.asdict(cfg)}


def format_report(report: dict) -> str:
    """A per-parameter table and a verdict line."""
    cfg = report["config"]
    options = "".join(f", {v}" for v in (cfg["activation"], cfg["reset"]) if v is not None)
    lines = [
        f"{cfg['backward']} vs autodiff  ({cfg['cell']}{options}, target={cfg['target']}, "
        f"truncation={cfg['truncation']}, {cfg['dtype']}, N={cfg['batch']} T={cfg['seq_len']} "
        f"D={cfg['input_dim']} H={cfg['hidden_dim']} O={cfg['output_dim']})",
        f"{'param':<6} {'max abs err':>12} {'max rel err':>12}",
    ]
    for name, err in report["per_param"].items():
        lines.append(f"{name:<6} {err['max_abs_err']:>12.3e} {err['max_rel_err']:>12.3e}")
    verdict = "PASS" if report["ok"] else "FAIL"
    lines.append(f"{verdict}: max rel err {report['max_rel_err']:.3e} (tolerance {report['tolerance']:.0e})")
    return "\n".join(lines)
