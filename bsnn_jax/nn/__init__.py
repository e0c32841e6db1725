"""Flax NNX modules wrapping ``bsnn_jax.ops``."""

from bsnn_jax.nn.layers import (
    AGMM,
    LIF,
    BatchNorm,
    BinaryConv,
    BinaryLinear,
    BinaryParam,
    Membrane,
    SynapticLayer,
    Trace,
    pool,
)
from bsnn_jax.nn.online import OnlineState, reset_online_state, set_online
from bsnn_jax.nn.time import default_time_fold, time_map

__all__ = [
    "AGMM",
    "LIF",
    "BatchNorm",
    "BinaryConv",
    "BinaryLinear",
    "BinaryParam",
    "Membrane",
    "OnlineState",
    "SynapticLayer",
    "Trace",
    "default_time_fold",
    "pool",
    "reset_online_state",
    "set_online",
    "time_map",
]
