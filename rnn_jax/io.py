"""Atomic file output: a crash mid-write leaves the previous file intact, never half a file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rnn_jax.errors import InputError, WriteError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# What open() would give a new file (0644 under the usual umask 022); mkstemp's own 0600 would
# hide results from the rest of a group on a shared machine.
FILE_MODE = 0o666 & ~_umask()


# Every temporary file this package makes ends so; a folder's clean-up removes these and
# nothing else (a user's own ``.draft.tmp`` is theirs).
TEMP_SUFFIX = ".rnn_jax-tmp"


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it. The
    file gets the permissions a plain ``open`` would give it (the process's umask applies). A
    failed write (a full disk) raises ``WriteError`` naming ``path``, which is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as err:
        raise WriteError(path, err) from err
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise WriteError(path, err) from err
        raise
    return path


def check_field_types(cls: type, values: dict, source: str, prefix: str = "") -> None:
    """Refuse ``values`` read from a file (``source``, for the message) for the dataclass
    ``cls`` where a field does not hold its annotated type: ``int``, ``float`` (an ``int``
    too), ``str``, ``bool``, ``X | None``, and a nested dataclass as a mapping of its fields.
    Fields left out are not checked (they take their defaults). Raises ``InputError`` naming
    the field and the value; run it before ``cls(**values)``."""
    import dataclasses
    import types
    import typing

    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value, hint, name = values[field.name], hints[field.name], prefix + field.name
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise InputError(f"{source}: {name} must be a mapping of fields; got {value!r}")
            check_field_types(hint, value, source, f"{name}.")
            continue
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        allowed = typing.get_args(hint) if union else (hint,)
        if float in allowed:
            allowed = (*allowed, int)
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if not ok:
            names = " or ".join("null" if a is type(None) else a.__name__ for a in dict.fromkeys(allowed))
            raise InputError(f"{source}: {name} must be {names}; got {value!r}")


class UnreadableFile(InputError):
    """A file that is missing, not a regular file, too large, or cannot be read; the message
    says which (and the size limit)."""


def size_text(n: int) -> str:
    """``"42 bytes"``, ``"3.5 MiB"``, ``"1.0 GiB"``."""
    if n < 2**20:
        return f"{n:,} bytes"
    if n < 2**40:
        return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.1f} GiB"
    return f"{n / 2**40:,.1f} TiB"


def read_regular_file(path: str | Path, *, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    FIFOs, devices, sockets and folders are refused before anything is read (a FIFO would block
    and ``/dev/zero`` never ends), and so is a file larger than ``limit``; ``what`` names the
    file in the messages (``"CSV file"``, ``"checkpoint"``)."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UnreadableFile(f"{what} {path} does not exist") from None
    except OSError as err:
        raise UnreadableFile(f"cannot read {what} {path}: {err.strerror}") from None
    info = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(info.st_mode):
        problem = "is a folder, not a file"
    elif not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file (a pipe, device or socket)"
    elif info.st_size > limit:
        problem = f"is {size_text(info.st_size)}, above the limit of {size_text(limit)}"
    if problem is not None:
        os.close(fd)
        raise UnreadableFile(f"{what} {path} {problem}")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(info.st_size + 1)  # one byte more shows whether it grew
        except OSError as err:
            raise UnreadableFile(f"cannot read {what} {path}: {err.strerror}") from None
    if len(data) > min(limit, info.st_size):  # grew while being read
        raise UnreadableFile(f"{what} {path} grew while it was being read")
    return data


def digest_arrays(*arrays) -> str:
    """SHA-256 over the dtypes, shapes and bytes of ``arrays`` (host or device arrays): the
    identity of a run's data, so that a checkpoint resumes only on the data it was trained on."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        host = np.ascontiguousarray(np.asarray(array))
        digest.update(f"{host.dtype.str}{host.shape}".encode())
        digest.update(host.tobytes())
    return digest.hexdigest()


def _finite_or_null(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON, atomically; NaN and infinities become ``null``."""
    text = json.dumps(_finite_or_null(obj), indent=2, allow_nan=False) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode()))


def json_lines(rows: list[dict[str, Any]]) -> str:
    """One strict JSON object per line (NaN and infinities become ``null``)."""
    return "".join(json.dumps(_finite_or_null(row), allow_nan=False) + "\n" for row in rows)


def write_json_lines(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Replace ``path`` with ``rows`` as JSON lines, atomically."""
    text = json_lines(rows)
    return write_atomic(path, lambda f: f.write(text.encode()))


def append_json_lines(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` as JSON lines in one write, then fsync: a crash or ``kill -9`` leaves the
    lines of earlier calls whole (only the file system's own failure could tear the last one).
    A failed write (a full disk) raises ``WriteError``; a resumed run rewrites the file whole."""
    text = memoryview(json_lines(rows).encode())
    try:
        # O_NOFOLLOW: a link planted under the log's name is refused, never written through.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                while text:  # a full disk may take part of a write before it refuses the rest
                    text = text[os.write(fd, text) :]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, start)  # none of these lines, rather than part of one
                raise
        finally:
            os.close(fd)
    except OSError as err:
        raise WriteError(path, err) from err


def save_figure(fig, path: str | Path) -> Path:
    """Save a Matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        return write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)


def package_version() -> str:
    """The installed distribution's version, or ``"0+unknown"`` in a source tree never installed."""
    from importlib import metadata  # 50 ms: only when asked

    try:
        return metadata.version("rnn-jax")
    except metadata.PackageNotFoundError:
        return "0+unknown"
