"""The adding problem and recall, and training on them with a truncation window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.data.memory_tasks import ADDING_MEAN_MSE, adding_problem, recall, task_data
from rnn_jax.runs.driver import fit
from rnn_jax.train.loop import TrainConfig, make_hparams


def test_adding_sequences_mark_two_values_early(key):
    xs, ys = adding_problem(key, 2000, 30)
    marks = np.asarray(xs[..., 1])
    assert np.all(marks.sum(axis=1) == 2)  # two distinct marks
    assert np.all(marks[:, :10].sum(axis=1) >= 1) and not np.any(marks[:, 14:])  # first 10; first T/2 - 1
    assert marks[:, 10:14].any()  # the second mark is not confined to the first ten steps
    np.testing.assert_allclose(ys[:, 0], jnp.sum(xs[..., 0] * xs[..., 1], axis=1), rtol=1e-6)
    assert float(jnp.mean((ys - 1.0) ** 2)) == pytest.approx(ADDING_MEAN_MSE, rel=0.1)


def test_recall_shows_the_symbol_at_step_zero_only(key):
    xs, labels = recall(key, 50, 12, 5)
    assert xs.shape == (50, 12, 5) and not jnp.any(xs[:, 1:])
    np.testing.assert_array_equal(jnp.argmax(xs[:, 0], axis=-1), labels)


def recall_accuracy(truncation):
    data = task_data("recall", jax.random.key(0), n_train=256, n_val=128, seq_len=30, symbols=4)
    config = TrainConfig(
        cell="gru",
        hidden_dim=16,
        optimizer="adam",
        clip="norm",
        epochs=30,
        batch_size=32,
        shuffle=True,
        init="default",
        objective="cross_entropy",
    )
    hparams = make_hparams(learning_rate=2e-2, clip_threshold=1.0, truncation=truncation, seq_len=30)
    result = fit(config, hparams, data, key=jax.random.key(1), progress=False)
    return result.metrics


@pytest.mark.slow
def test_recall_is_learnt_with_full_bptt_and_far_more_slowly_through_a_short_window():
    full, cut = recall_accuracy(None), recall_accuracy(4)
    assert full["val_accuracy"][-1] > 0.95  # chance: 0.25
    # A 4-step window leaves only what the untrained dynamics happen to keep of step 0.
    assert np.mean(full["val_accuracy"]) > np.mean(cut["val_accuracy"]) + 0.2
    assert full["val_bits"][-1] == pytest.approx(full["val_loss"][-1] / np.log(2.0))
