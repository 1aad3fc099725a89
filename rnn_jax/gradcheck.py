"""Compare a gradient function against autodiff on a random problem: the engine of
``rnn-jax gradcheck``.

Error measure, per parameter array: ``max |g - g_ref| / max |g_ref|`` (relative to the
largest reference entry, so near-zero entries do not blow it up). The check passes when every
parameter is within ``TOLERANCE[dtype]``: 1e-10 in float64, 1e-4 in float32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnn_jax.cells import get_activation
from rnn_jax.losses import loss
from rnn_jax.manual_grads import manual_grads, tutorial_grads
from rnn_jax.unroll import CellParams, check_cell, check_target, check_truncation, init_params

TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
BACKWARDS = {"manual": manual_grads, "tutorial": tutorial_grads}


@dataclasses.dataclass(frozen=True)
class GradcheckConfig:
    """One random gradient check; every field is a command-line option."""

    cell: str = "elman"
    activation: str = "sigmoid"
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


def check_gradcheck_config(cfg: GradcheckConfig) -> None:
    """Errors name the option and what it accepts."""
    check_cell(cfg.cell)
    get_activation(cfg.activation)
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


def relative_errors(grads: CellParams, reference: CellParams) -> dict[str, dict[str, float]]:
    """Per parameter: ``max_abs_err`` and ``max_rel_err`` (relative to ``max |reference|``)."""
    out = {}
    for field in dataclasses.fields(reference):
        g, ref = getattr(grads, field.name), getattr(reference, field.name)
        abs_err = float(jnp.max(jnp.abs(g - ref)))
        scale = float(jnp.max(jnp.abs(ref)))
        out[field.name] = {"max_abs_err": abs_err, "max_rel_err": abs_err / scale if scale > 0 else abs_err}
    return out


def run_gradcheck(cfg: GradcheckConfig) -> dict:
    """Draw a random problem, compare ``cfg.backward`` against ``jax.grad(loss)``.

    Returns ``{"ok", "max_rel_err", "tolerance", "per_param", "config"}``.
    """
    check_gradcheck_config(cfg)
    with jax.enable_x64(cfg.dtype == "float64"):
        dtype = jnp.dtype(cfg.dtype)
        init_key, x_key, y_key, b_key = jax.random.split(jax.random.key(cfg.seed), 4)
        params = init_params(
            cfg.cell,
            key=init_key,
            input_dim=cfg.input_dim,
            hidden_dim=cfg.hidden_dim,
            output_dim=cfg.output_dim,
            dtype=dtype,
        )
        # Non-zero biases, so that their gradients and the relu kink are exercised too.
        params = dataclasses.replace(
            params,
            b=0.3 * jax.random.normal(b_key, params.b.shape, dtype),
            c=jnp.full(params.c.shape, 0.1, dtype),
        )
        xs = jax.random.normal(x_key, (cfg.batch, cfg.seq_len, cfg.input_dim), dtype)
        y_shape = (
            (cfg.batch, cfg.output_dim) if cfg.target == "last" else (cfg.batch, cfg.seq_len, cfg.output_dim)
        )
        ys = jax.random.normal(y_key, y_shape, dtype)
        kwargs = {"activation": cfg.activation, "target": cfg.target, "truncation": cfg.truncation}
        reference = jax.jit(jax.grad(loss), static_argnames=tuple(kwargs))(params, xs, ys, **kwargs)
        grads = jax.jit(BACKWARDS[cfg.backward], static_argnames=tuple(kwargs))(params, xs, ys, **kwargs)
        per_param = relative_errors(grads, reference)
    max_rel = max(p["max_rel_err"] for p in per_param.values())
    tol = TOLERANCE[cfg.dtype]
    return {
        "ok": bool(max_rel <= tol),
        "max_rel_err": max_rel,
        "tolerance": tol,
        "per_param": per_param,
        "config": dataclasses.asdict(cfg),
    }


def format_report(report: dict) -> str:
    """A per-parameter table and a verdict line."""
    cfg = report["config"]
    lines = [
        f"{cfg['backward']} vs autodiff  ({cfg['cell']}"
        f"{', ' + cfg['activation'] if cfg['cell'] == 'elman' else ''}, target={cfg['target']}, "
        f"truncation={cfg['truncation']}, {cfg['dtype']}, N={cfg['batch']} T={cfg['seq_len']} "
        f"D={cfg['input_dim']} H={cfg['hidden_dim']} O={cfg['output_dim']})",
        f"{'param':<6} {'max abs err':>12} {'max rel err':>12}",
    ]
    for name, err in report["per_param"].items():
        lines.append(f"{name:<6} {err['max_abs_err']:>12.3e} {err['max_rel_err']:>12.3e}")
    verdict = "PASS" if report["ok"] else "FAIL"
    lines.append(f"{verdict}: max rel err {report['max_rel_err']:.3e} (tolerance {report['tolerance']:.0e})")
    return "\n".join(lines)
