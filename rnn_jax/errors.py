"""What can go wrong, by whose doing: the commands' error handler turns ``InputError`` into one
line and exit code 2, ``WriteError`` into one line naming the file, and anything else into an
internal error (exit code 1, traceback saved to a file).

Validation raises ``InputError`` (a ``ValueError``) or ``InputTypeError`` (also a
``TypeError``), so library users who catch the built-in exceptions keep working. Imports nothing
heavy: the commands import it before JAX.
"""

from __future__ import annotations

import errno
from pathlib import Path


class InputError(ValueError):
    """An argument, option, file or size that rnn_jax cannot use; the message says which and
    what was expected."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type (``isinstance`` checks of public functions)."""


def check_size(name: str, value: object) -> int:
    """``value`` as a size: an integer >= 1 (a NumPy integer too, not a bool). ``InputTypeError``
    for another type, ``InputError`` below 1; both name the argument.

    >>> check_size("hidden_dim", 0)
    Traceback (most recent call last):
    ...
    rnn_jax.errors.InputError: hidden_dim must be an integer >= 1; got 0
    """
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an integer >= 1; got {value!r} ({type(value).__name__})")
    if value < 1:
        raise InputError(f"{name} must be an integer >= 1; got {value}")
    return int(value)


class WriteError(OSError):
    """An output file could not be written (disk full, file too large, permissions). The file
    it would have replaced is intact: every output is written to a temporary file and renamed."""

    def __init__(self, path: str | Path, err: OSError):
        self.path = Path(path)
        reason = err.strerror or str(err)
        if err.errno == errno.ELOOP:
            reason = "it is a symbolic link, and a run never writes through one"
        super().__init__(err.errno, f"cannot write {self.path}: {reason}")

    def __str__(self) -> str:
        return self.strerror
