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
    """Place a pytree on every device of the mesh (fully replicated)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Split this process's part of the global batch over the mesh's "data" axis.

    With several processes each passes its own rows (the loaders shard by process index); the
    global batch is their concatenation. Its size must divide by the number of devices.
    """
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }
