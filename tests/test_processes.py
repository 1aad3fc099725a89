"""A sweep over several processes: the layout of members, each process's checkpoint, the
decisions they share between chunks, and two CPU processes on localhost against one."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scripts import ENV, ROOT, assert_user_error, run_in_process

from rnn_jax.cli.launch import PROCESSES_HERE, cores_per_process, free_port
from rnn_jax.runs.processes import (
    ChunkDecision,
    Processes,
    check_address,
    member_layout,
    process_checkpoint,
    saved_process_counts,
)


def test_each_process_holds_the_block_one_process_with_all_the_devices_would_put_on_its_devices():
    # 7 members over 2 processes of 2 devices: padded to 8, two members per device.
    layouts = [member_layout(7, 2, p, 2) for p in range(2)]
    assert [(lay.start, lay.stop, lay.real_stop) for lay in layouts] == [(0, 4, 4), (4, 8, 7)]
    assert {lay.n_padded for lay in layouts} == {8}
    # One process: the whole padded axis.
    assert member_layout(5, 3, 0, 1)[1:] == (6, 0, 6)


def test_process_options_are_checked_naming_the_argument():
    with pytest.raises(ValueError, match="num_processes must be a positive integer; got 0"):
        Processes(0)
    with pytest.raises(ValueError, match=r"process_id must be an integer in \[0, 1\]; got 2"):
        Processes(2, 2, "127.0.0.1:1234")
    for bad in (None, "localhost", "host:0", "host:99999", ":80"):
        with pytest.raises(ValueError, match="coordinator must be HOST:PORT"):
            Processes(2, 0, bad)
    assert check_address("10.0.0.1:1234") == ("10.0.0.1", 1234)


def test_each_process_keeps_its_own_checkpoint_file_and_their_count_is_found_again(tmp_path):
    path = tmp_path / "checkpoint.eqx"
    assert process_checkpoint(path, 0, 1) == path
    assert process_checkpoint(path, 1, 3).name == "checkpoint.process-1-of-3.eqx"
    assert saved_process_counts(path) == []
    for p in range(3):
        process_checkpoint(path, p, 3).write_bytes(b"")
    path.write_bytes(b"")
    assert saved_process_counts(path) == [1, 3]


def test_the_launcher_shares_the_cores_among_the_processes_it_starts(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv(PROCESSES_HERE, "2")
    assert cores_per_process() == max(1, cores // 2)
    monkeypatch.delenv(PROCESSES_HERE)
    assert cores_per_process() == cores


def test_the_processes_decisions_replace_this_processs_own_after_each_chunk(tmp_path):
    """``run_saving_chunks`` with ``agree``: the chunk lengths, the checkpoint and a signal that
    another process received come from the common decision."""
    from rnn_jax.runs.driver import Checkpointing, run_saving_chunks
    from rnn_jax.runs.signals import Interrupted

    counts, saved, asked = [], [], []

    def run(state, count):
        counts.append(int(count))
        return state + int(count), {"x": np.zeros(5)}

    def after_chunk(state, metrics):
        return (lambda finished: saved.append((state, finished))), False

    def agree(mine):  # process 0 asks for 2 epochs each time; at epoch 5 another got SIGTERM
        asked.append(mine)
        done = 1 + 2 * (len(asked) - 1)
        return ChunkDecision(2, False, signal.SIGTERM if done >= 5 else 0)

    checkpointing = Checkpointing(tmp_path / "c.eqx", {}, every=None)
    with pytest.raises(Interrupted) as stop:
        run_saving_chunks(
            run, 0, (), checkpointing=checkpointing, total_epochs=20, remaining=20, capacity=5,
            start=time.perf_counter(), progress=False, after_chunk=after_chunk, agree=agree,
        )  # fmt: skip
    assert counts == [1, 2, 2]  # the first chunk is one epoch in every process
    assert saved == [(5, False)] and stop.value.epoch == 5 and stop.value.signum == signal.SIGTERM
    assert all(isinstance(a, ChunkDecision) for a in asked)


SWEEP = ["experiments/sweep.py", "--n-seeds", "3", "--learning-rates", "1e-3,1e-2", "--truncations", "3,none"]
SMALL = ["--hidden-dim", "8", "--batch-size", "10", "--cpu-devices", "1", "--quiet"]


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, *SWEEP, *SMALL, *args]


@pytest.mark.slow
def test_two_processes_on_localhost_sweep_bit_for_bit_as_one_and_resume_exactly_after_a_signal(tmp_path):
    """Two CPU processes (coordinator on 127.0.0.1, gloo collectives) each train half of the
    12 members on their own device; one process on one device is the reference. The two-process
    run is stopped by SIGTERM a few epochs in (each process saves its block) and resumed."""
    epochs = ["--epochs", "16", "--checkpoint-every", "1"]  # chunks of one epoch: a signal lands early
    one, two = tmp_path / "one", tmp_path / "two"
    reference = subprocess.Popen(sweep_command(*epochs, "--out", str(one)), cwd=ROOT, env=ENV)
    launcher = subprocess.Popen(
        sweep_command(*epochs, "--out", str(two), "--num-processes", "2"),
        cwd=ROOT,
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = two / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher.send_signal(signal.SIGTERM)  # to the launcher, which passes it on to both processes
    _, err = launcher.communicate(timeout=240)
    assert launcher.returncode == 128 + signal.SIGTERM, err
    assert reference.wait(timeout=240) == 0
    headers = {}
    for p in range(2):
        with open(two / f"checkpoint.process-{p}-of-2.eqx", "rb") as f:
            headers[p] = json.loads(f.readline())
    assert {h["epoch"] for h in headers.values()} == {headers[0]["epoch"]} and headers[0]["epoch"] < 16
    assert [h["run"]["sweep_members"] for h in headers.values()] == [[0, 6], [6, 12]]
    # A resume on another number of processes is refused before anything runs.
    other = run_in_process(*SWEEP, *SMALL, *epochs, "--resume", str(two))
    assert_user_error(other, "holds a run of 2 process(es); resume it with --num-processes 2")

    resumed = subprocess.run(
        sweep_command(*epochs, "--resume", str(two), "--num-processes", "2"),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    a, b = (json.loads((d / "sweep.json").read_text()) for d in (one, two))
    assert b["processes"] == 2 and a["processes"] == 1 and b["resumed"]
    assert a["per_member"] == b["per_member"]  # every final metric, bit for bit
    curves = [json.loads((d / "curves.json").read_text())["val_rmse"] for d in (one, two)]
    assert np.asarray(curves[0]).shape == (12, 16) and curves[0] == curves[1]


DATA_PARALLEL = """
import sys
import numpy as np
from rnn_jax.train.sharding import use_cpu_cores
use_cpu_cores(1)
from rnn_jax.runs.processes import Processes, start_processes
index, count, coordinator, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
start_processes(Processes(count, index, coordinator if count > 1 else None))
import jax
from rnn_jax.data.text import stream_source
from rnn_jax.runs.driver import fit_stream
from rnn_jax.train.sharding import shard_streams, stream_mesh
from rnn_jax.train.stream import StreamConfig
ids = np.random.default_rng(0).integers(0, 7, size=(4, 200)).astype(np.int32)
config = StreamConfig(cell="gru", hidden_dim=16, objective="cross_entropy", streams=4, k1=10, k2=10,
                      backward=sys.argv[5], learning_rate=1e-2, updates_per_chunk=6)
