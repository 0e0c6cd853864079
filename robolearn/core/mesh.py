"""The device mesh of data-parallel training: the batch is split over a "data" axis of every
device of every process, the state is replicated, and XLA inserts the gradient all-reduce.

    join(options)                      # --distributed: jax.distributed.initialize, first of all
    mesh = data_mesh()
    state = replicate(state, mesh)     # each process passes the same values
    batch = shard_batch(loader_batch, mesh)   # each process passes its own rows
    params = host(state.params)        # numpy on this process, e.g. for process 0 to score

Every trainer (world model, BC, reward classifier) runs this way on one CPU, on every device of
one host and on every device of several hosts; the loaders give each process its own block of
every global batch (robolearn.data.pipeline), so N processes train on exactly the batches of one.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from robolearn.core.errors import ConfigError


def join(options) -> None:
    """Join a multi-host job when `options` (robolearn.core.rundir.RunOptions) says --distributed:
    jax.distributed.initialize with its coordinator, process count and id (None: auto-detected on
    TPU pods, SLURM and Open MPI; JAX_COORDINATOR_ADDRESS is read too). Call it before anything
    touches a JAX backend."""
    if options.distributed:
        jax.distributed.initialize(
            coordinator_address=options.coordinator,
            num_processes=options.num_processes,
            process_id=options.process_id,
        )


def check_batch(batch_size: int) -> int:
    """This process's share of a global batch of `batch_size` (a one-line ConfigError unless it
    divides over every device of every process)."""
    devices = jax.device_count()
    if batch_size % devices:
        raise ConfigError(
            f"batch size {batch_size} does not divide over {devices} devices; "
            f"use a multiple of {devices}"
        )
    return batch_size // jax.process_count()


def is_chief() -> bool:
    """Whether this is process 0, the one that writes a run's shared files."""
    return jax.process_index() == 0


def host(tree):
    """A pytree of (fully replicated, possibly multi-process) arrays as numpy arrays on this
    process: every process holds a whole replica, so no communication is needed."""

    def one(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return leaf  # a key stays a key (np.asarray cannot hold one)
        return np.asarray(leaf)

    return jax.tree.map(one, tree)


def local(tree):
    """A pytree of replicated arrays as this process's numpy copies, for this process to save
    alone (robolearn.core.checkpoint.make_manager(alone=True): orbax refuses a jax.Array of one
    process's devices in a multi-host job); unchanged on one process."""
    return tree if jax.process_count() == 1 else host(tree)


def broadcast_flag(value: bool) -> bool:
    """Process 0's `value` on every process (itself on one process)."""
    if jax.process_count() == 1:
        return bool(value)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(value)))


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named "data" over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), ("data",))


def replicate(tree, mesh: Mesh):
    """Place a pytree on every device of the mesh (fully replicated). Over several processes each
    passes the same values (its own copy, e.g. the same seed's initial state or the same
    checkpoint), and every leaf becomes one global array: jax.device_put cannot place arrays on
    devices of other processes."""
    sharding = NamedSharding(mesh, PartitionSpec())
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda leaf: _global_replica(leaf, sharding), tree)


def _global_replica(leaf, sharding: NamedSharding):
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _global_replica(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    local = np.asarray(leaf)
    return jax.make_array_from_process_local_data(sharding, local, local.shape)


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Split this process's part of the global batch over the mesh's "data" axis.

    With several processes each passes its own rows (the loaders shard by process index); the
    global batch is their concatenation. Its size must divide by the number of devices.
    """
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }
