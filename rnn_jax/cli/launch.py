"""Starting the processes of one run on this machine: ``--num-processes N`` without ``--process-id``.

The command starts itself ``N`` times with ``--process-id I --coordinator 127.0.0.1:PORT`` (a
free port) and waits. Each process gets its share of the cores (``RNN_JAX_PROCESSES_HERE``,
read by ``cores_per_process``). A signal sent to the launcher (Ctrl-C, ``kill``) is passed on to
every process, which saves its checkpoint at the next chunk boundary as one process would.
When one process fails, the others are stopped (they would wait for it), and the exit code is
the first failure's. Process 0's output is shown as it comes; another's only if it failed
differently.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Set by the launcher in each process it starts: how many processes share this machine.
PROCESSES_HERE = "RNN_JAX_PROCESSES_HERE"
# How long the others may take to stop once one process has failed.
GRACE_SECONDS = 10.0


def cores_per_process() -> int:
    """This process's share of the cores it may use, when the launcher started several here."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    here = os.environ.get(PROCESSES_HERE, "1")
    return max(1, cores // max(1, int(here) if here.isdigit() else 1))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_here(script: str | Path, argv: Sequence[str], count: int) -> int:
    """Run ``python script *argv`` as ``count`` joined processes on this machine; their exit code."""
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile(mode="w+")) for _ in range(count - 1)]
        codes = run_joined(script, argv, count, logs)
        for i, (log, code) in enumerate(zip(logs, codes[1:], strict=True), start=1):
            log.seek(0)
            text = "".join(line for line in log if not line.startswith("[Gloo]")).strip()
            if code and code != codes[0] and text:
                print(f"process {i} of {count} (exit {code}): {text.splitlines()[-1]}", file=sys.stderr)
    return next((c for c in codes if c), 0)


def run_joined(script: str | Path, argv: Sequence[str], count: int, logs: list) -> list[int]:
    """Start the processes (process ``i > 0`` writing to ``logs[i - 1]``), pass signals on, and
    return their exit codes."""
    coordinator = f"127.0.0.1:{free_port()}"
    env = {**os.environ, PROCESSES_HERE: str(count)}
    children = [
        subprocess.Popen(
            [sys.executable, str(script), *argv, "--process-id", str(i), "--coordinator", coordinator],
            env=env,
            stdout=None if i == 0 else logs[i - 1],
            stderr=None if i == 0 else subprocess.STDOUT,
        )
        for i in range(count)
    ]

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return wait_all(children)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def wait_all(children: list[subprocess.Popen]) -> list[int]:
    """Every child's exit code; once one fails, the rest get ``GRACE_SECONDS`` and then SIGKILL."""
    failed_at = None
    while any(c.poll() is None for c in children):
        if failed_at is None and any(c.returncode for c in children if c.returncode is not None):
            failed_at = time.monotonic()
            for c in children:
                if c.poll() is None:
                    c.send_signal(signal.SIGTERM)
        if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
            for c in children:
                if c.poll() is None:
                    c.kill()
        time.sleep(0.05)
    return [c.returncode for c in children]
