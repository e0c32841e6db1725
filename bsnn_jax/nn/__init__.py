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
from bsnn_jax.nn.online import OnlineState, load_online_state, reset_online_state, set_online
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
    "load_online_state",
    "pool",
    "reset_online_state",
    "set_online",
    "time_map",
]
