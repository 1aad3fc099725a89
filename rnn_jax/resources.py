"""Memory a run needs, estimated from shapes alone before anything is allocated or compiled,
and checked against what the machine has.

The estimates are lower bounds (parameters, optimiser state, and the hidden states a backward
pass must keep), so a refusal means the run clearly cannot fit; a run that passes may still need
more (XLA's temporaries). Sizes come from ``jax.eval_shape``, which allocates nothing, so an
absurd ``--hidden-dim`` is refused in milliseconds instead of filling the machine's memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import jax

from rnn_jax.errors import InputError
from rnn_jax.io import size_text


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup (v2) memory limit, if it has one."""
    try:
        with open("/proc/self/cgroup") as f:
            path = f.read().strip().split("::")[-1]
        base = f"/sys/fs/cgroup{path}".rstrip("/")
        with open(f"{base}/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(f"{base}/memory.current") as f:
            return int(limit) - int(f.read())
    except (OSError, ValueError, IndexError):
        return None


def available_bytes(device: jax.Device | None = None) -> int | None:
    """Memory a run may still take on ``device`` (default: JAX's first): an accelerator's free
    allocator bytes, or for the CPU the kernel's ``MemAvailable`` (within a cgroup limit, if
    any). ``None`` when it cannot be told."""
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return None
    room = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    room = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        if hasattr(os, "sysconf"):
            room = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    group = _cgroup_room()
    return group if room is None else room if group is None else min(room, group)


def tree_bytes(tree) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) leaf of ``tree``."""
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def check_fits(parts: Mapping[str, int], *, what: str, advice: str, device: jax.Device | None = None) -> None:
    """Refuse, with one line giving the estimate, its parts and the limit, when the ``parts``
    (name -> bytes) together exceed the memory available."""
    need, room = sum(parts.values()), available_bytes(device)
    if room is None or need <= room:
        return
    detail = ", ".join(f"{name} {size_text(n)}" for name, n in parts.items() if n)
    raise InputError(
        f"not enough memory for {what}: it needs at least {size_text(need)} ({detail}), and "
        f"{size_text(max(room, 0))} is available; {advice}"
    )


TRAINING_ADVICE = "use a smaller hidden_dim or batch_size (--hidden-dim, --batch-size)"
