"""Output folders: checked before any work starts, and owned by one run at a time.

``claim_output_folder`` makes sure a run can write its results where it was told to before it
reads data or compiles anything: the name is legal, the folder is a folder (created if needed),
a probe file can be written there, and some space is free. It then takes an advisory lock on
the folder (``fcntl.flock`` on a lock file that holds the owner's pid), held until the process
ends; the kernel releases it even after ``kill -9``, so a lock is never stale. A second run
into a locked folder is refused. Temporary files left by a save that was killed are removed;
only those, recognised by the suffix this package gives them (``rnn_jax.io.TEMP_SUFFIX``).

A folder owns only what its run makes: where a file of the kinds a run writes (the lock,
checkpoints, logs, results, figures) is a link that leads out of the folder, or a FIFO, socket
or device, the folder is refused before anything is written, rather than written through.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
from pathlib import Path

from rnn_jax.errors import InputError
from rnn_jax.io import TEMP_SUFFIX, size_text

LOCK_NAME = ".rnn_jax.lock"
# The kinds of file a run writes, in its folder or a subfolder of it (refit/, a sweep's members).
RUN_FILE_SUFFIXES = (".eqx", ".json", ".jsonl", ".csv", ".png")
MIN_FREE_BYTES = 64 << 20  # checkpoints, metrics and figures of the runs this code trains
_held: dict[Path, int] = {}  # folder -> the open lock file's descriptor, for the process's life


class FolderError(InputError):
    """An output folder that cannot be used; the message says why."""


def _check_name(out: Path) -> None:
    if str(out).strip() == "" or out == Path(""):
        raise FolderError("the output folder's name is empty; give --out a folder")
    for part in out.parts:
        if len(os.fsencode(part)) > 255:
            raise FolderError(f"output folder {out}: the name {part[:20]}... is longer than 255 bytes")


def _probe(out: Path) -> None:
    probe = out / f".rnn_jax.probe.{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"probe")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise FolderError(f"cannot write in output folder {out}: {err.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def lock_name(process: int = 0) -> str:
    """The lock file of a run's process ``process`` (0, or the only one: ``LOCK_NAME``)."""
    return LOCK_NAME if process == 0 else f".rnn_jax.process-{process}.lock"


def _is_run_file(path: Path) -> bool:
    is_lock = path.name.startswith(".rnn_jax.") and path.suffix == ".lock"
    return is_lock or path.suffix in RUN_FILE_SUFFIXES


def _real_dir(path: Path) -> bool:
    return stat.S_ISDIR(path.lstat().st_mode)  # a link to a folder elsewhere is not searched


def _check_run_files(out: Path) -> None:
    """Refuse the folder where a name a run writes is a link out of it or a special file."""
    inside = out.resolve()
    entries = [*out.iterdir(), *(p for d in out.iterdir() if _real_dir(d) for p in d.iterdir())]
    for path in sorted(filter(_is_run_file, entries)):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            target = path.resolve()
            if target != inside and inside not in target.parents:
                raise FolderError(
                    f"output folder {out}: {path.relative_to(out)} is a link to {target}, outside the "
                    "folder; a run writes only its own files: remove the link or choose another --out"
                )
        elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise FolderError(
                f"output folder {out}: {path.relative_to(out)} is not a regular file (a pipe, device or "
                "socket); remove it or choose another --out"
            )


def _lock(out: Path, name: str) -> int:
    try:
        # O_NOFOLLOW: a link planted under the lock's name is refused, never followed.
        fd = os.open(out / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as err:
        raise FolderError(f"cannot write in output folder {out}: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FolderError(f"output folder {out}: {name} is not a regular file; remove it")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderError(
            f"output folder {out} is in use by another run (pid {owner}); wait for it to end, or "
            "choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def claim_output_folder(out: str | Path, *, process: int = 0) -> Path:
    """Check that ``out`` can take a run's results and lock it for this process (idempotent).
    Raises ``FolderError`` (a ``ValueError``) with a one-line reason.

    ``process``: this process's index among the processes of one run that share the folder
    (``rnn_jax.runs.processes``); each takes a lock of its own, and process 0 alone removes
    stale temporary files (the others start before anything is saved)."""
    out = Path(out)
    _check_name(out)
    key = out.resolve() if out.exists() else out.absolute()
    if key in _held:
        return out
    if out.exists() and not out.is_dir():
        raise FolderError(f"output folder {out} is a file; give --out a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FolderError(f"cannot create output folder {out}: {err.strerror}") from None
    _probe(out)
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        need = size_text(MIN_FREE_BYTES)
        raise FolderError(f"output folder {out} has {size_text(free)} free; a run needs at least {need}")
    _check_run_files(out)
    _held[out.resolve()] = _lock(out, lock_name(process))
    if process > 0:
        return out
    # Left by a save that was killed (here or in a subfolder such as refit/); ours come later.
    for stale in [*out.glob(f".*{TEMP_SUFFIX}"), *out.glob(f"*/.*{TEMP_SUFFIX}")]:
        with contextlib.suppress(OSError):
            if stat.S_ISREG(stale.lstat().st_mode):
                stale.unlink()
    return out


def release_output_folder(out: str | Path) -> None:
    """Give up the lock ``claim_output_folder`` took (the end of the process does it too)."""
    fd = _held.pop(Path(out).resolve(), None)
    if fd is not None:
        os.close(fd)
