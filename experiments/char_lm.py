"""A character-level language model: held-out bits per character of Elman, GRU and LSTM against
a smoothed n-gram, samples, and speed against a min-char-rnn-style NumPy loop.

    uv run experiments/char_lm.py                       # the standard library's help texts
    uv run experiments/char_lm.py --text book.txt       # any UTF-8 file

The text (by default ``pydoc_data.topics``, which ships with Python) is split by position into
train (90 %), validation and test (5 % each). Each cell reads the training text as ``--streams``
parallel streams with TBPTT(k1, k2), the state carried from update to update
(``rnn_jax.train.stream``), one-hot characters in, a softmax over the vocabulary out, gradients from
the hand-derived backward pass (``--backward manual``). Validation and test are scored as
continuations: the model first reads the ``--context`` characters before them. The n-gram
(interpolated Witten-Bell) is fitted on the same training text; its order is the one with the
best validation score. Then ``--numpy-updates`` updates of a min-char-rnn-style NumPy loop
(Elman H=100, 25-step windows, Adagrad: ``experiments/helpers/alternatives.py``) are timed against the
same number of rnn_jax updates of the same model batched over ``--numpy-streams`` streams, in
alternating rounds. Writes
char_lm.json (bits per character, speeds, samples) and char_lm.png (validation bits per
character during training) to --out.

    uv run experiments/char_lm.py --num-processes 2     # data parallel over two processes

With ``--num-processes N`` (docs/sweeps.md for a cluster) the streams are split over the
processes' devices and each update's gradient is averaged across them; the losses and scores
equal one process's to float32 rounding.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: a signal while the imports below run ends in one line
    from rnn_jax.runs.signals import answer_signals

    answer_signals()

import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers.alternatives import min_char_rnn  # noqa: E402
from helpers.machine import describe_machine  # noqa: E402

from rnn_jax.cli.args import experiment_main  # noqa: E402
from rnn_jax.data.text import (  # noqa: E402
    NGram,
    Vocabulary,
    as_streams,
    bits_per_char,
    check_sample_length,
    default_text,
    read_text,
    sample,
    split_by_position,
    stream_source,
    with_context,
)
from rnn_jax.errors import InputError
from rnn_jax.io import save_figure, write_json  # noqa: E402
from rnn_jax.plots import plot_losses  # noqa: E402
from rnn_jax.runs.driver import fit_stream  # noqa: E402
from rnn_jax.runs.options import RunOptions, parse_list
from rnn_jax.runs.processes import start_processes
from rnn_jax.train.sharding import shard_streams, stream_mesh
from rnn_jax.train.stream import StreamConfig, check_stream_config, make_stream_train  # noqa: E402


@dataclasses.dataclass(frozen=True)
class CharLMConfig:
    text: str | None = None  # a UTF-8 file; None: the standard library's pydoc_data.topics
    cells: str = "elman,gru,lstm"
    hidden_dim: int = 256
    streams: int = 32
    k1: int = 64
    k2: int = 64
    learning_rate: float = 6e-3
    clip_threshold: float = 5.0
    decay: bool = False  # cosine decay of the learning rate to 0 over each cell's updates
    updates: str = "500,500,2000"  # per cell, in the order of --cells
    backward: str = "manual"  # the hand-derived pass (k1 = k2), or "autodiff"
    max_vocab: int = 256
    context: int = 1000  # characters read before the scored validation/test text, not scored
    max_order: int = 6  # the n-gram orders tried: 1 .. max_order
    prompt: str = "The "
    temperature: float = 0.5
    sample_length: int = 300
    numpy_updates: int = 600
    numpy_streams: int = 256  # rnn_jax's streams in the comparison
    seed: int = 0

    HELP = {
        "text": "a UTF-8 text file (default: the standard library's pydoc_data.topics help texts)",
        "cells": "comma-separated cells to train side by side",
        "hidden_dim": "hidden size H of every cell",
        "streams": "parallel streams the training text is cut into (the batch)",
        "k1": "characters between updates (each scored once)",
        "k2": "characters the gradient flows back, >= k1",
        "learning_rate": "Adam step size",
        "decay": "decay the learning rate (cosine) to 0 over each cell's updates",
        "clip_threshold": "global gradient norm bound",
        "updates": "parameter updates per cell, comma-separated in the order of --cells",
        "backward": "manual (the hand-derived pass; needs k1 = k2) or autodiff",
        "context": "characters of the preceding text read (not scored) before validation and test",
        "max_vocab": "refuse texts with more distinct characters (one-hot inputs: D = V)",
        "max_order": "longest n-gram tried for the baseline",
        "prompt": "the start of every sample",
        "temperature": "sampling temperature (lower: more conservative)",
        "sample_length": "characters sampled after the prompt",
        "numpy_updates": "updates of the NumPy loop timed (and of rnn_jax compared at that point)",
        "numpy_streams": "parallel streams rnn_jax trains on in the comparison with the NumPy loop",
        "seed": "initialisation and sampling seed",
    }


def load(cfg: CharLMConfig):
    """The text's vocabulary and its train/validation/test ids, checked."""
    text = default_text() if cfg.text is None else read_text(cfg.text)
    vocab = Vocabulary.of(text)
    if len(vocab) > cfg.max_vocab:
        raise InputError(
            f"the text has {len(vocab)} distinct characters, more than --max-vocab {cfg.max_vocab} "
            f"(the one-hot input is V wide); raise --max-vocab or use a smaller alphabet"
        )
    if len(vocab) < 2:
        raise InputError("the text needs at least two distinct characters to predict anything")
    missing = set(cfg.prompt) - set(vocab.chars)
    if missing:
        raise InputError(f"--prompt uses characters the text never does: {''.join(sorted(missing))!r}")
    train, val, test = split_by_position(vocab.encode(text))
    if cfg.context + 1 > min(len(train), len(val)):
        raise InputError(
            f"--context {cfg.context} needs more text before the validation and test parts "
            f"(train {len(train)}, validation {len(val)} characters)"
        )
    if min(len(val), len(test)) < 2:
        raise InputError(
            f"the text ({len(text)} characters) is too short to split into train, validation and test"
        )
    return vocab, train, val, test


