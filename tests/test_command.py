"""Errors are classified (bad input, a failed write, a bug) and signals deferred or answered."""

import errno
import signal
from pathlib import Path

import jax.numpy as jnp
import pytest

from rnn_jax.errors import InputError, InputTypeError, WriteError
from rnn_jax.runs import signals as command
from rnn_jax.runs.signals import Interrupted, deferred_signals, run_command


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_bad_input_is_one_line_and_exit_code_2(capsys):
    def bad():
        raise InputError("hidden_dim must be a positive integer; got 0")

    assert run_command(bad) == 2
    assert one_line(capsys) == "error: hidden_dim must be a positive integer; got 0"
    assert issubclass(InputTypeError, TypeError) and issubclass(InputError, ValueError)  # for callers


@pytest.mark.parametrize(
    "bug",
    [
        lambda: 1 / 0,
        lambda: jnp.zeros(3).reshape(2),  # a ValueError or TypeError from a library is still a bug
        lambda: {}["missing"],
    ],
)
def test_anything_else_is_an_internal_error_with_its_traceback_saved(tmp_path, capsys, bug):
    assert run_command(bug, tmp_path) == 1
    line = one_line(capsys)
    assert line.startswith("internal error: ") and "(a bug in rnn_jax, not in your input)" in line
    assert line.endswith(f"traceback saved to {tmp_path / 'traceback.txt'}")
    assert "Traceback (most recent call last)" in (tmp_path / "traceback.txt").read_text()


def test_without_an_output_folder_the_traceback_goes_to_the_temporary_folder(capsys):
    assert run_command(lambda: 1 / 0) == 1
    saved = one_line(capsys).split("traceback saved to ")[1]
    assert "ZeroDivisionError" in Path(saved).read_text()


def test_a_failed_write_names_the_file_and_says_how_to_resume(tmp_path, capsys):
    (tmp_path / "checkpoint.eqx").write_bytes(b"a checkpoint")

    def full_disk():
        raise WriteError(tmp_path / "loss.png", OSError(errno.ENOSPC, "No space left on device"))

    assert run_command(full_disk, tmp_path) == 2
    assert one_line(capsys) == (
        f"error: cannot write {tmp_path / 'loss.png'}: No space left on device; the last checkpoint, "
        f"{tmp_path / 'checkpoint.eqx'}, is intact: free some space, then run the same command with "
        f"--resume {tmp_path}"
    )


def test_an_interrupted_run_says_where_its_checkpoint_is(tmp_path, capsys):
    def stopped():
        raise Interrupted(signal.SIGTERM, 40, tmp_path / "checkpoint.eqx")

    assert run_command(stopped, tmp_path) == 143
    assert one_line(capsys) == (
        f"interrupted by SIGTERM at epoch 40; checkpoint saved to {tmp_path / 'checkpoint.eqx'}; "
        f"continue with the same command and --resume {tmp_path}"
    )


def test_in_a_library_call_deferred_signals_are_recorded_then_the_handlers_restored():
    assert not command._installed  # the tests never install the commands' handlers
    before = signal.getsignal(signal.SIGHUP)
    with deferred_signals() as received:
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGINT)
    assert received == [signal.SIGHUP, signal.SIGINT]
    assert signal.getsignal(signal.SIGHUP) is before
