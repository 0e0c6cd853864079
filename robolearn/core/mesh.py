"""The device mesh of data-parallel training: the batch is split over a "data" axis of every
device of every process, the state is replicated, and XLA inserts the gradient all-reduce."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


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
