"""Data parallelism over a device mesh: the batch sharded along ``'data'``, everything else
replicated. This is what replaced ``jax.pmap``: one ``jax.jit`` program, partitioned by GSPMD,
runs on 1 CPU, 8 GPUs or a multi-host pod slice alike. BatchNorm statistics are then computed
over the global batch (XLA inserts the all-reduce of the mean and variance)."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
DISTRIBUTED_ENV = "BSNN_DISTRIBUTED"


class MeshError(ValueError):
    """Devices or batch sizes that do not fit together; the message says which setting to change."""


def initialize_distributed(enabled: bool = False) -> bool:
    """Calls ``jax.distributed.initialize()`` (multi-host) when ``enabled`` or when the
    environment variable ``BSNN_DISTRIBUTED=1`` asks for it; returns whether it did.

    ``jax.distributed.initialize`` reads the coordinator address, process count and id from
    the cluster environment (SLURM, Cloud TPU, ...) or from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``. It must run before anything touches a device.
    """
    if not (enabled or os.environ.get(DISTRIBUTED_ENV, "").lower() in ("1", "true", "yes")):
        return False
    if jax.distributed.is_initialized():
        return True
    jax.distributed.initialize()
    return True


def make_mesh(num_devices: int | None = None, devices: list[Any] | None = None) -> Mesh:
    """A 1-D mesh with axis ``'data'`` over ``num_devices`` devices (all by default).

    ``num_devices`` smaller than ``jax.device_count()`` takes the first ones (single-host only),
    which is how tests compare a 1-device and an 8-device run in one process.
    """
    if devices is None:
        available = jax.devices()
        n = num_devices or len(available)
        if n > len(available):
            raise MeshError(f"asked for {n} devices but only {len(available)} are visible ({jax.default_backend()})")
        if n < len(available) and jax.process_count() > 1:
            raise MeshError("a subset of the devices can only be used in a single-process run")
        devices = available[:n]
    return jax.make_mesh((len(devices),), (DATA_AXIS,), (jax.sharding.AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of parameters and optimizer state: a full copy on every device."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a batch: split along its first (batch) axis over ``'data'``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    """Raises a clear error unless the global batch splits evenly over the mesh and processes."""
    n = mesh.devices.size
    if global_batch % n:
        raise MeshError(
            f"batch size {global_batch} does not split over {n} devices; use a multiple of {n} "
            f"(--config.batch_size=...) or fewer devices (--config.mesh.num_devices=...)"
        )
    if global_batch % jax.process_count():
        raise MeshError(f"batch size {global_batch} does not split over {jax.process_count()} processes")


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Places this process's part of the batch on the mesh as one global array per key.

    Each process passes its own ``local_batch = global_batch / process_count`` examples
    (the loader shards the data per process); in a single-process run that is the whole batch.
    """
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Puts every array of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))
