"""Characters as data: vocabulary, files, the n-gram baseline, bits per character, sampling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.data.text import (
    NGram,
    Vocabulary,
    as_streams,
    bits_per_char,
    default_text,
    read_text,
    sample,
    split_by_position,
    stream_source,
    with_context,
)
from rnn_jax.model import init_model


def test_the_default_text_ships_with_python():
    text = default_text()
    assert len(text) > 400_000 and "print" in text and len(Vocabulary.of(text)) < 256


def test_vocabulary_round_trip_and_unknown_characters():
    vocab = Vocabulary.of("hello world")
    assert vocab.decode(vocab.encode("low")) == "low" and len(vocab) == 8
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        vocab.encode("zoo")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file is empty"), (b"ok \xff\xfe", r"not UTF-8 \(byte 3 ")],
)
def test_bad_text_files_are_named(tmp_path, content, message):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_text(path)
    with pytest.raises(ValueError, match="--text .*missing.txt does not exist"):
        read_text(tmp_path / "missing.txt")


def test_split_and_streams_keep_positions():
    ids = np.arange(1000, dtype=np.int32)
    train, val, test = split_by_position(ids)
    assert (len(train), len(val), len(test)) == (900, 50, 50) and val[0] == 900 and test[0] == 950
    rows = as_streams(train, 4)
    assert rows.shape == (4, 225) and rows[1, 0] == 225
    xs, ys = stream_source(jnp.asarray(rows), 1000, 5)(jnp.asarray(10))
    assert xs.shape == (4, 5, 1000) and int(jnp.argmax(xs[2, 0])) == 460 and int(ys[2, 0]) == 461


def test_ngram_probabilities_sum_to_one_and_a_periodic_text_costs_nothing():
    text = np.array([0, 1, 2, 3] * 200, np.int32)
    gram = NGram.fit(text, 3, 5)
    scored = with_context(text, np.array([0, 1, 2, 3, 0, 1], np.int32), 2)
    assert gram.bits_per_char(scored, 2) < 0.05  # every next character has been seen each time
    # Smoothing leaves mass for the unseen symbol 4, and the distribution sums to one.
    probs = [2.0 ** -gram.bits_per_char(np.array([0, 1, c], np.int32), 1) for c in range(5)]
    assert math.isclose(sum(probs), 1.0, rel_tol=1e-9) and probs[4] > 0


@pytest.mark.slow
def test_a_model_with_zero_weights_scores_log2_of_the_vocabulary(key):
    model = init_model("lstm", key=key, input_dim=7, hidden_dim=4, output_dim=7)
    model = jax.tree.map(jnp.zeros_like, model)
    ids = jnp.array([1, 2, 3, 4, 5, 6, 0, 1])
    assert float(bits_per_char(model, ids, 7, context=3)) == pytest.approx(math.log2(7), rel=1e-6)


@pytest.mark.slow
def test_sampling_starts_with_the_prompt_and_is_reproducible(key):
    vocab = Vocabulary.of("abcd")
    model = init_model("gru", key=key, input_dim=4, hidden_dim=6, output_dim=4)
    one = sample(model, vocab, "ab", length=20, temperature=0.5, key=key)
    assert one.startswith("ab") and len(one) == 22 and set(one) <= set("abcd")
    assert one == sample(model, vocab, "ab", length=20, temperature=0.5, key=key)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample(model, vocab, "ab", length=2, temperature=0.0, key=key)


def test_a_sample_too_long_for_memory_is_refused_before_drawing(key):
    vocab = Vocabulary.of("abcd")
    model = init_model("gru", key=key, input_dim=4, hidden_dim=6, output_dim=4)
    with pytest.raises(ValueError, match=r"not enough memory for sampling 1,000,000,000,000 characters"):
        sample(model, vocab, "ab", length=10**12, temperature=0.5, key=key)
    with pytest.raises(ValueError, match="length must be an integer >= 1; got 0"):
        sample(model, vocab, "ab", length=0, temperature=0.5, key=key)
