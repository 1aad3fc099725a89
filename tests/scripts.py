"""Running the package's commands as a user would, in a subprocess, and checking user errors."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Subprocesses may cache the bytecode of our own modules, so each start does not recompile them.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(*args: str) -> subprocess.CompletedProcess:
    """``python *args`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300, env=ENV
    )


def assert_user_error(out: subprocess.CompletedProcess, message: str) -> None:
    """Exit code 2, the message on stderr as its only line, no traceback."""
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
