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
STREAMS = "streams"  # the axis of a stream trainer's parallel streams, for data parallelism


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


def stream_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``"streams"`` over ``devices`` (default: every device of every
    process), over which ``rnn_jax.runs.driver.fit_stream`` splits its parallel streams."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise InputError("devices must not be empty")
    return Mesh(devices, (STREAMS,))


def shard_streams(array, mesh: Mesh):
    """``array (S, ...)``, the same in every process, split along its stream axis over ``mesh``:
    each device gets its rows, and each process builds only the rows of its own devices."""
    import numpy as np

    host = np.asarray(array)
    if host.ndim == 0 or host.shape[0] % mesh.devices.size:
        raise InputError(
            f"the stream axis {host.shape[:1]} must split evenly over the mesh's {mesh.devices.size} devices"
        )
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def stream_state_shardings(state, mesh: Mesh):
    """Shardings for a stream trainer's state (``rnn_jax.train.stream.StreamState``, or its
    shapes): the carried states split along their stream axis, everything else replicated."""
    split, whole = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])), replicated_sharding(mesh)
    return type(state)(
        params=jax.tree.map(lambda _: whole, state.params),
        opt_state=jax.tree.map(lambda _: whole, state.opt_state),
        carry=jax.tree.map(lambda _: split, state.carry),
        start=whole,
    )
