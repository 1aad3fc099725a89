import math
import os
import signal
import threading

import chex
import jax
import pytest

from rnn_jax.data.sine import make_sine_data
from rnn_jax.io import TEMP_SUFFIX
from rnn_jax.runs.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from rnn_jax.runs.driver import Checkpointing, Interrupted, deferred_signals, fit
from rnn_jax.train.loop import TrainConfig, make_hparams, make_train

CONFIG = TrainConfig(
    hidden_dim=8, activation="tanh", init="default", optimizer="adam", epochs=8, batch_size=4, shuffle=True
)
RUN = {"name": "test", "hidden_dim": 8, "sizes": (1, 2)}


@pytest.fixture(scope="module")
def data():
    return make_sine_data(length=60, window=10, scale=True)


@pytest.fixture(scope="module")
def hparams():
    return make_hparams(learning_rate=1e-2, seq_len=10)


@pytest.fixture(scope="module")
def state(data, hparams):
    """A state two epochs in (module-wide: no test changes it)."""
    fns = make_train(CONFIG)
    return jax.jit(fns.run, static_argnums=3)(fns.init(jax.random.key(0), hparams, data), hparams, data, 2)[0]


@pytest.mark.slow
def test_round_trip_keeps_every_leaf_and_the_metrics(tmp_path, state):
    metrics = {"train_loss": [0.5, math.nan, math.inf], "diverged_at_step": [0.0, 3.0, 3.0]}
    path = save_checkpoint(tmp_path / "c.eqx", state, run=RUN, metrics=metrics)
    loaded, loaded_metrics = load_checkpoint(path, jax.eval_shape(lambda: state), run=RUN)
    chex.assert_trees_all_equal(
        jax.tree.map(jax.random.key_data, loaded.key), jax.tree.map(jax.random.key_data, state.key)
    )
    chex.assert_trees_all_equal(loaded.params, state.params)
    chex.assert_trees_all_equal(loaded.opt_state, state.opt_state)
    assert int(loaded.epoch) == 2 and read_checkpoint(path)[0]["epoch"] == 2
    assert loaded_metrics["train_loss"][0] == 0.5 and math.isnan(loaded_metrics["train_loss"][1])
    assert not list(tmp_path.glob(f".*{TEMP_SUFFIX}"))  # the atomic write leaves no temporary file


def damage(path, how):
    blob = path.read_bytes()
    if how == "truncated":
        path.write_bytes(blob[:-10])
    elif how == "corrupted":
        i = len(blob) - 5
        path.write_bytes(blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1 :])
    elif how == "garbage":
        path.write_bytes(b"\x00\x01 not a checkpoint")
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "is truncated or damaged"),
        ("corrupted", "is corrupted: its SHA-256 does not match"),
        ("garbage", "is not an rnn_jax checkpoint"),
        ("empty", "is not an rnn_jax checkpoint"),
    ],
)
def test_damaged_checkpoints_are_refused(tmp_path, state, how, message):
    path = save_checkpoint(tmp_path / "c.eqx", state, run=RUN, metrics={})
    damage(path, how)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, state, run=RUN)


def test_missing_checkpoint_is_named(tmp_path, state):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nowhere.eqx"):
        load_checkpoint(tmp_path / "nowhere.eqx", state, run=RUN)


@pytest.mark.slow
def test_checkpoint_of_another_run_is_refused(tmp_path, state, data, hparams, key):
    path = save_checkpoint(tmp_path / "c.eqx", state, run=RUN, metrics={})
    with pytest.raises(CheckpointError, match="different run .*hidden_dim: 8 in the checkpoint, 16 now"):
        load_checkpoint(path, state, run={**RUN, "hidden_dim": 16})
    # Same description but other sizes: the leaves do not fit.
    bigger = make_train(TrainConfig(hidden_dim=16, init="default", optimizer="adam"))
    like = jax.eval_shape(bigger.init, key, hparams, data)
    with pytest.raises(CheckpointError, match="does not fit this run's state"):
        load_checkpoint(path, like, run=RUN)


@pytest.mark.slow
def test_resuming_a_refused_checkpoint_leaves_it_untouched(tmp_path, data, hparams, key):
    path = tmp_path / "c.eqx"
    fit(CONFIG, hparams, data, key=key, progress=False, checkpointing=Checkpointing(path, RUN))
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="different run"):
        other = Checkpointing(path, {**RUN, "name": "other"})
        fit(CONFIG, hparams, data, key=key, progress=False, checkpointing=other, resume=True)
    assert path.read_bytes() == before


class Crash(Exception):
    pass


def fit_saving_every_2(path, data, hparams, key, *, on_epoch=None, resume=False):
    """``CONFIG`` trained with a checkpoint at ``path`` every 2 epochs."""
    checkpointing = Checkpointing(path, RUN, every=2)
    kw = {"on_epoch": on_epoch, "checkpointing": checkpointing, "resume": resume}
    return fit(CONFIG, hparams, data, key=key, progress=False, **kw)