mesh = stream_mesh() if count > 1 else None
rows = shard_streams(ids, mesh) if mesh is not None else jax.numpy.asarray(ids)
result = fit_stream(config, stream_source(rows, 7, config.k2), n_steps=180, input_dim=7, output_dim=7,
                    key=jax.random.key(1), progress=False, mesh=mesh)
if index == 0:
    weights = [np.asarray(x) for x in jax.tree.leaves(result.params)]
    np.savez(out, *weights, losses=np.asarray(result.chunk_losses))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backward", ["autodiff", "manual"])
def test_a_character_model_trained_data_parallel_over_two_processes_equals_one_process(tmp_path, backward):
    """Four streams split two and two over two processes, the gradient averaged by the compiled
    program's all-reduce: the losses and weights of one process to float32 rounding."""
    script = tmp_path / "data_parallel.py"
    script.write_text(DATA_PARALLEL)
    coordinator = f"127.0.0.1:{free_port()}"
    runs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), str(n), coordinator, str(tmp_path / f"{n}.npz"), backward],
            cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True,
        )
        for n, i in [(1, 0), (2, 0), (2, 1)]
    ]  # fmt: skip
    for run in runs:
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err[-2000:]
    one, two = (np.load(tmp_path / f"{n}.npz") for n in (1, 2))
    assert one["losses"].shape == (3,) and one["losses"][-1] < one["losses"][0]  # it learns
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=2e-6)
    for name in one.files:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6)