def check(cfg: CharLMConfig) -> tuple[list[str], list[int]]:
    cells = parse_list(cfg.cells, "cells", str)
    updates = parse_list(cfg.updates, "updates", int)
    if len(updates) != len(cells) or min(updates) < 1:
        raise InputError(f"updates must list one positive count per cell ({len(cells)}); got {cfg.updates!r}")
    for name in ("numpy_updates", "sample_length", "max_order", "max_vocab"):
        if getattr(cfg, name) < 1:
            raise InputError(f"{name} must be a positive integer; got {getattr(cfg, name)}")
    check_sample_length(cfg.sample_length)  # before training, not after it
    if not cfg.temperature > 0:
        raise InputError(f"temperature must be > 0; got {cfg.temperature}")
    if not cfg.prompt:
        raise InputError("prompt must hold at least one character")
    for cell in cells:
        check_stream_config(stream_config(cfg, cell, cfg.hidden_dim), cfg.k2 + 1)
    return cells, updates


def stream_config(cfg: CharLMConfig, cell: str, hidden_dim: int, updates: int = 0) -> StreamConfig:
    return StreamConfig(
        cell=cell,
        hidden_dim=hidden_dim,
        objective="cross_entropy",
        streams=cfg.streams,
        k1=cfg.k1,
        k2=cfg.k2,
        learning_rate=cfg.learning_rate,
        clip_threshold=cfg.clip_threshold,
        updates_per_chunk=100,
        backward=cfg.backward,
        decay_updates=updates if cfg.decay else 0,
    )


def cyclic(ids: np.ndarray, cfg: CharLMConfig) -> jnp.ndarray:
    """The training streams, with the first ``k2 + 1`` characters repeated at the end, so that
    windows past the end wrap round to the start (more updates than one pass holds)."""
    rows = as_streams(ids, cfg.streams)
    if rows.shape[1] <= cfg.k2 + 1:
        raise InputError(
            f"each of the {cfg.streams} streams ({rows.shape[1]} characters) must be longer than k2 + 1"
        )
    return jnp.asarray(rows)


