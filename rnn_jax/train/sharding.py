"""Placing the member axis of a sweep on a device mesh.

Every array with a leading member axis (keys, hyperparameters, and so the whole training state)
is split across the devices of a one-axis mesh named ``"members"``; the data is replicated. Under
``jit`` the computation then runs where its members live, with no communication: members are
independent. The same code runs on one CPU, one GPU, or every chip of a TPU/GPU host.

One CPU: JAX shows a host's CPU as one device, whose programs run their (small) matrix products
on one core at a time. ``use_cpu_cores()`` splits it into one device per core before anything
runs, so that a sweep's members train on every core at once.

Several hosts: call ``jax.distributed.initialize()`` at start-up on every host; ``jax.devices()``
then lists the devices of all hosts, and ``member_mesh()`` spans them. Each host must build the
same sweep; results come back with ``jax.experimental.multihost_utils.process_allgather``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rnn_jax.errors import InputError

MEMBERS = "members"


def use_cpu_cores(n_devices: int | None = None) -> int:
    """Show the host CPU to JAX as ``n_devices`` devices (default: one per core this process may
    use) and return that number. Call it before the first JAX computation: JAX reads the setting
    when it starts its backends. Devices of other platforms (GPU, TPU) are not affected."""
    if n_devices is None:
        n_devices = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
        raise InputError(f"n_devices must be a positive integer; got {n_devices!r}")
    try:
        jax.config.update("jax_num_cpu_devices", n_devices)
    except RuntimeError as err:
        raise RuntimeError(
            "use_cpu_cores must be called before any JAX computation (JAX has already started "
            "its backends in this process)"
        ) from err
    return n_devices


def member_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh over ``devices`` (default: all of them)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise InputError("devices must not be empty")
    return Mesh(devices, (MEMBERS,))


def padded_size(n_members: int, mesh: Mesh) -> int:
    """The smallest multiple of the device count that holds ``n_members``."""
    n_dev = mesh.devices.size
    return -(-n_members // n_dev) * n_dev


def pad_members(tree, n_padded: int):
    """Repeat the last member until the leading axis has ``n_padded`` entries."""

    def pad(x):
        extra = n_padded - x.shape[0]
        return x if extra == 0 else jax.numpy.concatenate([x, jax.numpy.repeat(x[-1:], extra, axis=0)])

    return jax.tree.map(pad, tree)


def member_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split across the mesh."""
    return NamedSharding(mesh, PartitionSpec(MEMBERS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def shard_members(tree, mesh: Mesh):
    """Split the leading (member) axis of every leaf across the mesh."""
    return jax.device_put(tree, member_sharding(mesh))


def replicate(tree, mesh: Mesh):
    """A full copy of every leaf on every device of the mesh."""
    return jax.device_put(tree, replicated_sharding(mesh))
