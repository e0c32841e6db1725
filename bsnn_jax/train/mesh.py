"""Data parallelism over a device mesh: the batch sharded along ``'data'``, everything else
replicated. This is what replaced ``jax.pmap``: one ``jax.jit`` program, partitioned by GSPMD,
runs on 1 CPU, 8 GPUs or a multi-host pod slice alike. BatchNorm statistics are then computed
over the global batch (XLA inserts the all-reduce of the mean and variance)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
DISTRIBUTED_ENV = "BSNN_DISTRIBUTED"


class MeshError(ValueError):
    """Devices or batch sizes that do not fit together; the message says which setting to change."""


# How the processes of a multi-host run find each other: a config field (mesh.*), or else its
# variable; the unset value of each field.
LAUNCH_ENV = {"coordinator_address": "BSNN_COORDINATOR_ADDRESS", "num_processes": "BSNN_NUM_PROCESSES", "process_id": "BSNN_PROCESS_ID"}
LAUNCH_UNSET = {"coordinator_address": None, "num_processes": 0, "process_id": -1}


def launch_settings(mesh_config: Any) -> dict[str, Any]:
    """The ``jax.distributed.initialize`` arguments that are set: ``mesh.coordinator_address``,
    ``mesh.num_processes``, ``mesh.process_id``, each from the config or else from its ``BSNN_*``
    variable (:data:`LAUNCH_ENV`)."""
    out: dict[str, Any] = {}
    for field, variable in LAUNCH_ENV.items():
        value = getattr(mesh_config, field, LAUNCH_UNSET[field])
        text = os.environ.get(variable, "")
        if value == LAUNCH_UNSET[field] and text:
            try:
                value = text if field == "coordinator_address" else int(text)
            except ValueError:
                raise MeshError(f"{variable}={text!r} is not an integer") from None
        if value != LAUNCH_UNSET[field]:
            out[field] = value
    return out


def initialize_distributed(mesh_config: Any = None) -> bool:
    """Starts JAX's multi-controller runtime (``jax.distributed.initialize``) when the config's
    ``mesh`` group asks for it; returns whether the runtime is up.

    It is asked for by ``mesh.distributed=True`` (or ``BSNN_DISTRIBUTED=1``), or by any of
    ``mesh.coordinator_address``, ``mesh.num_processes``, ``mesh.process_id`` (or their
    ``BSNN_*`` variables, :data:`LAUNCH_ENV`), which are passed on; with none of the three JAX
    detects the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU). CPU processes get gloo
    collectives, so the same program runs across CPU hosts (and the multi-process tests). It
    must run before anything touches a device.
    """
    settings = launch_settings(mesh_config) if mesh_config is not None else {}
    asked = bool(getattr(mesh_config, "distributed", False)) or os.environ.get(DISTRIBUTED_ENV, "").lower() in ("1", "true", "yes")
    if not (asked or settings):
        return False
    if jax.distributed.is_initialized():
        return True
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only read by the CPU client
    try:
        jax.distributed.initialize(**settings)
    except (RuntimeError, ValueError) as e:
        raise MeshError(
            f"could not start the multi-process runtime ({type(e).__name__}: {e}). Give every process the same "
            "--config.mesh.coordinator_address=HOST:PORT and --config.mesh.num_processes=N and its own "
            "--config.mesh.process_id=I (or BSNN_COORDINATOR_ADDRESS, BSNN_NUM_PROCESSES, BSNN_PROCESS_ID), "
            "or run under SLURM, Open MPI, Kubernetes or a Cloud TPU pod, which JAX detects"
        ) from None
    return True


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier ``name`` (nothing to wait for on one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return flag
    return bool(np.asarray(multihost_utils.process_allgather(np.asarray(flag, np.int32))).any())


def check_processes_agree(values: dict[str, str]) -> None:
    """Raises a :class:`MeshError` naming the first of ``values`` (name -> text) that differs
    between this process and process 0: the processes of one run must share the config, the data
    and the split of the batch."""
    if jax.process_count() == 1:
        return
    digests = np.array([int(hashlib.sha256(v.encode()).hexdigest()[:15], 16) for v in values.values()], np.int64)
    gathered = np.asarray(multihost_utils.process_allgather(digests))  # [processes, len(values)]
    for column, name in enumerate(values):
        others = [p for p in range(gathered.shape[0]) if gathered[p, column] != gathered[0, column]]
        if others:
            raise MeshError(
                f"process(es) {others} have another {name} than process 0 ({values[name][:200]!r} here, on process "
                f"{jax.process_index()}): every process of a run must run the same command on the same files"
            )


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