def wrapping_source(rows, vocab_size: int, cfg: CharLMConfig):
    """``stream_source`` whose window start runs round the streams (a multiple of ``k1``)."""
    period = (rows.shape[1] - 1 - cfg.k2) // cfg.k1 * cfg.k1
    return jax.tree_util.Partial(_wrapped, stream_source(rows, vocab_size, cfg.k2), period)


def _wrapped(inner, period: int, start):
    return inner(start % period)


def train_cell(cfg: CharLMConfig, cell: str, updates: int, hidden_dim: int, vocab, rows, key):
    """Train one cell; its characters per second after compilation. With several processes the
    streams are split over every device of every process (data parallel)."""
    config = stream_config(cfg, cell, hidden_dim, updates)
    mesh = stream_mesh() if jax.process_count() > 1 else None
    result = fit_stream(
        config,
        wrapping_source(rows if mesh is None else shard_streams(rows, mesh), len(vocab), cfg),
        n_steps=updates * cfg.k1 + cfg.k2 - cfg.k1,
        input_dim=len(vocab),
        output_dim=len(vocab),
        key=key,
        progress=jax.process_index() == 0,
        mesh=mesh,
    )
    chars = updates * cfg.k1 * cfg.streams
    return result, chars / result.run_seconds


def numpy_comparison(cfg: CharLMConfig, vocab, train, val_scored, key) -> dict:
    """The min-char-rnn-style loop and rnn_jax on the same model (Elman H=100, 25-step windows)
    and number of updates, timed in alternating rounds so that both see the same machine load;
    each speed is its best round."""
    size, rounds = len(vocab), 4
    per_round = max(1, cfg.numpy_updates // rounds)
    loop = min_char_rnn(train, size, hidden=100, seq_length=25, learning_rate=0.1, seed=cfg.seed)
    same = dataclasses.replace(cfg, k1=25, k2=25, streams=cfg.numpy_streams)
    config = dataclasses.replace(stream_config(same, "elman", 100), decay_updates=0)
    init, chunk = make_stream_train(
        config, wrapping_source(cyclic(train, same), size, same), input_dim=size, output_dim=size
    )
    state = jax.jit(init)(key)
    run_chunk = jax.jit(chunk, static_argnames="length").lower(state, length=per_round).compile()
    numpy_times, jax_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        loop.run(per_round)
        numpy_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        state, loss = run_chunk(state)
        jax.block_until_ready(loss)
        jax_times.append(time.perf_counter() - start)
    numpy_rate = per_round * 25 / min(numpy_times)
    jax_rate = per_round * 25 * same.streams / min(jax_times)
    return {
        "updates": per_round * rounds,
        "rounds": rounds,
        "numpy_chars_per_second": numpy_rate,
        "rnn_jax_chars_per_second": jax_rate,
        "speedup": jax_rate / numpy_rate,
        "numpy_val_bits_per_char": loop.bits_per_char(np.asarray(val_scored), cfg.context),
        "rnn_jax_val_bits_per_char": float(
            bits_per_char(state.params, val_scored, size, context=cfg.context)
        ),
        "rnn_jax_streams": same.streams,
        "rnn_jax_backward": config.backward,
    }


def run(cfg: CharLMConfig, options: RunOptions) -> dict | None:
    """Everything above; with several processes each trains its share of the streams and
    process 0 scores, samples and writes (the NumPy comparison times one process: left out)."""
    out, processes = options.out, options.processes
    if cfg.streams % processes.count:
        raise InputError(f"streams ({cfg.streams}) must split evenly over {processes.count} processes")
    start_processes(processes)  # before anything starts JAX's backends
    cells, updates = check(cfg)
    vocab, train, val, test = load(cfg)
    if processes.index > 0:  # the others train their streams; the rest is process 0's
        rows = cyclic(train, cfg)
        keys = jax.random.split(jax.random.key(cfg.seed), len(cells) + 2)
        for cell, n, key in zip(cells, updates, keys, strict=False):
            train_cell(cfg, cell, n, cfg.hidden_dim, vocab, rows, key)
        return None
    print(f"text: {len(train) + len(val) + len(test):,d} characters, vocabulary {len(vocab)}")
    start = time.perf_counter()
    grams = {n: NGram.fit(train, n, len(vocab)) for n in range(1, cfg.max_order + 1)}
    val_scored, test_scored = with_context(train, val, cfg.context), with_context(val, test, cfg.context)
    val_bits = {n: g.bits_per_char(val_scored, cfg.context) for n, g in grams.items()}
    order = min(val_bits, key=val_bits.get)
    ngram = {
        "order": order,
        "val_bits_per_char": val_bits[order],
        "test_bits_per_char": grams[order].bits_per_char(test_scored, cfg.context),
        "val_by_order": val_bits,
        "seconds": time.perf_counter() - start,
    }
    val_score, test_score = ngram["val_bits_per_char"], ngram["test_bits_per_char"]
    print(f"{order}-gram: val {val_score:.3f}, test {test_score:.3f} bits/char")
    rows = cyclic(train, cfg)
    val_rows, test_rows = jnp.asarray(val_scored), jnp.asarray(test_scored)
    keys = jax.random.split(jax.random.key(cfg.seed), len(cells) + 2)
    models, curves = {}, {}
    for cell, n, key in zip(cells, updates, keys, strict=False):
        result, rate = train_cell(cfg, cell, n, cfg.hidden_dim, vocab, rows, key)
        models[cell] = {
            "updates": n,
            "train_bits_per_char_last_chunk": result.chunk_losses[-1] / float(np.log(2.0)),
            "val_bits_per_char": float(
                bits_per_char(result.params, val_rows, len(vocab), context=cfg.context)
            ),
            "test_bits_per_char": float(
                bits_per_char(result.params, test_rows, len(vocab), context=cfg.context)
            ),
            "chars_per_second": rate,
            "train_seconds": result.run_seconds,
            "compile_seconds": result.compile_seconds,
            "sample": sample(
                result.params,
                vocab,
                cfg.prompt,
                length=cfg.sample_length,
                temperature=cfg.temperature,
                key=keys[-1],
            ),
        }
        curves[cell] = [c / float(np.log(2.0)) for c in result.chunk_losses]
        m = models[cell]
        print(
            f"{cell}: val {m['val_bits_per_char']:.3f}, test {m['test_bits_per_char']:.3f} bits/char, "
            f"{rate:,.0f} chars/s ({m['train_seconds']:.0f} s)"
        )
    print(f"sample (temperature {cfg.temperature}, {cells[-1]}):\n{models[cells[-1]]['sample']}")
    versus = None
    if processes.count == 1:
        versus = v = numpy_comparison(cfg, vocab, train, val_rows, keys[-2])
        print(
            f"min-char-rnn NumPy loop: {v['numpy_chars_per_second']:,.0f} chars/s; rnn_jax "
            f"{v['rnn_jax_chars_per_second']:,.0f} chars/s ({v['speedup']:.0f}x); val bits/char after "
            f"{v['updates']} updates: {v['numpy_val_bits_per_char']:.3f} (NumPy) vs "
            f"{v['rnn_jax_val_bits_per_char']:.3f} (rnn_jax)"
        )
    summary = {
        "config": dataclasses.asdict(cfg),
        "machine": describe_machine(),
        "processes": processes.count,
        "vocabulary": len(vocab),
        "characters": {"train": len(train), "val": len(val), "test": len(test)},
        "ngram": ngram,
        "models": models,
        "numpy_comparison": versus,
    }
    write_json(out / "char_lm.json", summary)
    save_figure(
        plot_losses(curves, ylabel="training bits per character", xlabel="chunk of 100 updates"),
        out / "char_lm.png",
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    return experiment_main(__doc__, CharLMConfig(), run, "results/char_lm", argv, processes=True)


if __name__ == "__main__":
    sys.exit(main())
