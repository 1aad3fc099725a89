"""What every command does around its work: answer signals at any moment, and classify errors.

Signals (SIGINT, SIGTERM, SIGHUP) end a command with one line and exit code 128 + the signal's
number (130, 143, 129), whatever it was doing:

- before training (importing, checking, compiling), or in a command without checkpoints: at
  once; each file is whole or untouched (all are written to a temporary file and renamed);
- while training with checkpoints: at the next chunk boundary, after saving (``Interrupted``);
- after training, while results are written: once they are all written, so that a folder
  holds the whole set of results or the previous one, never a mix.

Errors: ``InputError`` (validation) is one line, exit code 2; ``WriteError`` (a full disk) is one
line naming the file and how to resume, exit code 2; anything else is an internal error: one
line saying so and where its traceback was saved, exit code 1.

Only commands call ``answer_signals`` (the library never changes a process's handlers by
itself). This module imports nothing heavy, so scripts call it before importing JAX.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from rnn_jax.errors import InputError, WriteError
from rnn_jax.io import size_text

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TRACEBACK_FILE = "traceback.txt"
CHECKPOINT_FILE = "checkpoint.eqx"  # rnn_jax.runs.checkpoint.FILENAME, without importing JAX

_installed = False  # answer_signals() was called: this process is a command
_deferring = False  # signals are recorded, to be acted on at the next safe point
_received: list[int] = []
_reported = False  # an Interrupted already told the user about the received signal


class Interrupted(Exception):
    """A signal stopped a run at a chunk boundary, after its checkpoint was saved."""

    def __init__(self, signum: int, epoch: int, checkpoint: Path):
        self.signum, self.epoch, self.checkpoint = signum, epoch, checkpoint
        super().__init__(f"interrupted by {signal.Signals(signum).name} at epoch {epoch}")


def _say(line: str) -> None:
    # After SIGHUP the terminal may be gone; the exit code still tells.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def _answer(signum: int) -> None:
    if _deferring:
        _received.append(signum)
        return
    name = signal.Signals(signum).name
    _say(f"interrupted by {name}; stopped at once, with no file half-written")
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    # Every output is written to a temporary file and renamed, so ending here leaves each file
    # whole or untouched; a stale temporary file is removed by the next run into the folder.
    os._exit(128 + signum)


def _watch(read_fd: int) -> None:
    while True:
        for signum in os.read(read_fd, 64):
            if signum in SIGNALS:
                _answer(signum)


def answer_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP end this process as the module docstring says. Call it
    first thing in a command (before importing JAX); only the main thread can.

    No exception is raised into the interrupted code (an exception thrown out of a native
    callback aborts the process, and one raised inside a garbage-collection callback is
    swallowed). Instead the C-level handler writes the signal's number to a pipe
    (``signal.set_wakeup_fd``) and a watcher thread acts on it, even while the main thread is
    inside a long native call such as XLA's compiler."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in SIGNALS:
        signal.signal(signum, lambda *_: None)  # the watcher thread answers
    threading.Thread(target=_watch, args=(read_fd,), name="rnn_jax-signals", daemon=True).start()
    _installed = True


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Within the block, SIGINT/SIGTERM/SIGHUP are recorded in the yielded list instead of acted
    on; the caller checks it at safe points. In a command (``answer_signals``) the deferral
    outlasts the block, to the end of the command, so that its results are written whole; in a
    library call the previous handlers come back at the end of the block. Outside the main
    thread nothing changes."""
    global _deferring
    if _installed:
        _deferring = True
        yield _received
        return
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {s: signal.signal(s, lambda signum, _: received.append(signum)) for s in SIGNALS}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _save_traceback(err: BaseException, out: Path | None) -> Path | None:
    text = "".join(traceback.format_exception(err))
    places = [out / TRACEBACK_FILE] if out is not None else []
    places.append(Path(tempfile.gettempdir()) / f"rnn_jax-traceback-{os.getpid()}.txt")
    for path in places:
        with contextlib.suppress(OSError):
            path.write_text(text)
            return path
    return None


def _resume_hint(out: Path | None) -> str:
    if out is not None and (out / CHECKPOINT_FILE).is_file():
        return (
            f"; the last checkpoint, {out / CHECKPOINT_FILE}, is intact: free some space, then run "
            f"the same command with --resume {out}"
        )
    return ""


def run_command(fn: Callable[[], int | None], out: Path | None = None) -> int:
    """Run a command's work ``fn`` (its result is the exit code; ``None`` means 0) and turn what
    it raises into one line and an exit code, as the module docstring says. ``out`` is the
    command's output folder, if it has one."""
    try:
        return _classified(fn, out)
    finally:
        if _installed:
            # The work is done and its exit code chosen. Python's shutdown would restore the
            # default handlers, and a signal then would kill the process with every result
            # already written; ignored instead, it leaves the exit code as it is.
            for signum in SIGNALS:
                signal.signal(signum, signal.SIG_IGN)


def _classified(fn: Callable[[], int | None], out: Path | None) -> int:
    global _reported
    try:
        code = fn() or 0
    except Interrupted as stop:
        _reported = True
        resume = f"; continue with the same command and --resume {out}" if out is not None else ""
        _say(f"{stop}; checkpoint saved to {stop.checkpoint}{resume}")
        return 128 + stop.signum
    except InputError as err:
        _say(f"error: {err}")
        return 2
    except WriteError as err:
        _say(f"error: {err}{_resume_hint(out)}")
        return 2
    except BrokenPipeError:  # the reader went away (``| head``): the console script's to handle
        raise
    except MemoryError:
        _say("error: out of memory; try a smaller --batch-size, --hidden-dim or data set")
        return 2
    except Exception as err:  # noqa: BLE001 -- anything else is a bug, reported as one
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "RESOURCE_EXHAUSTED" in first or "Out of memory" in first:  # XLA's allocator refused
            asked = re.search(r"allocating (\d+) bytes", first)
            size = f" (it asked for {size_text(int(asked[1]))})" if asked else ""
            _say(f"error: out of memory{size}; try a smaller --batch-size, --hidden-dim or data set")
            return 2
        saved = _save_traceback(err, out)
        where = f"; traceback saved to {saved}" if saved is not None else ""
        _say(f"internal error: {type(err).__name__}: {first} (a bug in rnn_jax, not in your input){where}")
        return 1
    if _received and not _reported:
        name = signal.Signals(_received[0]).name
        where = f" in {out}" if out is not None else ""
        _say(f"interrupted by {name} after training; the results were all written first{where}")
        return 128 + _received[0]
    return code
