"""Where a timing came from: the CPU's model and the vector instruction sets it offers.

Speed ratios between rnn_jax's passes differ between CPU kinds (AVX-512 against AVX2 only), so
every benchmark records this next to its numbers."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "fma", "avx512f")


def describe_machine() -> dict:
    """``{"cpu": model name, "cores": n, "avx2": bool, "fma": bool, "avx512f": bool}`` from
    ``/proc/cpuinfo``, or from ``platform`` where that file does not exist."""
    model, flags = "", set()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {
        "cpu": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        **{flag: flag in flags for flag in FLAGS},
    }


def machine_line(machine: dict) -> str:
    """``"CPU: <model>, <n> cores (avx2: True, fma: True, avx512f: False)"``."""
    flags = ", ".join(f"{flag}: {machine[flag]}" for flag in FLAGS)
    return f"CPU: {machine['cpu']}, {machine['cores']} cores ({flags})"
