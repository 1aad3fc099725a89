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


def run_in_process(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python script *args`` run in this process through the script's ``main(argv)``, with
    its exit code and output captured like ``run``'s: for checks of argument handling, where a
    fresh process would test nothing more than start-up (the commands' start-up has tests of
    its own)."""
    import contextlib
    import importlib.util
    import io

    path = ROOT / script
    folder = str(path.parent)
    if folder not in sys.path:  # the scripts import their helpers/ package from their folder
        sys.path.insert(0, folder)
    name = f"_script_{path.stem}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = module.main(list(args))
        except SystemExit as stop:
            code = stop.code
    return subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())
