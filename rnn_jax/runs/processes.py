"""One sweep over several processes, on one host or many, on JAX's multi-controller runtime.

Every process runs the same program with the same members and data; ``start_processes`` joins
them through ``jax.distributed`` (process 0's host is the coordinator; on CPU the collectives
go over TCP with gloo). ``rnn_jax.runs.sweep.run_sweep`` then lays the members out as if every
device of every process were one process's (``MemberLayout``): process ``p`` trains the
contiguous block of members that falls on its own devices, with the same per-device program,
so the gathered result is bit-identical to one process holding all the devices.

Between chunks of epochs the processes exchange one small integer vector: the chunk length
(process 0 measures and decides), whether a checkpoint is due, and any signal received, so
that every process runs the same chunks, saves at the same epoch and stops together. The
chunk's metrics are gathered too, so each process sees the whole sweep's (for logs and for
the decision to end early). Each process checkpoints its own block (``process_checkpoint``).
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnn_jax.errors import InputError

# How long a process waits for the others to join before giving up.
JOIN_TIMEOUT_SECONDS = 300
# What a process's checkpoint adds to the run's description: which members it holds, of how
# many processes' sweep (a resume on another layout is refused by name).
LAYOUT_KEYS = ("sweep_members", "sweep_processes")


@dataclasses.dataclass(frozen=True)
class Processes:
    """Where this process stands among the processes of one run.

    ``count`` processes in all, this one of ``index`` ``0 .. count-1``; ``coordinator`` is
    ``"host:port"`` of process 0, which every process must be able to reach (``None`` with
    one process)."""

    count: int = 1
    index: int = 0
    coordinator: str | None = None

    def __post_init__(self):
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise InputError(f"num_processes must be a positive integer; got {self.count!r}")
        index = self.index
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.count:
            raise InputError(f"process_id must be an integer in [0, {self.count - 1}]; got {self.index!r}")
        if self.count > 1:
            check_address(self.coordinator)


def check_address(address: str | None) -> tuple[str, int]:
    """``"host:port"`` split into its parts; anything else is refused, naming the argument."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError(f"coordinator must be HOST:PORT with a port in 1..65535; got {address!r}")
    return host, int(port)


def start_processes(processes: Processes, *, timeout_s: int = JOIN_TIMEOUT_SECONDS) -> None:
    """Join this process to the others (``jax.distributed.initialize``); nothing with one process.

    Call it before the first JAX computation, after ``use_cpu_cores`` if the CPU is split.
    Every process must call it with the same ``count`` and ``coordinator``."""
    if processes.count == 1:
        return
    import jax

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    jax.distributed.initialize(
        coordinator_address=processes.coordinator,
        num_processes=processes.count,
        process_id=processes.index,
        initialization_timeout=timeout_s,
    )
    # JAX's preemption notifier takes SIGTERM for itself (and swallows it); a run here saves and
    # stops on it, as one process does, so Python's handlers are put back.
    if threading.current_thread() is threading.main_thread():
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)


def this_process() -> tuple[int, int]:
    """``(index, count)`` of this process among those JAX knows of."""
    import jax

    return jax.process_index(), jax.process_count()


class MemberLayout(NamedTuple):
    """Where the members of a sweep live: ``n`` members padded to ``n_padded`` (a multiple of
    every process's devices together), this process holding ``[start, stop)`` of the padded axis."""

    n: int
    n_padded: int
    start: int
    stop: int

    @property
    def real_stop(self) -> int:
        """The end of this process's block without the padding."""
        return min(self.stop, self.n)


def member_layout(n_members: int, local_devices: int, index: int, count: int) -> MemberLayout:
    """The layout of ``n_members`` over ``count`` processes of ``local_devices`` devices each.

    The padded axis is cut as one process with ``count * local_devices`` devices would cut it
    (``rnn_jax.train.sharding.padded_size``), so each device holds the same members either way."""
    n_devices = count * local_devices
    n_padded = -(-n_members // n_devices) * n_devices
    block = n_padded // count
    return MemberLayout(n_members, n_padded, index * block, (index + 1) * block)


def check_same_local_devices(local_devices: int) -> None:
    """Refuse processes that hold different numbers of devices: the layout needs equal blocks."""
    counts = [int(c) for c in all_processes(np.array([local_devices], np.int32))[:, 0]]
    if len(set(counts)) > 1:
        raise InputError(
            f"every process must use the same number of devices; they use {counts} "
            "(give each the same --cpu-devices, or the same number of accelerators)"
        )


def all_processes(row: np.ndarray) -> np.ndarray:
    """Every process's ``row`` (the same shape and dtype in each), stacked ``(processes, ...)``."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(row)))


def gather_blocks(tree, layout: MemberLayout):
    """Leaves ``(stop - start, ...)`` of this process's block, from every process, joined into
    ``(n, ...)`` on every process (the padding dropped)."""
    import jax
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(jax.tree.map(np.asarray, tree), tiled=True)
    return jax.tree.map(lambda x: np.asarray(x)[: layout.n], gathered)


class ChunkDecision(NamedTuple):
    """What the processes agree on after a chunk: the next chunk's length (process 0's), whether
    a checkpoint is due (process 0's clock), and a signal any process received (0: none)."""

    next_count: int
    save_due: bool
    signum: int


def agree(decision: ChunkDecision) -> ChunkDecision:
    """This process's ``decision`` exchanged with every other's: the same answer in each."""
    rows = all_processes(np.array([decision.next_count, decision.save_due, decision.signum], np.int64))
    signals = [int(s) for s in rows[:, 2] if s]
    return ChunkDecision(int(rows[0, 0]), bool(rows[0, 1]), signals[0] if signals else 0)


def process_checkpoint(path: Path, index: int, count: int) -> Path:
    """The file in which process ``index`` of ``count`` keeps its members: ``path`` itself with
    one process, else ``path`` with ``.process-I-of-N`` before its suffix."""
    path = Path(path)
    return path if count == 1 else path.with_name(f"{path.stem}.process-{index}-of-{count}{path.suffix}")


def saved_process_counts(path: Path) -> list[int]:
    """The process counts of the sweep checkpoints found beside ``path`` (1: ``path`` itself)."""
    path = Path(path)
    counts = {1} if path.exists() else set()
    for found in path.parent.glob(f"{path.stem}.process-*-of-*{path.suffix}"):
        tail = found.name[len(path.stem) + len(".process-") : len(found.name) - len(path.suffix)]
        _, _, count = tail.partition("-of-")
        if count.isdigit():
            counts.add(int(count))
    return sorted(counts)