@pytest.mark.slow
def test_resume_after_a_crash_is_bit_identical_to_an_uninterrupted_run(tmp_path, data, hparams, key):
    whole = fit(CONFIG, hparams, data, key=key, progress=False)
    path = tmp_path / "c.eqx"

    def crash_in_epoch_6(epoch, _):
        if epoch == 6:  # before the checkpoint at the end of epoch 6 is written
            raise Crash

    with pytest.raises(Crash):
        fit_saving_every_2(path, data, hparams, key, on_epoch=crash_in_epoch_6)
    assert read_checkpoint(path)[0]["epoch"] == 4
    resumed = fit_saving_every_2(path, data, hparams, key, resume=True)
    chex.assert_trees_all_equal(resumed.params, whole.params)
    assert resumed.metrics == whole.metrics
    assert read_checkpoint(path)[0]["epoch"] == CONFIG.epochs


def test_checkpoint_every_rejects_non_positive_values(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every must be a positive integer; got 0"):
        Checkpointing(tmp_path / "c.eqx", RUN, every=0)


@pytest.mark.slow
@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread"
)
def test_signals_are_deferred_to_the_next_chunk_and_then_saved(tmp_path, data, hparams, key):
    path = tmp_path / "c.eqx"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def signal_in_epoch_3(epoch, _):
        if epoch == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with deferred_signals() as received:
        os.kill(os.getpid(), signal.SIGINT)
    assert received == [signal.SIGINT]  # recorded, not raised

    with pytest.raises(Interrupted, match="interrupted by SIGTERM at epoch 4") as stop:
        fit_saving_every_2(path, data, hparams, key, on_epoch=signal_in_epoch_3)
    assert stop.value.checkpoint == path and read_checkpoint(path)[0]["epoch"] == 4
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, state, monkeypatch):
    import rnn_jax.runs.checkpoint

    path = save_checkpoint(tmp_path / "c.eqx", state, run=RUN, metrics={})
    before = path.read_bytes()

    def dies_mid_write(path, write):
        def half(f):
            f.write(b'{"format": "rnn_jax-checkpoint-2", "epo')
            raise OSError("disk full")

        return rnn_jax.io.write_atomic(path, half)

    monkeypatch.setattr(rnn_jax.runs.checkpoint, "write_atomic", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, state, run=RUN, metrics={"x": [1.0]})
    assert path.read_bytes() == before and not list(tmp_path.glob(f".*{TEMP_SUFFIX}"))
    load_checkpoint(path, state, run=RUN)  # still loads


def test_a_fresh_run_may_repeat_a_finished_run_but_not_replace_one_with_other_options(tmp_path, state):
    from rnn_jax.runs.checkpoint import refuse_other_run

    path = save_checkpoint(tmp_path / "checkpoint.eqx", state, run=RUN, metrics={}, finished=True)
    refuse_other_run(path, dict(RUN))  # the same options (tuples stored as lists): allowed
    with pytest.raises(CheckpointError, match=r"finished run with other options \(hidden_dim: 8 in the"):
        refuse_other_run(path, {**RUN, "hidden_dim": 16})
    save_checkpoint(path, state, run=RUN, metrics={}, finished=False)
    with pytest.raises(CheckpointError, match="holds an unfinished run"):
        refuse_other_run(path, dict(RUN))
    refuse_other_run(tmp_path / "none.eqx", RUN)  # nothing there: nothing to refuse


def rewrite_header(path, edit):
    """Apply ``edit(header) -> header`` to the JSON header line, keeping the payload."""
    import json

    line, _, payload = path.read_bytes().partition(b"\n")
    path.write_bytes(edit(json.loads(line)) + b"\n" + payload)


def nested(depth: int) -> list:
    value = [1]
    for _ in range(depth):
        value = [value]
    return value


def _dumps(obj) -> bytes:
    import json

    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: _dumps({**h, "finished": True}), "its header was edited"),
        (lambda h: _dumps({**h, "epoch": 7}), "its header was edited"),
        (lambda h: b"[" * 100_000 + b"]" * 100_000, "its header nests deeper than 32 levels"),
        (lambda h: _dumps({**h, "run": {"a": nested(40)}}), "nests deeper than 32 levels"),
        (lambda h: _dumps({**h, "run": [1, 2]}), "field 'run' is missing or not a dict"),
        (lambda h: _dumps({k: v for k, v in h.items() if k != "run"}), "field 'run' is missing"),
        (lambda h: _dumps({**h, "metrics": {"x": 3}}), "metric 'x' has no valid shape"),
        (lambda h: _dumps({**h, "epoch": True}), "field 'epoch' is missing or not a int"),
        (lambda h: _dumps({**h, "format": "rnn_jax-checkpoint-1"}), "written by an older rnn_jax"),
        (lambda h: b" " * (1 << 20) + b"{}", "its header line exceeds 1.0 MiB"),
    ],
)
def test_crafted_headers_are_refused_and_the_file_left_alone(tmp_path, state, edit, message):
    path = save_checkpoint(tmp_path / "c.eqx", state, run=RUN, metrics={"x": [1.0]})
    rewrite_header(path, edit)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=f"is not an rnn_jax checkpoint \\(.*{message}"):
        load_checkpoint(path, state, run=RUN)
    assert path.read_bytes() == before


def test_only_regular_files_are_read_as_checkpoints(tmp_path, state):
    import os

    os.mkfifo(tmp_path / "fifo.eqx")  # reading it would wait for a writer forever
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_checkpoint(tmp_path / "fifo.eqx", state, run=RUN)
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_checkpoint(tmp_path, state, run=RUN)
