"""The classic long-range memory tasks, generated from a key: the adding problem and recall.

* **Adding** (Hochreiter & Schmidhuber 1997, experiment 4): each step reads ``(v_t, m_t)``, a
  value ``v_t ~ U[0, 1)`` and a marker; exactly two steps are marked, the first among the first
  10 steps, the second among the first ``T/2 - 1``. The target, read at the last step, is the
  sum of the two marked values. Predicting the mean (1) scores a mean squared error of
  ``1/6 ≈ 0.167``. Both marks lie more than ``T/2`` steps before the target, so no truncation
  window shorter than that ever holds a mark. (Le et al. 2015 and later papers put the second
  mark in the second half instead; there a short window does hold it in some sequences.)
* **Recall**: step 0 shows one of ``K`` symbols (one-hot), the other steps show nothing; at the
  last step the model names the symbol (cross-entropy). Chance accuracy is ``1/K``; any
  truncation ``k < T`` cuts the only path from the symbol to the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rnn_jax.data.sine import WindowData, identity_scaler
from rnn_jax.errors import InputError

ADDING_MEAN_MSE = 1.0 / 6.0  # predicting the mean sum, 1


def adding_problem(
    key: PRNGKeyArray, n: int, seq_len: int
) -> tuple[Float[Array, "N T 2"], Float[Array, "N 1"]]:
    """``n`` adding sequences of ``seq_len >= 2`` steps: inputs ``(N, T, 2)``, sums ``(N, 1)``."""
    if seq_len < 2:
        raise InputError(f"the adding problem needs seq_len >= 2; got {seq_len}")
    value_key, first_key, second_key = jax.random.split(key, 3)
    values = jax.random.uniform(value_key, (n, seq_len))
    half = max(seq_len // 2 - 1, 2)
    first = jax.random.randint(first_key, (n,), 0, min(10, half - 1))
    # The second mark: uniform over the first T/2 - 1 steps other than the first mark.
    second = jax.random.randint(second_key, (n,), 0, half - 1)
    second = second + (second >= first)
    steps = jnp.arange(seq_len)[None, :]
    marks = ((steps == first[:, None]) | (steps == second[:, None])).astype(values.dtype)
    return jnp.stack([values, marks], axis=-1), jnp.sum(values * marks, axis=1, keepdims=True)


def recall(
    key: PRNGKeyArray, n: int, seq_len: int, symbols: int
) -> tuple[Float[Array, "N T K"], Int[Array, " N"]]:
    """``n`` recall sequences: the symbol one-hot at step 0, zeros after; labels ``(N,)``."""
    labels = jax.random.randint(key, (n,), 0, symbols)
    xs = jnp.zeros((n, seq_len, symbols)).at[:, 0].set(jax.nn.one_hot(labels, symbols))
    return xs, labels


def task_data(
    task: str, key: PRNGKeyArray, *, n_train: int, n_val: int, seq_len: int, symbols: int = 8
) -> WindowData:
    """Training and validation sets of ``task`` (``"adding"`` or ``"recall"``) as ``WindowData``."""
    train_key, val_key = jax.random.split(key)
    if task == "adding":
        (x_tr, y_tr), (x_va, y_va) = (
            adding_problem(k, m, seq_len) for k, m in ((train_key, n_train), (val_key, n_val))
        )
        return WindowData(x_tr, y_tr, x_va, y_va, identity_scaler())
    if task == "recall":
        (x_tr, y_tr), (x_va, y_va) = (
            recall(k, m, seq_len, symbols) for k, m in ((train_key, n_train), (val_key, n_val))
        )
        return WindowData(x_tr, y_tr, x_va, y_va, identity_scaler(), classes=symbols)
    raise InputError(f"task must be adding or recall; got {task!r}")
