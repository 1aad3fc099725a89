"""Interrupting the sine-wave experiment (kill -9, SIGINT, SIGTERM) and resuming it."""

import json
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from scripts import ENV, ROOT, assert_user_error, run

from rnn_jax.io import TEMP_SUFFIX
from rnn_jax.runs.checkpoint import CheckpointError, read_checkpoint

# Each test runs whole commands in fresh processes: all of them are in the full suite only.
pytestmark = pytest.mark.slow

# Long enough to be interrupted part-way (several seconds), with a checkpoint every 25 epochs.
ARGS = ["experiments/sine_wave.py", "--hidden-dim", "16", "--epochs", "800", "--checkpoint-every", "25"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run's output folder."""
    out = tmp_path_factory.mktemp("reference")
    done = run(*ARGS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def saved_epoch(path) -> int:
    try:
        return read_checkpoint(path)[0]["epoch"]
    except CheckpointError:
        return 0  # not written yet


def spawn(*args: str) -> subprocess.Popen:
    """``python *args`` from the repository root, started and not waited for; stderr piped."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def start(out, until_epoch: int) -> subprocess.Popen:
    """Start the run; return once its checkpoint has reached ``until_epoch`` (or it ended)."""
    proc = spawn(*ARGS, "--out", str(out))
    deadline = time.monotonic() + 240
    while saved_epoch(out / "checkpoint.eqx") < until_epoch and proc.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return proc


def start_and_stop(out, how: signal.Signals) -> tuple[int, str]:
    """Start the run, send ``how`` once a checkpoint part-way through exists; the exit code and
    stderr."""
    proc = start(out, 50)
    proc.send_signal(how)
    return proc.wait(timeout=120), proc.stderr.read()


def resume_and_compare(out, reference) -> None:
    done = run(*ARGS, "--resume", str(out))
    assert done.returncode == 0, done.stderr
    for name in ("metrics.json", "predictions.json", "config.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_same_command_gives_bit_identical_metrics(tmp_path, reference):
    done = run(*ARGS, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()


def test_kill_9_between_checkpoints_then_resume_is_bit_identical(tmp_path, reference):
    code, _ = start_and_stop(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    epoch = saved_epoch(tmp_path / "checkpoint.eqx")
    assert 0 < epoch < 800 and epoch % 25 == 0
    # The per-epoch log survives the kill: whole lines, one per epoch, at least up to the checkpoint.
    logged = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, len(logged) + 1)) and len(logged) >= epoch
    assert_user_error(run(*ARGS, "--out", str(tmp_path)), f"holds an unfinished run (epoch {epoch} of 800)")
    resume_and_compare(tmp_path, reference)
    # Resumed from the checkpoint, the log lists every epoch once, as the uninterrupted run's.
    assert (tmp_path / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize("how", [signal.SIGINT])  # SIGTERM: same path, tested in-process
def test_sigint_and_sigterm_save_a_checkpoint_and_exit_cleanly(tmp_path, reference, how):
    code, stderr = start_and_stop(tmp_path, how)
    assert code == 128 + how, stderr
    assert f"interrupted by {how.name}" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert 0 < saved_epoch(tmp_path / "checkpoint.eqx") < 800
    resume_and_compare(tmp_path, reference)


def test_resume_with_other_options_is_refused_and_the_checkpoint_kept(tmp_path):
    done = run(*ARGS[:-2], "--out", str(tmp_path), "--epochs", "20")
    assert done.returncode == 0, done.stderr
    before = (tmp_path / "checkpoint.eqx").read_bytes()
    out = run(*ARGS[:-2], "--resume", str(tmp_path), "--epochs", "20", "--hidden-dim", "8")
    assert_user_error(out, "belongs to a different run (train.hidden_dim: 16 in the checkpoint, 8 now)")
    assert (tmp_path / "checkpoint.eqx").read_bytes() == before
    assert_user_error(run(*ARGS, "--resume", str(tmp_path / "none")), "no checkpoint at")
    # A fresh run with other options into the finished run's folder is refused as well.
    again = run(*ARGS[:-2], "--out", str(tmp_path), "--epochs", "20", "--hidden-dim", "8")
    expected = "holds a finished run with other options (train.hidden_dim: 16 in the checkpoint, 8 now)"
    assert_user_error(again, expected)
    assert (tmp_path / "checkpoint.eqx").read_bytes() == before


def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_completes(tmp_path, reference):
    first = start(tmp_path, 25)
    second = run(*ARGS, "--out", str(tmp_path), "--seed", "1")
    assert_user_error(second, f"output folder {tmp_path} is in use by another run (pid {first.pid})")
    assert first.wait(timeout=240) == 0, first.stderr.read()
    assert (tmp_path / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()


def test_a_full_disk_mid_run_is_one_line_and_the_resume_is_bit_identical(tmp_path, reference):
    """A file size limit (RLIMIT_FSIZE) stands in for a disk that fills up: the log and the
    checkpoint grow with every epoch, so a write part-way through the run fails."""

    # The limit is set in the child before it becomes the command (no fork of this process,
    # whose JAX threads make preexec_fn unsafe), and inherited across the exec.
    limited = (
        "import resource, sys, os; resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000)); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    out = subprocess.run(
        [sys.executable, "-c", limited, *ARGS, "--out", str(tmp_path), "--quiet"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert_user_error(out, f"cannot write {tmp_path}/")
    assert "File too large; the last checkpoint" in out.stderr and f"--resume {tmp_path}" in out.stderr
    epoch = saved_epoch(tmp_path / "checkpoint.eqx")  # intact: its header and payload check out
    assert 0 < epoch < 800 and epoch % 25 == 0
    logged = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, len(logged) + 1)) and len(logged) >= epoch  # whole lines only
    assert not list(tmp_path.glob(f".*{TEMP_SUFFIX}"))  # the failed write's temporary file is gone
    resume_and_compare(tmp_path, reference)


def test_a_prime_epoch_count_checkpoints_on_cadence_and_answers_sigint_within_a_chunk(tmp_path):
    args = [*ARGS[:3], "--hidden-dim", "4", "--epochs", "9973", "--checkpoint-every", "100"]
    proc = spawn(*args, "--out", str(tmp_path))
    seen, deadline = set(), time.monotonic() + 120
    while len(seen) < 3 and proc.poll() is None and time.monotonic() < deadline:
        seen.add(saved_epoch(tmp_path / "checkpoint.eqx"))
        seen.discard(0)
        time.sleep(0.01)
    assert len(seen) >= 3 and all(epoch % 100 == 0 for epoch in seen), seen  # every 100 epochs
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    answered = time.monotonic() - sent
    stderr = proc.stderr.read()
    assert code == 130 and "Traceback" not in stderr, stderr
    assert answered < 10, answered  # chunks aim at a second; a save takes milliseconds
    epoch = saved_epoch(tmp_path / "checkpoint.eqx")
    assert f"interrupted by SIGINT at epoch {epoch}; checkpoint saved" in stderr and epoch < 9973


# A short run (about 5 s: imports, compilation, training, figures) to interrupt at any moment.
QUICK = ["experiments/sine_wave.py", "--hidden-dim", "8", "--length", "120", "--window", "10", "--quiet"]
WHOLE = ("config.json", "metrics.json", "predictions.json", "predictions.png", "loss.png")


def test_signals_at_random_moments_never_leave_a_torn_file(tmp_path):
    """12 signals at random moments of a run over a finished run with other options: each
    file is afterwards the old run's or the new run's, whole, never a mix or a torn one.

    The moments span the second reference run, which (like the trials) finds its programs
    compiled already, in the persistent cache."""
    old, new = tmp_path / "old", tmp_path / "new"
    assert run(*QUICK, "--seed", "1", "--out", str(old)).returncode == 0
    began = time.monotonic()
    assert run(*QUICK, "--out", str(new)).returncode == 0
    wall = time.monotonic() - began
    rng = random.Random(0)
    outcomes = []
    for trial in range(12):
        out = tmp_path / f"trial{trial}"
        shutil.copytree(old, out)
        proc = spawn(*QUICK, "--out", str(out), "--overwrite")
        delay = rng.uniform(0.0, wall)
        time.sleep(delay)
        how = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
        proc.send_signal(how)
        code, stderr = proc.wait(timeout=60), proc.stderr.read()
        outcomes.append(code)
        if code == -how:  # within the interpreter's own start-up, before any of our code runs
            assert delay < 0.5, (trial, delay)
        else:
            assert code in (0, 128 + how), (trial, code, stderr)
            assert stderr.count("\n") == (code != 0) and "Traceback" not in stderr, (trial, stderr)
        for name in WHOLE:
            got = (out / name).read_bytes()
            assert got in ((old / name).read_bytes(), (new / name).read_bytes()), (trial, name)
        assert saved_epoch(out / "checkpoint.eqx") > 0  # the old one, or a new one: whole
        for line in (out / "metrics.jsonl").read_text().splitlines():
            json.loads(line)
        json.loads((out / "timing.json").read_text())
    assert len(set(outcomes)) > 1, outcomes  # the moments reached both inside and after the run
