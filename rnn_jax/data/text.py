"""Characters as data: a vocabulary, a split by position, parallel streams for TBPTT, held-out
bits per character, sampling, and a smoothed character n-gram baseline to beat.

The arrays are integer character ids; a model reads them one-hot (``D = V``) and predicts the
next id with a softmax readout (``objective="cross_entropy"``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rnn_jax.errors import InputError, check_size
from rnn_jax.io import read_regular_file
from rnn_jax.model import RNN
from rnn_jax.objectives import cross_entropy
from rnn_jax.resources import check_fits

MAX_TEXT_BYTES = 1 << 30  # a corpus above this is refused before it is read
SAMPLE_BYTES_PER_CHAR = 96  # what sampling one character keeps until the text is returned (a bound)


def default_text() -> str:
    """The standard library's ``pydoc_data.topics`` help texts (about 0.5 MB of English
    technical prose): present in every CPython installation, so nothing is downloaded."""
    from pydoc_data.topics import topics

    return "\n".join(topics[name] for name in sorted(topics))


def read_text(path: str | Path) -> str:
    """A UTF-8 text file; ``ValueError`` naming the file if it is missing, not UTF-8 or empty."""
    path = Path(path)
    try:
        text = read_regular_file(path, limit=MAX_TEXT_BYTES, what="--text").decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"--text {path}: not UTF-8 (byte {err.start} cannot be decoded)") from None
    if not text:
        raise InputError(f"--text {path}: the file is empty")
    return text


class Vocabulary(NamedTuple):
    chars: str  # id -> character

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Ids ``(L,)`` (int32); ``ValueError`` naming a character outside the vocabulary."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((index[c] for c in text), np.int32, len(text))
        except KeyError as err:
            raise InputError(f"character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def split_by_position(ids: np.ndarray, fractions=(0.9, 0.05)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, validation, test)``: the first 90 %, the next 5 %, the last 5 % (by default)."""
    n = len(ids)
    a, b = int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))
    return ids[:a], ids[a:b], ids[b:]


def as_streams(ids: np.ndarray, streams: int) -> np.ndarray:
    """``(S, L // S)``: the text cut into ``S`` contiguous pieces read side by side (the tail
    that does not fill a row is dropped)."""
    length = len(ids) // streams
    if length < 2:
        raise InputError(f"the text ({len(ids)} characters) is too short for {streams} streams")
    return ids[: streams * length].reshape(streams, length)


def stream_source(ids: Int[Array, "S L"], vocab_size: int, k2: int):
    """``source(start) -> (xs (S, k2, V) one-hot, ys (S, k2) next ids)`` for ``rnn_jax.train.stream``;
    ``ids`` is the source's leaf (a ``jax.tree_util.Partial``), so it may be split over devices
    (``rnn_jax.train.sharding.shard_streams``)."""
    return jax.tree_util.Partial(_text_window, ids, vocab_size, k2)


def _text_window(ids, vocab_size: int, k2: int, start):
    window = jax.lax.dynamic_slice_in_dim(ids, start, k2 + 1, axis=1)
    return jax.nn.one_hot(window[:, :-1], vocab_size), window[:, 1:]


def bits_per_char(
    model: RNN, ids: Int[Array, " L"], vocab_size: int, *, context: int = 0
) -> Float[Array, ""]:
    """Mean next-character cross-entropy in bits of ``ids[context + 1:]``, each predicted from
    everything before it, starting from a zero state at ``ids[0]``. The first ``context``
    characters are read (the text that precedes the scored part) but not scored: a model trained
    on carried states may predict badly from a zero state for a long while."""
    logits = model(jax.nn.one_hot(ids[:-1], vocab_size, dtype=model.readout.V.dtype))
    return jnp.mean(cross_entropy(logits[context:], ids[context + 1 :])) / jnp.log(2.0)


def with_context(before: np.ndarray, scored: np.ndarray, context: int) -> np.ndarray:
    """The last ``context`` characters of ``before`` (and one more, the first prediction's
    input), then ``scored``: the input of ``bits_per_char(..., context=context)``."""
    return np.concatenate([before[len(before) - context - 1 :], scored])


def check_sample_length(length) -> int:
    """``length`` as an int, refused unless it is ``>= 1`` and its sample fits in memory: the
    check ``sample`` makes, for a script to make before it trains."""
    length = check_size("length", length)
    # Per character: its key (8 bytes), its id on the device and the host (4 + 8) and the text
    # decoded from it (up to 4 bytes in UTF-8, and Python's list of them on the way).
    check_fits(
        {"sampled characters": length * SAMPLE_BYTES_PER_CHAR},
        what=f"sampling {length:,} characters",
        advice="sample fewer characters (--sample-length)",
    )
    return length


def sample(
    model: RNN, vocab: Vocabulary, prompt: str, *, length: int, temperature: float, key: PRNGKeyArray
) -> str:
    """``prompt`` and ``length`` characters drawn one at a time from ``softmax(y / temperature)``,
    in one ``lax.scan``."""
    if not temperature > 0:
        raise InputError(f"temperature must be > 0; got {temperature}")
    if not prompt:
        raise InputError("the prompt must hold at least one character")
    length = check_sample_length(length)
    size = len(vocab)
    cell = model.cell
    prompt_ids = jnp.asarray(vocab.encode(prompt))
    state = cell.final(jax.nn.one_hot(prompt_ids[:-1], size, dtype=model.readout.V.dtype))

    def step(carry, step_key):
        state, last = carry
        state = cell.step(state, jax.nn.one_hot(last, size, dtype=model.readout.V.dtype))
        logits = model.readout(cell.hidden(state)) / temperature
        nxt = jax.random.categorical(step_key, logits)
        return (state, nxt), nxt

    _, ids = jax.lax.scan(step, (state, prompt_ids[-1]), jax.random.split(key, length))
    return prompt + vocab.decode(np.asarray(ids))


class NGram(NamedTuple):
    """A character n-gram with interpolated Witten-Bell smoothing (Witten & Bell 1991): the
    estimate for order ``n`` mixes the context's counts with the order ``n - 1`` estimate, in
    proportion to how many distinct characters followed that context."""

    order: int
    vocab_size: int
    counts: tuple[dict, ...]  # counts[n][context] = Counter of next ids, context = n previous ids

    @classmethod
    def fit(cls, ids: np.ndarray, order: int, vocab_size: int) -> NGram:
        seq = ids.tolist()
        counts = []
        for n in range(order):
            table: dict = defaultdict(Counter)
            for t in range(n, len(seq)):
                table[tuple(seq[t - n : t])][seq[t]] += 1
            counts.append(dict(table))
        return cls(order, vocab_size, tuple(counts))

    def bits_per_char(self, ids: np.ndarray, context: int = 0) -> float:
        """Mean ``-log2 p(c_t | c_{t-order+1} .. c_{t-1})`` over ``ids[context + 1:]``, the
        characters ``rnn_jax.data.text.bits_per_char`` scores (the first ones use the shorter
        contexts they have)."""
        seq = ids.tolist()
        total = 0.0
        for t in range(context + 1, len(seq)):
            p = 1.0 / self.vocab_size
            for n in range(min(t, self.order - 1) + 1):
                follow = self.counts[n].get(tuple(seq[t - n : t]))
                if follow is None:
                    break
                seen, kinds = sum(follow.values()), len(follow)
                p = (follow.get(seq[t], 0) + kinds * p) / (seen + kinds)
            total -= math.log2(p)
        return total / (len(seq) - context - 1)
