"""Conformance checks for a cell class: what the test suite asks of every registered cell, for
users to ask of their own.

``check_cell(MyCell)`` builds a small float64 model around the cell and checks that

1. the scan is the step: the states ``cell.states(xs)`` equal a loop of ``cell.step``, with
   and without a mask (a skipped step carries its state through unchanged);
2. if the cell writes a backward pass, it is the gradient: ``manual_grads`` equals
   ``jax.grad(loss)`` within ``tolerance`` for both targets, every truncation form (full BPTT,
   a static window, and a traced window at lengths ``1, 3, T - 1, T, T + 2``) and every mask
   kind (none, right-padded lengths, holes anywhere).

A failure raises ``AssertionError`` naming the case; the return value reports every case.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.batch import resolve_mask
from rnn_jax.cells import Cell
from rnn_jax.cells.readout import Linear
from rnn_jax.errors import InputTypeError
from rnn_jax.gradcheck import perturbed, random_batch, random_mask, relative_errors
from rnn_jax.loss import loss
from rnn_jax.manual import manual_grads
from rnn_jax.model import RNN

TARGETS = ("last", "all")
MASKS = ("full", "random", "holes")


def has_backward(cls: type[Cell]) -> bool:
    """Whether the cell writes its own backward pass (it overrides ``Cell.backward``)."""
    return cls.backward is not Cell.backward


def states_by_steps(cell: Cell, xs, mask=None):
    """The states of ``xs (T, D)`` from a Python loop over ``cell.step``: the reference the
    scan is compared with. A masked step keeps the state it was given."""
    state, out = cell.initial_state(), []
    for t in range(xs.shape[0]):
        new = cell.step(state, xs[t])
        if mask is not None and not bool(mask[t]):
            new = state
        state = new
        out.append(state)
    return jax.tree.map(lambda *s: jnp.stack(s), *out)


def _small_model(cls: type[Cell], options: dict, sizes: dict, seed: int) -> RNN:
    cell_key, readout_key, noise_key = jax.random.split(jax.random.key(seed), 3)
    cell = cls(
        key=cell_key,
        input_dim=sizes["input_dim"],
        hidden_dim=sizes["hidden_dim"],
        dtype=jnp.float64,
        **options,
    )
    readout = Linear(
        key=readout_key, hidden_dim=cell.hidden_dim, output_dim=sizes["output_dim"], dtype=jnp.float64
    )
    return perturbed(RNN(cell=cell, readout=readout), noise_key)


def check_cell(
    cls: type[Cell],
    *,
    options: dict | None = None,
    input_dim: int = 3,
    hidden_dim: int = 5,
    output_dim: int = 2,
    seq_len: int = 7,
    batch: int = 3,
    tolerance: float = 1e-10,
    seed: int = 0,
) -> dict:
    """Run the conformance checks on ``cls`` (constructed with ``options``) in float64.

    Args:
        cls: a subclass of ``rnn_jax.cells.Cell``.
        options: keyword options of its constructor (``{"reset": "before"}`` for a GRU).
        input_dim, hidden_dim, output_dim, seq_len, batch: the problem's sizes ``D, H, O, T, N``.
        tolerance: the largest relative gradient error accepted (``rnn_jax.gradcheck``'s measure).
        seed: the draw of the weights, inputs, targets and masks.

    Returns:
        ``{"states": max |scan - loop|, "gradients": {case: max relative error} or None}``
        (``None``: the cell has no backward pass to check).

    >>> from rnn_jax.cells import IndRNN
    >>> report = check_cell(IndRNN, seq_len=4)  # doctest: +SKIP
    """
    if not (isinstance(cls, type) and issubclass(cls, Cell)):
        raise InputTypeError(f"cls must be a subclass of rnn_jax.cells.Cell; got {cls!r}")
    sizes = {"input_dim": input_dim, "hidden_dim": hidden_dim, "output_dim": output_dim}
    with jax.enable_x64(True):
        model = _small_model(cls, dict(options or {}), sizes, seed)
        data_key, mask_key = jax.random.split(jax.random.key(seed + 1))
        xs, _ = random_batch(model, data_key, batch=batch, seq_len=seq_len)
        holes = random_mask(mask_key, batch=batch, seq_len=seq_len, kind="holes")["mask"]
        report = {"states": _check_states(model.cell, xs[0], holes[0]), "gradients": None}
        if has_backward(cls):
            report["gradients"] = _check_gradients(model, data_key, mask_key, seq_len, batch, tolerance)
    return report


def _check_states(cell: Cell, xs, mask) -> float:
    worst = 0.0
    for m in (None, mask):
        scanned = cell.states(xs, h0=cell.initial_state(), mask=m)
        looped = states_by_steps(cell, xs, m)
        for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(looped), strict=True):
            err = float(jnp.max(jnp.abs(a - b)))
            worst = max(worst, err)
            assert err <= 1e-12, (
                f"{type(cell).__name__}: the scanned states differ from a loop of step by {err:.2e}"
            )
    return worst


@functools.partial(jax.jit, static_argnames=("target", "truncation"))
def _both_gradients(model: RNN, xs, ys, k, mask, *, target: str, truncation):
    """Autodiff's and the hand-derived gradient in one compiled program. ``truncation`` is the
    static form (``None`` or an int), or ``"traced"``: then ``k`` is the window's length, so one
    program serves every length."""
    options = {"target": target, "truncation": k if truncation == "traced" else truncation, "mask": mask}
    return jax.grad(loss)(model, xs, ys, **options), manual_grads(model, xs, ys, **options)


def _check_gradients(model: RNN, data_key, mask_key, seq_len: int, batch: int, tolerance: float) -> dict:
    traced = (1, 3, seq_len - 1, seq_len, seq_len + 2)
    forms = [("full BPTT", None, None), ("static k=3", 3, None)]
    forms += [(f"traced k={k}", "traced", jnp.asarray(k)) for k in traced]
    errors = {}
    for target, kind in itertools.product(TARGETS, MASKS):
        xs, ys = random_batch(model, data_key, batch=batch, seq_len=seq_len, target=target)
        masks = random_mask(mask_key, batch=batch, seq_len=seq_len, kind=kind)
        # Lengths are right-padded masks: both kinds run one compiled program, as in rnn_jax.loss.
        mask = resolve_mask(xs, target, lengths=masks.get("lengths"), mask=masks.get("mask"))
        for name, truncation, k in forms:
            case = f"target={target}, lengths={kind}, {name}"
            reference, grads = _both_gradients(model, xs, ys, k, mask, target=target, truncation=truncation)
            per_param = relative_errors(grads, reference)
            worst = max(p["max_rel_err"] for p in per_param.values())
            errors[case] = worst
            assert np.isfinite(worst) and worst <= tolerance, (
                f"{type(model.cell).__name__}: the hand-derived gradient differs from autodiff by "
                f"{worst:.2e} (> {tolerance:g}) with {case}; per parameter: {per_param}"
            )
    return errors
